"""The rule kinds: small frozen objects, one method that decides a candidate level. Registered in ``RULE_KINDS``.

Each rule's parameters are validated when the pack is loaded (``rules.pack``); evaluation (``rules.engine``) calls
``candidate`` with plain values. Levels are ranks (``rules.alarm``): -1 none, 0 blue .. 3 red.
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.contracts.catalogue import LEVEL_RANK, METRICS, DeviceKind, Level, misordered
from core.contracts.finding import Hazard, Text
from rules.alarm import NONE, FlapPolicy, Hold

RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$", max_length=64)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class Limits(NamedTuple):
    """A threshold rule's numbers for one device: the levels in use, highest first, and values by rank."""

    levels: tuple[tuple[int, float], ...]
    raise_at: tuple[float, ...]
    clear_at: tuple[float, ...]
    idle_below: float  # "above" rules: a value under this cannot raise (for "below" rules, negated)


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: RuleId
    hazard: Hazard
    title: Text
    source: str = Field(min_length=1, description="where the numbers come from: standard and clause")
    device_kinds: list[DeviceKind] = Field(default_factory=list, description="empty: every kind")
    hold_s: Annotated[float, Field(ge=0)] = 0.0
    repeat: Annotated[int, Field(ge=1)] = 1
    flap: bool = True

    @property
    def hold(self) -> Hold:
        return Hold(self.hold_s, self.repeat)


class FlapSettings(BaseModel):
    """The pack's ``flap:`` section: when a rule's alarm counts as flapping (``rules.alarm``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    changes: Annotated[int, Field(ge=2)] = 6
    window_s: Annotated[float, Field(gt=0)] = 600
    calm_s: Annotated[float, Field(gt=0)] = 600

    @property
    def policy(self) -> FlapPolicy:
        return FlapPolicy(self.changes, self.window_s, self.calm_s)


def _catalogued(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(sorted(METRICS))}")
    return metric


class Threshold(_Rule):
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
        _catalogued(self.metric)
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


class Rate(_Rule):
    """A rise (or fall) of ``change`` within ``window_s`` of event time; see ``rules.window``. Optional guard:
    only while the value is below ``while_below`` (an early warning that the threshold rule takes over from)."""

    kind: Literal["rate"] = "rate"
    metric: str
    change: Annotated[float, Field(gt=0)]
    window_s: Annotated[float, Field(gt=0, le=7 * 86400)]
    direction: Literal["rise", "fall"] = "rise"
    level: Level
    clear_change: Annotated[float, Field(ge=0)] | None = Field(None, description="default: half of change")
    while_below: Finite | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Rate:
        _catalogued(self.metric)
        if self.clear_change is not None and self.clear_change > self.change:
            raise ValueError("clear_change must not exceed change")
        return self

    def candidate(self, change: float, value: float, current: int) -> int:
        if self.direction == "fall":
            change = -change
        if self.while_below is not None and value >= self.while_below:
            return NONE
        limit = (
            self.change
            if current == NONE
            else (self.clear_change if self.clear_change is not None else self.change / 2)
        )
        return LEVEL_RANK[self.level] if change >= limit else NONE


class MetricIs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    op: Literal["==", "!=", ">=", ">", "<=", "<"]
    value: Finite | bool

    @model_validator(mode="after")
    def _known(self) -> MetricIs:
        _catalogued(self.metric)
        return self

    def holds(self, seen: float | bool) -> bool:
        v, op = self.value, self.op
        if op == "==":
            return seen == v
        if op == "!=":
            return seen != v
        if isinstance(seen, bool) or isinstance(v, bool):
            return False
        if op == ">=":
            return seen >= v
        if op == ">":
            return seen > v
        if op == "<=":
            return seen <= v
        return seen < v


class RuleActive(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: RuleId
    at_least: Level = Level.BLUE


#: One clause of a condition rule's all-of group: a metric's latest value compared, or another rule's alarm.
Clause = MetricIs | RuleActive


class Condition(_Rule):
    """Clauses on one device, any of several all-of groups: "smoke with heat, or flame". A metric clause uses the
    device's latest value of that metric taken within ``within_s`` of event time; a rule clause holds while that
    rule's alarm on the same device is at least a level."""

    kind: Literal["condition"] = "condition"
    level: Level
    any: Annotated[list[Annotated[list[Clause], Field(min_length=1)]], Field(min_length=1)]
    within_s: Annotated[float, Field(gt=0)] = 60.0
    confirmed: bool = Field(False, description="the finding is corroborated by independent signals")

    @property
    def metrics(self) -> set[str]:
        return {c.metric for group in self.any for c in group if isinstance(c, MetricIs)}

    @property
    def rule_refs(self) -> set[str]:
        return {c.rule for group in self.any for c in group if isinstance(c, RuleActive)}


class Offline(_Rule):
    """Silent for ``silent_intervals`` x the device's registered interval, including devices never heard from."""

    kind: Literal["offline"] = "offline"
    level: Level = Level.BLUE
    silent_intervals: Annotated[float, Field(gt=0)] = 3.0


class Site(_Rule):
    """Correlation across the devices of one site: ``min_devices`` distinct devices whose alarm from one of
    ``rules`` reached ``at_least`` within ``within_s`` of each other (event time): one confirmed site finding."""

    kind: Literal["site"] = "site"
    rules: Annotated[list[RuleId], Field(min_length=1)]
    at_least: Level = Level.ORANGE
    min_devices: Annotated[int, Field(ge=2)] = 2
    within_s: Annotated[float, Field(gt=0)] = 60.0
    level: Level = Level.RED


Rule = Annotated[Threshold | Rate | Condition | Offline | Site, Field(discriminator="kind")]

#: Every rule kind by the name a pack uses; the pack's ``kind`` field picks one.
RULE_KINDS: dict[str, type[_Rule]] = {
    "threshold": Threshold,
    "rate": Rate,
    "condition": Condition,
    "offline": Offline,
    "site": Site,
}
