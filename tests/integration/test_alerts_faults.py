"""The alerts service killed with SIGKILL: open alerts and acknowledgements survive, and a change that was saved but
maybe never sent is sent again on start."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from alerts.lifecycle import AlertBook
from alerts.routing import load_routing
from alerts.settings import AlertsSettings
from alerts.silences import Windows
from alerts.store import AlertStore, alert_topics
from core.contracts.finding import FindingEvent
from core.kafka.admin import ensure_topics
from core.process import ManagedProcess, free_port
from smartcity.api import ApiSettings
from tests.alerts_util import RigFactory, messages, send_findings
from tests.integration.conftest import settings_env
from tests.mqtt_util import Collector
from tests.unit.alerts.factories import finding

pytestmark = pytest.mark.integration

TOKEN = "fault-admin-token"


async def _wait(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_sigkill_loses_no_alert_and_no_acknowledgement(
    alerts_settings: AlertsSettings, tmp_path: Path, mqtt_url: str
) -> None:
    port = free_port()
    settings = ApiSettings(
        **alerts_settings.model_dump(exclude={"mqtt_password", "influx_password", "influx_token", "api_token"}),
        http_port=port,
        registry_db=tmp_path / "registry.db",
        mqtt_accounts="off",
    )
    await ensure_topics(settings.kafka_bootstrap, alert_topics(settings))
    process = ManagedProcess(
        "api",
        [sys.executable, "-m", "smartcity", "api"],
        tmp_path / "api.log",
        env=settings_env(settings) | {"SMARTCITY_API_TOKEN": TOKEN},
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    emergency = await asyncio.to_thread(Collector, mqtt_url, "alerts/emergency")
    incidents = await asyncio.to_thread(Collector, mqtt_url, "incidents/emergency")
    try:
        process.start()
        async with httpx.AsyncClient(base_url=base, headers=headers) as http:
            await _wait(lambda: _ok(http, "/healthz"))
            await send_findings(settings, finding("gas-k1"), finding("gas-k2"))
            raised = await asyncio.to_thread(messages, emergency, 2, 30)
            assert sorted((m["key"], m["event"]) for m in raised) == [
                ("gas-k1:gas.ch4", "raised"),
                ("gas-k2:gas.ch4", "raised"),
            ]
            ids = {m["key"]: m["id"] for m in raised}  # one message per key, as just checked
            acked = await http.post(f"/api/alerts/{ids['gas-k1:gas.ch4']}/ack", json={"note": "在处理"})
            assert acked.status_code == 200

            process.kill()  # SIGKILL: no clean shutdown, no last flush
            process.start()
            await _wait(lambda: _ok(http, "/healthz"))
            shown = (await http.get("/api/alerts")).json()
            # a list, not a dict by key: an alert listed twice, or again under a new id, must show
            assert sorted((a["key"], a["id"]) for a in shown) == sorted(ids.items()), "each alert once, same id"
            listed = {a["key"]: a for a in shown}
            assert listed["gas-k1:gas.ch4"]["acknowledged"] is True
            assert listed["gas-k1:gas.ch4"]["acknowledgement"]["note"] == "在处理"
            assert listed["gas-k2:gas.ch4"]["acknowledged"] is False

            # and the findings keep flowing into the same alerts
            await send_findings(settings, finding("gas-k2", event=FindingEvent.CLEARED, ts=finding().ts + 9))

            async def cleared() -> bool:
                alert = (await http.get(f"/api/alerts/{ids['gas-k2:gas.ch4']}")).json()["alert"]
                return alert["active"] is False and alert["id"] == ids["gas-k2:gas.ch4"]

            await _wait(cleared)
        # The API answers "cleared" as soon as the change is saved; its MQTT message leaves just after. An officer's
        # system sees it when it arrives: wait for the four messages (the ack's one was maybe never sent before the
        # kill, then re-sent on start), then a moment more for any double.
        k1, k2 = ids["gas-k1:gas.ch4"], ids["gas-k2:gas.ch4"]
        expected = {(k1, 1), (k1, 2), (k2, 1), (k2, 2)}

        def by_message() -> dict[tuple[str, int], set[str]]:
            seen: dict[tuple[str, int], set[str]] = {}
            for _, payload in list(emergency.messages):
                m = json.loads(payload)
                seen.setdefault((m["id"], m["seq"]), set()).add(json.dumps(m, sort_keys=True))
            return seen

        deadline = time.monotonic() + 15
        while not expected <= by_message().keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)
        seen = by_message()
        assert seen.keys() == expected, f"missing {expected - seen.keys()}, unexpected {seen.keys() - expected}"
        assert all(len(v) == 1 for v in seen.values()), "a message sent again is the same message"

        # the two alerts are one incident; its messages, too, each once in content, whatever the kill interrupted
        def incident_messages() -> dict[tuple[str, int], set[str]]:
            out: dict[tuple[str, int], set[str]] = {}
            for _, payload in list(incidents.messages):
                m = json.loads(payload)
                out.setdefault((m["id"], m["seq"]), set()).add(json.dumps(m, sort_keys=True))
            return out

        deadline = time.monotonic() + 30
        while not incident_messages() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        told = incident_messages()
        assert told, "the incident was never told"
        assert len({id_ for id_, _ in told}) == 1, "the two alerts of one site are one incident"
        assert all(len(v) == 1 for v in told.values()), "an incident message sent again is the same message"
    finally:
        emergency.close()
        incidents.close()
        process.stop()


async def test_a_saved_but_unsent_change_is_sent_on_start(
    rig: RigFactory, alerts_settings: AlertsSettings, mqtt_url: str
) -> None:
    """What a crash between saving a change and handing it to the channels leaves behind: a record whose
    ``notified_seq`` is behind its ``seq``. The next start sends that alert's latest message."""
    await ensure_topics(alerts_settings.kafka_bootstrap, alert_topics(alerts_settings))
    book = AlertBook(load_routing(), Windows())
    [record] = book.on_finding(finding("gas-u1"), int(time.time() * 1000))
    store = AlertStore(alerts_settings)
    await store.start()
    await store.save([record], [record.alert])
    await store.stop()
    emergency = await asyncio.to_thread(Collector, mqtt_url, "alerts/emergency")
    try:
        async with rig():
            [sent] = await asyncio.to_thread(messages, emergency, 1)
            assert (sent["id"], sent["seq"], sent["event"]) == (record.alert.id, 1, "raised")
        async with rig():  # now recorded as sent: not again
            await asyncio.sleep(1.5)
            assert len(emergency.messages) == 1
    finally:
        emergency.close()


async def _ok(http: httpx.AsyncClient, path: str) -> bool:
    return (await http.get(path)).status_code == 200
