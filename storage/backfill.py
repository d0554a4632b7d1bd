"""Late readings: which minutes of ``agg_1m`` the writer's own aggregates missed, and the statements that compute them.

The writer aggregates each minute in memory and closes it ``close_ms`` after its start (``storage.aggregate``): a
reading of that minute that InfluxDB acknowledged after then is in ``raw`` but not in its aggregate. The writer knows
both times, the reading's ``ts`` and when its batch was acknowledged, so it asks here, batch by batch:

- ``BatchMinutes`` collects the (minute, device) pairs of one batch as its readings are added;
- ``LateMinutes.note`` keeps those whose minute was closed before the batch was acknowledged. Minutes older than
  the raw retention are left out: InfluxDB refused those points. ``LateMinutes.add_all`` takes whole minutes (every
  device): those a writer that had a partition before may have left open, and those whose aggregates InfluxDB did
  not take;
- ``LateMinutes.take`` gives the next ``Backfill``: the oldest late minutes coalesced into one range of at most
  ``max_minutes``, filtered on the devices that were late in it, or on none (the whole range, every device) when
  more than ``max_devices`` were (an InfluxDB or writer outage);
- ``Backfill.statement`` is ``storage.retention.aggregation`` (the aggregates from ``raw``) with that range and
  filter. Running it again writes the same points again: a backfill is idempotent, and one put back after a failure
  (``put_back``) can simply run later.

Bounds: the pending minutes are kept per minute with at most ``max_devices`` device ids each (beyond that, "every
device"), and at most ``max_pending`` minutes (the oldest beyond are dropped and reported by ``note``). Nothing here
does I/O; the writer runs one statement at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from storage.aggregate import CLOSE_MS
from storage.query import literal
from storage.retention import AGG_EVERY, AGG_EVERY_S, RAW_DAYS, aggregation, ident

MAX_MINUTES: Final = 60
MAX_DEVICES: Final = 50
MAX_PENDING: Final = 50_000
_DEVICE_TAG: Final = "device_id"


@dataclass(frozen=True, slots=True)
class Backfill:
    """One statement's worth: [start_ms, end_ms) for ``devices`` (None: every device); ``minutes`` late minutes."""

    start_ms: int
    end_ms: int
    devices: frozenset[str] | None
    minutes: tuple[int, ...]

    def statement(self, db: str, every: str = AGG_EVERY) -> str:
        """The aggregation's ``SELECT ... INTO`` over this range: identifiers through ``ident``, device ids
        through ``literal``, times as integers."""
        where = f"WHERE time >= {int(self.start_ms)}ms AND time < {int(self.end_ms)}ms"
        if self.devices is not None:
            where += " AND (" + " OR ".join(f"{ident(_DEVICE_TAG)} = {literal(d)}" for d in sorted(self.devices)) + ")"
        return aggregation(db, every, where)


class BatchMinutes:
    """The minutes (epoch ms of their start) one batch has readings in, and the devices of each."""

    __slots__ = ("_every_ms", "minutes")

    def __init__(self, every_ms: int = 60_000) -> None:
        self._every_ms = every_ms
        self.minutes: dict[int, set[str]] = {}

    def add(self, device_id: str, ts_ms: int) -> None:
        minute = ts_ms - ts_ms % self._every_ms
        devices = self.minutes.get(minute)
        if devices is None:
            self.minutes[minute] = {device_id}
        else:
            devices.add(device_id)


class LateMinutes:
    """The late minutes not yet backfilled, coalesced (module docstring). ``close_ms``: when the writer closes a
    minute, after its start (``storage.aggregate``); ``raw_days``: the raw retention."""

    def __init__(
        self,
        *,
        every_ms: int = AGG_EVERY_S * 1000,
        close_ms: int = CLOSE_MS,
        raw_days: int = RAW_DAYS,
        max_minutes: int = MAX_MINUTES,
        max_devices: int = MAX_DEVICES,
        max_pending: int = MAX_PENDING,
    ) -> None:
        if every_ms <= 0 or close_ms < every_ms:
            raise ValueError(f"every_ms ({every_ms}) must be positive and close_ms ({close_ms}) at least every_ms")
        if min(max_minutes, max_devices, max_pending) < 1:
            raise ValueError("max_minutes, max_devices and max_pending must be at least 1")
        self.every_ms = every_ms
        self._due_ms = close_ms  # after a minute's start, when the writer closed it
        self._raw_ms = raw_days * 86_400_000
        self._max_minutes, self._max_devices, self._max_pending = max_minutes, max_devices, max_pending
        self._pending: dict[int, set[str] | None] = {}  # minute start -> late devices (None: every device)
        #: (minute, device) pairs noted late so far, for the metrics
        self.late_device_minutes = 0

    @property
    def pending(self) -> int:
        """Late minutes waiting for a backfill."""
        return len(self._pending)

    def batch(self) -> BatchMinutes:
        return BatchMinutes(self.every_ms)

    def late(self, ts_ms: int, written_ms: int) -> bool:
        """Whether a reading stamped ``ts_ms`` and acknowledged at ``written_ms`` missed its minute's aggregate."""
        return written_ms >= ts_ms - ts_ms % self.every_ms + self._due_ms

    def note(self, batch: BatchMinutes, written_ms: int) -> int:
        """Keep the late minutes of ``batch``, acknowledged at ``written_ms``. Returns how many pending minutes were
        dropped to stay within ``max_pending`` (0 but after days of buffered readings)."""
        oldest = written_ms - self._raw_ms - self.every_ms  # a minute partly within the retention counts
        for minute, devices in batch.minutes.items():
            if oldest < minute <= written_ms - self._due_ms:
                self.late_device_minutes += len(devices)
                self._add(minute, devices)
        return self._trim()

    def add_all(self, minutes: Iterable[int], now_ms: int) -> int:
        """Every device's ``minutes`` (starts) are pending, those within the raw retention at ``now_ms``. Returns
        the minutes dropped, as ``note``."""
        oldest = now_ms - self._raw_ms - self.every_ms
        for minute in minutes:
            if minute > oldest:
                self._add(minute, None)
        return self._trim()

    def take(self) -> Backfill | None:
        """The next backfill: the oldest late minute and the late minutes within ``max_minutes`` after it."""
        if not self._pending:
            return None
        first = min(self._pending)
        stop = first + self._max_minutes * self.every_ms
        minutes = sorted(m for m in self._pending if m < stop)
        devices: set[str] | None = set()
        for minute in minutes:
            late = self._pending.pop(minute)
            if late is None or devices is None:
                devices = None
            else:
                devices |= late
        if devices is not None and len(devices) > self._max_devices:
            devices = None
        return Backfill(first, minutes[-1] + self.every_ms, _frozen(devices), tuple(minutes))

    def put_back(self, backfill: Backfill) -> None:
        """A backfill that did not run: its minutes are pending again."""
        for minute in backfill.minutes:
            self._add(minute, backfill.devices)
        self._trim()

    def _add(self, minute: int, devices: Iterable[str] | None) -> None:
        if minute in self._pending:
            known = self._pending[minute]
            if known is None:
                return
            if devices is None:
                self._pending[minute] = None
                return
            known.update(devices)
        else:
            known = None if devices is None else set(devices)
            self._pending[minute] = known
        if known is not None and len(known) > self._max_devices:
            self._pending[minute] = None

    def _trim(self) -> int:
        excess = len(self._pending) - self._max_pending
        if excess <= 0:
            return 0
        for minute in sorted(self._pending)[:excess]:
            del self._pending[minute]
        return excess


def _frozen(devices: set[str] | None) -> frozenset[str] | None:
    return None if devices is None else frozenset(devices)
