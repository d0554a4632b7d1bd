"""The registry's Kafka feed: device records published to the compacted ``devices`` topic, and the health topic
followed for device health.

``DevicePublisher`` writes a record per change (key = device id, value = the record's JSON; a deletion is a
tombstone, value ``None``) and can republish everything, which the one-machine stack does at start because its
broker forgets. Every service reads the topic back through ``devices.directory.KafkaDirectory``.
``follow_health`` feeds the device-health tracker from the stream workers' health topic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from core.clock import now_ms
from core.contracts.device import Device
from core.kafka.admin import devices_topic
from core.kafka.consumer import follow_topic
from core.kafka.producer import FlushProducer, Record
from core.settings import KafkaConnection
from devices.health import HealthBatch, HealthTracker

logger = logging.getLogger(__name__)


class DevicePublisher:
    """Writes the devices topic through the kit's producer (``core.kafka.producer``): a publish returns once Kafka
    acknowledged every record, or raises ``KafkaUnavailable`` (the producer is then replaced, as after any failed
    flush). A republish of the whole registry goes in flushes of ``FLUSH_RECORDS``, each within the producer's
    deadline."""

    FLUSH_RECORDS = 5_000

    def __init__(self, conn: KafkaConnection) -> None:
        self._conn = conn
        self._producer = FlushProducer(conn, [devices_topic(conn)])

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, devices: list[Device]) -> None:
        topic = self._conn.topic_devices
        records = [Record(topic, d.model_dump_json().encode(), d.id.encode()) for d in devices]
        for start in range(0, len(records), self.FLUSH_RECORDS):
            await self._deliver(records[start : start + self.FLUSH_RECORDS])

    async def remove(self, device_id: str) -> None:
        await self._deliver([Record(self._conn.topic_devices, None, device_id.encode())])

    async def _deliver(self, records: list[Record]) -> None:
        await self._producer.deliver_or_replace(records)


#: How far back the API reads the health topic when it starts: a device heard from in that time shows its last seen
#: at once; one heard from only before shows as not heard from until its next reading (docs/contracts.md).
HEALTH_REPLAY_MS = 10 * 60 * 1000


async def follow_health(conn: KafkaConnection, tracker: HealthTracker, clock: Callable[[], int] = now_ms) -> None:
    """Feed the stream workers' device-health entries (``devices.health.HealthBatch``) to ``tracker``, from
    ``HEALTH_REPLAY_MS`` ago. Runs until cancelled; reconnects with backoff."""

    async def run(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        since = clock() - HEALTH_REPLAY_MS
        ends = await consumer.end_offsets(tps)
        found = await consumer.offsets_for_times(dict.fromkeys(tps, since))
        for tp in tps:
            at = found.get(tp)
            if at is None:
                await consumer.seek_to_end(tp)  # nothing that recent: what comes next
            else:
                consumer.seek(tp, at.offset)
        while True:
            for tp, msgs in (await consumer.getmany(timeout_ms=1000)).items():
                end = ends.get(tp, 0)
                for m in msgs:
                    if m.offset < end and m.timestamp < since:
                        continue  # before the replay's start: a broker may seek earlier (Tansu in memory: the first)
                    try:
                        batch = HealthBatch.model_validate_json(m.value or b"")
                    except ValidationError:
                        logger.warning("device health: skipped an unreadable record at offset %d", m.offset)
                        continue
                    for seen in batch.devices:
                        tracker.reading(seen.device_id, seen.last_seen, seen.values)

    await follow_topic(conn.kafka_bootstrap, conn.topic_health, "device health", run, fetch_wait_ms=1000)
