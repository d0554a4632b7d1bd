"""Drill mode: a scenario played on the real platform, its alerts heard as officers hear them, and judged.

The run, in order:

1. The fleet is registered (``simulators.field``) and a drill window is opened over its sites (``POST
   /api/drills``), so whatever the fleet causes is an exercise alert, offline alerts included (silence carries no
   drill flag of its own). Drill alerts of the same fleet still open from an earlier run are closed first: one open
   alert per key would otherwise swallow this run's.
2. A listener logs in as the operator and subscribes to ``alerts/+`` (every department's feed, where officers'
   systems listen) and ``devices/+/errors``; every message about the fleet is noted with its arrival time.
3. Every device connects with its own credentials and sends one reading, until the gateway knows them all
   (``GET /api/devices/{id}/health`` shows it seen; a device refused as ``unknown_device`` sends again).
4. The scenario is played: each message at its scenario second divided by ``speed``, readings flagged
   ``drill``; a device that goes offline disconnects with its will.
5. The run listens ``settle_s`` more (less once every expectation is met), ends the drill window, removes the
   fleet from the registry (unless kept: its silence would otherwise raise offline alerts), and judges.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
from paho.mqtt.client import MQTTMessage
from pydantic import ValidationError

from core.clock import local_now
from core.contracts import TelemetryItem
from core.contracts.alert import Alert
from core.contracts.incident import Incident
from core.contracts.refusal import Refusal, RefusalReason
from core.mqtt import AsyncMqttClient
from simulators.field import FieldDevices, Target, register, unregister
from simulators.plan import Message, Plan, batched, paced, scenario_fleet
from simulators.replay import alerting_hazards, incidents_out
from simulators.report import Arrival, DrillReport, Refused, assess, judge_run, starts
from simulators.scenario import Scenario

logger = logging.getLogger(__name__)

Progress = Callable[[float, int, int], None]  # (scenario seconds played, messages sent, alerts heard)


class Listener:
    """Alert, incident and refusal messages about one fleet, with their arrival in seconds since ``start``."""

    def __init__(self, target: Target, devices: set[str], sites: set[str]) -> None:
        self.devices, self.sites = devices, sites
        self.start = time.monotonic()
        self.arrivals: list[Arrival] = []
        self.refusals: list[Refused] = []
        #: each incident's latest message, and how many messages each department got of it (MQTT, as people would)
        self.incidents: dict[str, Incident] = {}
        self.told: Counter[tuple[str, str]] = Counter()
        self.client = AsyncMqttClient(
            target.mqtt(target.admin_username, target.admin_password),
            f"sim-drill-listener-{id(self):x}",
            clean_start=True,
            subscriptions=[("alerts/+", 1), ("incidents/+", 1), ("devices/+/errors", 1)],
            on_message=self._message,
        )

    def _message(self, msg: MQTTMessage) -> None:
        at = time.monotonic() - self.start
        try:
            if msg.topic.startswith("alerts/"):
                alert = Alert.model_validate_json(msg.payload)
                if alert.device_id in self.devices or (alert.device_id is None and alert.site_id in self.sites):
                    self.arrivals.append(
                        Arrival(at, msg.topic.split("/", 1)[1], alert.id, alert.event, alert.level, alert.rule,
                                alert.hazard, alert.device_id, alert.site_id, alert.exercise)
                    )  # fmt: skip
            elif msg.topic.startswith("incidents/"):
                incident = Incident.model_validate_json(msg.payload)
                known = self.incidents.get(incident.id)
                ours = any(m.device_id in self.devices or m.site_id in self.sites for m in incident.members)
                if ours or known is not None:
                    self.told[(incident.id, msg.topic.split("/", 1)[1])] += 1
                    if known is None or incident.seq >= known.seq:
                        self.incidents[incident.id] = incident
            else:
                refusal = Refusal.model_validate_json(msg.payload)
                if refusal.device_id in self.devices:
                    self.refusals.extend(Refused(at, refusal.device_id, e.reason) for e in refusal.errors)
        except ValidationError as exc:
            logger.warning("a message on %s does not follow the contract: %s", msg.topic, exc)

    async def __aenter__(self) -> Listener:
        await self.client.start()
        async with asyncio.timeout(15):
            await self.client.subscribed.wait()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.client.close()


async def _incidents(http: httpx.AsyncClient, devices: set[str], sites: set[str]) -> list[Incident]:
    """The drill's incidents as the alerts service has them now (every member counted, also those that joined
    after the last message), not merged ones."""
    answer = await http.get("/api/incidents", params={"state": "all", "exercise": "true", "limit": 5000})
    answer.raise_for_status()
    listed = [Incident.model_validate(i) for i in answer.json()]
    return [i for i in listed if any(m.device_id in devices or m.site_id in sites for m in i.members)]


async def _clean_board(http: httpx.AsyncClient, devices: set[str], sites: set[str]) -> int:
    answer = await http.get("/api/alerts", params={"state": "open", "exercise": "true", "limit": 5000})
    answer.raise_for_status()
    stale = [a["id"] for a in answer.json() if a["device_id"] in devices or a["site_id"] in sites]
    for alert_id in stale:
        note = {"note": "a new drill of the same fleet begins / 同一演练设备群开始新演练"}
        (await http.post(f"/api/alerts/{alert_id}/close", json=note)).raise_for_status()
    return len(stale)


async def _until_known(http: httpx.AsyncClient, field: FieldDevices, listener: Listener, plan: Plan) -> None:
    """Each device sends one healthy reading until the platform has seen it (the gateway learns new devices from
    the registry's Kafka topic within a second or two; a reading before that is refused as unknown_device)."""
    fleet = plan.fleet
    pending = {d.id for d in fleet.devices}
    deadline = time.monotonic() + 60
    while pending:
        refused_before = len(listener.refusals)
        for device_id in pending:
            # Stamped before the scenario's first event time: a newer one would make the scenario's readings
            # late, and late readings move no threshold alarm (rules.engine).
            ts = plan.t0_ms - 1000
            values = fleet.by_id[device_id].baseline.values(0, ts)
            item = TelemetryItem.model_construct(ts=ts, seq=ts, values=values, drill=True)
            field.send(device_id, item.model_dump_json().encode())
        await asyncio.sleep(1.5)
        seen = set()
        for device_id in pending:
            answer = await http.get(f"/api/devices/{device_id}/health")
            if answer.status_code == 200 and answer.json().get("last_seen") is not None:
                seen.add(device_id)
        pending -= seen
        unknown = {r.device_id for r in listener.refusals[refused_before:] if r.reason == RefusalReason.UNKNOWN_DEVICE}
        del listener.refusals[refused_before:]  # the warm-up's refusals are not the scenario's
        if pending and time.monotonic() > deadline:
            raise TimeoutError(
                f"the platform did not take readings from {len(pending)} of the fleet's devices within 60 s "
                f"({len(unknown)} refused as unknown_device): is the gateway reading the registry?"
            )


async def run_drill(
    scenario: Scenario,
    target: Target,
    *,
    prefix: str = "sim",
    keep_fleet: bool = False,
    batch: int = 1,
    progress: Progress | None = None,
) -> DrillReport:
    """Play ``scenario`` on the platform at ``target`` and judge what officers and devices were told.
    ``batch`` > 1 sends each device's readings in arrays of that many (later, by design, so allow for it)."""
    fleet = scenario_fleet(scenario, prefix)
    devices, sites = {d.id for d in fleet.devices}, {s.id for s in fleet.sites}
    speed, duration = scenario.speed, scenario.duration_s
    async with target.http() as http:
        closed = await _clean_board(http, devices, sites)
        if closed:
            logger.info("closed %d drill alerts of this fleet left open by an earlier run", closed)
        passwords = await register(http, fleet)
        field = FieldDevices(target, passwords)
        async with Listener(target, devices, sites) as listener:
            await field.connect()
            wall_ms = int(time.time() * 1000)
            plan = Plan(scenario, fleet, wall_ms - int(duration * (1 - 1 / speed) * 1000), drill=True)
            ends_at = wall_ms + int((120 + duration / speed + scenario.settle_s) * 1000)
            window = await http.post(
                "/api/drills",
                json={"name": f"{scenario.name} ({prefix})", "site_ids": sorted(sites),
                      "starts_at": plan.t0_ms - 60_000, "ends_at": ends_at},
            )  # fmt: skip
            window.raise_for_status()
            try:
                await _until_known(http, field, listener, plan)
                started_at = local_now()  # Shenzhen time, like the console and CAP
                # The scenario's clock starts now: event times were fixed when the plan was made, so the
                # warm-up moved them into the past by its length, which the gateway accepts.
                listener.start = time.monotonic()
                sent = await _play(plan, batched(plan.messages(), batch), field, listener, progress)
                await _settle(plan, listener, scenario.settle_s)
                incidents = await _incidents(http, devices, sites)
            finally:
                await field.close()
                await http.delete(f"/api/drills/{window.json()['id']}")
                if not keep_fleet:
                    await unregister(http, fleet)
    report = judge_run(
        plan,
        listener.arrivals,
        listener.refusals,
        mode="drill",
        started_at=started_at.isoformat(timespec="seconds"),
        run_s=round(time.monotonic() - listener.start, 3),
        messages_sent=sent,
    )
    console = target.api_url.rstrip("/")
    out = [
        i.model_copy(update={"report_url": f"{console}/#/incidents/{i.id}/report"})
        for i in incidents_out(incidents, listener.told)
    ]
    return report.model_copy(update={"incidents": out, "hazard_events": alerting_hazards(plan)})


async def _play(
    plan: Plan, messages: Iterator[Message], field: FieldDevices, listener: Listener, progress: Progress | None
) -> int:
    sent = 0

    def show(at_s: float) -> None:
        if progress is not None:
            progress(at_s, sent, len(listener.arrivals))

    async for message in paced(messages, listener.start, plan.scenario.speed, show):
        if message.offline:
            await field.go_offline(message.device_id)
        else:
            field.send(message.device_id, message.payload)
            sent += 1
    show(plan.scenario.duration_s)
    return sent


async def _settle(plan: Plan, listener: Listener, settle_s: float) -> None:
    """Listen up to ``settle_s`` more; stop early once every expectation is met and nothing new came for 2 s."""
    began = starts(plan)
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        heard = len(listener.arrivals) + len(listener.refusals)
        await asyncio.sleep(2)
        quiet = heard == len(listener.arrivals) + len(listener.refusals)
        if quiet and assess(plan.truths, began, listener.arrivals, listener.refusals).passed:
            return
