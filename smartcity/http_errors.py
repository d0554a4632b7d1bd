"""HTTP answers shared by the API's routers for failures of the services behind them."""

from __future__ import annotations

from fastapi import HTTPException, status

from smartcity.errors import TransportError


def retry_later(what: str, exc: TransportError) -> HTTPException:
    """503 with ``Retry-After`` (whole seconds, at least 1): a broker or store behind the API did not answer."""
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"{what}: {exc}; retry",
        headers={"Retry-After": str(max(1, round(exc.retry_after)))},
    )
