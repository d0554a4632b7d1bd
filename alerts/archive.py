"""The alert archive: every alert message kept in InfluxDB, measurement ``alert_events``, one point per message.

A storage sink of the same shape as the notification channels: ``start``, ``add`` (never blocks, never raises),
``flush``, ``close``; ``run`` flushes periodically. The batching, the buffer and the search for refused lines are
``core.influx.sink``'s; this module says what an alert message is as a point, and what to do with a refusal. What
it guarantees:

- **Every message is its own point.** InfluxDB identifies a point by measurement, tag set and timestamp, and a
  second write with the same three replaces the first. Two messages of one alert can share ``updated_at`` (an
  acknowledgement and the clear it completes, within one millisecond), so ``seq`` is a tag beside the alert's
  ``key``: two messages of one alert differ in ``seq``, two alerts of one key are never a millisecond apart. A
  message delivered twice (at least once) has the same tags and timestamp and is stored once.
- **Series are bounded.** ``alert_id`` is a field, not a tag: as a tag every alert, and with ``seq`` every message,
  was a series of its own, which InfluxDB indexes in memory for the day's shard (the soak's probes, 8 messages a
  second, grew influxd's heap by about 28 MiB/h; docs/benchmarks.md). Keyed by the alert key and the message's
  number, the series are at most the keys that alerted times the messages of their longest alert.
- **Nothing is lost while InfluxDB is down.** ``flush`` puts the unwritten lines back and re-raises
  ``InfluxUnavailable`` (the caller retries after ``retry_after``). The buffer is bounded (``max_buffered``,
  100,000 lines); past that the oldest lines are dropped, counted in ``dropped`` and logged.
- **A refused line never blocks the others.** On a 400 (InfluxDB 1.x refuses a whole request for one field type
  conflict) the request is halved, up to 6 times, until the refused lines are isolated; only those are dropped
  (counted in ``refused``, logged with InfluxDB's reason). A configuration refusal (401, 403, 404) drops the
  refused request's lines, logged as an error: retrying would not help, and holding them would block every later
  alert until the bound is reached.
- Field types never change between messages (InfluxDB refuses a field whose type differs from the first write):
  ``value``/``threshold`` are always floats and are left out when the reading is a boolean (smoke, flame).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Final

from core.backoff import Backoff, pause
from core.contracts.alert import Alert
from core.influx.client import FieldValue, InfluxRefused, InfluxUnavailable, LineWriter, point_line
from core.influx.sink import InfluxSink

logger = logging.getLogger(__name__)

MEASUREMENT: Final = "alert_events"
MAX_BUFFERED: Final = 100_000
# Isolating refused lines costs at most 2 * 2**MAX_HALVINGS requests per refused request; alert batches are rarely
# over 64 lines, so in practice a bad line is dropped alone.
MAX_HALVINGS: Final = 6


def _number(value: float | bool | None) -> float | None:
    if value is None or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value)


def alert_line(alert: Alert, measurement: str = MEASUREMENT) -> str:
    """One alert message as a line of ``alert_events`` (schema in docs/influxdb.md), timestamp ``updated_at``."""
    tags = {
        "key": alert.key,
        "seq": str(alert.seq),
        "event": alert.event.value,
        "level": alert.level.value,
        "hazard": alert.hazard.value,
        "rule": alert.rule,
        "exercise": "true" if alert.exercise else "false",
        "site_id": alert.site_id or "",
        "device_id": alert.device_id or "",
    }
    fields: dict[str, FieldValue] = {
        "alert_id": alert.id,
        "active": alert.active,
        "acknowledged": alert.acknowledged,
        "closed": alert.closed,
        "departments": ",".join(d.value for d in alert.departments),
        "title_zh": alert.title.zh,
        "title_en": alert.title.en,
    }
    for name, raw in (("value", alert.value), ("threshold", alert.threshold)):
        number = _number(raw)
        if number is not None:
            fields[name] = number
    if alert.metric:
        fields["metric"] = alert.metric
    if alert.acknowledgement is not None:
        fields["acknowledged_by"] = alert.acknowledgement.by
        fields["note"] = alert.acknowledgement.note
    return point_line(measurement, tags, fields, alert.updated_at)


class AlertArchive:
    """Buffers alert messages and writes them to InfluxDB through ``writer``, which it starts and closes."""

    name = "influxdb"

    def __init__(self, writer: LineWriter, *, max_buffered: int = MAX_BUFFERED) -> None:
        self.sink = InfluxSink(
            writer, self._refused, name="alert archive", max_halvings=MAX_HALVINGS, max_buffered=max_buffered
        )
        self._database_ready = False

    @property
    def pending(self) -> int:
        """Lines waiting for the next flush."""
        return self.sink.pending

    @property
    def written(self) -> int:
        return self.sink.written

    @property
    def refused(self) -> int:
        """Lines InfluxDB refused, dropped."""
        return self.sink.refused

    @property
    def dropped(self) -> int:
        """Lines dropped from a full buffer."""
        return self.sink.dropped

    async def start(self) -> None:
        """Start the writer and create the database (v1). InfluxDB being down does not stop the alerts service:
        the database is then created at the first flush that reaches it."""
        await self.sink.start()
        try:
            await self._ensure_database()
        except InfluxUnavailable as exc:
            logger.warning("alert archive: InfluxDB not reachable yet, will retry at flush: %s", exc)

    def add(self, alert: Alert) -> None:
        self.sink.add(alert_line(alert))

    async def flush(self) -> int:
        """Write every buffered line. Returns how many lines InfluxDB refused (dropped, logged). Raises
        ``InfluxUnavailable`` with the unwritten lines back in the buffer."""
        if not self.sink.pending:
            return 0
        await self._ensure_database()
        return await self.sink.flush()

    async def run(self, stop: asyncio.Event, interval_s: float = 1.0, max_backoff_s: float = 60.0) -> None:
        """Flush every ``interval_s`` until ``stop`` is set; after failures wait twice as long each time, from twice
        ``interval_s`` up to ``max_backoff_s``, and never less than the server's ``retry_after`` (``core.backoff``).
        ``close`` does the last flush."""
        backoff = Backoff(min(2 * interval_s, max_backoff_s), max_backoff_s)
        delay = interval_s
        while not await pause(delay, stop):
            try:
                await self.flush()
            except InfluxUnavailable as exc:
                delay = backoff.next(exc.retry_after)
                logger.warning("alert archive: %s; %d lines kept, retry in %.1fs", exc, self.pending, delay)
            else:
                delay = interval_s
                backoff.reset()

    async def close(self) -> None:
        """Flush what is left (once, no retry), then close the writer. Lines InfluxDB could not take are logged."""
        try:
            await self.flush()
        except InfluxUnavailable as exc:
            logger.error("alert archive: %d alert events not written at close: %s", self.pending, exc)
        finally:
            await self.sink.close()

    async def _ensure_database(self) -> None:
        """Create the database once. A refusal (an account without the admin right CREATE DATABASE needs) is
        logged and does not stop writing: the database may well exist; if not, writes are refused with 404."""
        if self._database_ready:
            return
        try:
            await self.sink.writer.ensure_database()
        except InfluxRefused as exc:
            logger.warning("alert archive: %s; writing anyway", exc)
        self._database_ready = True

    async def _refused(self, lines: Sequence[str], exc: InfluxRefused) -> None:
        """The sink's ``on_refused``: a refused line (400) or a refused setup (401/403/404) is dropped, logged as
        an error. Retrying would not help, and holding the lines would block every later alert until the bound."""
        logger.error(
            "alert archive: InfluxDB refused %d alert events, dropped: %s; first: %s", len(lines), exc, lines[0][:300]
        )
