"""The rules engine: a reading (or a clock tick) plus a device's state in, findings out. Pure.

``Engine(pack)`` indexes the pack's rules by device kind and metric once. ``evaluate`` applies every rule that the
reading's metrics concern; ``check_silence`` is called on a clock for offline detection, including devices that were
registered and never heard from. Unknown devices (registry open) are judged by the rules whose metrics they report,
with no offline check since no interval is known.

Ordering: a reading older than the device's newest one is *late*. It still feeds rate windows (if inside them) but
does not move threshold or condition alarms, which follow the newest event time only; so a late reading cannot clear
or re-raise an alarm out of turn, and the findings of a device depend only on its own readings, never on how they
were interleaved with other devices'. A reading with the same event time as the newest is in order: a device may send
several readings with one ``ts``, and each must count.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from core.contracts import ReadingDict
from core.contracts.catalogue import LEVEL_RANK, DeviceKind
from core.contracts.device import Device
from core.contracts.finding import Finding
from rules.alarm import NONE, AlarmState, Change, FlapPolicy, finding_of, force, step
from rules.kinds import Condition, Limits, MetricIs, Offline, Rate, Site, Threshold
from rules.pack import RulePack
from rules.state import DeviceState
from rules.window import Window


@dataclass
class _KindRules:
    thresholds: dict[str, list[Threshold]] = field(default_factory=lambda: defaultdict(list))
    rates: dict[str, list[Rate]] = field(default_factory=lambda: defaultdict(list))
    conditions: list[Condition] = field(default_factory=list)
    condition_metrics: set[str] = field(default_factory=set)
    offline: list[Offline] = field(default_factory=list)
    #: metric -> (threshold rules, rate rules, looked at by a condition rule): one lookup per value in the hot path
    plan: dict[str, tuple[tuple[tuple[Threshold, str, int, float], ...], tuple[Rate, ...], bool]] = field(
        default_factory=dict
    )


class Engine:
    def __init__(self, pack: RulePack) -> None:
        self.pack = pack
        self.flap: FlapPolicy = pack.flap.policy
        self.sites: list[Site] = [r for r in pack.rules if isinstance(r, Site)]
        self._by_kind: dict[DeviceKind | None, _KindRules] = {}
        for kind in [*DeviceKind, None]:
            rules = _KindRules()
            for rule in pack.rules:
                if kind is not None and rule.device_kinds and kind not in rule.device_kinds:
                    continue
                if isinstance(rule, Threshold):
                    rules.thresholds[rule.metric].append(rule)
                elif isinstance(rule, Rate):
                    rules.rates[rule.metric].append(rule)
                elif isinstance(rule, Condition):
                    rules.conditions.append(rule)
                    rules.condition_metrics |= rule.metrics
                elif isinstance(rule, Offline) and kind is not None:
                    rules.offline.append(rule)
            rules.thresholds, rules.rates = dict(rules.thresholds), dict(rules.rates)
            for metric in {*rules.thresholds, *rules.rates, *rules.condition_metrics}:
                rules.plan[metric] = (
                    tuple(
                        (r, r.id, 1 if r.direction == "above" else -1, r.compiled(None).idle_below)
                        for r in rules.thresholds.get(metric, ())
                    ),
                    tuple(rules.rates.get(metric, ())),
                    metric in rules.condition_metrics,
                )
            self._by_kind[kind] = rules
        self._defaults: dict[str, Limits] = {r.id: r.compiled(None) for r in pack.rules if isinstance(r, Threshold)}
        self._overridden: dict[tuple[str, str], tuple[Device, Limits]] = {}

    # ------------------------------------------------------------------ readings

    def evaluate(self, reading: ReadingDict, device: Device | None, state: DeviceState, now_ms: int) -> list[Finding]:
        """Apply the rules to one reading; ``state`` is updated in place."""
        ts, drill = reading["ts"], reading["drill"]
        received = reading["received_at"]
        if state.last_seen is None or received > state.last_seen:
            state.last_seen = received
        out: list[Finding] = []
        offline = state.alarms.get("device.offline") if not drill else None
        if offline is not None:
            self._silence_cleared(device, state, offline, reading, now_ms, out)
        st = state
        if drill:
            if state.drill is None:
                state.drill = DeviceState()
            st = state.drill
        in_order = st.last_ts is None or ts >= st.last_ts
        if in_order:
            st.last_ts = ts
        rules = self._by_kind[device.kind if device is not None else None]
        plan = rules.plan
        touched = False
        for metric, value in reading["values"].items():
            step_ = plan.get(metric)
            if step_ is None:
                continue
            thresholds, rates, in_condition = step_
            if in_condition and in_order:
                if st.latest is None:
                    st.latest = {}
                st.latest[metric] = (ts, value)
                touched = True
            if isinstance(value, bool):
                continue
            if in_order:
                overridden = device is not None and metric in device.thresholds
                alarms = st.alarms
                for rule, rule_id, sign, idle_below in thresholds:
                    touched = True
                    if not overridden and rule_id not in alarms and sign * value < idle_below:
                        continue  # the common case, decided without a call: no alarm, no level reached
                    self._threshold(rule, device, reading, st, value, now_ms, out)
            for rate in rates:
                touched |= self._rate(rate, device, reading, st, value, in_order, now_ms, out)
        if touched and rules.conditions:
            for condition in rules.conditions:
                self._condition(condition, device, reading, st, now_ms, out)
        return out

    def _threshold(
        self,
        rule: Threshold,
        device: Device | None,
        reading: ReadingDict,
        st: DeviceState,
        value: float,
        now: int,
        out: list[Finding],
    ) -> None:
        limits = self._limits(rule, device)
        alarm = st.alarms.get(rule.id)
        if alarm is None and (value if rule.direction == "above" else -value) < limits.idle_below:
            return  # the common case: no alarm, nothing reached
        current = alarm.level if alarm is not None else NONE
        change = self._step(st, rule, rule.candidate(value, current, limits), reading["ts"])
        if change is not None:
            rank = LEVEL_RANK[change.level]
            limit = limits.raise_at[rank] if change.active else limits.clear_at[rank]
            out.append(
                _finding(
                    rule,
                    device,
                    reading,
                    change,
                    now,
                    metric=rule.metric,
                    value=value,
                    threshold=limit,
                    window_s=rule.hold_s or None,
                )
            )

    def _rate(
        self,
        rule: Rate,
        device: Device | None,
        reading: ReadingDict,
        st: DeviceState,
        value: float,
        in_order: bool,
        now: int,
        out: list[Finding],
    ) -> bool:
        window = st.windows.get(rule.id)
        if window is None:
            window = st.windows[rule.id] = Window()
        rise = window.add(reading["ts"], value, int(rule.window_s * 1000))
        if not in_order:
            return False
        alarm = st.alarms.get(rule.id)
        current = alarm.level if alarm is not None else NONE
        candidate = NONE if rise is None else rule.candidate(rise, value, current)
        if alarm is None and candidate == NONE:
            return False
        change = self._step(st, rule, candidate, reading["ts"])
        if change is not None:
            out.append(
                _finding(
                    rule,
                    device,
                    reading,
                    change,
                    now,
                    metric=rule.metric,
                    value=rise,
                    threshold=rule.change,
                    window_s=rule.window_s,
                )
            )
        return True

    def _condition(
        self,
        rule: Condition,
        device: Device | None,
        reading: ReadingDict,
        st: DeviceState,
        now: int,
        out: list[Finding],
    ) -> None:
        ts, horizon = reading["ts"], reading["ts"] - rule.within_s * 1000
        met = False
        for group in rule.any:
            for cond in group:
                if isinstance(cond, MetricIs):
                    seen = st.latest.get(cond.metric) if st.latest else None
                    if seen is None or seen[0] < horizon or not cond.holds(seen[1]):
                        break
                else:
                    other = st.alarms.get(cond.rule)
                    if other is None or other.level < LEVEL_RANK[cond.at_least]:
                        break
            else:
                met = True
                break
        change = self._step(st, rule, LEVEL_RANK[rule.level] if met else NONE, ts)
        if change is not None:
            out.append(_finding(rule, device, reading, change, now, window_s=rule.within_s, confirmed=rule.confirmed))

    def _step(self, st: DeviceState, rule: Threshold | Rate | Condition, candidate: int, ts: int) -> Change | None:
        """One candidate into the rule's alarm: kept in ``st.alarms`` only while it is not idle."""
        alarm = st.alarms.get(rule.id)
        if alarm is None:
            if candidate == NONE:
                return None
            alarm = st.alarms[rule.id] = AlarmState()
        change = step(alarm, candidate, ts, rule.hold, self.flap if rule.flap else None)
        if alarm.idle:
            del st.alarms[rule.id]
        return change

    def _limits(self, rule: Threshold, device: Device | None) -> Limits:
        if device is None or not rule.overridable:
            return self._defaults[rule.id]
        overrides = device.thresholds.get(rule.metric)
        if not overrides:
            return self._defaults[rule.id]
        key = (rule.id, device.id)
        cached = self._overridden.get(key)
        if cached is None or cached[0] is not device:
            cached = (device, rule.compiled(overrides))
            self._overridden[key] = cached
        return cached[1]

    def forget(self, device_id: str) -> None:
        """Drop cached per-device limits (the device was deleted)."""
        for key in [k for k in self._overridden if k[1] == device_id]:
            del self._overridden[key]

    # ------------------------------------------------------------------ silence

    def check_silence(
        self, device: Device, state: DeviceState, now_ms: int, wall_ms: int | None = None
    ) -> list[Finding]:
        """Offline rules on a clock: silent for N x the registered interval, counting from the last arrival, or,
        for a device never heard from, from when the engine first knew it (``state.since``, set here).

        ``now_ms`` is the time silence is measured at: the stream workers pass how far the pipeline has got (the
        newest record time on the device's partition), not their own clock; ``wall_ms`` stamps ``detected_at``."""
        if state.since is None:
            state.since = now_ms
        out: list[Finding] = []
        for rule in self._by_kind[device.kind].offline:
            reference = state.last_seen if state.last_seen is not None else state.since
            limit_ms = rule.silent_intervals * device.interval_s * 1000
            silent = now_ms - reference
            if silent <= limit_ms:
                continue
            alarm = state.alarms.get(rule.id)
            if alarm is None:
                alarm = state.alarms[rule.id] = AlarmState()
            change = force(alarm, LEVEL_RANK[rule.level])
            if change is not None:
                out.append(
                    _finding(
                        rule,
                        device,
                        None,
                        change,
                        wall_ms if wall_ms is not None else now_ms,
                        value=round(silent / 1000, 3),
                        threshold=limit_ms / 1000,
                        ts=now_ms,
                        device_id=device.id,
                    )
                )
        return out

    def _silence_cleared(
        self,
        device: Device | None,
        state: DeviceState,
        alarm: AlarmState,
        reading: ReadingDict,
        now: int,
        out: list[Finding],
    ) -> None:
        rule = next((r for r in self._by_kind[device.kind].offline), None) if device is not None else None
        change = force(alarm, NONE)
        del state.alarms["device.offline"]
        if change is not None and rule is not None:
            out.append(_finding(rule, device, reading, change, now, value=0.0, ts=reading["received_at"]))


def _finding(
    rule: Threshold | Rate | Condition | Offline,
    device: Device | None,
    reading: ReadingDict | None,
    change: Change,
    now: int,
    *,
    metric: str | None = None,
    value: float | bool | None = None,
    threshold: float | None = None,
    window_s: float | None = None,
    confirmed: bool = False,
    ts: int | None = None,
    device_id: str | None = None,
) -> Finding:
    device_id = reading["device_id"] if reading is not None else device_id
    exercise = bool(reading and reading["drill"])
    key = f"{'drill:' if exercise else ''}{device_id}:{rule.id}"
    when = ts if ts is not None else reading["ts"] if reading is not None else now
    return finding_of(
        change,
        key=key,
        rule=rule.id,
        hazard=rule.hazard,
        title=rule.title,
        ts=when,
        detected_at=now,
        confirmed=confirmed,
        exercise=exercise,
        device_id=device_id,
        site_id=device.site_id if device else None,
        site_name=device.site_name if device else None,
        lat=device.lat if device else None,
        lon=device.lon if device else None,
        departments=list(device.departments) if device else [],
        metric=metric,
        value=value,
        threshold=threshold,
        window_s=window_s,
    )
