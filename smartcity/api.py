"""The HTTP service on 127.0.0.1:8080: ``/healthz``, ``/metrics`` and the ``/api/`` routers of each part.

Every ``/api/`` call needs ``Authorization: Bearer <token>``. On one machine ``SMARTCITY_API_TOKEN`` is the
all-departments admin token; officers' own tokens arrive with the alerts API (issue 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import Field, SecretStr

from devices.api import devices_router
from devices.feed import DevicePublisher, follow_readings
from devices.mqtt_accounts import AccountBackend, AccountError, MqttAccounts
from devices.mqtt_files import FileAccounts
from devices.registry import Registry
from devices.store import DeviceStore
from ingest.parse import device_id_of
from smartcity.mqtt import AsyncMqttClient
from smartcity.settings import KafkaConnection, MqttConnection


class ApiSettings(MqttConnection, KafkaConnection):
    """The API service. Its MQTT account is the dynamic-security administrator (it issues device credentials)."""

    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=1, le=65535)
    api_token: SecretStr | None = Field(None, description="the all-departments admin token (one machine)")
    registry_db: Path = Field(Path(".smartcity/registry.db"), description="the registry's SQLite file")
    mqtt_accounts: Literal["dynsec", "files", "off"] = Field(
        "dynsec",
        description="where per-device MQTT accounts are made: Mosquitto's dynamic-security plugin (over MQTT), its "
        "password and ACL files (same machine, reloaded by SIGHUP), or nowhere",
    )
    mqtt_auth_dir: Path = Field(Path(".smartcity/mosquitto/auth"), description="password/ACL files (files)")
    mosquitto_pid_file: Path = Field(Path(".smartcity/mosquitto/mosquitto.pid"), description="to reload (files)")


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

    @app.exception_handler(AccountError)
    async def account_refused(_request: Request, exc: AccountError) -> JSONResponse:
        conflict = "exist" in str(exc).lower()
        return JSONResponse(
            {"detail": f"the MQTT broker refused the account change: {exc}"},
            status_code=status.HTTP_409_CONFLICT if conflict else status.HTTP_502_BAD_GATEWAY,
        )

    @app.exception_handler(TimeoutError)
    async def broker_timeout(_request: Request, _exc: TimeoutError) -> JSONResponse:
        return JSONResponse(
            {"detail": "the MQTT broker did not answer the account change in time; retry"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    app.include_router(devices_router(registry, require_token))
    return app


async def run_api(settings: ApiSettings) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's own handling): store, Kafka feed and MQTT accounts around the app."""
    import uvicorn

    store = DeviceStore(settings.registry_db)
    feed = DevicePublisher(settings)
    await feed.start()
    accounts: AccountBackend | None = None
    if settings.mqtt_accounts == "dynsec":
        accounts = MqttAccounts(settings)
    elif settings.mqtt_accounts == "files":
        accounts = FileAccounts(settings.mqtt_auth_dir, settings.mosquitto_pid_file)
    if accounts is not None:
        await accounts.start()
    registry = Registry(store, feed, accounts)
    await registry.republish()
    readings = asyncio.get_running_loop().create_task(follow_readings(settings, registry.health))
    statuses = AsyncMqttClient(
        settings,
        f"smartcity-api-{uuid.uuid4().hex[:8]}",
        clean_start=True,
        subscriptions=[("devices/+/status", 1)],
        on_message=lambda m: registry.health.status(device_id_of(m.topic), m.payload.decode(errors="replace")),
    )
    await statuses.start()
    app = create_app(settings, registry, CollectorRegistry())
    server = uvicorn.Server(uvicorn.Config(app, host=settings.http_host, port=settings.http_port, log_level="warning"))
    try:
        await server.serve()
    finally:
        readings.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await readings
        await statuses.close()
        if accounts is not None:
            await accounts.close()
        await feed.stop()
        store.close()
