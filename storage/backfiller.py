"""The writer's backfills (InfluxDB 1.x): the minutes of ``agg_1m`` that late readings missed, aggregated again.

The writer tells it two things: a batch was acknowledged (with the minutes and devices it held readings of), and a
write failed because InfluxDB did not answer. Which minutes that makes late, and the statements, are
``storage.backfill``'s; this runs them, one statement at a time, in a task of its own and on a connection of its
own (with a longer timeout than a write's), so a backfill never holds up a batch. A statement InfluxDB does not
take now is put back and run after a backoff; one it refuses (a missing retention policy, no rights) is logged and
dropped. Pending minutes are held in memory only: a writer stopped before it ran them leaves them to the one-off
query in docs/storage.md. ``smartcity_writer_backfilled_minutes_total`` counts the minutes aggregated again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from prometheus_client import Counter

from core.backoff import Backoff, pause, retry_after
from core.influx.client import InfluxConnection, InfluxRefused, InfluxUnavailable, LineWriter
from storage.backfill import BatchMinutes, LateMinutes
from storage.retention import run_statement

logger = logging.getLogger(__name__)

#: A backfill reads up to ``max_minutes`` of every series: it may take much longer than a write.
TIMEOUT_S = 300.0
_MAX_BACKOFF_S = 60.0


class Backfiller:
    def __init__(self, conn: InfluxConnection, late: LateMinutes, backfilled: Counter) -> None:
        self._db = conn.influx_db
        self._influx = LineWriter(conn.model_copy(update={"influx_timeout_s": TIMEOUT_S}))
        self._late = late
        self._backfilled = backfilled
        self._failed_at_ms: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def batch(self) -> BatchMinutes:
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

    def failed(self) -> None:
        """A write failed with ``InfluxUnavailable``: runs of the continuous query may be lost from now on."""
        if self._failed_at_ms is None:
            self._failed_at_ms = _now_ms()

    def written(self, minutes: BatchMinutes | None) -> None:
        """A batch was acknowledged: its late minutes, and after a failure those of every device since then
        (``LateMinutes.note_outage``), are backfilled."""
        now_ms, dropped = _now_ms(), 0
        if self._failed_at_ms is not None:
            dropped += self._late.note_outage(self._failed_at_ms, now_ms)
            self._failed_at_ms = None
        if minutes is not None:
            dropped += self._late.note(minutes, now_ms)
        if dropped:
            logger.warning(
                "writer: %d late minutes dropped unaggregated (too many pending): see docs/storage.md", dropped
            )
        if self._late.pending and (self._task is None or self._task.done()) and not self._closing.is_set():
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        late, backoff = self._late, Backoff(1.0, _MAX_BACKOFF_S)
        while (todo := late.take()) is not None:
            started = time.monotonic()
            try:
                await run_statement(self._influx, todo.statement(self._db))
            except InfluxUnavailable as exc:
                late.put_back(todo)
                wait = backoff.next(retry_after(exc))
                logger.warning(
                    "writer: backfill of %d minutes not run (%s); again in %.1f s", len(todo.minutes), exc, wait
                )
                if await pause(wait, self._closing):
                    return
                continue
            except InfluxRefused as exc:
                logger.error("writer: backfill of %d minutes refused, not retried: %s", len(todo.minutes), exc)
                continue
            backoff.reset()
            self._backfilled.inc(len(todo.minutes))
            logger.info(
                "writer: %d late minutes aggregated again (devices: %s) in %.2f s",
                len(todo.minutes),
                "all" if todo.devices is None else len(todo.devices),
                time.monotonic() - started,
            )


def _now_ms() -> int:
    return int(time.time() * 1000)
