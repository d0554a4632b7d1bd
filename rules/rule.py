"""What a rule is: frozen parameters, validated when the pack is loaded, and one method that evaluates.

Each kind is a class in a module of its own (``rules.threshold``, ``rules.rate``, ``rules.condition``,
``rules.offline``, ``rules.site``), registered under its pack name in ``rules.kinds.RULE_KINDS``. The engine never
names a kind: it evaluates a device rule at the stage whose contract the rule's class implements.

- ``ValueRule``: each number its metrics take in a reading; a rule that does not ``sees_late`` is not called for
  a reading older than the device's newest (threshold; a rate rule sees them). A value's rules run in pack order,
  those that follow in-order values only first;
- ``ReadingRule``: once a reading's values are through, if one of them concerned a rule of the device (condition);
- ``ClockRule``: on the clock, for each registered device, and ``heard`` when the device reports again (offline).

A rule that is not a ``DeviceRule`` is not evaluated by the engine: ``site`` rules correlate device findings per
site (``rules.site``, run by the streams' site stage). Levels are ranks (``core.contracts.catalogue.LEVEL_RANK``:
0 blue .. 3 red), ``rules.alarm.NONE`` (-1) for no alarm. While it evaluates, a rule uses the engine only through
``Context``: the shared alarm state machine and a per-device cache.
"""

from __future__ import annotations

from abc import abstractmethod
from functools import cached_property
from typing import Annotated, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from core.contracts import ReadingDict
from core.contracts.catalogue import METRICS, DeviceKind
from core.contracts.device import Device
from core.contracts.finding import Finding, Hazard, Text
from rules.alarm import AlarmState, Change, Hold, finding_of
from rules.state import DeviceState

RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$", max_length=64)]
Finite = Annotated[float, Field(allow_inf_nan=False)]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


def catalogued(metric: str) -> str:
    """``metric`` if the catalogue knows it; a rule on an unknown metric would never see a value."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(sorted(METRICS))}")
    return metric


class Rule(BaseModel):
    """The fields every kind shares. A kind adds its own, a ``kind: Literal[...]`` tag equal to its key in
    ``RULE_KINDS``, and the stage method it implements."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: RuleId
    hazard: Hazard
    title: Text
    source: str = Field(min_length=1, description="where the numbers come from: standard and clause")
    device_kinds: list[DeviceKind] = Field(default_factory=list, description="empty: every kind")
    hold_s: Annotated[float, Field(ge=0)] = 0.0
    repeat: Annotated[int, Field(ge=1)] = 1
    flap: bool = True

    @cached_property
    def hold(self) -> Hold:
        return Hold(self.hold_s, self.repeat)

    @property
    def refers_to(self) -> set[str]:
        """The ids of the device rules whose alarms this rule looks at; the pack checks they exist."""
        return set()

    def applies_to(self, kind: DeviceKind) -> bool:
        return not self.device_kinds or kind in self.device_kinds


class DeviceRule(Rule):
    """A rule the engine evaluates on one device's state; its findings are keyed ``{device}:{rule}``."""

    def finding(
        self,
        change: Change,
        device: Device | None,
        reading: ReadingDict | None,
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
        """The finding publishing ``change``: about the reading's device (or ``device_id`` for a check without a
        reading), at the reading's event time unless ``ts`` says otherwise, a drill's under a ``drill:`` key."""
        device_id = reading["device_id"] if reading is not None else device_id
        exercise = bool(reading and reading["drill"])
        key = f"{'drill:' if exercise else ''}{device_id}:{self.id}"
        when = ts if ts is not None else reading["ts"] if reading is not None else now
        return finding_of(
            change,
            key=key,
            rule=self.id,
            hazard=self.hazard,
            title=self.title,
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


class Context(Protocol):
    """What the engine lends a rule while it evaluates."""

    def step(self, st: DeviceState, rule: Rule, candidate: int, ts: int) -> Change | None:
        """One candidate level into the rule's alarm on the device (hold, flapping: ``rules.alarm``); the change
        to publish, if any. The alarm is kept in ``st.alarms`` only while it is not idle."""
        ...

    def specialised(self, rule: Specialised[T], device: Device) -> T:
        """``rule.specialise(device)``, made once per (rule, device record) and kept until the device changes."""
        ...


class Specialised(Protocol[T_co]):
    """A rule whose parameters a device's registry record changes (a threshold's per-device levels)."""

    @property
    def id(self) -> str: ...

    def specialise(self, device: Device) -> T_co: ...


class ValueRule(DeviceRule):
    """Evaluated for each number its metrics take in a reading (boolean values only feed reading rules)."""

    #: Whether values older than the device's newest reading reach the rule (a rate window takes them in; a rule
    #: that follows the newest event time only does not, so a late reading cannot move its alarm out of turn).
    sees_late: ClassVar[bool] = False

    @property
    @abstractmethod
    def metrics(self) -> frozenset[str]:
        """The metrics whose values the rule is called with."""

    def resting(self) -> tuple[int, float]:
        """``(sign, bound)``: without an alarm of this rule on the device and without a per-device override of the
        metric, a value ``v`` with ``sign * v < bound`` cannot raise it, and the engine counts it as judged without
        a call (the hot path's common case). Only for a rule that does not ``sees_late``; the default never skips."""
        return 0, float("-inf")

    @abstractmethod
    def evaluate(
        self,
        ctx: Context,
        device: Device | None,
        reading: ReadingDict,
        st: DeviceState,
        value: float,
        in_order: bool,
        now: int,
        out: list[Finding],
    ) -> bool:
        """Judge one value of the reading, appending findings to ``out``; whether the value concerned the rule,
        so that the device's reading rules look again."""


class ReadingRule(DeviceRule):
    """Evaluated once per reading, after its values, when one of them concerned a rule of the device."""

    @property
    @abstractmethod
    def metrics(self) -> frozenset[str]:
        """The metrics whose latest in-order value (and its event time) the engine keeps in ``st.latest``."""

    @abstractmethod
    def evaluate(
        self, ctx: Context, device: Device | None, reading: ReadingDict, st: DeviceState, now: int, out: list[Finding]
    ) -> None:
        """Judge the device after the reading, appending findings to ``out``."""


class ClockRule(DeviceRule):
    """Evaluated on the clock for each registered device of its kinds (an unknown device has no interval to be
    silent for); its alarm ends when the device is heard from again (any reading but a drill's)."""

    @abstractmethod
    def evaluate(self, device: Device, state: DeviceState, now: int, wall: int, out: list[Finding]) -> None:
        """Judge the device at stream time ``now`` (findings stamped ``detected_at`` ``wall``)."""

    @abstractmethod
    def heard(
        self,
        device: Device | None,
        state: DeviceState,
        alarm: AlarmState,
        reading: ReadingDict,
        now: int,
        out: list[Finding],
    ) -> None:
        """End the rule's ``alarm`` on the device (in ``state.alarms``): ``reading`` has just arrived."""
