"""The registry on Kafka: records published to the compacted ``devices`` topic, and read back by any service.

``DevicePublisher`` writes a record per change (key = device id, value = the record's JSON; a deletion is a
tombstone, value ``None``) and can republish everything, which the one-machine stack does at start because its
broker forgets. ``KafkaDirectory`` follows the topic from the beginning, without a consumer group (every reader
needs every device), and answers ``is_registered`` from memory, so a change reaches the gateway within its fetch
wait, without a restart.

Read-your-writes. ``PUT /api/devices/{id}`` answers only after Kafka acknowledged the record, and a device may
publish the moment it has its answer, before our fetch has brought the record here. So a reader that meets a
device it does not know calls ``catch_up``: it asks Kafka for the topic's end offsets *now* and waits until
everything before them is applied. The record of any registration that had answered before the reading arrived is
below those offsets, so after ``catch_up`` an unknown device really is unknown. Concurrent calls share one round
(one ListOffsets request at a time), and a call never joins a round that started before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from core.contracts import ReadingBatch
from core.contracts.device import Device
from core.kafka.admin import devices_topic, ensure_topics
from core.kafka.consumer import consume_forever
from core.kafka.reading import read_to_end, topic_partitions
from core.settings import KafkaConnection
from devices.health import HealthTracker

logger = logging.getLogger(__name__)


class DevicePublisher:
    def __init__(self, conn: KafkaConnection) -> None:
        self._conn = conn
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        await ensure_topics(self._conn.kafka_bootstrap, [devices_topic(self._conn)])
        self._producer = AIOKafkaProducer(bootstrap_servers=self._conn.kafka_bootstrap, acks="all", linger_ms=5)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def publish(self, devices: list[Device]) -> None:
        assert self._producer is not None, "start() first"
        topic = self._conn.topic_devices
        futures = [await self._producer.send(topic, d.model_dump_json().encode(), key=d.id.encode()) for d in devices]
        await asyncio.gather(*futures)

    async def remove(self, device_id: str) -> None:
        assert self._producer is not None, "start() first"
        await (await self._producer.send(self._conn.topic_devices, None, key=device_id.encode()))


class KafkaDirectory:
    """The registered devices, kept current from the devices topic. ``ready`` once caught up.

    The gateway needs only the ids; the stream workers ask for ``keep_records`` and get every ``Device`` record in
    memory (about 12 MB per 100,000 devices, docs/benchmarks.md): the registry as a table that every worker holds
    whole, like a Kafka Streams GlobalKTable, so a rebalance never has to move it. ``on_change(device_id, record)``
    (``None`` for a deletion) is called for each change after the first catch-up.
    """

    def __init__(
        self,
        conn: KafkaConnection,
        *,
        fetch_wait_ms: int = 100,
        keep_records: bool = False,
        on_change: Callable[[str, Device | None], None] | None = None,
    ) -> None:
        self._conn = conn
        self._fetch_wait_ms = fetch_wait_ms
        self._keep_records = keep_records
        self._on_change = on_change
        self._ids: set[str] = set()
        self._records: dict[str, Device] = {}
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        # read-your-writes (``catch_up``): the live consumer, whether its records are the ones served, progress
        self._consumer: tuple[AIOKafkaConsumer, list[TopicPartition]] | None = None
        self._live = False
        self._moved = asyncio.Event()
        self._next_round: asyncio.Future[None] | None = None
        self._rounds: asyncio.Task[None] | None = None

    def is_registered(self, device_id: str) -> bool:
        return device_id in self._ids

    def get(self, device_id: str) -> Device | None:
        """The device's record (only with ``keep_records``)."""
        return self._records.get(device_id)

    def records(self) -> dict[str, Device]:
        return self._records

    def __len__(self) -> int:
        return len(self._ids)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        for task in (self._rounds, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def catch_up(self, timeout_s: float = 10.0) -> bool:
        """Wait until every record written to the devices topic before this call is applied here (see the module
        docstring). ``False`` if that could not be confirmed within ``timeout_s`` (Kafka unavailable)."""
        if self._next_round is None:
            self._next_round = asyncio.get_running_loop().create_future()
            if self._rounds is None or self._rounds.done():
                self._rounds = asyncio.get_running_loop().create_task(self._run_rounds())
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(self._next_round)
        except TimeoutError:
            logger.warning("device directory: could not catch up with the registry within %.1f s", timeout_s)
            return False
        return True

    async def _run_rounds(self) -> None:
        while (round_ := self._next_round) is not None:
            self._next_round = None  # callers from here on join the next round
            while True:
                try:
                    await self._one_round()
                    break
                except asyncio.CancelledError:
                    round_.cancel()
                    raise
                except (KafkaError, OSError) as exc:  # the consumer failed under us: measure again on its successor
                    logger.debug("device directory: catch-up round failed (%r); again", exc)
                    await asyncio.sleep(0.2)
            round_.set_result(None)

    async def _one_round(self) -> None:
        while True:
            await self.ready.wait()
            live = self._consumer
            while live is None:
                await self._moved.wait()
                live = self._consumer
            consumer, tps = live
            ends = await consumer.end_offsets(tps)
            while self._consumer is live:
                if self._live and all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                    return
                await self._moved.wait()
            # the consumer was replaced (Kafka failed): ask its successor

    def _progress(self) -> None:
        self._moved.set()
        self._moved = asyncio.Event()

    def _apply(self, m: Any, ids: set[str], records: dict[str, Device]) -> tuple[str, Device | None] | None:
        """Apply one record of the topic to ``ids`` and ``records``: the change, or None for an unreadable one."""
        key = m.key.decode() if m.key else ""
        record = None
        if m.value is not None and self._keep_records:
            try:
                record = Device.model_validate_json(m.value)
            except ValidationError as exc:
                logger.warning("device directory: unreadable record for %r: %s", key, exc)
                return None
        if m.value is None:
            ids.discard(key)
            records.pop(key, None)
        else:
            ids.add(key)
            if record is not None:
                records[key] = record
        return key, record

    async def _follow(self) -> None:
        async def run(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
            self._consumer, self._live = (consumer, tps), False
            self._progress()
            try:
                await follow(consumer, tps)
            finally:
                self._consumer, self._live = None, False
                self._progress()

        async def follow(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
            # Everything up to the end offsets as of now first, into fresh sets (until then the old ones serve).
            ids: set[str] = set()
            records: dict[str, Device] = {}
            await read_to_end(consumer, tps, lambda m: self._apply(m, ids, records))
            self._ids, self._records = ids, records  # from here on updated in place
            self._live = True
            self.ready.set()
            logger.info("device directory: %d devices registered", len(ids))
            self._progress()
            while True:
                for msgs in (await consumer.getmany(timeout_ms=500)).values():
                    for m in msgs:
                        change = self._apply(m, ids, records)
                        if change is not None and self._on_change is not None:
                            self._on_change(*change)
                self._progress()

        async def prepare() -> None:
            await ensure_topics(self._conn.kafka_bootstrap, [devices_topic(self._conn)])

        await _follow_topic(self._conn, self._conn.topic_devices, "device directory", run, prepare, self._fetch_wait_ms)


async def follow_readings(conn: KafkaConnection, tracker: HealthTracker) -> None:
    """Feed every new reading's receive time and values to ``tracker`` (from the end of the topic: health is
    about now). Runs until cancelled; reconnects with backoff."""

    async def run(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        await consumer.seek_to_end(*tps)
        while True:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                for m in msgs:
                    try:
                        batch = ReadingBatch.model_validate_json(m.value or b"")
                    except ValidationError:
                        logger.warning("device health: skipped an unreadable record at offset %d", m.offset)
                        continue
                    for r in batch.readings:
                        tracker.reading(r.device_id, r.received_at, r.values)

    await _follow_topic(conn, conn.topic_readings, "device health", run)


async def _follow_topic(
    conn: KafkaConnection,
    topic: str,
    label: str,
    run: Callable[[AIOKafkaConsumer, list[TopicPartition]], Awaitable[None]],
    prepare: Callable[[], Awaitable[None]] | None = None,
    fetch_wait_ms: int = 500,
) -> None:
    """Consume every partition of ``topic`` without a consumer group (each reader needs all of it), handing the
    assigned consumer to ``run``; a new consumer after each Kafka failure, with backoff (``core.kafka.consumer``);
    while the topic does not exist, a new consumer every second. Runs until cancelled."""

    def build() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=conn.kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=fetch_wait_ms
        )

    async def assigned(consumer: AIOKafkaConsumer) -> None:
        tps = await topic_partitions(consumer, topic)
        if not tps:
            await asyncio.sleep(1)
            return
        consumer.assign(tps)
        await run(consumer, tps)

    await consume_forever(build, assigned, label=label, prepare=prepare)
