"""Judging a run against its ground truth: which expected alerts and refusals came, where, at what level, how late;
which alerts nobody expected. The same judge serves drills on the real stack (arrivals on MQTT, wall-clock times)
and replays through the rule engine (findings, scenario times).

An expected alert is met by the first message of its rule, on one of its devices (or its site), that reaches the
expected level; it passes when it came within ``within_s`` of the hazard's start and the departments that received
it at that level (raised and escalated messages; reminders also go to the command centre) are exactly the expected
ones (at least them, if the alert went straight to a higher level). An alert on a device or site a hazard
touches that no expectation asked for is *related* (a leak's early warning at a neighbour): listed, never a
failure. Any other alert is *unexpected*, and fails the run, as does a refusal at a device no fault was placed on
(a reading the platform should have taken).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from core.contracts.catalogue import LEVEL_RANK, Level
from core.contracts.finding import Text
from simulators.hazards import Expected, Truth
from simulators.plan import Plan

_DELIVERING = {"raised", "escalated"}


@dataclass(frozen=True, slots=True)
class Arrival:
    """One alert message as a department received it, ``at_s`` seconds into the run."""

    at_s: float
    department: str
    alert_id: str
    event: str
    level: Level
    rule: str
    hazard: str
    device_id: str | None
    site_id: str | None
    exercise: bool = True


@dataclass(frozen=True, slots=True)
class Refused:
    at_s: float
    device_id: str
    reason: str


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class HazardOut(_Out):
    label: str
    type: str
    at_s: float  # scenario seconds
    starts_after_s: float  # seconds into the run
    sites: list[str]
    devices: list[str]


class ExpectationOut(_Out):
    hazard: str
    name: str
    rule: str | None
    refusal: str | None
    level: Level | None
    departments: list[str]
    within_s: float
    arrived: bool
    got_level: Level | None = None
    got_departments: list[str] = []
    late_s: float | None = None
    at_s: float | None = None
    ok: bool
    problem: str | None = None


class AlertOut(_Out):
    id: str
    rule: str
    hazard: str
    level: Level
    device_id: str | None
    site_id: str | None
    departments: list[str]
    first_s: float
    events: list[tuple[float, str, Level, str]]  # (at_s, event, level, department)
    problem: str | None = None


class IncidentOut(_Out):
    """An incident the run produced: its alerts, and the people-facing messages each department got from it."""

    id: str
    title: Text
    level: Level
    exercise: bool
    alerts: int
    sites: int
    messages: dict[str, int]
    report_url: str | None = None


class DrillReport(_Out):
    scenario: str
    title: Text
    mode: str  # "drill" (real stack, wall seconds) or "replay" (rule engine, scenario seconds)
    seed: int
    speed: float
    devices: int
    started_at: str
    run_s: float
    messages_sent: int
    passed: bool
    hazards: list[HazardOut]
    expectations: list[ExpectationOut]
    unexpected: list[AlertOut]
    related: list[AlertOut]
    refusals: dict[str, int]
    unexpected_refusals: list[tuple[float, str, str]]
    incidents: list[IncidentOut] = Field(default_factory=list)
    hazard_events: int = Field(0, description="the scenario's hazards that raise alerts (each should be one incident)")


def _alerts(arrivals: list[Arrival]) -> dict[str, AlertOut]:
    by_id: dict[str, list[Arrival]] = defaultdict(list)
    for a in sorted(arrivals, key=lambda a: a.at_s):
        by_id[a.alert_id].append(a)
    out = {}
    for alert_id, seen in by_id.items():
        top = max(seen, key=lambda a: LEVEL_RANK[a.level])
        out[alert_id] = AlertOut(
            id=alert_id,
            rule=top.rule,
            hazard=top.hazard,
            level=top.level,
            device_id=top.device_id,
            site_id=top.site_id,
            departments=sorted({a.department for a in seen if a.event in _DELIVERING}),
            first_s=round(seen[0].at_s, 3),
            events=[(round(a.at_s, 3), a.event, a.level, a.department) for a in seen],
            problem=None if all(a.exercise for a in seen) else "not marked as a drill (exercise=false)",
        )
    return out


def _meet(
    exp: Expected, start: float, arrivals: list[Arrival], refusals: list[Refused]
) -> tuple[ExpectationOut, set[str]]:
    base = {
        "hazard": exp.hazard,
        "name": exp.name,
        "rule": exp.rule,
        "refusal": exp.refusal.value if exp.refusal else None,
        "level": exp.level,
        "departments": sorted(exp.departments),
        "within_s": exp.within_s,
    }
    if exp.refusal is not None:
        hit = next((r for r in refusals if r.reason == exp.refusal and r.device_id in exp.devices), None)
        if hit is None:
            return ExpectationOut(**base, arrived=False, ok=False, problem="no such refusal was sent"), set()
        late = hit.at_s - start
        ok = late <= exp.within_s
        problem = None if ok else f"came {late:.1f} s after the fault began; allowed {exp.within_s:g} s"
        return ExpectationOut(**base, arrived=True, late_s=round(late, 3), at_s=round(hit.at_s, 3), ok=ok,
                              problem=problem), set()  # fmt: skip
    assert exp.level is not None
    mine = [
        a
        for a in arrivals
        if a.rule == exp.rule
        and ((a.device_id in exp.devices) if exp.devices else (a.device_id is None and a.site_id == exp.site))
    ]
    used = {a.alert_id for a in mine}
    reaching = [a for a in mine if a.event in _DELIVERING and LEVEL_RANK[a.level] >= LEVEL_RANK[exp.level]]
    if not reaching:
        top = max((a.level for a in mine if a.event in _DELIVERING), key=LEVEL_RANK.__getitem__, default=None)
        problem = "never arrived" if top is None else f"reached {top}, not {exp.level}"
        return ExpectationOut(**base, arrived=False, got_level=top, ok=False, problem=problem), used
    first = min(reaching, key=lambda a: a.at_s)
    change = (first.alert_id, first.event, first.level)  # one change of the alert, fanned out to its departments
    departments = sorted({a.department for a in reaching if (a.alert_id, a.event, a.level) == change})
    late = first.at_s - start
    problems = []
    if late > exp.within_s:
        problems.append(f"came {late:.1f} s after the hazard began; allowed {exp.within_s:g} s")
    # At the expected level the departments must be exactly the expected ones; an alert that went straight to a
    # higher level (two readings in one batch) may rightly reach more, but never fewer.
    wrong = set(departments) != exp.departments if first.level == exp.level else not exp.departments <= set(departments)
    if wrong:
        problems.append(f"went to {', '.join(departments)}; expected {', '.join(sorted(exp.departments))}")
    return ExpectationOut(
        **base,
        arrived=True,
        got_level=max((a.level for a in reaching), key=LEVEL_RANK.__getitem__),
        got_departments=departments,
        late_s=round(late, 3),
        at_s=round(first.at_s, 3),
        ok=not problems,
        problem="; ".join(problems) or None,
    ), used


@dataclass(frozen=True)
class Verdict:
    expectations: list[ExpectationOut]
    unexpected: list[AlertOut]
    related: list[AlertOut]
    unexpected_refusals: list[tuple[float, str, str]]
    refusals: dict[str, int]

    @property
    def passed(self) -> bool:
        return all(e.ok for e in self.expectations) and not self.unexpected and not self.unexpected_refusals


def assess(
    truths: tuple[Truth, ...], starts: dict[str, float], arrivals: list[Arrival], refusals: list[Refused]
) -> Verdict:
    """``starts``: each hazard's start, in seconds into the run (the clock ``arrivals`` and ``refusals`` use)."""
    expectations: list[ExpectationOut] = []
    used: set[str] = set()
    for truth in truths:
        for exp in truth.expected:
            result, ids = _meet(exp, starts[truth.label], arrivals, refusals)
            expectations.append(result)
            used |= ids
    devices = {d for t in truths for d in t.devices}
    sites = {s for t in truths for s in t.sites}
    related, unexpected = [], []
    for alert in _alerts(arrivals).values():
        if alert.problem is not None:
            unexpected.append(alert)
        elif alert.id in used:
            continue
        elif alert.device_id in devices or (alert.device_id is None and alert.site_id in sites):
            related.append(alert)
        else:
            unexpected.append(alert)
    counts: dict[str, int] = defaultdict(int)
    for r in refusals:
        counts[r.reason] += 1
    stray = [(round(r.at_s, 3), r.device_id, r.reason) for r in refusals if r.device_id not in devices]
    return Verdict(expectations, unexpected, related, stray, dict(counts))


def judge(
    truths: tuple[Truth, ...],
    starts: dict[str, float],
    arrivals: list[Arrival],
    refusals: list[Refused],
    **header: object,
) -> DrillReport:
    """The report: ``assess`` with the run's ``header`` fields (scenario, mode, seed, ...)."""
    verdict = assess(truths, starts, arrivals, refusals)
    hazards = [
        HazardOut(
            label=t.label,
            type=t.type,
            at_s=t.at_s,
            starts_after_s=round(starts[t.label], 3),
            sites=list(t.sites),
            devices=list(t.devices),
        )
        for t in truths
    ]
    return DrillReport.model_validate(
        {
            **header,
            "passed": verdict.passed,
            "hazards": hazards,
            "expectations": verdict.expectations,
            "unexpected": verdict.unexpected,
            "related": verdict.related,
            "refusals": verdict.refusals,
            "unexpected_refusals": verdict.unexpected_refusals,
        }
    )


def starts(plan: Plan) -> dict[str, float]:
    """Each hazard's start in seconds into the run: its scenario second over the speed."""
    return {t.label: t.at_s / plan.scenario.speed for t in plan.truths}


def judge_run(
    plan: Plan,
    arrivals: list[Arrival],
    refusals: list[Refused],
    *,
    mode: str,
    started_at: str,
    run_s: float,
    messages_sent: int,
) -> DrillReport:
    scenario = plan.scenario
    return judge(
        plan.truths,
        starts(plan),
        arrivals,
        refusals,
        scenario=scenario.name,
        title=scenario.title,
        mode=mode,
        seed=scenario.seed,
        speed=scenario.speed,
        devices=len(plan.fleet.devices),
        started_at=started_at,
        run_s=run_s,
        messages_sent=messages_sent,
    )
