"""The condition kind: any of several all-of groups of clauses on one device ("smoke with heat, or flame").

A clause compares a metric's latest in-order value (``st.latest``, which the engine keeps for the metrics a
condition looks at) or requires another rule's alarm on the device at a level. The rule is judged after every
reading that concerned the device's rules, whatever its metrics, so a metric clause whose value has grown older than
``within_s`` stops holding at the next such reading.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.contracts import ReadingDict
from core.contracts.catalogue import LEVEL_RANK, Level
from core.contracts.device import Device
from core.contracts.finding import Finding
from rules.alarm import NONE
from rules.rule import Context, Finite, ReadingRule, RuleId, catalogued
from rules.state import DeviceState


class MetricIs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    op: Literal["==", "!=", ">=", ">", "<=", "<"]
    value: Finite | bool

    @model_validator(mode="after")
    def _known(self) -> MetricIs:
        catalogued(self.metric)
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


class Condition(ReadingRule):
    """Clauses on one device, any of several all-of groups: "smoke with heat, or flame". A metric clause uses the
    device's latest value of that metric taken within ``within_s`` of event time; a rule clause holds while that
    rule's alarm on the same device is at least a level."""

    kind: Literal["condition"] = "condition"
    level: Level
    any: Annotated[list[Annotated[list[Clause], Field(min_length=1)]], Field(min_length=1)]
    within_s: Annotated[float, Field(gt=0)] = 60.0
    confirmed: bool = Field(False, description="the finding is corroborated by independent signals")

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(c.metric for group in self.any for c in group if isinstance(c, MetricIs))

    @property
    def refers_to(self) -> set[str]:
        return {c.rule for group in self.any for c in group if isinstance(c, RuleActive)}

    def evaluate(
        self, ctx: Context, device: Device | None, reading: ReadingDict, st: DeviceState, now: int, out: list[Finding]
    ) -> None:
        ts, horizon = reading["ts"], reading["ts"] - self.within_s * 1000
        met = False
        for group in self.any:
            for clause in group:
                if isinstance(clause, MetricIs):
                    seen = st.latest.get(clause.metric) if st.latest else None
                    if seen is None or seen[0] < horizon or not clause.holds(seen[1]):
                        break
                else:
                    other = st.alarms.get(clause.rule)
                    if other is None or other.level < LEVEL_RANK[clause.at_least]:
                        break
            else:
                met = True
                break
        change = ctx.step(st, self, LEVEL_RANK[self.level] if met else NONE, ts)
        if change is not None:
            out.append(self.finding(change, device, reading, now, window_s=self.within_s, confirmed=self.confirmed))
