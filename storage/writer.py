"""The InfluxDB writer: every reading on Kafka into InfluxDB, batched, nothing lost, nothing doubled.

A consumer group of its own (``SMARTCITY_WRITER_GROUP``), so storage never slows alerting. It reads readings
records, turns them into lines (``storage.lines``), and writes a batch when it holds
``writer_batch_points`` points or ``writer_batch_ms`` has passed. Guarantees, and how:

- **Nothing lost**: offsets are committed only after InfluxDB acknowledged the batch (204). While InfluxDB is down
  (connection refused, 5xx, 429/503 with ``Retry-After``), the writer keeps the batch, pauses its partitions (it
  still polls, so it keeps its place in the group), retries with backoff, and catches up when InfluxDB returns.
  The next batch is read and built while the previous one is being written (one write in flight); each commit
  names exactly the offsets of the batch InfluxDB took.
- **Nothing doubled**: a batch written again after a crash or a rebalance rewrites the same points (same series,
  same timestamp): storage is idempotent, so at-least-once delivery stores every reading exactly once. A reading
  that reached Kafka twice (a message redelivered to the gateway) is two records, and its copy may have another
  ``ts`` (one stamped on arrival): the writer drops repeats of (device, seq) with ``rules.dedup``'s window, kept
  per device in memory, marked as readings join a batch. A batch that is never written is never lost to it: the
  writer stops or, on a Kafka failure, forgets the window before reading again. The window follows the partition:
  when a partition is assigned here (at start, or taken over from another writer), the last ``SEED_RECORDS``
  records before its committed offset, all written, are read into the window before its records are, so a repeat
  whose original another writer (or this one before a restart) wrote is still dropped.
- **Bad points never block the stream**: when InfluxDB refuses a batch (400: a field type conflict), the batch is
  halved until the refused lines are found (``core.influx.sink``, down to single lines); those go to the
  refused-readings topic with InfluxDB's reason (``storage_refused``), the rest are written.
- A configuration problem (401/403, database missing and not creatable) is retried with backoff and logged
  loudly: the data waits in Kafka rather than being dropped.
- **Hourly aggregates as it writes** (InfluxDB 1.x, with a ``backfill``): every point written to ``raw`` is folded
  into its hour (``storage.aggregate``), and each hour's points go to ``agg_1h`` once it is closed, 30 s after it
  ends, so no continuous query re-reads ``raw``. What memory cannot give is recomputed from ``raw``
  (``storage.backfiller``): the hours of late readings (acknowledged after their hour closed), for their devices,
  and for every device (in parts) the hours a partition's previous writer left open and those whose aggregates
  InfluxDB did not take.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from core.backoff import Backoff, pause, retry_after
from core.contracts.refusal import Refusal, RefusalItem, RefusalReason, RefusedMessage
from core.contracts.telemetry import decode_batch
from core.errors import KafkaUnavailable
from core.influx.client import InfluxRefused, InfluxUnavailable, LineWriter
from core.influx.sink import InfluxSink
from core.kafka.admin import TopicSpec
from core.kafka.consumer import consume_forever
from core.kafka.producer import FlushProducer, Record
from core.kafka.reading import read_to_end
from devices.directory import RecordDirectory
from rules.dedup import SeqWindow, is_repeat
from storage.aggregate import Aggregates
from storage.backfill import BatchIntervals
from storage.backfiller import Backfiller
from storage.lines import Fold, LineBuilder
from storage.metrics import WriterMetrics
from storage.settings import WriterSettings

logger = logging.getLogger(__name__)

_MAX_BACKOFF_S = 30.0
#: Records read back before a newly assigned partition's committed offset, into the repeat window (about 10 s of a
#: busy partition at 200 flushes a second), and how long that may take at most.
SEED_RECORDS = 2_000
SEED_TIMEOUT_S = 10.0


@dataclass
class _Flight:
    """A batch being written, and what to commit once it is."""

    task: asyncio.Task[bool]
    offsets: dict[TopicPartition, int]
    readings: int


class InfluxWriter:
    def __init__(
        self,
        settings: WriterSettings,
        lines: LineBuilder,
        influx: LineWriter,
        metrics: WriterMetrics,
        directory: RecordDirectory | None = None,
        backfill: Backfiller | None = None,
    ) -> None:
        """``directory``: where ``lines`` looks devices up, asked to catch up before a device it does not know.
        ``backfill`` (InfluxDB 1.x): writes the intervals the writer aggregates and closes, and backfills what they
        missed (module docstring)."""
        self.settings = settings
        self._backfill = backfill
        self._aggregates = Aggregates(backfill.every_ms, backfill.close_ms) if backfill is not None else None
        self._directory = directory
        self.lines = lines
        self.influx = influx
        self.sink = InfluxSink(influx, self._refused_lines, name="writer")
        self.metrics = metrics
        spec = TopicSpec(settings.topic_rejected, settings.rejected_partitions, settings.kafka_replication)
        self._refused = FlushProducer(settings, [spec])
        self.ready = asyncio.Event()
        self.influx_up = True
        self._gaps = metrics.consumer.gaps()
        self._seqs: dict[str, SeqWindow] = {}  # device id -> the sequence numbers it was last written with
        self._owned: set[TopicPartition] = set()  # partitions whose recent records are in ``_seqs``
        # Clear while a rebalance reads them in: aiokafka fetches for new partitions while its listener runs.
        self.seeded = asyncio.Event()
        self.seeded.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and write until ``stop``; a new consumer after each Kafka failure, with backoff
        (``core.kafka.consumer``). ``ready`` is set once a consumer has started."""
        await self._refused.start()

        async def consume(consumer: AIOKafkaConsumer) -> None:
            self.ready.set()
            await self._loop(consumer, stop)

        try:
            await consume_forever(self._consumer, consume, label="writer", stop=stop)
        finally:
            await self._refused.stop()

    def _consumer(self) -> AIOKafkaConsumer:
        """A new group consumer. It reads again from the committed offsets, and a batch marked in the repeat window
        may not have been written: the window is forgotten here, and read back as partitions are assigned."""
        self._seqs.clear()
        for tp in self._owned:
            self._revoke(tp)
        self._owned = set()
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=s.writer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.writer_fetch_wait_ms,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            session_timeout_ms=s.writer_session_timeout_ms,
            heartbeat_interval_ms=s.writer_session_timeout_ms // 4,
        )
        consumer.subscribe([s.topic_readings], listener=_Seeding(self, consumer))
        self._gaps = self.metrics.consumer.attach(consumer)
        return consumer

    async def seed(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """Read the recent records of partitions new to this writer into the repeat window (module docstring): the
        last ``SEED_RECORDS`` records below each one's committed offset, read for at most ``SEED_TIMEOUT_S``. They
        tell the aggregates when the partition's previous writer last wrote (their Kafka timestamps) and the latest
        reading it wrote (their ``ts``)."""
        new, gone, self._owned = assigned - self._owned, self._owned - assigned, set(assigned)
        for tp in gone:
            self._revoke(tp)
        last: dict[TopicPartition, tuple[int, int]] = {}  # (Kafka timestamp, reading ts) of the latest seen
        # a partition without a committed offset (or at 0) was never written by a writer: this one reads it whole
        ends = {tp: end for tp in new if (end := await consumer.committed(tp))}
        try:
            await self._seed(consumer, ends, last)
        finally:
            if self._aggregates is not None:
                now_ms = int(time.time() * 1000)
                for tp in new:
                    since, latest = last.get(tp, (None, None))
                    self._aggregates.assign(tp, now_ms, since, latest, fresh=tp not in ends)

    def _revoke(self, tp: TopicPartition) -> None:
        if self._aggregates is not None:
            self._aggregates.revoke(tp)

    async def _seed(
        self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], last: dict[TopicPartition, tuple[int, int]]
    ) -> None:
        if not ends:
            return
        started, seeded = time.monotonic(), 0
        begins = await consumer.beginning_offsets(list(ends))

        def mark(record: Any) -> None:
            nonlocal seeded
            count, latest = self._mark(record.value)
            seeded += count
            tp = TopicPartition(record.topic, record.partition)
            before = last.get(tp, (0, 0))
            last[tp] = (max(before[0], record.timestamp), max(before[1], latest))

        pending = await read_to_end(
            self.settings.kafka_bootstrap,
            list(ends),
            mark,
            start={tp: max(begins[tp], end - SEED_RECORDS) for tp, end in ends.items()},
            ends=ends,
            timeout_s=SEED_TIMEOUT_S,
        )
        if pending:
            logger.warning(
                "writer: repeat window of %d partitions not read back in %.0f s", len(pending), SEED_TIMEOUT_S
            )
        logger.info(
            "writer: repeat window read back for %d partitions (%d readings) in %.2f s",
            len(ends),
            seeded,
            time.monotonic() - started,
        )

    def _mark(self, raw: bytes | None) -> tuple[int, int]:
        """Into the repeat window; (readings, the latest ``ts`` among them)."""
        try:
            readings = decode_batch(raw or b"")
        except ValueError:
            return 0, 0
        seqs, latest = self._seqs, 0
        for reading in readings:
            is_repeat(seqs, reading)
            latest = max(latest, reading["ts"])
        return len(readings), latest

    async def _loop(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        """Fill the next batch while the previous one is being written (one write in flight), then commit the
        previous batch's offsets, exactly those, once InfluxDB has it."""
        flight: _Flight | None = None
        while not stop.is_set():
            intervals = self._backfill.batch() if self._backfill is not None else None
            batch, offsets, readings = await self._fill(consumer, stop, intervals)
            self._close_intervals()
            if flight is not None:
                if not await self._land(consumer, flight, stop):
                    return  # stopping: that batch stays uncommitted and is read again after the restart
                flight = None
            if batch:
                flight = _Flight(asyncio.create_task(self._write(batch, stop, intervals)), offsets, readings)
            elif offsets:
                await consumer.commit(offsets)  # records that held no reading (unreadable ones, logged)
        if flight is not None:
            flight.task.cancel()

    def _close_intervals(self) -> None:
        """Hand the intervals whose close time has come to the backfiller, which writes them (module docstring)."""
        if self._aggregates is not None and self._backfill is not None:
            closed = self._aggregates.close(int(time.time() * 1000))
            if closed.lines or closed.backfill:
                self._backfill.closed(closed)

    async def _fill(
        self, consumer: AIOKafkaConsumer, stop: asyncio.Event, intervals: BatchIntervals | None = None
    ) -> tuple[list[str], dict[TopicPartition, int], int]:
        s = self.settings
        batch: list[str] = []
        offsets: dict[TopicPartition, int] = {}
        readings = 0
        deadline = time.monotonic() + s.writer_batch_ms / 1000
        while len(batch) < s.writer_batch_points and not stop.is_set():
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            fetched = await consumer.getmany(timeout_ms=min(left_ms, 200))
            if not self.seeded.is_set():  # no record before its partition's recent records are in the window
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.seeded.wait(), SEED_TIMEOUT_S + 5)
            for tp, fetched_records in fetched.items():
                records = self._gaps.take(consumer, tp, fetched_records)
                if not records:
                    continue
                fold = partial(self._aggregates.fold, tp) if self._aggregates is not None else None
                for record in records:
                    readings += await self._add(record.value, record.offset, batch, intervals, fold)
                offsets[tp] = records[-1].offset + 1
        return batch, offsets, readings

    async def _land(self, consumer: AIOKafkaConsumer, flight: _Flight, stop: asyncio.Event) -> bool:
        """Wait for the write in flight; while it takes long (InfluxDB down), fetch nothing more but keep polling
        the paused consumer, so that the group does not think this member is gone."""
        if not flight.task.done():
            consumer.pause(*consumer.assignment())
            try:
                while not flight.task.done():
                    await asyncio.wait([flight.task], timeout=0.2)
                    # A rebalance meanwhile assigns partitions unpaused, and this poll then returns their records:
                    # read again from the first of them, never dropped (dropping them lost readings).
                    for tp, records in (await consumer.getmany(timeout_ms=0)).items():
                        expected = self._gaps.expected(tp)
                        consumer.seek(tp, records[0].offset if expected is None else min(expected, records[0].offset))
                        consumer.pause(tp)
            finally:
                consumer.resume(*consumer.assignment())
        if not flight.task.result():
            return False
        await consumer.commit(flight.offsets)
        self.metrics.readings.inc(flight.readings)
        return True

    async def _add(
        self,
        raw: bytes | None,
        offset: int,
        batch: list[str],
        intervals: BatchIntervals | None = None,
        fold: Fold | None = None,
    ) -> int:
        try:
            readings = decode_batch(raw or b"")
        except ValueError as exc:
            self.metrics.undecodable.inc()
            logger.error("writer: unreadable readings record at offset %d skipped: %s", offset, exc)
            return 0
        directory = self._directory
        if directory is not None and any(directory.get(r["device_id"]) is None for r in readings):
            # Registered a moment ago, perhaps (the gateway knew it): stored under its kind, not as unregistered.
            await directory.catch_up(self.settings.writer_registry_wait_s)
        written, seqs = 0, self._seqs
        for reading in readings:
            if is_repeat(seqs, reading):
                self.metrics.duplicates.inc()
                continue
            batch.extend(self.lines.lines(reading, fold))
            if intervals is not None:
                intervals.add(reading["device_id"], reading["ts"])
            written += 1
        return written

    async def _write(self, batch: list[str], stop: asyncio.Event, intervals: BatchIntervals | None = None) -> bool:
        """Write ``batch`` however long InfluxDB takes to come back (False: told to stop first); refused lines go
        to the refused topic. ``intervals``: the batch's readings, for the backfill."""
        backoff = Backoff(0.5, _MAX_BACKOFF_S)
        while True:
            started = time.monotonic()
            try:
                await self.sink.write(batch)
            except (InfluxUnavailable, InfluxRefused) as exc:
                self.influx_up = False
                self.metrics.influx_up.set(0)
                self.metrics.retries.labels(type(exc).__name__).inc()
                wait = backoff.next(retry_after(exc))
                logger.warning("writer: %d points not written (%s); again in %.1f s", len(batch), exc, wait)
                if await pause(wait, stop):
                    return False
                if isinstance(exc, InfluxRefused) and exc.status == 404:
                    with contextlib.suppress(InfluxUnavailable, InfluxRefused):
                        await self.influx.ensure_database()
                continue
            self.metrics.batch_seconds.observe(time.monotonic() - started)
            self.metrics.batch_points.observe(len(batch))
            if not self.influx_up:
                logger.info("writer: InfluxDB is back; catching up")
            self.influx_up = True
            self.metrics.influx_up.set(1)
            if self._backfill is not None:
                self._backfill.written(intervals)
            return True

    async def _refused_lines(self, lines: Sequence[str], exc: InfluxRefused) -> None:
        """The sink's ``on_refused``. Points InfluxDB refused (400, isolated down to single lines) go to the refused
        topic; a refused setup (401/403, 404) is raised back: the batch waits in Kafka while ``_write`` retries."""
        if exc.status != 400:
            raise exc
        for line in lines:
            await self._refuse(line, str(exc))

    async def _refuse(self, line: str, reason: str) -> None:
        self.metrics.refused.inc()
        device_id = _tag(line, "device_id") or "-"
        refusal = Refusal.of(
            device_id,
            self.settings.topic_readings,
            int(time.time() * 1000),
            0,
            [RefusalItem(reason=RefusalReason.STORAGE_REFUSED, detail=f"InfluxDB refused the point: {reason}")],
        )
        value = RefusedMessage.of(refusal, line.encode()).model_dump_json().encode()
        logger.error("writer: InfluxDB refused a point of %s: %s", device_id, reason)
        record = [Record(self.settings.topic_rejected, value, device_id.encode())]

        async def records() -> list[Record]:
            return record

        def failed(exc: KafkaUnavailable, wait: float) -> None:
            logger.warning("writer: refused point not recorded yet (%s); again in %.1f s", exc, wait)

        # The batch is not committed before its refused points are recorded: never lost.
        await self._refused.deliver_retrying(records, Backoff(0.5, 10.0), failed)


def _tag(line: str, name: str) -> str | None:
    """A tag's value in one of our lines (ids match the contract's pattern: nothing in them is escaped)."""
    for part in line.split(" ", 1)[0].split(",")[1:]:
        key, _, value = part.partition("=")
        if key == name:
            return value
    return None


class _Seeding(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is unannotated
    """Reads a newly assigned partition's recent records into the writer's repeat window before the new ones."""

    def __init__(self, writer: InfluxWriter, consumer: AIOKafkaConsumer) -> None:
        self._writer, self._consumer = writer, consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._writer.seeded.clear()
        try:
            await self._writer.seed(self._consumer, set(assigned))
        except (KafkaError, OSError, KafkaUnavailable) as exc:  # a window not read back only lets a repeat through
            logger.warning("writer: repeat window not read back (%r)", exc)
        finally:
            self._writer.seeded.set()
