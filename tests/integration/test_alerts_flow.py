"""The alerts service against real Tansu, Mosquitto and InfluxDB 1.6: findings in, alert messages out on MQTT,
acknowledgements through the HTTP API, escalation, silences, drills, CAP, the live stream, and restarts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import xmlschema
from fastapi import FastAPI

from core.contracts.catalogue import Level
from core.contracts.finding import FindingEvent, Hazard
from core.kafka.reading import read_table
from core.process import free_port
from smartcity.stack.services import Launch
from tests.alerts_util import FIRE_OFFICER, RigFactory, messages
from tests.kafka_util import consume
from tests.mqtt_util import Collector
from tests.unit.alerts.factories import finding
from tests.waiting import eventually

pytestmark = pytest.mark.integration

SCHEMA = Path(__file__).parents[2] / "alerts" / "schema" / "cap-1.2.xsd"


async def test_a_finding_becomes_an_alert_on_mqtt_and_an_acknowledgement_follows(
    rig: RigFactory, mqtt_url: str, influx_service: Launch
) -> None:
    emergency = await asyncio.to_thread(Collector, mqtt_url, "alerts/emergency")
    try:
        async with rig() as r:
            await r.send(finding("gas-a1", level=Level.ORANGE))
            [raised] = await asyncio.to_thread(messages, emergency, 1)
            assert raised["event"] == "raised"
            assert (raised["level"], raised["hazard"], raised["departments"]) == ("orange", "gas", ["emergency"])
            assert raised["active"] is True
            assert raised["acknowledged"] is False
            assert raised["site_name"] == "坪山燃气站 <b>&"

            acked = await r.http.post(
                f"/api/alerts/{raised['id']}/ack", json={"by": "张三", "note": "已派人 dispatched"}
            )
            assert acked.status_code == 200, acked.text
            [_, ack] = await asyncio.to_thread(messages, emergency, 2)
            assert (ack["event"], ack["acknowledged"], ack["seq"]) == ("acknowledged", True, 2)
            assert ack["acknowledgement"]["by"] == "张三"
            again = await r.http.post(f"/api/alerts/{raised['id']}/ack", json={"by": "李四"})
            assert again.status_code == 409
            assert "already acknowledged by 张三" in again.json()["detail"]

            detail = (await r.http.get(f"/api/alerts/{raised['id']}")).json()
            assert [h["event"] for h in detail["history"]] == ["raised", "acknowledged"]
            assert detail["history"][1]["note"] == "已派人 dispatched"

            await r.send(finding("gas-a1", event=FindingEvent.CLEARED, ts=finding().ts + 1))
            [*_, cleared] = await asyncio.to_thread(messages, emergency, 3)
            assert (cleared["event"], cleared["active"], cleared["closed"]) == ("cleared", False, True)

            on_kafka = await consume(r.settings.kafka_bootstrap, r.settings.topic_alerts, lambda m: len(m) >= 3)
            assert [json.loads(m.value)["event"] for m in on_kafka] == ["raised", "acknowledged", "cleared"]
            assert {m.key for m in on_kafka} == {b"gas-a1:gas.ch4"}

            await r.service.archive.flush()  # type: ignore[union-attr]
            async with httpx.AsyncClient(base_url=influx_service.url) as influx:
                rows = await influx.get(
                    "/query",
                    params={"db": r.settings.influx_db, "q": 'SELECT * FROM "alert_events"'},
                )
            series = rows.json()["results"][0]["series"][0]
            events = [dict(zip(series["columns"], row, strict=True))["event"] for row in series["values"]]
            assert events == ["raised", "acknowledged", "cleared"], series
    finally:
        emergency.close()


async def test_escalation_reminds_the_command_centre_on_time(rig: RigFactory, mqtt_url: str, tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "version: 1\nroutes:\n  - {hazard: gas, departments: [emergency]}\n"
        "escalation:\n  red: {after_s: 1.5, repeat_s: 1, add: [command]}\n"
    )
    command = await asyncio.to_thread(Collector, mqtt_url, "alerts/command")
    try:
        async with rig(routing=routing) as r:
            await r.send(finding("gas-e1", level=Level.RED))
            raised = await r.wait_alert("gas-e1:gas.ch4", lambda a: a.seq == 1)
            [reminder] = await asyncio.to_thread(messages, command, 1, 6)
            late = reminder["updated_at"] - raised.opened_at
            assert 1500 <= late <= 2500, f"the reminder came {late} ms after the alert"
            assert (reminder["event"], reminder["escalations"]) == ("reminder", 1)
            assert reminder["departments"] == ["emergency", "command"]
            await asyncio.to_thread(messages, command, 2, 4)  # and again, until someone acknowledges
            assert (await r.http.post(f"/api/alerts/{raised.id}/ack", json={})).status_code == 200
            await asyncio.sleep(0.5)
            count = len(command.messages)
            assert json.loads(command.messages[-1][1])["event"] == "acknowledged", "the command centre hears it too"
            await asyncio.sleep(2.5)
            assert len(command.messages) == count, "no reminders after the acknowledgement"
    finally:
        command.close()


async def test_a_silence_mutes_and_its_end_unmutes(rig: RigFactory, mqtt_url: str) -> None:
    emergency = await asyncio.to_thread(Collector, mqtt_url, "alerts/emergency")
    try:
        async with rig() as r:
            created = await r.http.post(
                "/api/silences",
                json={"matchers": {"device_id": "gas-s1"}, "reason": "传感器检修 maintenance",
                      "ends_at": int(time.time() * 1000) + 600_000},
            )  # fmt: skip
            assert created.status_code == 201, created.text
            silence = created.json()
            await r.send(finding("gas-s1", level=Level.RED))
            muted = await r.wait_alert("gas-s1:gas.ch4", lambda a: a.seq == 1)
            assert muted.silenced_by == [silence["id"]]
            await asyncio.sleep(1.5)
            assert emergency.messages == [], "a muted alert notifies nobody"
            shown = (await r.http.get("/api/alerts", params={"department": "emergency"})).json()
            assert [a["silenced_by"] for a in shown] == [[silence["id"]]], "but the console shows it, marked"
            assert (await r.http.delete(f"/api/silences/{silence['id']}")).status_code == 200
            [reminder] = await asyncio.to_thread(messages, emergency, 1)
            assert (reminder["event"], reminder["silenced_by"], reminder["id"]) == ("reminder", [], muted.id)
    finally:
        emergency.close()


async def test_a_hanging_webhook_does_not_delay_mqtt_and_ends_recorded(
    rig: RigFactory, mqtt_url: str, tmp_path: Path
) -> None:
    hanging = FastAPI()

    @hanging.post("/hook")
    async def hook() -> dict[str, str]:
        await asyncio.sleep(30)
        return {}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(hanging, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(
        f"version: 1\ndepartments:\n  emergency:\n    webhooks:\n      - {{url: 'http://127.0.0.1:{port}/hook', "
        "format: json, timeout_s: 1, per: alert}\n"
    )
    emergency = await asyncio.to_thread(Collector, mqtt_url, "alerts/emergency")
    try:
        async with rig(contacts=contacts) as r:
            await r.send(finding("gas-w0", rule="warm.up"))  # the first group join takes seconds on Tansu
            await r.wait_alert("gas-w0:warm.up", lambda a: True)
            await asyncio.to_thread(messages, emergency, 1)
            emergency.messages.clear()
            sent = time.monotonic()
            await r.send(finding("gas-w1"))
            [raised] = await asyncio.to_thread(messages, emergency, 1)
            assert time.monotonic() - sent < 1.0, "MQTT waited for the webhook"
            records = await consume(r.settings.kafka_bootstrap, r.settings.topic_undelivered, lambda m: len(m) >= 1,
                                    timeout=30)  # fmt: skip
            undelivered = [json.loads(m.value) for m in records if json.loads(m.value)["alert_id"] == raised["id"]]
            [undelivered] = undelivered or [json.loads(m.value) for m in (await consume(
                r.settings.kafka_bootstrap, r.settings.topic_undelivered, lambda m: len(m) >= 2, timeout=30))
                if json.loads(m.value)["alert_id"] == raised["id"]]  # fmt: skip
            assert undelivered["channel"] == "webhook"
            assert undelivered["attempts"] == 2
            assert undelivered["reason"]
    finally:
        emergency.close()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def test_restart_keeps_open_alerts_acknowledgements_and_silences(rig: RigFactory) -> None:
    async with rig() as r:
        await r.send(finding("gas-r1"), finding("gas-r2", level=Level.RED))
        one = await r.wait_alert("gas-r1:gas.ch4", lambda a: True)
        two = await r.wait_alert("gas-r2:gas.ch4", lambda a: True)
        assert (await r.http.post(f"/api/alerts/{one.id}/ack", json={"note": "收到"})).status_code == 200
        silence = await r.http.post(
            "/api/silences",
            json={"matchers": {"site_id": "elsewhere"}, "reason": "r", "ends_at": int(time.time() * 1000) + 60_000},
        )
    async with rig() as again:
        listed = {a["id"]: a for a in (await again.http.get("/api/alerts")).json()}
        assert set(listed) == {one.id, two.id}
        assert listed[one.id]["acknowledged"] is True
        assert listed[one.id]["acknowledgement"]["note"] == "收到"
        assert listed[two.id]["acknowledged"] is False
        assert [s["id"] for s in (await again.http.get("/api/silences")).json()] == [silence.json()["id"]]
        # the findings consumed before the restart are not applied twice; the next change continues the alert
        await again.send(finding("gas-r1", event=FindingEvent.CLEARED, ts=finding().ts + 5))
        closed = await again.wait_alert("gas-r1:gas.ch4", lambda a: a.closed)
        assert (closed.id, closed.seq, closed.event) == (one.id, 3, "cleared")


async def test_officers_see_and_act_on_their_departments_only(rig: RigFactory) -> None:
    async with rig() as r:
        await r.send(finding("gas-o1"), finding("fire-o1", "fire.heat", hazard=Hazard.FIRE, level=Level.ORANGE))
        gas = await r.wait_alert("gas-o1:gas.ch4", lambda a: True)
        await r.wait_alert("fire-o1:fire.heat", lambda a: True)
        assert (await httpx.AsyncClient(base_url=r.url).get("/api/alerts")).status_code == 401
        bad = httpx.AsyncClient(base_url=r.url, headers={"Authorization": "Bearer nope"})
        assert (await bad.get("/api/alerts")).status_code == 401
        async with httpx.AsyncClient(base_url=r.url, headers={"Authorization": f"Bearer {FIRE_OFFICER}"}) as fire:
            seen = (await fire.get("/api/alerts")).json()
            assert [a["key"] for a in seen] == ["fire-o1:fire.heat"]
            assert (await fire.get(f"/api/alerts/{gas.id}")).status_code == 403
            assert (await fire.post(f"/api/alerts/{gas.id}/ack", json={})).status_code == 403
            assert (await fire.get("/api/feeds/emergency.atom")).status_code == 403
            assert (await fire.get("/api/feeds/fire.atom")).status_code == 200
            refused = await fire.post(
                "/api/silences", json={"matchers": {"rule": "gas.ch4"}, "reason": "x", "ends_at": 2_000_000_000_000}
            )
            assert refused.status_code == 403


async def test_cap_documents_validate_and_drill_windows_make_exercises(rig: RigFactory) -> None:
    schema = xmlschema.XMLSchema(SCHEMA)
    async with rig() as r:
        now = int(time.time() * 1000)
        drill = await r.http.post(
            "/api/drills", json={"name": "台风演练 typhoon drill", "site_ids": ["site-d"], "ends_at": now + 600_000}
        )
        assert drill.status_code == 201, drill.text
        at = drill.json()["starts_at"] + 1  # the drill window counts the findings' event time
        await r.send(finding("gas-d1", site="site-d", ts=at), finding("gas-d2", site="site-real", ts=at))
        exercise = await r.wait_alert("drill:gas-d1:gas.ch4", lambda a: True)
        real = await r.wait_alert("gas-d2:gas.ch4", lambda a: True)
        assert exercise.exercise
        assert exercise.title.zh.startswith("演练")
        assert not real.exercise
        for alert, status in ((exercise, "Exercise"), (real, "Actual")):
            cap = await r.http.get(f"/api/alerts/{alert.id}/cap")
            assert cap.status_code == 200
            schema.validate(cap.content)
            assert f"<status>{status}</status>" in cap.text
        summary = (await r.http.get("/api/alerts/summary")).json()
        assert summary["real"]["orange"] == 1
        assert summary["exercise"]["orange"] == 1


async def test_the_live_stream_pushes_changes(rig: RigFactory) -> None:
    async with rig() as r:
        received: list[dict[str, Any]] = []
        ready = asyncio.Event()

        async def listen() -> None:
            async with (
                httpx.AsyncClient(base_url=r.url, timeout=None) as http,
                http.stream("GET", "/api/alerts/stream", params={"token": FIRE_OFFICER}) as response,
            ):
                assert response.status_code == 200
                event = ""
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                        ready.set()
                    elif line.startswith("data:") and event == "alert":
                        received.append(json.loads(line.split(":", 1)[1]))

        task = asyncio.create_task(listen())
        await asyncio.wait_for(ready.wait(), 10)
        await r.send(finding("gas-l1"), finding("fire-l1", "fire.heat", hazard=Hazard.FIRE))
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert [a["key"] for a in received] == ["fire-l1:fire.heat"], "the fire officer's stream has fire only"


async def test_at_most_so_many_closed_alerts_stay_listed_the_oldest_forgotten_first(rig: RigFactory) -> None:
    """``SMARTCITY_ALERTS_CLOSED_MAX`` (docs/alerts.md): past it the alerts closed first are forgotten by the service's
    tick, in Kafka too (a tombstone in alerts.state), so a restart does not bring them back; open ones never are."""
    most = 100  # the setting's least
    async with rig(alerts_closed_max=most, alerts_tick_s=0.2) as r:
        devices = [f"gas-m{n:03d}" for n in range(most + 3)]
        await r.send(*[finding(d) for d in devices])
        raised = {d: await r.wait_alert(f"{d}:gas.ch4", lambda a: True) for d in devices}
        for alert in raised.values():
            assert (await r.http.post(f"/api/alerts/{alert.id}/ack", json={"note": "收到"})).status_code == 200
        first, second, still_open, *rest = devices
        for device in (first, second):  # closed first: the oldest
            await r.send(finding(device, event=FindingEvent.CLEARED, ts=finding().ts + 1))
            await r.wait_alert(f"{device}:gas.ch4", lambda a: a.closed)
        await asyncio.sleep(0.01)  # later by the service's clock
        await r.send(*[finding(d, event=FindingEvent.CLEARED, ts=finding().ts + 1) for d in rest])
        forgotten = {raised[first].id, raised[second].id}
        assert await eventually(lambda: not forgotten & set(r.service.book.records)), "never forgotten"
        closed = (await r.http.get("/api/alerts", params={"state": "closed", "limit": 5000})).json()
        assert len(closed) == most
        assert {a["id"] for a in closed} == {raised[d].id for d in rest}
        assert [a["id"] for a in (await r.http.get("/api/alerts")).json()] == [raised[still_open].id]
        state = await read_table(r.settings.kafka_bootstrap, r.settings.topic_alert_state)
        assert all(state[alert_id] is None for alert_id in forgotten), "tombstones in Kafka"
    async with rig(alerts_closed_max=most) as again:
        listed = {a["id"] for a in (await again.http.get("/api/alerts", params={"state": "all", "limit": 5000})).json()}
        assert len(listed) == most + 1
        assert not forgotten & listed
