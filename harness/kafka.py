"""Every record of a Kafka topic, from its beginning to its end at the moment of the call.

For accounting after a run (was every reading published in Kafka? when was a probe's record produced?): it reads
without a consumer group, commits nothing, and stops at the end offsets taken when it started, so it returns even
while producers keep writing.
"""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_topic(bootstrap: str, topic: str, keep: Callable[[int, bytes], None]) -> None:
    """Give ``keep`` (record timestamp in epoch ms, value) for every record of every partition of ``topic`` up to its
    end offset now, in offset order within each partition. A topic the broker does not know is read as partition 0."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    try:
        await consumer.topics()  # metadata, for the partitions
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    keep(record.timestamp, record.value)
    finally:
        await consumer.stop()
