"""Security headers on the console, the API and the OpenAPI pages (core/http/headers.py)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from alerts.console import mount_console
from core.http.headers import DATA_CSP, SecurityHeaders


def _client(tmp_path: Path, img_sources: str = "") -> TestClient:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>console</title>")
    (tmp_path / "assets" / "app.js").write_text("console.log(1)")
    app = FastAPI()

    @app.get("/api/thing")
    async def thing() -> dict[str, int]:
        return {"a": 1}

    mount_console(app, tmp_path)
    app.add_middleware(SecurityHeaders, img_sources=img_sources)
    return TestClient(app)


def _common(headers: dict[str, str]) -> None:
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"


def test_the_console_gets_a_content_security_policy(tmp_path: Path) -> None:
    client = _client(tmp_path, "https://tiles.example")
    for path in ("/", "/assets/app.js", "/nothing-here"):
        answer = client.get(path)
        _common(answer.headers)  # type: ignore[arg-type]
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self';" in csp
        assert "frame-ancestors 'none'" in csp
        assert "connect-src 'self'" in csp
        assert "img-src 'self' data: blob: https://tiles.example;" in csp
        assert "unsafe-eval" not in csp
        assert "unsafe-inline" not in csp


def test_the_api_is_data_and_the_openapi_pages_keep_their_cdn(tmp_path: Path) -> None:
    client = _client(tmp_path)
    api = client.get("/api/thing")
    _common(api.headers)  # type: ignore[arg-type]
    assert api.headers["content-security-policy"] == DATA_CSP
    docs = client.get("/docs")
    assert docs.status_code == 200
    _common(docs.headers)  # type: ignore[arg-type]
    assert "content-security-policy" not in docs.headers
