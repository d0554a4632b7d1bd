"""An in-process alerts service with its HTTP API on a free port, for the alerts integration tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from alerts.api import alerts_router, officer_auth
from alerts.archive import AlertArchive
from alerts.channels.base import Channel
from alerts.channels.mqtt import MqttChannel
from alerts.channels.webhook import WebhookChannel
from alerts.contacts import load_contacts
from alerts.incident_api import incidents_router
from alerts.metrics import AlertMetrics
from alerts.officers import Officers
from alerts.routing import load_routing
from alerts.service import AlertService
from alerts.settings import AlertsSettings
from alerts.store import alert_topics
from core.contracts.alert import Alert
from core.contracts.finding import Finding
from core.influx.client import LineWriter
from core.kafka.admin import ensure_topics
from core.mqtt import AsyncMqttClient
from core.process import free_port
from tests.mqtt_util import Collector

ADMIN = "admin-test-token"  # 12 characters at least, like every API token
FIRE_OFFICER = "fire-officer-token"


async def send_findings(settings: AlertsSettings, *findings: Finding) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for f in findings:
            await producer.send_and_wait(settings.topic_findings, f.model_dump_json().encode(), key=f.key.encode())
    finally:
        await producer.stop()


def messages(collector: Collector, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    return [json.loads(p) for _, p in collector.wait_for(count, timeout)]


@dataclass
class Rig:
    settings: AlertsSettings
    service: AlertService
    http: httpx.AsyncClient
    url: str

    async def send(self, *findings: Finding) -> None:
        await send_findings(self.settings, *findings)

    async def wait_alert(self, key: str, check: Callable[[Alert], bool], timeout: float = 20) -> Alert:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rec = self.service.book.open_for(key) or next(
                (r for r in self.service.book.records.values() if r.alert.key == key), None
            )
            if rec is not None and check(rec.alert):
                return rec.alert
            await asyncio.sleep(0.05)
        raise AssertionError(f"no alert {key} matching the check within {timeout} s")


RigFactory = Callable[..., AbstractAsyncContextManager[Rig]]


def rig_factory(alerts_settings: AlertsSettings, officers_file: Path) -> RigFactory:
    """``async with rig(routing=..., contacts=..., **setting_changes) as r``: a started service and its API."""

    @asynccontextmanager
    async def _run(routing: Path | None = None, contacts: Path | None = None, **changes: Any) -> AsyncIterator[Rig]:
        settings = alerts_settings.model_copy(update=changes)
        await ensure_topics(settings.kafka_bootstrap, alert_topics(settings))
        contact_book = load_contacts(contacts)
        channels: list[Channel] = [
            MqttChannel(AsyncMqttClient(settings, f"alerts-{time.monotonic_ns()}", clean_start=True)),
            WebhookChannel(contact_book),
        ]
        service = AlertService(
            settings,
            load_routing(routing),
            channels,
            AlertMetrics.create(CollectorRegistry()),
            archive=AlertArchive(LineWriter(settings)),
        )
        await service.start()
        officers = Officers.load(officers_file, ADMIN)
        app = FastAPI()
        app.include_router(alerts_router(service, officer_auth(officers), officers))
        app.include_router(incidents_router(service, officer_auth(officers)))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}) as http:
                yield Rig(settings, service, http, url)
        finally:
            server.should_exit = True
            await serving
            await service.stop()

    return _run
