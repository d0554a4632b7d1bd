"""The threshold kind: levels with hysteresis on one metric, per device where the registry says so.

The rule's own levels are compiled once (``defaults``); a device whose registry record carries thresholds for the
metric gets its own ``Limits`` (``specialise``), which the engine keeps until the record changes. With no alarm on the
device, a value below every raise value is judged by the engine without a call (``resting``): most readings.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Literal, NamedTuple

from pydantic import Field, model_validator

from core.contracts import ReadingDict
from core.contracts.catalogue import LEVEL_RANK, METRICS, Level, misordered
from core.contracts.device import Device
from core.contracts.finding import Finding
from rules.alarm import NONE
from rules.rule import Context, Finite, ValueRule, catalogued
from rules.state import DeviceState


class Limits(NamedTuple):
    """A threshold rule's numbers for one device: the levels in use, highest first, and values by rank."""

    levels: tuple[tuple[int, float], ...]
    raise_at: tuple[float, ...]
    clear_at: tuple[float, ...]
    idle_below: float  # "above" rules: a value under this cannot raise (for "below" rules, negated)


class Threshold(ValueRule):
    """Several levels, each with its own clear value (hysteresis), as Kapacitor's alert node: the alarm rises to
    the highest level whose value is reached, and leaves its level only when the value passes that level's clear
    value; it then takes whatever level the value meets."""

    kind: Literal["threshold"] = "threshold"
    metric: str
    direction: Literal["above", "below"] = "above"
    levels: dict[Level, Finite] = Field(default_factory=dict, description="raise at (inclusive)")
    clear: dict[Level, Finite] = Field(default_factory=dict, description="leave the level past this (exclusive)")
    clear_margin: Annotated[float, Field(ge=0)] | None = Field(
        None, description="for levels without a clear value, including per-device overrides: raise value -/+ this"
    )
    overridable: bool = Field(True, description="per-device thresholds from the registry replace the levels")

    @model_validator(mode="after")
    def _consistent(self) -> Threshold:
        catalogued(self.metric)
        if METRICS[self.metric].boolean:
            raise ValueError(f"{self.metric} is a boolean metric: use a 'condition' rule")
        extra = sorted(set(self.clear) - set(self.levels))
        if extra:
            raise ValueError(f"clear given for levels without a raise value: {', '.join(extra)}")
        above = self.direction == "above"
        problem = misordered(self.levels, self.direction)
        if problem:
            raise ValueError(problem)
        directions = METRICS[self.metric].directions
        if self.overridable and self.direction not in directions:
            raise ValueError(
                f"the registry checks {self.metric} overrides as going {' or '.join(directions)} (the catalogue); "
                f"a rule going {self.direction} would take them the wrong way round: set overridable: false"
            )
        for level, value in self.clear.items():
            if (value > self.levels[level]) if above else (value < self.levels[level]):
                raise ValueError(f"clear value of {level} ({value}) is past its raise value ({self.levels[level]})")
        return self

    def compiled(self, overrides: dict[Level, float] | None) -> Limits:
        """Raise values (rank, value) from the highest level down, and clear values by rank (NaN where unused),
        with a device's overrides applied."""
        nan = float("nan")
        raise_at, clear_at = [nan] * 4, [nan] * 4
        sign = 1 if self.direction == "above" else -1
        for level, value in self.levels.items():
            raise_at[LEVEL_RANK[level]] = value
            clear_at[LEVEL_RANK[level]] = self.clear.get(level, value - sign * (self.clear_margin or 0))
        for level, value in (overrides or {}).items() if self.overridable else ():
            rank = LEVEL_RANK[level]
            default = self.levels.get(level)
            margin = (
                abs(default - self.clear[level])
                if default is not None and level in self.clear
                else (self.clear_margin or 0)
            )
            raise_at[rank], clear_at[rank] = value, value - sign * margin
        used = tuple((rank, raise_at[rank]) for rank in (3, 2, 1, 0) if raise_at[rank] == raise_at[rank])
        inf = float("inf")
        idle_below = min((sign * x for _, x in used), default=inf)
        return Limits(used, tuple(raise_at), tuple(clear_at), idle_below)

    def candidate(self, value: float, current: int, limits: Limits) -> int:
        reached = NONE
        if self.direction == "above":
            for rank, x in limits.levels:
                if value >= x:
                    reached = rank
                    break
            if current == NONE or reached > current:
                return reached
            c = limits.clear_at[current]
            return reached if c != c or value < c else current
        for rank, x in limits.levels:
            if value <= x:
                reached = rank
                break
        if current == NONE or reached > current:
            return reached
        c = limits.clear_at[current]
        return reached if c != c or value > c else current

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset((self.metric,))

    @cached_property
    def defaults(self) -> Limits:
        """The rule's own limits, for devices without overrides."""
        return self.compiled(None)

    def specialise(self, device: Device) -> Limits:
        return self.compiled(device.thresholds.get(self.metric))

    def resting(self) -> tuple[int, float]:
        return (1 if self.direction == "above" else -1), self.defaults.idle_below

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
        limits = self.defaults
        if device is not None and self.overridable and device.thresholds.get(self.metric):
            limits = ctx.specialised(self, device)
        alarm = st.alarms.get(self.id)
        if alarm is None and (value if self.direction == "above" else -value) < limits.idle_below:
            return True  # the common case: no alarm, nothing reached
        current = alarm.level if alarm is not None else NONE
        change = ctx.step(st, self, self.candidate(value, current, limits), reading["ts"])
        if change is not None:
            rank = LEVEL_RANK[change.level]
            limit = limits.raise_at[rank] if change.active else limits.clear_at[rank]
            out.append(
                self.finding(
                    change,
                    device,
                    reading,
                    now,
                    metric=self.metric,
                    value=value,
                    threshold=limit,
                    window_s=self.hold_s or None,
                )
            )
        return True
