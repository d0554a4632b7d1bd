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

from array import array
from typing import Any

BUCKETS = 6


_SLOTS = BUCKETS + 1
_RECENT = 2 * _SLOTS  # where the last three values start in ``data``; their count is at _COUNT
_COUNT = _RECENT + 3


class Window:
    """All numbers in one ``array('d')`` (about 290 bytes a window instead of 800 in lists of Python objects):
    ``data[0:7]`` slice indices (-1 = empty), ``data[7:14]`` their minimums, ``data[14:17]`` the last three values,
    ``data[17]`` how many of those are set. Slice indices are below 2**53, so a double holds them exactly."""

    __slots__ = ("data", "newest")

    def __init__(self) -> None:
        self.data = array("d", [-1.0] * _SLOTS + [0.0] * (_SLOTS + 4))
        self.newest: int | None = None

    def add(self, ts: int, value: float, window_ms: int) -> float | None:
        """Take one reading; the rise it shows, or ``None`` (late, or no baseline yet)."""
        width = window_ms // BUCKETS or 1
        index = ts // width
        newest = self.newest
        data = self.data
        if newest is not None and ts < newest:
            if newest - ts <= window_ms:
                self._lower(index, value)
            return None
        first = index - BUCKETS
        baseline: float | None = None
        for slot in range(_SLOTS):
            i = data[slot]
            if first <= i < index:
                m = data[_SLOTS + slot]
                if baseline is None or m < baseline:
                    baseline = m
        count = int(data[_COUNT])
        if count == 3:
            data[_RECENT], data[_RECENT + 1] = data[_RECENT + 1], data[_RECENT + 2]
            data[_RECENT + 2] = value
        else:
            data[_RECENT + count] = value
            count += 1
            data[_COUNT] = count
        self.newest = ts
        self._lower(index, value)
        if baseline is None:
            return None
        if count == 3:
            a, b, c = data[_RECENT], data[_RECENT + 1], data[_RECENT + 2]
            current = b if (a <= b <= c or c <= b <= a) else a if (b <= a <= c or c <= a <= b) else c  # median
        else:
            current = min(data[_RECENT : _RECENT + count])
        return current - baseline

    def _lower(self, index: int, value: float) -> None:
        data = self.data
        slot = index % _SLOTS
        held = data[slot]
        if held != index:
            if index < held:
                return  # older than what the slot holds now: outside every window that matters
            data[slot], data[_SLOTS + slot] = index, value
        elif value < data[_SLOTS + slot]:
            data[_SLOTS + slot] = value

    def dump(self) -> list[Any]:
        return [self.newest, self.data.tolist()]

    @classmethod
    def load(cls, data: list[Any]) -> Window:
        window = cls()
        window.newest, window.data = data[0], array("d", data[1])
        return window
