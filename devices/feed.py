"""The registry's Kafka feed: device records published to the compacted ``devices`` topic, and readings followed
for device health.

``DevicePublisher`` writes a record per change (key = device id, value = the record's JSON; a deletion is a
tombstone, value ``None``) and can republish everything, which the one-machine stack does at start because its
broker forgets. Every service reads the topic back through ``devices.directory.KafkaDirectory``.
``follow_readings`` feeds each new reading to the device-health tracker.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from core.contracts import ReadingBatch
from core.contracts.device import Device
from core.kafka.admin import devices_topic, ensure_topics
from core.kafka.consumer import follow_topic
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

    await follow_topic(conn.kafka_bootstrap, conn.topic_readings, "device health", run)
