"""Hourly aggregates computed by the writer as it writes (InfluxDB 1.x): no continuous query re-reads ``raw``.

What ``agg_1h`` gets is what ``storage.retention.aggregation`` computes from ``raw``: per series and interval (an
hour, ``AGG_EVERY``), ``mean_<metric>``, ``min_<metric>`` and ``max_<metric>`` of every field written to ``raw``,
booleans ``min_``/``max_`` only, stamped with the interval's start. A backfill statement computes the same points from
``raw``, so the two may overwrite each other freely.

Why an hour, not a minute: the district's fleet reports about once a minute, so a one-minute aggregate is the reading
again with every value three times: measured, 45 bytes a reading on disk against raw's 18.5, kept 12 times as long
(3.9 TiB over three years at 1,000 readings/s), and a burst of 120,000 points into influxd every minute. An hour's
point costs a sixtieth of that (docs/benchmarks.md, "What a reading keeps on disk").

- **Fold.** Every point the writer builds for ``raw`` (``storage.lines``) is folded into its series' accumulator for
  its interval, kept per Kafka partition (``part``): count, sum, min and max of each field, in one ``array`` per
  series (about 250 bytes at four fields; 120,000 series, the district's fleet with its health series, ~30 MiB). A
  series with one point so far keeps that point's values (no accumulator). Memory is bounded by the series written in
  the intervals still open (readings stamped more than 5 minutes ahead are refused by the gateway, so at most
  ``close_ms`` + 5 min).
- **Close.** Interval [s, s + every) is closed at s + ``close_ms`` by the writer's clock (default: 30 s after it
  ends, for batching and Kafka lag). ``close`` hands over its points, to be written into ``agg_1h``. Readings of a
  closed interval are not folded: their batch is acknowledged after the close, so ``storage.backfill.LateIntervals``
  (whose due time must not be later than ``close_ms``) aggregates them again from ``raw``, for their devices.
- **Partitions change hands.** A partition assigned at A was written by someone else before (the previous writer,
  or this one before a restart): the intervals that writer had not closed yet are partly in ``raw`` only. For the
  partition, memory is flushed only from the first interval starting at or after A and after the latest reading the
  writer sees it wrote (its last records, read back at assignment: a device clock may be ahead); the intervals from
  ``since - close_ms - every`` (``since``: when that writer last wrote, no later than A) up to there are given to
  ``close`` as "every device, from ``raw``" once they are closed. A revoked partition's accumulators are dropped:
  its new owner recomputes those intervals.

Limits: a reading stamped ahead in an interval after A, written by the previous owner before the records read back,
is missing from that interval's aggregate until the one-off backfill of docs/storage.md. Nothing here does I/O.
"""

from __future__ import annotations

from array import array
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeAlias

#: The interval of the aggregates: an hour (``storage.retention.AGG_EVERY``, which the readings query relies on).
EVERY_MS: Final = 3_600_000
#: An interval is closed this long after it ends.
CLOSE_AFTER_MS: Final = 30_000


def _stat(value: float) -> str:
    return repr(float(value))


@dataclass
class Closed:
    """What ``close`` hands over: ``lines`` for ``agg_1h``, the ``intervals`` they are of (starts, epoch ms), and
    the intervals to aggregate again from ``raw`` for every device (``backfill``)."""

    lines: list[str] = field(default_factory=list)
    intervals: list[int] = field(default_factory=list)
    backfill: list[int] = field(default_factory=list)


class Aggregates:
    """The open intervals' accumulators (module docstring). Not thread-safe: the writer's event loop only."""

    def __init__(self, every_ms: int = EVERY_MS, close_ms: int | None = None) -> None:
        close_ms = every_ms + CLOSE_AFTER_MS if close_ms is None else close_ms
        if every_ms <= 0 or close_ms < every_ms:
            raise ValueError(f"every_ms ({every_ms}) must be positive and close_ms ({close_ms}) at least every_ms")
        self.every_ms, self.close_ms = every_ms, close_ms
        #: part -> interval start -> its series: those with one point so far (their values, as folded: a series
        #: with one point costs no accumulator), and those with more (``_Acc``)
        self._open: dict[Hashable, dict[int, _Interval]] = {}
        self._from: dict[Hashable, int] = {}  # part -> the first interval flushed from memory
        self._backfill: set[int] = set()  # intervals to aggregate from raw for every device once closed
        self._closed_before = 0  # intervals starting before this are closed
        self._schemas: dict[tuple[tuple[str, bool], ...], _Schema] = {}  # shared: one per set of fields

    @property
    def series(self) -> int:
        """Accumulators held (series x interval), for the metrics."""
        return sum(len(m.single) + len(m.multi) for intervals in self._open.values() for m in intervals.values())

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
        so every interval not closed yet is folded here and none is recomputed from ``raw``."""
        if fresh:
            self._from[part] = 0
            self._open.setdefault(part, {})
            return
        after = max(now_ms, -1 if latest_ms is None else latest_ms + 1)
        first = -(-after // self.every_ms) * self.every_ms  # the first interval starting at or after both
        self._from[part] = first
        self._open.setdefault(part, {})
        since = now_ms if since_ms is None else min(since_ms, now_ms)
        start = since - self.close_ms - self.every_ms
        self._backfill.update(range(start - start % self.every_ms, first, self.every_ms))

    def revoke(self, part: Hashable) -> None:
        self._open.pop(part, None)
        self._from.pop(part, None)

    def fold(self, part: Hashable, series: str, values: Mapping[str, float | bool], ts_ms: int) -> None:
        """One point written to ``raw`` for ``part``: its values join the open interval of ``series``, if it is open
        and flushed from memory for this partition; otherwise nothing (late, or recomputed from raw)."""
        start = ts_ms - ts_ms % self.every_ms
        if start < self._closed_before or start < self._from.get(part, start + 1):
            return
        intervals = self._open[part]
        held = intervals.get(start)
        if held is None:
            held = intervals[start] = _Interval()
        acc = held.multi.get(series)
        if acc is None:
            first = held.single.pop(series, None)
            if first is None:
                held.single[series] = values  # the caller made it for this point and keeps no reference
                return
            acc = held.multi[series] = self._acc(first)
        schema, stats = acc
        for name, v in values.items():
            slot = schema.slots.get(name)
            if slot is None:  # a field this series had not sent yet in this interval
                acc = held.multi[series] = self._widened(acc, name, v)
                schema, stats = acc
                continue
            i = slot * 4
            stats[i] += 1.0
            if schema.booleans[slot]:  # min is false once any is false, max true once any is true
                if v:
                    stats[i + 3] = 1.0
                else:
                    stats[i + 2] = 0.0
            else:
                stats[i + 1] += v
                if v < stats[i + 2]:
                    stats[i + 2] = v
                elif v > stats[i + 3]:
                    stats[i + 3] = v

    def close(self, now_ms: int) -> Closed:
        """The intervals whose close time is at or before ``now_ms``: their points, and the intervals to recompute
        from raw (module docstring). Each interval is handed over once."""
        last = now_ms - self.close_ms
        closed_before = last - last % self.every_ms + self.every_ms
        out = Closed()
        if closed_before <= self._closed_before:
            return out
        self._closed_before = closed_before
        starts: set[int] = set()
        for open_intervals in self._open.values():
            for start in [s for s in open_intervals if s < closed_before]:
                starts.add(start)
                held = open_intervals.pop(start)
                for series, values in held.single.items():
                    out.lines.append(f"{series} {_one(values)} {start}")
                for series, (schema, stats) in held.multi.items():
                    out.lines.append(f"{series} {_fields(schema, stats)} {start}")
        out.intervals = sorted(starts)
        out.backfill = sorted(s for s in self._backfill if s < closed_before)
        self._backfill.difference_update(out.backfill)
        return out

    def _schema(self, fields: tuple[tuple[str, bool], ...]) -> _Schema:
        schema = self._schemas.get(fields)
        if schema is None:
            schema = self._schemas[fields] = _Schema(fields)
        return schema

    def _acc(self, values: Mapping[str, float | bool]) -> _Acc:
        schema = self._schema(tuple((name, isinstance(v, bool)) for name, v in values.items()))
        stats: array[float] = array("d")
        for v in values.values():
            stats.extend(_first(v))
        return schema, stats

    def _widened(self, acc: _Acc, name: str, v: float | bool) -> _Acc:
        schema, stats = acc
        stats.extend(_first(v))
        return self._schema((*schema.fields, (name, isinstance(v, bool)))), stats


class _Schema:
    """The fields of an accumulator, in its order; ``booleans[slot]`` tells a boolean field. Shared by every series
    with the same fields."""

    __slots__ = ("booleans", "fields", "slots")

    def __init__(self, fields: tuple[tuple[str, bool], ...]) -> None:
        self.fields = fields
        self.slots = {name: slot for slot, (name, _) in enumerate(fields)}
        self.booleans = tuple(boolean for _, boolean in fields)


#: A series' accumulator: its schema, and count, sum, min, max of each field in a row (booleans as 0.0/1.0).
_Acc: TypeAlias = "tuple[_Schema, array[float]]"


class _Interval:
    __slots__ = ("multi", "single")

    def __init__(self) -> None:
        self.single: dict[str, Mapping[str, float | bool]] = {}
        self.multi: dict[str, _Acc] = {}


def _first(v: float | bool) -> tuple[float, float, float, float]:
    """A field's count, sum, min and max after its first value (a boolean has no sum)."""
    return 1.0, 0.0 if isinstance(v, bool) else float(v), float(v), float(v)


def _one(values: Mapping[str, float | bool]) -> str:
    """One point's fields as its interval's aggregate: mean, min and max are the value."""
    parts = []
    for name, v in values.items():
        if isinstance(v, bool):
            text = "true" if v else "false"
            parts.append(f"min_{name}={text},max_{name}={text}")
        else:
            text = _stat(v)
            parts.append(f"mean_{name}={text},min_{name}={text},max_{name}={text}")
    return ",".join(parts)


def _fields(schema: _Schema, stats: array[float]) -> str:
    parts = []
    for slot, (name, boolean) in enumerate(schema.fields):
        count, total, low, high = stats[slot * 4 : slot * 4 + 4]
        if boolean:
            parts.append(f"min_{name}={'true' if low else 'false'},max_{name}={'true' if high else 'false'}")
        else:
            parts.append(f"mean_{name}={_stat(total / count)},min_{name}={_stat(low)},max_{name}={_stat(high)}")
    return ",".join(parts)
