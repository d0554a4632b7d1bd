"""A scenario through the platform's own parser, rules and routing, without brokers, in scenario time.

It is what the stream worker and the alerts service would decide, message for message: the gateway's parser (so
malformed messages and skewed clocks are refused with the real reasons), the rule engine with site correlation,
offline checks on every device's partition clock, and the routing table for the departments. It answers in
seconds what the real stack needs the scenario's full length for, so it is how scenarios are checked before they
are shipped (tests) and how alert quality is measured over many device-hours (``simulators.quality``).

It also runs the alerts service's books (``alerts.lifecycle`` and ``alerts.incidents``, pure) on the findings, on a
clock of scenario time divided by the speed (the wall clock a drill's alerts service would see), so a replay counts
the incidents and the people-facing messages per department a drill would give.

What it leaves out: silences, and transport timing (the drill measures those).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from alerts.incidents import IncidentBook, IncidentRecord
from alerts.lifecycle import AlertBook, AlertRecord
from alerts.routing import RoutingTable, load_routing
from alerts.silences import Windows
from core.clock import local_iso
from core.contracts import TELEMETRY_TOPIC
from core.contracts.finding import Finding
from core.contracts.incident import Incident
from devices.directory import StaticDirectory
from ingest.parse import parse_message
from rules.engine import Engine
from rules.pack import RulePack, load_pack
from rules.state import DeviceState
from simulators.plan import Plan
from simulators.report import Arrival, DrillReport, IncidentOut, Refused, judge_run
from simulators.scenario import ExpectAlert
from streams.processor import SiteProcessor


@dataclass
class Replayed:
    arrivals: list[Arrival] = field(default_factory=list)
    refusals: list[Refused] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    messages: int = 0
    readings: int = 0
    incidents: list[Incident] = field(default_factory=list)
    #: people-facing incident messages per (incident id, department)
    told: Counter[tuple[str, str]] = field(default_factory=Counter)


class _Desk:
    """The alerts service's two books, without Kafka: findings and time in, incidents and their messages out."""

    def __init__(self, routing: RoutingTable) -> None:
        self.alerts = AlertBook(routing, Windows())
        self.incidents = IncidentBook(routing)
        self.told: Counter[tuple[str, str]] = Counter()

    def take(self, records: list[AlertRecord], now: int, grouped: list[IncidentRecord] | None = None) -> None:
        records, changed = self.incidents.apply(records, now, self.alerts.get) if records else ([], [])
        changed = [*(grouped or []), *changed]
        for rec in changed:
            before = self.incidents.get(rec.incident.id)
            if rec.incident.seq > (before.incident.seq if before is not None else 0):
                inc = rec.incident
                for department in inc.departments:
                    if department not in inc.muted_departments:
                        self.told[(inc.id, department.value)] += 1
        self.alerts.commit(records)
        self.incidents.commit(changed)

    def tick(self, now: int) -> None:
        self.take(self.alerts.tick(now), now)
        self.take([], now, self.incidents.tick(now))

    def result(self) -> list[Incident]:
        return [r.incident for r in self.incidents.records.values() if r.incident.merged_into is None]


def replay(plan: Plan, pack: RulePack | None = None, routing: RoutingTable | None = None) -> Replayed:
    engine = Engine(pack or load_pack())
    routing = routing or load_routing()
    sites = SiteProcessor(engine)
    site_states: dict[str, list[object]] = {}
    devices = {d.id: d.record for d in plan.fleet.devices}
    directory = StaticDirectory(devices)
    states: dict[str, DeviceState] = {}
    out = Replayed()
    next_check = 0.0
    # Offline checks: every second, as the worker's tick, or a tenth of the shortest interval if longer (a day of
    # a large fleet would otherwise spend its time checking); the detection is late by at most that much.
    check_every = max(1.0, min((d.interval_s for d in devices.values()), default=10) / 10)

    speed = plan.scenario.speed
    desk = _Desk(routing)

    def wall(at_s: float) -> int:
        return plan.t0_ms + int(at_s / speed * 1000)

    def take(found: list[Finding], at_s: float, now: int) -> None:
        for f in found:
            out.findings.append(f)
            desk.take(desk.alerts.on_finding(f, wall(at_s)), wall(at_s))
            for key in sites.routes(f):
                site_finding, saved = sites.correlate(key, f, now, site_states.get)
                if saved is None:
                    site_states.pop(key, None)
                else:
                    site_states[key] = saved
                if site_finding is not None:
                    take([site_finding], at_s, now)
            if f.event in ("raised", "escalated", "deescalated", "cleared"):
                for department in routing.departments(f.hazard, f.level, f.rule, f.departments):
                    out.arrivals.append(
                        Arrival(at_s / speed, department, f.key, "raised" if f.event == "raised" else f.event, f.level,
                                f.rule, f.hazard, f.device_id, f.site_id)
                    )  # fmt: skip

    for message in plan.messages():
        now = plan.t0_ms + int(message.at_s * 1000)
        while next_check <= message.at_s:
            check_ms = plan.t0_ms + int(next_check * 1000)
            for device_id, device in devices.items():
                state = states.setdefault(device_id, DeviceState())
                take(engine.check_silence(device, state, check_ms), next_check, check_ms)
            desk.tick(wall(next_check))
            next_check += check_every
        if message.offline:
            continue
        out.messages += 1
        topic = TELEMETRY_TOPIC.format(device_id=message.device_id)
        parsed = parse_message(topic, message.payload, now, directory)
        if parsed.refusal is not None:
            out.refusals.extend(
                Refused(message.at_s / speed, message.device_id, e.reason) for e in parsed.refusal.errors
            )
        for reading in parsed.readings:
            out.readings += 1
            state = states.setdefault(reading["device_id"], DeviceState())
            take(engine.evaluate(reading, devices.get(reading["device_id"]), state, now), message.at_s, now)
    end = plan.scenario.duration_s + plan.scenario.settle_s
    while next_check <= end:  # the scenario's tail: group waits end, the last messages go
        desk.tick(wall(next_check))
        next_check += check_every
    out.incidents = desk.result()
    out.told = desk.told
    return out


def replay_report(plan: Plan, pack: RulePack | None = None, routing: RoutingTable | None = None) -> DrillReport:
    """The drill report the scenario would get if transport took no time. Times are scenario seconds divided by
    the scenario's speed, as a drill would see them; silence, though, is judged in scenario time here and in wall
    time by the stream worker, so an offline alert of a sped-up scenario comes sooner here."""
    done = replay(plan, pack, routing)
    report = judge_run(
        plan,
        done.arrivals,
        done.refusals,
        mode="replay",
        started_at=local_iso(plan.t0_ms / 1000),
        run_s=plan.scenario.duration_s,
        messages_sent=done.messages,
    )
    return report.model_copy(
        update={"incidents": incidents_out(done.incidents, done.told), "hazard_events": alerting_hazards(plan)}
    )


def incidents_out(incidents: list[Incident], told: Counter[tuple[str, str]]) -> list[IncidentOut]:
    return [
        IncidentOut(
            id=i.id,
            title=i.title,
            level=i.level,
            exercise=i.exercise,
            alerts=i.summary.alerts,
            sites=i.summary.sites,
            messages={d: n for (id_, d), n in told.items() if id_ == i.id},
        )
        for i in sorted(incidents, key=lambda i: (i.opened_at, i.id))
    ]


def alerting_hazards(plan: Plan) -> int:
    """The scenario's hazards that expect an alert (a malformed message or a skewed clock expects a refusal)."""
    return sum(1 for h in plan.scenario.hazards if any(isinstance(e, ExpectAlert) for e in h.expect))
