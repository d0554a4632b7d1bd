"""How much of a request the HTTP API reads: a body over the limit is refused with 413, never read into memory.

``BodyLimit`` is plain ASGI middleware, added outermost in ``smartcity.api.create_app``. What it guarantees:

- **A declared length over the limit is refused before anything is read**: ``Content-Length`` larger than the
  limit answers 413 at once, whatever the route, and the connection is closed (the client may still be sending).
  A ``Content-Length`` that is not a number is 400 (uvicorn refuses it first; other servers might not).
- **An undeclared length is counted as it arrives** (``Transfer-Encoding: chunked``): the read that takes the
  count past the limit raises ``BodyTooLarge``, so at most the limit plus one chunk is ever held. A route that
  never reads its body never holds any of it (uvicorn stops reading the socket after 64 KiB).
- **Refusals look like every other error of the API**: JSON ``{"detail": "..."}`` (as ``fastapi.HTTPException``
  answers, see ``core.http.errors``), naming the limit in bytes.

A route may be given a larger limit (``routes``: exact path to bytes): the device import takes thousands of
records in one request. Why not FastAPI's own ``max_body_size``: it is newer than the FastAPI we require (0.110),
and on some paths it answers plain text ``Content Too Large`` instead of the API's JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MiB: Final = 1024 * 1024
DEFAULT_MAX_BODY_BYTES: Final = 1 * MiB
_CLOSE: Final = {"Connection": "close"}


class BodyTooLarge(HTTPException):
    """413, raised from ``receive`` when a body passes its limit: FastAPI hands an ``HTTPException`` from body
    reading to its exception handlers unchanged, so the route answers 413 JSON; ``BodyLimit`` catches the rest."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit), headers=_CLOSE)


def too_large(limit: int) -> str:
    return f"request body too large: this route takes at most {limit} bytes"


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (``routes``: larger or smaller limits for exact paths)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES, routes: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.routes = dict(routes or {})
        if max_bytes < 0 or any(v < 0 for v in self.routes.values()):
            raise ValueError("body limits must not be negative")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.routes.get(scope["path"], self.max_bytes)
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refuse(send, 400, f"Content-Length {declared[:40]!r} is not a number of bytes")
                return
            if int(declared) > limit:
                await _refuse(send, 413, too_large(limit))
                return

        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:
            if started:  # too late for an answer: the server closes the connection
                raise
            await _refuse(send, 413, str(exc.detail))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1").strip())
    return None


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
