"""Incidents against real Tansu and Mosquitto: a leak's alerts are one incident, one conversation per department on
MQTT ``incidents/{department}`` and webhooks, acknowledged at once from the API, a valid CAP area, drills apart, and
all of it kept across a restart."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from aiohttp import web

from core.contracts.catalogue import Department, Level
from core.contracts.finding import Finding, FindingEvent, Hazard
from core.process import free_port
from tests.alerts_util import FIRE_OFFICER, RigFactory, messages
from tests.mqtt_util import Collector
from tests.unit.alerts.factories import finding
from tests.waiting import eventually

pytestmark = pytest.mark.integration

SCHEMA = Path(__file__).parents[2] / "alerts" / "schema" / "cap-1.2.xsd"


def leak(site: str, ts: int, *, drill: bool = False) -> list[Finding]:
    """A leak's alerts as the streams raise them: two detectors rising, the source orange, the site red."""

    def at(device: str, rule: str, level: Level, lat: float, **extra: Any) -> Finding:
        f = finding(device, rule, level=level, site=site, ts=ts, exercise=drill, **extra)
        return f.model_copy(update={"lat": lat, "lon": 114.25})

    return [
        at(f"{site}-g1", "gas.ch4_rise", Level.YELLOW, 22.7000),
        at(f"{site}-g2", "gas.ch4_rise", Level.YELLOW, 22.7001),
        at(f"{site}-g0", "gas.ch4", Level.ORANGE, 22.7002),
        at(f"{site}-g0", "gas.site", Level.RED, 22.7002, key=f"{'drill:' if drill else ''}site:{site}:gas.site",
           device_id=None, confirmed=True, confirms=[f"{site}-g0:gas.ch4"]),
    ]  # fmt: skip


async def _incidents(r: Any, **params: Any) -> list[dict[str, Any]]:
    answer = await r.http.get("/api/incidents", params=params)
    assert answer.status_code == 200, answer.text
    listed: list[dict[str, Any]] = answer.json()
    return listed


async def test_a_leak_is_one_incident_one_conversation_and_one_acknowledgement(
    rig: RigFactory, mqtt_url: str, tmp_path: Path
) -> None:
    hits: list[tuple[str, dict[str, Any]]] = []

    async def hook(request: web.Request) -> web.Response:
        hits.append((request.headers.get("X-SmartCity-Kind", ""), await request.json()))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(
        f"version: 1\ndepartments:\n  emergency:\n    webhooks:\n      - {{url: 'http://127.0.0.1:{port}/hook'}}\n"
    )
    incidents = await asyncio.to_thread(Collector, mqtt_url, "incidents/emergency")
    alerts = await asyncio.to_thread(Collector, mqtt_url, "alerts/emergency")
    try:
        async with rig(contacts=contacts) as r:
            ts = int(time.time() * 1000)
            await r.send(*leak("park", ts))
            # the site red goes at once: the first incident message is the opening, red, with every member so far
            [opened] = await asyncio.to_thread(messages, incidents, 1, 30)
            assert (opened["event"], opened["level"]) == ("opened", "red")
            per_alert = await asyncio.to_thread(messages, alerts, 4, 30)
            assert {m["incident_id"] for m in per_alert} == {opened["id"]}, "the alerts name their incident"

            [listed] = await _incidents(r)
            assert listed["id"] == opened["id"]
            assert await eventually(lambda: r.service.incidents.records[opened["id"]].incident.summary.alerts == 4)
            detail = (await r.http.get(f"/api/incidents/{opened['id']}")).json()
            assert len(detail["alerts"]) == 4

            # an officer acts the moment the incident shows: one request acknowledges every member
            acked = await r.http.post(f"/api/incidents/{opened['id']}/ack", json={"note": "已派员处置"})
            assert acked.status_code == 200, acked.text
            assert acked.json()["acknowledged"] is True
            shown = (await r.http.get("/api/alerts")).json()
            assert len(shown) == 4
            assert all(a["acknowledged"] for a in shown)
            again = await r.http.post(f"/api/incidents/{opened['id']}/ack", json={})
            assert again.status_code == 409

            # the people's side: incident messages only, and no double of any (id, seq) where the webhook sees them
            assert await eventually(lambda: any(h[1]["event"] == "acknowledged" for h in hits), timeout=20)
            assert {kind for kind, _ in hits} == {"incident"}
            told = [(h["id"], h["seq"]) for _, h in hits]
            assert len(told) == len(set(told)), f"a message twice: {told}"
            assert [h["event"] for _, h in hits] == ["opened", "acknowledged"]
            mqtt_told = [(m["id"], m["seq"]) for m in (json.loads(p) for _, p in incidents.messages)]
            assert len(mqtt_told) == len(set(mqtt_told)), f"a message twice on MQTT: {mqtt_told}"

            # the CAP document: one alert whose area covers the members, valid against the OASIS schema
            cap = await r.http.get(f"/api/incidents/{opened['id']}/cap")
            assert cap.status_code == 200
            xmlschema.XMLSchema(SCHEMA).validate(cap.content)
            assert "<circle>" in cap.text
            assert "<valueName>GB/T 2260</valueName>" in cap.text
            assert "<value>440307</value>" in cap.text  # Longgang

        # a restart keeps the incident, its members and what was said
        async with rig(contacts=contacts) as again_:
            kept = again_.service.incidents.records[opened["id"]]
            assert kept.incident.summary.alerts == 4
            assert [h.event for h in kept.history][:2] == ["opened", "acknowledged"]
    finally:
        incidents.close()
        alerts.close()
        await runner.cleanup()


async def test_drills_have_their_own_incidents_and_officers_see_their_departments_only(rig: RigFactory) -> None:
    async with rig() as r:
        ts = int(time.time() * 1000)
        await r.send(*leak("plant", ts), *leak("plant", ts, drill=True))
        assert await eventually(lambda: len(r.service.incidents.records) == 2, timeout=30)
        real = await _incidents(r, exercise="false")
        drill = await _incidents(r, exercise="true")
        assert len(real) == 1
        assert len(drill) == 1
        assert drill[0]["title"]["zh"].startswith("演练")
        assert {m["alert_id"] for m in real[0]["members"]}.isdisjoint({m["alert_id"] for m in drill[0]["members"]})
        fire = await r.http.get(
            f"/api/incidents/{real[0]['id']}", headers={"Authorization": "Bearer fire-officer-token"}
        )
        assert fire.status_code == 403  # a gas leak is routed to emergency, not fire
        assert Department.EMERGENCY.value in real[0]["departments"]


async def test_a_late_neighbour_joins_and_a_far_one_does_not(rig: RigFactory) -> None:
    async with rig() as r:
        ts = int(time.time() * 1000)
        await r.send(*leak("yard", ts))
        assert await eventually(lambda: len(r.service.incidents.records) == 1, timeout=30)
        near = finding("yard-g9", "gas.ch4", level=Level.ORANGE, site="yard-north", ts=ts + 1000)
        far = finding("town-g1", "gas.ch4", level=Level.ORANGE, site="town", ts=ts + 1000)
        await r.send(near.model_copy(update={"lat": 22.7010}), far.model_copy(update={"lat": 22.7500}))
        assert await eventually(lambda: len(r.service.incidents.records) == 2, timeout=30)
        by_size = sorted(r.service.incidents.records.values(), key=lambda rec: rec.incident.summary.alerts)
        assert [rec.incident.summary.alerts for rec in by_size] == [1, 5]
        # the leak ends: the incident clears once every member has
        for f in [*leak("yard", ts), near.model_copy(update={"lat": 22.7010})]:
            end = f.model_copy(update={"event": FindingEvent.CLEARED, "active": False, "id": f.id + "-end",
                                       "ts": ts + 5000})  # fmt: skip
            await r.send(end)
        leak_id = by_size[1].incident.id
        assert await eventually(lambda: not r.service.incidents.records[leak_id].incident.active, timeout=30)
        assert r.service.incidents.records[leak_id].history[-1].event == "cleared"


async def test_an_officer_acts_on_and_sees_the_members_of_their_departments_only(
    rig: RigFactory, tmp_path: Path
) -> None:
    """One incident spanning two departments (a routing file whose family groups gas and fire at one site): the fire
    officer sees it, acknowledges its fire alert and not the emergency department's gas alert, and sees only the
    fire alert among its members."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "version: 1\nroutes:\n  - {hazard: gas, departments: [emergency]}\n  - {hazard: fire, departments: [fire]}\n"
        "  - {hazard: device, own_departments: true}\nincidents:\n  families:\n"
        "    site: {hazards: [gas, fire, water, structural], radius_m: 100}\n"
        "    device: {hazards: [device], per_device: true}\n"
    )
    async with rig(routing=routing) as r:
        ts = int(time.time() * 1000)
        gas = finding("mix-g1", "gas.ch4", level=Level.ORANGE, site="mix", ts=ts)
        fire = finding("mix-f1", "fire.heat", level=Level.ORANGE, hazard=Hazard.FIRE, site="mix", ts=ts,
                       departments=[Department.FIRE])  # fmt: skip
        await r.send(gas, fire)
        assert await eventually(
            lambda: any(i.incident.summary.alerts == 2 for i in r.service.incidents.records.values()), timeout=30
        )
        [rec] = r.service.incidents.records.values()
        assert set(rec.incident.departments) == {Department.EMERGENCY, Department.FIRE}
        officer = {"Authorization": f"Bearer {FIRE_OFFICER}"}
        detail = (await r.http.get(f"/api/incidents/{rec.incident.id}", headers=officer)).json()
        assert [m["alert"]["hazard"] for m in detail["alerts"]] == ["fire"]
        acked = await r.http.post(f"/api/incidents/{rec.incident.id}/ack", headers=officer, json={})
        assert acked.status_code == 200, acked.text
        assert acked.json()["acknowledged"] is False  # the gas alert is the emergency department's to acknowledge
        by_hazard = {a["hazard"]: a for a in (await r.http.get("/api/alerts")).json()}
        assert by_hazard["fire"]["acknowledged"] is True
        assert by_hazard["gas"]["acknowledged"] is False
        again = await r.http.post(f"/api/incidents/{rec.incident.id}/ack", headers=officer, json={})
        assert again.status_code == 409
