"""The offline kind: a device silent for a number of its registered reporting intervals.

Silence is measured on arrival time (a device with a wrong clock is still alive) against the stream time the caller
passes, from the last arrival or, for a device never heard from, from when the engine first knew it. The next
reading that is not a drill ends the alarm.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from core.contracts import ReadingDict
from core.contracts.catalogue import LEVEL_RANK, Level
from core.contracts.device import Device
from core.contracts.finding import Finding
from rules.alarm import NONE, AlarmState, force
from rules.rule import ClockRule
from rules.state import DeviceState


class Offline(ClockRule):
    """Silent for ``silent_intervals`` x the device's registered interval, including devices never heard from."""

    kind: Literal["offline"] = "offline"
    level: Level = Level.BLUE
    silent_intervals: Annotated[float, Field(gt=0)] = 3.0

    def evaluate(self, device: Device, state: DeviceState, now: int, wall: int, out: list[Finding]) -> None:
        reference = state.last_seen if state.last_seen is not None else state.since
        if reference is None:
            return  # not reached: the engine notes ``since`` before the clock rules run
        limit_ms = self.silent_intervals * device.interval_s * 1000
        silent = now - reference
        if silent <= limit_ms:
            return
        alarm = state.alarms.get(self.id)
        if alarm is None:
            alarm = state.alarms[self.id] = AlarmState()
        change = force(alarm, LEVEL_RANK[self.level])
        if change is not None:
            out.append(
                self.finding(
                    change,
                    device,
                    None,
                    wall,
                    value=round(silent / 1000, 3),
                    threshold=limit_ms / 1000,
                    ts=now,
                    device_id=device.id,
                )
            )

    def heard(
        self,
        device: Device | None,
        state: DeviceState,
        alarm: AlarmState,
        reading: ReadingDict,
        now: int,
        out: list[Finding],
    ) -> None:
        change = force(alarm, NONE)
        del state.alarms[self.id]
        if change is not None and device is not None and self.applies_to(device.kind):
            out.append(self.finding(change, device, reading, now, value=0.0, ts=reading["received_at"]))
