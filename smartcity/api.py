"""The HTTP service on 127.0.0.1:8080: ``/healthz``, ``/metrics``, the ``/api/`` routers of each part, and the
alerts service (built by ``alerts.main``) running beside them in the same process.

Every ``/api/`` call needs ``Authorization: Bearer <token>`` of an officer (``alerts.officers``); on one machine
``SMARTCITY_API_TOKEN`` is the all-departments admin token. With ``SMARTCITY_HTTP_METRICS_PORT`` set, ``/metrics``
moves off the API's port to a plain-HTTP listener of its own, for Prometheus on an internal network (compose.yaml).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from alerts.api import alerts_router, officer_auth
from alerts.console import mount_console
from alerts.incident_api import incidents_router
from alerts.layer_sources import standard_layers
from alerts.layers import layers_router
from alerts.main import alert_service
from alerts.officers import Officer, Officers
from alerts.service import AlertService
from alerts.settings import AlertsSettings
from core.errors import KafkaUnavailable
from core.gc_tuning import GcTimer, freeze_long_lived
from core.http.errors import unreadable_body
from core.http.headers import SecurityHeaders
from core.http.health import serve_health
from core.http.limits import BodyLimit
from core.kafka.requests import count_kafka_requests
from core.logs import redact_url_secrets
from core.mqtt import AsyncMqttClient
from core.settings import ApiToken, HttpTls
from devices.api import IMPORT_MAX_BODY_BYTES, IMPORT_PATH, devices_router
from devices.feed import DevicePublisher, follow_health
from devices.mqtt_accounts import AccountBackend, AccountError, MqttAccounts
from devices.mqtt_files import FileAccounts
from devices.registry import DeviceCounts, Registry
from devices.store import DeviceStore
from ingest.parse import device_id_of
from smartcity.incident_report import report_router
from storage.api import readings_router
from storage.query import ReadingsQuery

if TYPE_CHECKING:
    import uvicorn

logger = logging.getLogger(__name__)


class ApiSettings(AlertsSettings, HttpTls):
    """The API and alerts service. Its MQTT account issues device credentials and publishes ``alerts/#``.

    A refused value is never echoed in the error: several are secrets (the API token, passwords)."""

    model_config = SettingsConfigDict(hide_input_in_errors=True)  # merged with the prefix and freezing inherited
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=1, le=65535)
    http_metrics_host: str = Field("127.0.0.1", description="address of the /metrics listener (http_metrics_port)")
    http_metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="serve /metrics (and /healthz) here, in plain HTTP, instead of on the API's port: a listener "
        "for Prometheus only, never published",
    )
    api_token: ApiToken | None = Field(
        None, description="the all-departments admin token (one machine); at least 12 characters"
    )
    registry_db: Path = Field(Path(".smartcity/registry.db"), description="the registry's SQLite file")
    mqtt_accounts: Literal["dynsec", "files", "off"] = Field(
        "dynsec",
        description="where per-device MQTT accounts are made: Mosquitto's dynamic-security plugin (over MQTT), its "
        "password and ACL files (same machine, reloaded by SIGHUP), or nowhere",
    )
    mqtt_auth_dir: Path = Field(Path(".smartcity/mosquitto/auth"), description="password/ACL files (files)")
    mosquitto_pid_file: Path = Field(Path(".smartcity/mosquitto/mosquitto.pid"), description="to reload (files)")
    console_img_sources: str = Field(
        "",
        max_length=2000,
        description="extra CSP img-src sources for the console, space-separated: the map's tile servers "
        "(e.g. https://tiles.example)",
    )


def create_app(
    settings: ApiSettings,
    registry: Registry,
    metrics: CollectorRegistry,
    alerts: AlertService | None = None,
    officers: Officers | None = None,
    readings_query: ReadingsQuery | None = None,
) -> FastAPI:
    app = FastAPI(title="SmartCity", version="0.1.0", description="Hazard sensing and alerting for a smart district.")
    token = settings.api_token.get_secret_value() if settings.api_token else None
    officers = officers or Officers.load(settings.officers_file, token)
    auth = officer_auth(officers)
    imports = max(IMPORT_MAX_BODY_BYTES, settings.http_max_body_bytes)
    app.add_middleware(BodyLimit, max_bytes=settings.http_max_body_bytes, routes={IMPORT_PATH: imports})
    app.add_middleware(SecurityHeaders, img_sources=settings.console_img_sources)  # outermost: on every answer

    app.exception_handler(StarletteHTTPException)(unreadable_body)

    @app.exception_handler(AccountError)
    async def account_refused(_request: Request, exc: AccountError) -> JSONResponse:
        conflict = "exist" in str(exc).lower()
        return JSONResponse(
            {"detail": f"the MQTT broker refused the account change: {exc}"},
            status_code=status.HTTP_409_CONFLICT if conflict else status.HTTP_502_BAD_GATEWAY,
        )

    @app.exception_handler(KafkaUnavailable)
    async def kafka_unavailable(_request: Request, exc: KafkaUnavailable) -> JSONResponse:
        return JSONResponse(
            {"detail": f"Kafka did not acknowledge the change: {exc}"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(max(1, round(exc.retry_after)))},
        )

    @app.exception_handler(TimeoutError)
    async def broker_timeout(_request: Request, _exc: TimeoutError) -> JSONResponse:
        return JSONResponse(
            {"detail": "the MQTT broker did not answer the account change in time; retry"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        if alerts is not None and not alerts.healthy():
            return JSONResponse(
                {"status": "alerts service not running"}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE
            )
        return JSONResponse({"status": "ok"})

    if settings.http_metrics_port is None:

        @app.get("/metrics", response_class=PlainTextResponse)
        async def prometheus() -> PlainTextResponse:
            return PlainTextResponse(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    signed_in = Depends(auth)

    def devices_auth(request: Request, officer: Officer = signed_in) -> Officer:
        """Officers read the registry; changing it is for administrators."""
        if request.method not in ("GET", "HEAD") and not officer.admin:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only an administrator changes the device registry")
        return officer

    @app.get("/api/me", response_model=Officer, tags=["officers"])
    async def me(officer: Officer = signed_in) -> Officer:
        """Who the token belongs to: the console's login asks this."""
        return officer

    app.include_router(devices_router(registry, devices_auth))
    if readings_query is not None:
        app.include_router(readings_router(readings_query, registry.get, auth))
    if alerts is not None:
        app.include_router(alerts_router(alerts, auth, officers))
        app.include_router(incidents_router(alerts, auth))
        app.include_router(report_router(alerts, readings_query, registry.get, auth))
    app.include_router(layers_router(standard_layers(registry, alerts), officers))
    mount_console(app)
    return app


def http_config(app: FastAPI, settings: ApiSettings) -> uvicorn.Config:
    """How uvicorn serves the API: warnings only (no access lines), HTTPS when a certificate is set; access lines, if
    a logging set-up shows them, never carry a token (docs/security.md)."""
    import uvicorn

    redact_url_secrets("uvicorn.access")  # also when the process's logging was set up elsewhere (tests, embedding)
    return uvicorn.Config(
        app, host=settings.http_host, port=settings.http_port, log_level="warning", **settings.uvicorn_tls()
    )


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
        accounts = FileAccounts(settings.mqtt_auth_dir, settings.mosquitto_pid_file, probe=settings)
    if accounts is not None:
        await accounts.start()
    registry = Registry(store, feed, accounts)
    await registry.republish()
    health = asyncio.get_running_loop().create_task(follow_health(settings, registry.health))
    statuses = AsyncMqttClient(
        settings,
        f"smartcity-api-{uuid.uuid4().hex[:8]}",
        clean_start=True,
        subscriptions=[("devices/+/status", 1)],
        on_message=lambda m: registry.health.status(device_id_of(m.topic), m.payload.decode(errors="replace")),
    )
    await statuses.start()
    prometheus = CollectorRegistry()
    GcTimer(prometheus)
    count_kafka_requests(prometheus)
    DeviceCounts(registry, prometheus)
    alerts = alert_service(settings, prometheus) if settings.alerts_enabled else None
    if alerts is not None:
        await alerts.start()
    logger.info("api: %d objects frozen out of the collector's walks", freeze_long_lived())
    readings_query = ReadingsQuery(settings)
    app = create_app(settings, registry, prometheus, alerts, readings_query=readings_query)
    server = uvicorn.Server(http_config(app, settings))
    scrape = None
    if settings.http_metrics_port is not None:
        scrape = await serve_health(
            settings.http_metrics_host,
            settings.http_metrics_port,
            prometheus,
            lambda: {"alerts": alerts is None or alerts.healthy()},
        )
    try:
        await server.serve()
    finally:
        if scrape is not None:
            await scrape.cleanup()
        if alerts is not None:
            await alerts.stop()
        await readings_query.close()
        health.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await health
        await statuses.close()
        if accounts is not None:
            await accounts.close()
        await feed.stop()
        store.close()
