"""HTTP answers shared by the API's routers: for failures of the services behind them, for bad input a route finds
itself (in the shape FastAPI gives its own validation errors, so that every 422 matches the OpenAPI document's
``HTTPValidationError``), and for request bodies that are not JSON at all (``unreadable_body``)."""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import TransportError


def retry_later(what: str, exc: TransportError) -> HTTPException:
    """503 with ``Retry-After`` (whole seconds, at least 1): a broker or store behind the API did not answer."""
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"{what}: {exc}; retry",
        headers={"Retry-After": str(max(1, round(exc.retry_after)))},
    )


def unprocessable(where: tuple[str | int, ...], message: str, value: object = None) -> RequestValidationError:
    """422 ``{"detail": [{"type", "loc", "msg", "input"}]}`` for a value a route refuses after FastAPI took it:
    ``where`` is the ``loc``, e.g. ``("query", "from")``."""
    return RequestValidationError([{"type": "value_error", "loc": where, "msg": message, "input": value}])


def unprocessable_model(exc: ValidationError, where: tuple[str | int, ...] = ("body",)) -> RequestValidationError:
    """422 for a model a route builds from the request (its errors under ``where``), without pydantic's URLs."""
    errors = exc.errors(include_url=False, include_context=False)
    return RequestValidationError([{**error, "loc": (*where, *error["loc"])} for error in errors])


async def unreadable_body(request: Request, exc: StarletteHTTPException) -> Response:
    """The app's ``HTTPException`` handler: FastAPI's own, except that a body FastAPI could not decode, which it
    answers with a bare 400 "There was an error parsing the body" (the cause chained), says what is wrong with it.
    Text that is not JSON is FastAPI's 422 ``json_invalid`` with the position; this covers the rest."""
    cause = exc.__cause__
    if exc.status_code == status.HTTP_400_BAD_REQUEST and isinstance(cause, UnicodeDecodeError):
        detail = f"request body is not JSON text: not valid {cause.encoding} ({cause.reason} at byte {cause.start})"
    elif exc.status_code == status.HTTP_400_BAD_REQUEST and isinstance(cause, RecursionError):
        detail = "request body is JSON nested too deeply to read"
    else:
        return await http_exception_handler(request, exc)
    return JSONResponse({"detail": detail}, status_code=status.HTTP_400_BAD_REQUEST)
