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
    __slots__ = ("mins", "newest", "recent")

    def __init__(self) -> None:
        self.mins: dict[int, float] = {}  # slice index (ts // width) -> minimum
        self.recent: list[float] = []  # the last three in-order values
        self.newest: int | None = None

    def add(self, ts: int, value: float, window_ms: int) -> float | None:
        """Take one reading; the rise it shows, or ``None`` (late, or no baseline yet)."""
        width = max(1, window_ms // BUCKETS)
        index = ts // width
        newest = self.newest
        if newest is not None and ts < newest:
            if newest - ts <= window_ms:
                self._lower(index, value)
            return None
        first = index - BUCKETS
        baseline = min((m for i, m in self.mins.items() if first <= i < index), default=None)
        recent = self.recent
        recent.append(value)
        if len(recent) > 3:
            del recent[0]
        self.newest = ts
        self._lower(index, value)
        if len(self.mins) > BUCKETS + 1:
            self.mins = {i: m for i, m in self.mins.items() if i >= first}
        if baseline is None:
            return None
        current = sorted(recent)[1] if len(recent) == 3 else min(recent)
        return current - baseline

    def _lower(self, index: int, value: float) -> None:
        held = self.mins.get(index)
        if held is None or value < held:
            self.mins[index] = value

    def dump(self) -> list[Any]:
        return [self.newest, self.recent, [x for item in self.mins.items() for x in item]]

    @classmethod
    def load(cls, data: list[Any]) -> Window:
        window = cls()
        window.newest, window.recent, flat = data[0], list(data[1]), data[2]
        window.mins = {int(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
        return window
