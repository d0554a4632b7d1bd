"""Security headers on every answer of the HTTP API and the duty console (plain ASGI middleware).

Every answer: ``X-Content-Type-Options: nosniff`` (a JSON or CSV answer is never sniffed into HTML),
``Referrer-Policy: no-referrer`` (the console's addresses, and ``?token=`` of the live stream, never leave in a
``Referer``), ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'`` (no page may frame the console and click
an officer's "acknowledge" for them).

The Content-Security-Policy depends on what is answered:

- the console (``/`` and its ``/assets/``): scripts, styles, fonts and connections (``fetch``, the live stream's
  ``EventSource``) from this origin only: no inline script, no ``eval``, no CDN. Images also from ``data:`` and
  ``blob:`` (Leaflet's controls), plus the tile servers named in ``SMARTCITY_CONSOLE_IMG_SOURCES`` (the map's
  optional tile layer, docs/console.md). Styles from this origin only too: Leaflet, uPlot and Preact set styles
  through the CSSOM (``element.style``), which a CSP does not govern.
- ``/api/`` and ``/metrics``, ``/healthz``: data, never a page: ``default-src 'none'``.
- the OpenAPI pages (``/docs``, ``/redoc``): FastAPI's pages load Swagger UI and ReDoc from a CDN with an inline
  script, so they get no CSP (the other headers still apply).
"""

from __future__ import annotations

from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DATA_CSP: Final = "default-src 'none'; frame-ancestors 'none'"
_NO_CSP: Final = ("/docs", "/redoc")


def console_csp(img_sources: str = "") -> str:
    images = " ".join(["'self'", "data:", "blob:", *img_sources.split()])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


class SecurityHeaders:
    def __init__(self, app: ASGIApp, img_sources: str = "") -> None:
        self.app = app
        self.console = console_csp(img_sources)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith(_NO_CSP):
            csp = None
        elif path.startswith("/api/") or path in ("/metrics", "/healthz", "/openapi.json"):
            csp = DATA_CSP
        else:
            csp = self.console

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
                if csp is not None:
                    headers.setdefault("Content-Security-Policy", csp)
            await send(message)

        await self.app(scope, receive, with_headers)
