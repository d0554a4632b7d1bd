"""The HTTP service on 127.0.0.1:8080: ``/healthz``, ``/metrics`` and the ``/api/`` routers of each part.

Every ``/api/`` call needs ``Authorization: Bearer <token>``. On one machine ``SMARTCITY_API_TOKEN`` is the
all-departments admin token; officers' own tokens arrive with the alerts API (issue 5).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from devices.api import devices_router
from devices.registry import Registry


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTCITY_", frozen=True, extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=1, le=65535)
    api_token: SecretStr | None = Field(None, description="the all-departments admin token (one machine)")


_bearer = HTTPBearer(auto_error=False)


def create_app(settings: ApiSettings, registry: Registry, metrics: CollectorRegistry) -> FastAPI:
    app = FastAPI(title="SmartCity", version="0.1.0", description="Hazard sensing and alerting for a smart district.")

    def require_token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        if creds is None or creds.scheme.lower() != "bearer":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        token = settings.api_token.get_secret_value() if settings.api_token else None
        if token is None or not secrets.compare_digest(creds.credentials.encode(), token.encode()):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown token", headers={"WWW-Authenticate": "Bearer"})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    app.include_router(devices_router(registry, require_token))
    return app
