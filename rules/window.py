"""An event-time window for rate-of-change rules: "a rise of X within T", robust to noise and to late readings.

The window keeps the minimum of each of ``BUCKETS`` slices of T (so its state is a few numbers whatever the reading
rate), and the last three in-order readings. The rise at a reading is

    median(last three readings) - min(readings in [ts - T, ts))

- the median makes one wild sample (a spike, a dropped bit) unable to raise the alarm alone;
- the window is measured in event time, so readings that arrive in a burst after a network outage are judged on
  the times they were taken, not on when they arrived;
- a reading older than the newest by more than T cannot belong to the current window and is ignored (a reading
  buffered for an hour and delivered late cannot fake a spike); one older than the newest but inside the window
  lowers that slice's minimum, as if it had arrived in order;
- with nothing in the window before the reading (a device back from a long silence), there is no rise to judge.

The baseline slices have a width of T / BUCKETS, so the window is T to T + T / BUCKETS long.
"""

from __future__ import annotations

from typing import Any

BUCKETS = 6


class Window:
    __slots__ = ("index", "mins", "newest", "recent")

    def __init__(self) -> None:
        # A ring of BUCKETS + 1 slices: slot i % (BUCKETS + 1) holds slice i's minimum, if ``index`` says it is i.
        self.index: list[int] = [-1] * (BUCKETS + 1)
        self.mins: list[float] = [0.0] * (BUCKETS + 1)
        self.recent: list[float] = []  # the last three in-order values
        self.newest: int | None = None

    def add(self, ts: int, value: float, window_ms: int) -> float | None:
        """Take one reading; the rise it shows, or ``None`` (late, or no baseline yet)."""
        width = window_ms // BUCKETS or 1
        index = ts // width
        newest = self.newest
        if newest is not None and ts < newest:
            if newest - ts <= window_ms:
                self._lower(index, value)
            return None
        first = index - BUCKETS
        baseline: float | None = None
        slots, mins = self.index, self.mins
        for slot in range(BUCKETS + 1):
            i = slots[slot]
            if first <= i < index:
                m = mins[slot]
                if baseline is None or m < baseline:
                    baseline = m
        recent = self.recent
        recent.append(value)
        if len(recent) > 3:
            del recent[0]
        self.newest = ts
        self._lower(index, value)
        if baseline is None:
            return None
        if len(recent) == 3:
            a, b, c = recent
            current = b if (a <= b <= c or c <= b <= a) else a if (b <= a <= c or c <= a <= b) else c  # median
        else:
            current = min(recent)
        return current - baseline

    def _lower(self, index: int, value: float) -> None:
        slot = index % (BUCKETS + 1)
        if self.index[slot] != index:
            if index < self.index[slot]:
                return  # older than what the slot holds now: outside every window that matters
            self.index[slot], self.mins[slot] = index, value
        elif value < self.mins[slot]:
            self.mins[slot] = value

    def dump(self) -> list[Any]:
        return [self.newest, self.recent, self.index, self.mins]

    @classmethod
    def load(cls, data: list[Any]) -> Window:
        window = cls()
        window.newest, window.recent, window.index, window.mins = data[0], list(data[1]), list(data[2]), list(data[3])
        return window
