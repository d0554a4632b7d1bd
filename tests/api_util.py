"""The whole HTTP API as ``smartcity api`` assembles it (``create_app``, ``alert_service``, ``http_config``), wired to
the session's real Tansu, InfluxDB and Mosquitto (the one with dynamic security, so creating a device issues a real
MQTT password) and served by uvicorn on a free port, for the API's schema, authorization and logging tests."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from alerts.main import alert_service
from alerts.officers import token_hash
from alerts.service import AlertService
from alerts.settings import AlertsSettings
from alerts.store import alert_topics
from core.contracts.alert import Alert
from core.contracts.finding import Finding
from core.kafka.admin import ensure_topics
from core.process import free_port
from core.settings import MqttConnection
from devices.feed import DevicePublisher
from devices.mqtt_accounts import MqttAccounts
from devices.registry import Registry
from devices.store import DeviceStore
from harness.builders import device_record
from smartcity.api import ApiSettings, create_app, http_config
from smartcity.stack.services import Launch
from storage.query import ReadingsQuery
from storage.retention import ensure_retention
from tests.alerts_util import ADMIN, FIRE_OFFICER, send_findings
from tests.mqtt_util import CONTROL_PASSWORD, CONTROL_USER

OFFICERS = {FIRE_OFFICER: ("火警值班员", "fire")}


def api_process_env(kafka_bootstrap: str, mqtt_url: str, work: Path, unique: str, **settings: str) -> dict[str, str]:
    """The environment of a ``smartcity api`` child process of its own: this process's, without any SMARTCITY_*
    setting that could leak in, and the API on the session's brokers with its own topics and registry, no MQTT
    accounts and no alerts service; ``settings``: more (``SMARTCITY_HTTP_PORT``, ...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    return env | {
        "SMARTCITY_MQTT_URL": mqtt_url,
        "SMARTCITY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SMARTCITY_TOPIC_DEVICES": f"devices.{unique}",
        "SMARTCITY_TOPIC_READINGS": f"readings.{unique}",
        "SMARTCITY_REGISTRY_DB": str(work / "registry.db"),
        "SMARTCITY_MQTT_ACCOUNTS": "off",
        "SMARTCITY_ALERTS_ENABLED": "false",
        **settings,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def water_gauge(device_id: str, **changes: Any) -> dict[str, Any]:
    """The record of a water-level gauge on the Longgang river, with two departments and threshold overrides (what
    the API tests check comes back); ``changes``: ``harness.builders.device_record`` knobs or any field."""
    knobs: dict[str, Any] = {
        "kind": "water", "site": "R02", "site_name": "龙岗河水位站", "lat": 22.70, "interval_s": 300,
        "departments": ["water", "emergency"], "thresholds": {"level_m": {"orange": 3.2, "red": 4.1}},
    }  # fmt: skip
    return device_record(device_id, **(knobs | changes))


@dataclass
class LiveApi:
    app: FastAPI
    url: str
    settings: ApiSettings
    alerts: AlertService

    def client(self, token: str | None = ADMIN) -> httpx.AsyncClient:
        """An HTTP client of the served API, signed in with ``token`` (None: no Authorization header)."""
        return httpx.AsyncClient(base_url=self.url, headers=bearer(token) if token else {}, timeout=30)

    async def raise_alert(self, finding: Finding, timeout: float = 30) -> Alert:
        """Send ``finding`` through Kafka and wait until the alerts service opened its alert."""
        await send_findings(self.settings, finding)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rec = self.alerts.book.open_for(finding.key)
            if rec is not None:
                return rec.alert
            await asyncio.sleep(0.05)
        raise AssertionError(f"no alert for {finding.key} within {timeout} s")


def accounts_conn(secured: tuple[Launch, Path]) -> MqttConnection:
    """The dynamic-security broker (session fixture ``secured``) as its administrator: device accounts are made here."""
    return MqttConnection(mqtt_url=secured[0].url, mqtt_username=CONTROL_USER, mqtt_password=CONTROL_PASSWORD)


def api_settings(alerts_settings: AlertsSettings, work: Path, unique: str, **changes: Any) -> ApiSettings:
    """The API's settings on the test's topics, with the admin token and the fire officer."""
    officers = work / "officers.yaml"
    officers.write_text(
        "officers:\n"
        + "".join(
            f"  - {{name: {name}, departments: [{department}], token_sha256: {token_hash(token)}}}\n"
            for token, (name, department) in OFFICERS.items()
        ),
        encoding="utf-8",
    )
    return ApiSettings(
        **{
            **alerts_settings.model_dump(),
            "api_token": ADMIN,
            "officers_file": officers,
            "registry_db": work / "registry.db",
            "topic_devices": f"devices.{unique}",
            "http_port": free_port(),
            **changes,
        }
    )


@asynccontextmanager
async def live_api(
    settings: ApiSettings, accounts_conn: MqttConnection, *, configured: Callable[[], None] = lambda: None
) -> AsyncIterator[LiveApi]:
    """Start the store, device feed, MQTT accounts (on ``accounts_conn``), alerts service, readings query (its
    retention policies made as the writer makes them) and the app; serve it with the production uvicorn configuration
    (``http_config``); stop everything again. ``configured`` runs after uvicorn configured its logging and before it
    serves (a test that raises every logger to DEBUG does it there)."""
    store = DeviceStore(settings.registry_db)
    feed = DevicePublisher(settings)
    accounts = MqttAccounts(accounts_conn)
    await ensure_topics(settings.kafka_bootstrap, alert_topics(settings))
    await ensure_retention(settings)  # as the readings writer does at its start: the readings query reads ``raw``
    prometheus = CollectorRegistry()
    alerts = alert_service(settings, prometheus)
    readings_query = ReadingsQuery(settings)
    await feed.start()
    await accounts.start()
    await alerts.start()
    try:
        app = create_app(settings, Registry(store, feed, accounts), prometheus, alerts, readings_query=readings_query)
        server = uvicorn.Server(http_config(app, settings))
        configured()
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.02)
        try:
            yield LiveApi(app, f"http://{settings.http_host}:{settings.http_port}", settings, alerts)
        finally:
            server.should_exit = True
            await serving
    finally:
        await alerts.stop()
        await readings_query.close()
        await accounts.close()
        await feed.stop()
        store.close()
