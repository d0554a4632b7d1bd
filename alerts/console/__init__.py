"""The duty console: a single-page app (``web/``, built with Vite into ``static/``) served by the API at ``/``.

The build is part of set-up (``scripts/setup.sh`` runs ``npm ci && npm run build``), so the built files are never
committed and never fetched from a CDN at run time. An API started without a build still answers ``/`` with a page
that says how to build it, rather than a bare 404.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")

_NOT_BUILT = """<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>SmartCity</title>
<h1>值班控制台未构建 / The duty console is not built</h1>
<p>Run <code>make setup</code> (or <code>cd alerts/console/web &amp;&amp; npm ci &amp;&amp; npm run build</code>),
then reload. The API itself works: <a href="/docs">/docs</a>.</p></html>"""


def mount_console(app: FastAPI, static: Path = STATIC) -> None:
    """Serve the built console at ``/`` (after every API route, which keep precedence)."""
    if (static / "index.html").exists():
        app.mount("/", StaticFiles(directory=static, html=True), name="console")
        return

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def not_built() -> HTMLResponse:
        return HTMLResponse(_NOT_BUILT, status_code=503)
