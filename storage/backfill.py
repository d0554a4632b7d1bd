"""Late readings: which intervals of ``agg_1h`` the writer's own aggregates missed, and the statements that compute
them.

The writer aggregates each interval (an hour) in memory and closes it ``close_ms`` after its start
(``storage.aggregate``): a reading of that interval that InfluxDB acknowledged after then is in ``raw`` but not in its
aggregate. The writer knows both times, the reading's ``ts`` and when its batch was acknowledged, so it asks here,
batch by batch:

- ``BatchIntervals`` collects the (interval, device) pairs of one batch as its readings are added;
- ``LateIntervals.note`` keeps those whose interval was closed before the batch was acknowledged. Intervals older
  than the raw retention are left out: InfluxDB refused those points. ``LateIntervals.add_all`` takes whole intervals
  (every device): those a writer that had a partition before may have left open, and those whose aggregates InfluxDB
  did not take;
- ``LateIntervals.take`` gives the next ``Backfill``: the oldest late intervals coalesced into one range of at most
  ``max_intervals``, filtered on the devices that were late in it, or on none (the whole range, every device) when
  more than ``max_devices`` were (an InfluxDB or writer outage);
- ``Backfill.statement`` is ``storage.retention.aggregation`` (the aggregates from ``raw``) with that range and
  filter. Running it again writes the same points again: a backfill is idempotent, and one put back after a failure
  (``put_back``) can simply run later.
- **Every device, in parts.** One statement over every device costs influxd heap in proportion to the series it
  touches: measured at the district's fleet (120,000 series), an hour took its heap to 3.7 GiB, five times its soft
  limit (docs/benchmarks.md). So the writer never runs one: it lists the devices from the index
  (``devices_statement``, ``devices_of``) and ``Backfill.parts`` splits the backfill into statements of at most
  ``PART_DEVICES`` devices each, run one after the other: the heap peaked at 810 MiB, for 2.3 times the CPU.

Bounds: the pending intervals are kept per interval with at most ``max_devices`` device ids each (beyond that,
"every device"), and at most ``max_pending`` intervals (the oldest beyond are dropped and reported by ``note``).
Nothing here does I/O; the writer runs one statement at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from storage.aggregate import CLOSE_AFTER_MS, EVERY_MS
from storage.query import literal
from storage.retention import RAW_DAYS, RAW_RP, READINGS_REGEX, aggregation, ident

MAX_INTERVALS: Final = 24
MAX_DEVICES: Final = 50
MAX_PENDING: Final = 50_000
#: Devices per statement of an every-device backfill: at the district's fleet (two series a device), 2,000 devices
#: are 1/30 of the series one statement over every device touched.
PART_DEVICES: Final = 2_000
_DEVICE_TAG: Final = "device_id"


@dataclass(frozen=True, slots=True)
class Backfill:
    """One statement's worth: [start_ms, end_ms) for ``devices`` (None: every device); ``intervals``: the late
    intervals' starts; ``every_ms``: the aggregates' interval."""

    start_ms: int
    end_ms: int
    devices: frozenset[str] | None
    intervals: tuple[int, ...]
    every_ms: int = EVERY_MS

    def statement(self, db: str) -> str:
        """The aggregation's ``SELECT ... INTO`` over this range: identifiers through ``ident``, device ids
        through ``literal``, times as integers."""
        where = f"WHERE time >= {int(self.start_ms)}ms AND time < {int(self.end_ms)}ms"
        if self.devices is not None:
            where += " AND (" + " OR ".join(f"{ident(_DEVICE_TAG)} = {literal(d)}" for d in sorted(self.devices)) + ")"
        return aggregation(db, f"{self.every_ms // 1000}s", where)

    def parts(self, devices: Iterable[str], size: int = PART_DEVICES) -> list[Backfill]:
        """This every-device backfill as backfills of at most ``size`` of ``devices`` each (all the devices ``raw``
        holds); a backfill that names its devices is one part already."""
        if self.devices is not None:
            return [self]
        names = sorted(set(devices))
        return [replace(self, devices=frozenset(names[i : i + size])) for i in range(0, len(names), size)]


def devices_statement(db: str) -> str:
    """``SHOW TAG VALUES`` of ``device_id`` over the readings' measurements, from the index, without reading points.
    InfluxDB 1.6 answers from every retention policy's shards, whatever ``FROM`` names: the devices ``agg_1h`` still
    holds (retired ones, for three years) come too. A superset is correct; their parts find no series in the range
    and cost influxd little."""
    return f"SHOW TAG VALUES ON {ident(db)} FROM {ident(RAW_RP)}.{READINGS_REGEX} WITH KEY = {ident(_DEVICE_TAG)}"


def devices_of(result: Mapping[str, Any]) -> set[str]:
    """The device ids in the answer to ``devices_statement`` (one InfluxDB result: a series per measurement, rows of
    key and value)."""
    out: set[str] = set()
    for series in result.get("series", []):
        columns = series.get("columns", [])
        if "value" not in columns:
            continue
        at = columns.index("value")
        out.update(str(row[at]) for row in series.get("values", []))
    return out


class BatchIntervals:
    """The intervals (epoch ms of their start) one batch has readings in, and the devices of each."""

    __slots__ = ("_every_ms", "intervals")

    def __init__(self, every_ms: int = EVERY_MS) -> None:
        self._every_ms = every_ms
        self.intervals: dict[int, set[str]] = {}

    def add(self, device_id: str, ts_ms: int) -> None:
        start = ts_ms - ts_ms % self._every_ms
        devices = self.intervals.get(start)
        if devices is None:
            self.intervals[start] = {device_id}
        else:
            devices.add(device_id)


class LateIntervals:
    """The late intervals not yet backfilled, coalesced (module docstring). ``close_ms``: when the writer closes an
    interval, after its start (``storage.aggregate``); ``raw_days``: the raw retention."""

    def __init__(
        self,
        *,
        every_ms: int = EVERY_MS,
        close_ms: int | None = None,
        raw_days: int = RAW_DAYS,
        max_intervals: int = MAX_INTERVALS,
        max_devices: int = MAX_DEVICES,
        max_pending: int = MAX_PENDING,
    ) -> None:
        close_ms = every_ms + CLOSE_AFTER_MS if close_ms is None else close_ms
        if every_ms <= 0 or close_ms < every_ms:
            raise ValueError(f"every_ms ({every_ms}) must be positive and close_ms ({close_ms}) at least every_ms")
        if min(max_intervals, max_devices, max_pending) < 1:
            raise ValueError("max_intervals, max_devices and max_pending must be at least 1")
        self.every_ms = every_ms
        self.close_ms = close_ms  # after an interval's start, when the writer closed it
        self._raw_ms = raw_days * 86_400_000
        self._max_intervals, self._max_devices, self._max_pending = max_intervals, max_devices, max_pending
        self._pending: dict[int, set[str] | None] = {}  # interval start -> late devices (None: every device)
        #: (interval, device) pairs noted late so far, for the metrics
        self.late_device_intervals = 0

    @property
    def pending(self) -> int:
        """Late intervals waiting for a backfill."""
        return len(self._pending)

    def batch(self) -> BatchIntervals:
        return BatchIntervals(self.every_ms)

    def late(self, ts_ms: int, written_ms: int) -> bool:
        """Whether a reading stamped ``ts_ms`` and acknowledged at ``written_ms`` missed its interval's aggregate."""
        return written_ms >= ts_ms - ts_ms % self.every_ms + self.close_ms

    def note(self, batch: BatchIntervals, written_ms: int) -> int:
        """Keep the late intervals of ``batch``, acknowledged at ``written_ms``. Returns how many pending intervals
        were dropped to stay within ``max_pending`` (0 but after days of buffered readings)."""
        oldest = written_ms - self._raw_ms - self.every_ms  # an interval partly within the retention counts
        for start, devices in batch.intervals.items():
            if oldest < start <= written_ms - self.close_ms:
                self.late_device_intervals += len(devices)
                self._add(start, devices)
        return self._trim()

    def add_all(self, intervals: Iterable[int], now_ms: int) -> int:
        """Every device's ``intervals`` (starts) are pending, those within the raw retention at ``now_ms``. Returns
        the intervals dropped, as ``note``."""
        oldest = now_ms - self._raw_ms - self.every_ms
        for start in intervals:
            if start > oldest:
                self._add(start, None)
        return self._trim()

    def take(self) -> Backfill | None:
        """The next backfill: the oldest late interval and the late intervals within ``max_intervals`` after it."""
        if not self._pending:
            return None
        first = min(self._pending)
        stop = first + self._max_intervals * self.every_ms
        starts = sorted(s for s in self._pending if s < stop)
        devices: set[str] | None = set()
        for start in starts:
            late = self._pending.pop(start)
            if late is None or devices is None:
                devices = None
            else:
                devices |= late
        if devices is not None and len(devices) > self._max_devices:
            devices = None
        return Backfill(first, starts[-1] + self.every_ms, _frozen(devices), tuple(starts), self.every_ms)

    def put_back(self, backfill: Backfill) -> None:
        """A backfill that did not run: its intervals are pending again."""
        for start in backfill.intervals:
            self._add(start, backfill.devices)
        self._trim()

    def _add(self, start: int, devices: Iterable[str] | None) -> None:
        if start in self._pending:
            known = self._pending[start]
            if known is None:
                return
            if devices is None:
                self._pending[start] = None
                return
            known.update(devices)
        else:
            known = None if devices is None else set(devices)
            self._pending[start] = known
        if known is not None and len(known) > self._max_devices:
            self._pending[start] = None

    def _trim(self) -> int:
        excess = len(self._pending) - self._max_pending
        if excess <= 0:
            return 0
        for start in sorted(self._pending)[:excess]:
            del self._pending[start]
        return excess


def _frozen(devices: set[str] | None) -> frozenset[str] | None:
    return None if devices is None else frozenset(devices)
