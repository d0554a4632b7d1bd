"""The rate kind: a rise (or fall) of a metric within a window of event time (the window: ``rules.window``).

A rate rule sees late values too (``sees_late``): one inside its window lowers the baseline where it belongs, as if
it had come in order, but only an in-order reading moves the alarm.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from core.contracts import ReadingDict
from core.contracts.catalogue import LEVEL_RANK, Level
from core.contracts.device import Device
from core.contracts.finding import Finding
from rules.alarm import NONE
from rules.rule import Context, Finite, ValueRule, catalogued
from rules.state import DeviceState
from rules.window import Window


class Rate(ValueRule):
    """A rise (or fall) of ``change`` within ``window_s`` of event time; see ``rules.window``. Optional guard:
    only while the value is below ``while_below`` (an early warning that the threshold rule takes over from)."""

    sees_late: ClassVar[bool] = True

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
        catalogued(self.metric)
        if self.clear_change is not None and self.clear_change > self.change:
            raise ValueError("clear_change must not exceed change")
        return self

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset((self.metric,))

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
        window = st.windows.get(self.id)
        if window is None:
            window = st.windows[self.id] = Window()
        rise = window.add(reading["ts"], value, int(self.window_s * 1000))
        if not in_order:
            return False
        alarm = st.alarms.get(self.id)
        current = alarm.level if alarm is not None else NONE
        candidate = NONE if rise is None else self.candidate(rise, value, current)
        if alarm is None and candidate == NONE:
            return False
        change = ctx.step(st, self, candidate, reading["ts"])
        if change is not None:
            out.append(
                self.finding(
                    change,
                    device,
                    reading,
                    now,
                    metric=self.metric,
                    value=rise,
                    threshold=self.change,
                    window_s=self.window_s,
                )
            )
        return True
