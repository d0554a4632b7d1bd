"""The site kind: several devices of one site in alarm together confirm the hazard (a leak, not a faulty head).

Not evaluated by the engine: the streams' site stage calls ``correlate`` with the device findings of the rules a
``Site`` lists, regrouped by site, on each site's own state. They come in any order across devices (each device's
own findings in order). Each device alarm at or above ``at_least`` is an interval of event time, open until
a finding takes it below. The site condition holds at a device's start time ``t`` when at least ``min_devices``
distinct devices were in alarm at some moment of ``[t - within_s, t]``; the first such ``t`` raises the site
finding, confirmed, at the rule's level. It clears when no listed device alarm is at or above ``at_least`` anymore.
Intervals that ended more than ``within_s`` before the newest event are forgotten, and starts that fall inside an
episode already cleared do not open a new one, so the outcome does not depend on which partition's findings arrive
first (the finding's time is when the condition became known, which can).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from core.contracts.catalogue import LEVEL_RANK, Level
from core.contracts.finding import Finding
from rules.alarm import NONE, AlarmState, finding_of, force
from rules.rule import Rule, RuleId

_OPEN = None


class Site(Rule):
    """Correlation across the devices of one site: ``min_devices`` distinct devices whose alarm from one of
    ``rules`` reached ``at_least`` within ``within_s`` of each other (event time): one confirmed site finding."""

    kind: Literal["site"] = "site"
    rules: Annotated[list[RuleId], Field(min_length=1)]
    at_least: Level = Level.ORANGE
    min_devices: Annotated[int, Field(ge=2)] = 2
    within_s: Annotated[float, Field(gt=0)] = 60.0
    level: Level = Level.RED

    @property
    def refers_to(self) -> set[str]:
        return set(self.rules)


class SiteState:
    __slots__ = ("alarm", "cleared_at", "members", "newest")

    def __init__(self) -> None:
        self.members: dict[str, list[Any]] = {}  # device alert key -> [device_id, start, end or None]
        self.alarm = AlarmState()
        self.newest = 0
        self.cleared_at: int | None = None  # event time the last site alarm cleared

    @property
    def idle(self) -> bool:
        return not self.members and self.alarm.idle

    def dump(self) -> list[Any]:
        return [self.members, self.alarm.dump(), self.newest, self.cleared_at]

    @classmethod
    def load(cls, data: list[Any]) -> SiteState:
        state = cls()
        state.members, state.newest = {k: list(v) for k, v in data[0].items()}, data[2]
        state.alarm = AlarmState.load(data[1])
        state.cleared_at = data[3]
        return state


def site_key(rule: Site, site_id: str, exercise: bool) -> str:
    return f"{'drill:' if exercise else ''}site:{site_id}:{rule.id}"


def correlate(rule: Site, state: SiteState, finding: Finding, now_ms: int) -> Finding | None:
    """Take one device finding of ``rule.rules`` for this site; the site finding it causes, if any."""
    at_least = LEVEL_RANK[rule.at_least]
    ts = finding.ts
    state.newest = max(state.newest, ts)
    member = state.members.get(finding.key)
    in_alarm = finding.active and LEVEL_RANK[finding.level] >= at_least
    if in_alarm and (member is None or member[2] is not _OPEN):
        state.members[finding.key] = [finding.device_id, ts, _OPEN]
    elif not in_alarm and member is not None and member[2] is _OPEN:
        member[2] = ts
    within = rule.within_s * 1000
    horizon = state.newest - within
    for key in [k for k, m in state.members.items() if m[2] is not _OPEN and m[2] < horizon]:
        del state.members[key]
    holding = _confirmed(state, rule.min_devices, within, state.cleared_at)
    anyone_open = any(m[2] is _OPEN for m in state.members.values())
    if state.alarm.published == NONE:
        if holding is None:
            return None
        change = force(state.alarm, LEVEL_RANK[rule.level])
        when = holding
    elif not anyone_open:
        change = force(state.alarm, NONE)
        when = ts
        state.cleared_at = max(m[2] for m in state.members.values()) if state.members else ts
    else:
        return None
    if change is None:
        return None
    key = site_key(rule, finding.site_id or "", finding.exercise)
    devices = sorted({m[0] for m in state.members.values()})
    return finding_of(
        change,
        key=key,
        rule=rule.id,
        hazard=rule.hazard,
        title=rule.title,
        ts=when,
        detected_at=now_ms,
        confirmed=True,
        exercise=finding.exercise,
        device_id=None,
        site_id=finding.site_id,
        site_name=finding.site_name,
        lat=finding.lat,
        lon=finding.lon,
        departments=finding.departments,
        value=float(len(devices)),
        threshold=float(rule.min_devices),
        window_s=rule.within_s,
        confirms=sorted(state.members),
    )


def _confirmed(state: SiteState, min_devices: int, within: float, after: int | None) -> int | None:
    """The earliest start time (after the last episode cleared) at which ``min_devices`` distinct devices were in
    alarm within the window. A start inside an episode already cleared belongs to that episode: a device whose
    findings arrive late does not open a second site alarm for the same event."""
    members = list(state.members.values())
    starts: list[int] = sorted(m[1] for m in members if after is None or m[1] > after)
    for start in starts:
        devices = {m[0] for m in members if m[1] <= start and (m[2] is _OPEN or m[2] >= start - within)}
        if len(devices) >= min_devices:
            return start
    return None
