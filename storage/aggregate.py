"""One-minute aggregates computed by the writer as it writes (InfluxDB 1.x): no continuous query re-reads ``raw``.

What ``agg_1m`` gets is what the continuous query used to write (``storage.retention.aggregation``): per series and
minute, ``mean_<metric>``, ``min_<metric>`` and ``max_<metric>`` of every field written to ``raw``, booleans
``min_``/``max_`` only, stamped with the minute's start. A backfill statement computes the same points from ``raw``,
so the two may overwrite each other freely.

- **Fold.** Every point the writer builds for ``raw`` (``storage.lines``) is folded into its series' accumulator for
  its minute, kept per Kafka partition (``part``): count, sum, min and max of each field. A minute's accumulators
  hold the readings of one minute of one partition; memory is bounded by the series written in the minutes still
  open (readings stamped more than 5 minutes ahead are refused by the gateway, so at most ``close_ms`` + 5 min).
- **Close.** Minute [s, s + every) is closed at s + ``close_ms`` by the writer's clock (``CLOSE_MS``: 30 s after
  the minute ends, for batching and Kafka lag). ``close`` hands over its points, to be written into ``agg_1m``.
  Readings of a closed minute are not folded: their batch is acknowledged after the close, so
  ``storage.backfill.LateMinutes`` (whose due time must not be later than ``close_ms``) aggregates them again from
  ``raw``, for their devices.
- **Partitions change hands.** A partition assigned at A was written by someone else before (the previous writer,
  or this one before a restart): the minutes that writer had not closed yet are partly in ``raw`` only. For the
  partition, memory is flushed only from the first minute starting at or after A and after the latest reading the
  writer sees it wrote (its last records, read back at assignment: a device clock may be ahead); the minutes from
  ``since - close_ms - every`` (``since``: when that writer last wrote, no later than A) up to there are given to
  ``close`` as "every device, from ``raw``" once they are closed. A revoked partition's accumulators are dropped:
  its new owner recomputes those minutes.

Limits: a reading stamped ahead in a minute after A, written by the previous owner before the records read back, is
missing from that minute's aggregate until the one-off backfill of docs/storage.md. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Final

#: A minute is closed this long after its start: 30 s after it ends.
CLOSE_MS: Final = 90_000


def _stat(value: float) -> str:
    return repr(float(value))


@dataclass
class Closed:
    """What ``close`` hands over: ``lines`` for ``agg_1m``, the ``minutes`` they are of, and the minutes to
    aggregate again from ``raw`` for every device (``backfill``)."""

    lines: list[str] = field(default_factory=list)
    minutes: list[int] = field(default_factory=list)
    backfill: list[int] = field(default_factory=list)


class MinuteAggregates:
    """The open minutes' accumulators (module docstring). Not thread-safe: the writer's event loop only."""

    def __init__(self, every_ms: int = 60_000, close_ms: int = CLOSE_MS) -> None:
        if every_ms <= 0 or close_ms < every_ms:
            raise ValueError(f"every_ms ({every_ms}) must be positive and close_ms ({close_ms}) at least every_ms")
        self.every_ms, self.close_ms = every_ms, close_ms
        #: part -> minute -> its series: those with one point so far (their values, as folded: a device reporting
        #: once a minute costs no accumulator), and those with more (field -> [count, sum, min, max])
        self._open: dict[Hashable, dict[int, _Minute]] = {}
        self._from: dict[Hashable, int] = {}  # part -> the first minute flushed from memory
        self._backfill: set[int] = set()  # minutes to aggregate from raw for every device once closed
        self._closed_before = 0  # minutes starting before this are closed

    @property
    def series(self) -> int:
        """Accumulators held (series x minute), for the metrics."""
        return sum(len(m.single) + len(m.multi) for minutes in self._open.values() for m in minutes.values())

    def assign(
        self,
        part: Hashable,
        now_ms: int,
        since_ms: int | None = None,
        latest_ms: int | None = None,
        *,
        fresh: bool = False,
    ) -> None:
        """``part`` is written here from ``now_ms`` on. Its previous writer last wrote at ``since_ms`` (None: unknown,
        taken as ``now_ms``), readings stamped up to ``latest_ms`` (a device clock may be ahead of the writer's).
        ``fresh``: no writer wrote ``part`` before (no committed offset) and this one reads it from its first record,
        so every minute not closed yet is folded here and none is recomputed from ``raw``: at 60,000 devices, the
        start's backfill of every device's last minutes took influxd's heap to 3 GiB."""
        if fresh:
            self._from[part] = 0
            self._open.setdefault(part, {})
            return
        after = max(now_ms, -1 if latest_ms is None else latest_ms + 1)
        first = -(-after // self.every_ms) * self.every_ms  # the first minute starting at or after both
        self._from[part] = first
        self._open.setdefault(part, {})
        since = now_ms if since_ms is None else min(since_ms, now_ms)
        start = since - self.close_ms - self.every_ms
        self._backfill.update(range(start - start % self.every_ms, first, self.every_ms))

    def revoke(self, part: Hashable) -> None:
        self._open.pop(part, None)
        self._from.pop(part, None)

    def fold(self, part: Hashable, series: str, values: Mapping[str, float | bool], ts_ms: int) -> None:
        """One point written to ``raw`` for ``part``: its values join the open minute of ``series``, if it is open
        and flushed from memory for this partition; otherwise nothing (late, or recomputed from raw)."""
        minute = ts_ms - ts_ms % self.every_ms
        if minute < self._closed_before or minute < self._from.get(part, minute + 1):
            return
        minutes = self._open[part]
        held = minutes.get(minute)
        if held is None:
            held = minutes[minute] = _Minute()
        acc = held.multi.get(series)
        if acc is None:
            first = held.single.pop(series, None)
            if first is None:
                held.single[series] = values  # the caller made it for this point and keeps no reference
                return
            acc = held.multi[series] = {name: _start(v) for name, v in first.items()}
        for name, v in values.items():
            a = acc.get(name)
            if a is None:
                acc[name] = _start(v)
                continue
            a[0] += 1
            if isinstance(v, bool):
                a[2], a[3] = a[2] and v, a[3] or v
            else:
                a[1] += v
                if v < a[2]:
                    a[2] = v
                elif v > a[3]:
                    a[3] = v

    def close(self, now_ms: int) -> Closed:
        """The minutes whose close time is at or before ``now_ms``: their points, and the minutes to recompute from
        raw (module docstring). Each minute is handed over once."""
        last = now_ms - self.close_ms
        closed_before = last - last % self.every_ms + self.every_ms
        out = Closed()
        if closed_before <= self._closed_before:
            return out
        self._closed_before = closed_before
        minutes: set[int] = set()
        for open_minutes in self._open.values():
            for minute in [m for m in open_minutes if m < closed_before]:
                minutes.add(minute)
                held = open_minutes.pop(minute)
                for series, values in held.single.items():
                    out.lines.append(f"{series} {_one(values)} {minute}")
                for series, fields in held.multi.items():
                    out.lines.append(f"{series} {_fields(fields)} {minute}")
        out.minutes = sorted(minutes)
        out.backfill = sorted(m for m in self._backfill if m < closed_before)
        self._backfill.difference_update(out.backfill)
        return out


class _Minute:
    __slots__ = ("multi", "single")

    def __init__(self) -> None:
        self.single: dict[str, Mapping[str, float | bool]] = {}
        self.multi: dict[str, dict[str, list[float]]] = {}


def _start(v: float | bool) -> list[float]:
    return [1.0, 0.0, v, v] if isinstance(v, bool) else [1.0, float(v), float(v), float(v)]


def _one(values: Mapping[str, float | bool]) -> str:
    """One point's fields as its minute's aggregate: mean, min and max are the value."""
    parts = []
    for name, v in values.items():
        if isinstance(v, bool):
            text = "true" if v else "false"
            parts.append(f"min_{name}={text},max_{name}={text}")
        else:
            text = _stat(v)
            parts.append(f"mean_{name}={text},min_{name}={text},max_{name}={text}")
    return ",".join(parts)


def _fields(fields: dict[str, list[float]]) -> str:
    parts = []
    for name, (count, total, low, high) in fields.items():
        if isinstance(low, bool):
            parts.append(f"min_{name}={'true' if low else 'false'},max_{name}={'true' if high else 'false'}")
        else:
            parts.append(f"mean_{name}={_stat(total / count)},min_{name}={_stat(low)},max_{name}={_stat(high)}")
    return ",".join(parts)
