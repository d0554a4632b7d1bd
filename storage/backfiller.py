"""The writer's side task (InfluxDB 1.x): the closed hours' aggregates into ``agg_1h``, and the backfills.

The writer hands over two things: the points of the intervals it closed (``storage.aggregate``), and, after each
acknowledged batch, the intervals and devices it held readings of. Which intervals that makes late, and the
statements that compute them from ``raw``, are ``storage.backfill``'s. This writes and runs them one at a time,
aggregates first, in a task of its own and on a connection of its own (with a longer timeout than a write's), so
neither ever holds up a batch.

- Aggregates InfluxDB does not take (down, or refused) are not retried as they are: their intervals become every
  device's backfill, computed from ``raw`` once InfluxDB is back (``raw`` is the truth; it holds every reading the
  writer acknowledged).
- An every-device backfill runs in parts of ``PART_DEVICES`` devices (``storage.backfill``): the devices ``raw``
  holds are listed first, then one statement per part, one after the other.
- A statement InfluxDB does not take now is run again after a backoff (a part where it stopped); one it refuses (a
  missing retention policy, no rights) is logged and dropped.
- Pending intervals are held in memory only: a writer stopped before it ran them leaves them to the one-off query in
  docs/storage.md. ``smartcity_writer_aggregate_points_total`` counts the points written,
  ``smartcity_writer_backfilled_intervals_total`` the intervals aggregated again (per statement: an every-device
  backfill's parts count each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from core.backoff import Backoff, pause, retry_after
from core.influx.client import InfluxConnection, InfluxRefused, InfluxUnavailable, LineWriter
from storage.aggregate import Closed
from storage.backfill import PART_DEVICES, Backfill, BatchIntervals, LateIntervals, devices_of, devices_statement
from storage.metrics import WriterMetrics
from storage.retention import AGG_RP, query_result, run_statement

logger = logging.getLogger(__name__)

#: A backfill reads up to ``max_intervals`` of its series: it may take much longer than a write.
TIMEOUT_S = 300.0
_MAX_BACKOFF_S = 60.0
#: Aggregate points per write: the writer's own batch size (``writer_batch_points``' default).
WRITE_POINTS = 5_000


class Backfiller:
    def __init__(
        self, conn: InfluxConnection, late: LateIntervals, metrics: WriterMetrics, *, part_devices: int = PART_DEVICES
    ) -> None:
        """``part_devices``: devices per statement of an every-device backfill (``storage.backfill``)."""
        self._part_devices = part_devices
        self._db = conn.influx_db
        self._influx = LineWriter(conn.model_copy(update={"influx_timeout_s": TIMEOUT_S, "influx_rp": AGG_RP}))
        self._late = late
        self._metrics = metrics
        self._closed: deque[Closed] = deque()
        self._parts: deque[Backfill] = deque()  # what is left of an every-device backfill
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    @property
    def every_ms(self) -> int:
        """The aggregates' interval."""
        return self._late.every_ms

    @property
    def close_ms(self) -> int:
        """When an interval is closed, after its start."""
        return self._late.close_ms

    def batch(self) -> BatchIntervals:
        """Where the writer notes the readings of its next batch."""
        return self._late.batch()

    async def start(self) -> None:
        await self._influx.start()

    async def close(self) -> None:
        self._closing.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._influx.close()

    def closed(self, closed: Closed) -> None:
        """Intervals the writer closed: their points are written, and the intervals to recompute are pending."""
        self._dropped(self._late.add_all(closed.backfill, _now_ms()))
        if closed.lines:
            self._closed.append(closed)
        self._kick()

    def written(self, intervals: BatchIntervals | None) -> None:
        """A batch was acknowledged: its late intervals are backfilled."""
        if intervals is not None:
            before = self._late.late_device_intervals
            self._dropped(self._late.note(intervals, _now_ms()))
            self._metrics.late_device_intervals.inc(self._late.late_device_intervals - before)
        self._kick()

    def _dropped(self, dropped: int) -> None:
        if dropped:
            logger.warning(
                "writer: %d late intervals dropped unaggregated (too many pending): see docs/storage.md", dropped
            )

    def _kick(self) -> None:
        idle = self._task is None or self._task.done()
        if (self._closed or self._parts or self._late.pending) and idle and not self._closing.is_set():
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        backoff = Backoff(1.0, _MAX_BACKOFF_S)
        while self._closed or self._parts or self._late.pending:
            if self._closed:
                await self._write(self._closed.popleft())
                continue
            if not await self._backfill(backoff):
                return

    async def _write(self, closed: Closed) -> None:
        """An hour's points, in writes of ``WRITE_POINTS`` (the district's hour is 120,000 points: one body of 20 MB
        would be one long stall in influxd rather than a few short ones)."""
        try:
            for first in range(0, len(closed.lines), WRITE_POINTS):
                await self._influx.write(closed.lines[first : first + WRITE_POINTS])
        except (InfluxUnavailable, InfluxRefused) as exc:
            logger.warning(
                "writer: aggregates of %d intervals not written (%s); they are computed from raw later",
                len(closed.intervals),
                exc,
            )
            self._dropped(self._late.add_all(closed.intervals, _now_ms()))
            return
        self._metrics.aggregate_points.inc(len(closed.lines))

    async def _backfill(self, backoff: Backoff) -> bool:
        """Run the next backfill (or the next part of an every-device one); False when told to stop while waiting
        to retry."""
        todo = self._parts.popleft() if self._parts else self._late.take()
        if todo is None:
            return True
        started = time.monotonic()
        try:
            if todo.devices is None:  # never one statement over every device: in parts (module docstring)
                devices = devices_of(await query_result(self._influx, devices_statement(self._db)))
                self._parts.extend(todo.parts(devices, self._part_devices))
                logger.info(
                    "writer: backfill of %d intervals for every device: %d devices in %d parts",
                    len(todo.intervals),
                    len(devices),
                    len(self._parts),
                )
                return True
            await run_statement(self._influx, todo.statement(self._db))
        except InfluxUnavailable as exc:
            if todo.devices is None:
                self._late.put_back(todo)
            else:
                self._parts.appendleft(todo)  # a part (or a late devices' backfill): the same statement again
            wait = backoff.next(retry_after(exc))
            logger.warning(
                "writer: backfill of %d intervals not run (%s); again in %.1f s", len(todo.intervals), exc, wait
            )
            return not await pause(wait, self._closing)
        except InfluxRefused as exc:
            logger.error("writer: backfill of %d intervals refused, not retried: %s", len(todo.intervals), exc)
            return True
        backoff.reset()
        self._metrics.backfilled_intervals.inc(len(todo.intervals))
        logger.info(
            "writer: %d intervals aggregated again from raw for %d devices in %.2f s (%d parts left)",
            len(todo.intervals),
            len(todo.devices),
            time.monotonic() - started,
            len(self._parts),
        )
        return True


def _now_ms() -> int:
    return int(time.time() * 1000)
