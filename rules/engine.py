"""The rules engine: a reading (or a clock tick) plus a device's state in, findings out. Pure.

``Engine(pack)`` lays the pack's device rules out once per device kind, by the stage their class implements
(``rules.rule``: value, reading, clock), never by rule kind, so a new kind needs nothing here. ``evaluate`` gives
each value of a reading to the value rules of its metric, in pack order (those that follow in-order values only
first), then runs the reading rules if a value concerned the device's rules; ``check_silence`` runs the clock rules
(offline detection, including devices that were registered and never heard from). Unknown devices (registry open)
are judged by the rules whose metrics they report, with no clock rules since no interval is known. ``sites`` are the
pack's site rules, for the streams' site stage (``rules.site``).

Ordering: a reading older than the device's newest one is *late*. It still feeds rate windows (if inside them) but
does not move threshold or condition alarms, which follow the newest event time only; so a late reading cannot clear
or re-raise an alarm out of turn, and the findings of a device depend only on its own readings, never on how they
were interleaved with other devices'. A reading with the same event time as the newest is in order: a device may send
several readings with one ``ts``, and each must count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from core.contracts import ReadingDict
from core.contracts.catalogue import DeviceKind
from core.contracts.device import Device
from core.contracts.finding import Finding
from rules.alarm import NONE, AlarmState, Change, FlapPolicy
from rules.alarm import step as advance
from rules.pack import RulePack
from rules.rule import ClockRule, Context, ReadingRule, Rule, Specialised, ValueRule
from rules.site import Site
from rules.state import DeviceState

T = TypeVar("T")

JudgeValue = Callable[[Context, Device | None, ReadingDict, DeviceState, float, bool, int, list[Finding]], bool]
JudgeReading = Callable[[Context, Device | None, ReadingDict, DeviceState, int, list[Finding]], None]
#: A metric's value rules: in order only, as (evaluate, rule id, resting sign, resting bound); those that see late
#: values too; and whether a reading rule looks at the metric's latest value.
Judges = tuple[tuple[tuple[JudgeValue, str, int, float], ...], tuple[JudgeValue, ...], bool]


@dataclass(frozen=True, slots=True)
class _Plan:
    """The device rules of one device kind (``None``: unknown devices), laid out so that a reading costs one lookup
    per value and no allocation: bound ``evaluate`` methods, and each in-order rule's resting bound inline."""

    by_metric: dict[str, Judges]
    after_reading: tuple[JudgeReading, ...]
    clock: tuple[ClockRule, ...]


def _plan(rules: Sequence[Rule], kind: DeviceKind | None) -> _Plan:
    in_order: dict[str, list[ValueRule]] = {}
    late: dict[str, list[ValueRule]] = {}
    after: list[ReadingRule] = []
    watched: set[str] = set()
    clock: list[ClockRule] = []
    for rule in rules:
        if kind is not None and not rule.applies_to(kind):
            continue
        if isinstance(rule, ValueRule):
            for metric in rule.metrics:
                (late if rule.sees_late else in_order).setdefault(metric, []).append(rule)
        elif isinstance(rule, ReadingRule):
            after.append(rule)
            watched |= rule.metrics
        elif isinstance(rule, ClockRule) and kind is not None:
            clock.append(rule)
    by_metric: dict[str, Judges] = {
        metric: (
            tuple((r.evaluate, r.id, *r.resting()) for r in in_order.get(metric, ())),
            tuple(r.evaluate for r in late.get(metric, ())),
            metric in watched,
        )
        for metric in {*in_order, *late, *watched}
    }
    return _Plan(by_metric, tuple(r.evaluate for r in after), tuple(clock))


class Engine:
    def __init__(self, pack: RulePack) -> None:
        self.pack = pack
        self.flap: FlapPolicy = pack.flap.policy
        self.sites: list[Site] = [r for r in pack.rules if isinstance(r, Site)]
        self._clock: tuple[ClockRule, ...] = tuple(r for r in pack.rules if isinstance(r, ClockRule))
        self._plans: dict[DeviceKind | None, _Plan] = {kind: _plan(pack.rules, kind) for kind in [*DeviceKind, None]}
        self._specialised: dict[tuple[str, str], tuple[Device, Any]] = {}

    # ------------------------------------------------------------------ readings

    def evaluate(self, reading: ReadingDict, device: Device | None, state: DeviceState, now_ms: int) -> list[Finding]:
        """Apply the rules to one reading; ``state`` is updated in place."""
        ts, drill = reading["ts"], reading["drill"]
        received = reading["received_at"]
        if state.last_seen is None or received > state.last_seen:
            state.last_seen = received
        out: list[Finding] = []
        if not drill and state.alarms:
            for clock_rule in self._clock:
                alarm = state.alarms.get(clock_rule.id)
                if alarm is not None:
                    clock_rule.heard(device, state, alarm, reading, now_ms, out)
        st = state
        if drill:
            if state.drill is None:
                state.drill = DeviceState()
            st = state.drill
        in_order = st.last_ts is None or ts >= st.last_ts
        if in_order:
            st.last_ts = ts
        plan = self._plans[device.kind if device is not None else None]
        by_metric = plan.by_metric
        touched = False  # a value concerned the device's rules: its reading rules look again
        for metric, value in reading["values"].items():
            judges = by_metric.get(metric)
            if judges is None:
                continue
            current, late, watched = judges
            if watched and in_order:
                if st.latest is None:
                    st.latest = {}
                st.latest[metric] = (ts, value)
                touched = True
            if isinstance(value, bool):
                continue
            if in_order:
                overridden = device is not None and metric in device.thresholds
                alarms = st.alarms
                for judge, rule_id, sign, bound in current:
                    if not overridden and rule_id not in alarms and sign * value < bound:
                        touched = True  # resting: judged without a call
                        continue
                    touched |= judge(self, device, reading, st, value, True, now_ms, out)
            for judge_late in late:
                touched |= judge_late(self, device, reading, st, value, in_order, now_ms, out)
        if touched:
            for judge_reading in plan.after_reading:
                judge_reading(self, device, reading, st, now_ms, out)
        return out

    # ------------------------------------------------------------------ what rules use (``rules.rule.Context``)

    def step(self, st: DeviceState, rule: Rule, candidate: int, ts: int) -> Change | None:
        alarm = st.alarms.get(rule.id)
        if alarm is None:
            if candidate == NONE:
                return None
            alarm = st.alarms[rule.id] = AlarmState()
        change = advance(alarm, candidate, ts, rule.hold, self.flap if rule.flap else None)
        if alarm.idle:
            del st.alarms[rule.id]
        return change

    def specialised(self, rule: Specialised[T], device: Device) -> T:
        key = (rule.id, device.id)
        cached = self._specialised.get(key)
        if cached is None or cached[0] is not device:  # a new registry record for the device: made again
            cached = (device, rule.specialise(device))
            self._specialised[key] = cached
        return cast(T, cached[1])  # made by this rule's specialise: the key holds the rule's id

    def forget(self, device_id: str) -> None:
        """Drop what was made for the device (it was deleted)."""
        for key in [k for k in self._specialised if k[1] == device_id]:
            del self._specialised[key]

    # ------------------------------------------------------------------ clock

    def check_silence(
        self, device: Device, state: DeviceState, now_ms: int, wall_ms: int | None = None
    ) -> list[Finding]:
        """The clock rules for a registered device (offline: silent for N x the registered interval, counting from
        the last arrival, or, for a device never heard from, from when the engine first knew it: ``state.since``,
        set here).

        ``now_ms`` is the time silence is measured at: the stream workers pass how far the pipeline has got (the
        newest record time on the device's partition), not their own clock; ``wall_ms`` stamps ``detected_at``."""
        if state.since is None:
            state.since = now_ms
        out: list[Finding] = []
        wall = wall_ms if wall_ms is not None else now_ms
        for rule in self._plans[device.kind].clock:
            rule.evaluate(device, state, now_ms, wall, out)
        return out
