"""The gateway's Kafka side: one aiokafka producer, flushes delivered whole or retried whole.

A flush is a list of records; ``deliver`` returns once Kafka has acknowledged all of them (``acks=all``), or raises
``KafkaUnavailable`` carrying a retry delay. A failed flush is resent whole, so a record may reach Kafka twice:
consumers drop duplicates by (device, seq). Our own batching replaces the producer's linger, so ``linger_ms`` is 0.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from smartcity.errors import KafkaUnavailable
from smartcity.kafka_admin import TopicSpec, ensure_topics
from smartcity.settings import KafkaConnection

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    value: bytes
    key: bytes
    partition: int | None = None


class FlushProducer:
    """Starts (and restarts) the producer, and recreates missing topics when a produce fails."""

    def __init__(self, conn: KafkaConnection, topics: list[TopicSpec], *, timeout_s: float = 10.0) -> None:
        self._conn = conn
        self._timeout_s = timeout_s
        self._topics = topics
        self._producer: AIOKafkaProducer | None = None
        # One repair at a time: concurrent CreateTopics for the same topic race inside some brokers (Tansu).
        self._repairing = asyncio.Lock()

    async def start(self) -> None:
        """Connect, retrying with backoff until Kafka answers, and make sure the topics exist."""
        delay = 0.5
        while True:
            try:
                await ensure_topics(self._conn.kafka_bootstrap, self._topics)
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._conn.kafka_bootstrap,
                    acks="all",
                    linger_ms=0,
                    compression_type=None if self._conn.kafka_compression == "none" else self._conn.kafka_compression,
                    max_request_size=4 * 1024 * 1024,
                    request_timeout_ms=int(self._timeout_s * 1000),
                    retry_backoff_ms=200,
                    metadata_max_age_ms=30_000,
                )
                await producer.start()
            except (KafkaError, KafkaUnavailable, OSError) as exc:
                logger.warning("Kafka %s not ready (%s); retrying in %.1f s", self._conn.kafka_bootstrap, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._producer = producer
            logger.info("connected to Kafka %s", self._conn.kafka_bootstrap)
            return

    async def deliver(self, records: list[Record]) -> None:
        """All records acknowledged by Kafka, or ``KafkaUnavailable``."""
        producer = self._producer
        if producer is None:
            raise KafkaUnavailable("producer not started", retry_after=0.5)
        try:
            async with asyncio.timeout(self._timeout_s):
                futures = [await producer.send(r.topic, r.value, key=r.key, partition=r.partition) for r in records]
                await asyncio.gather(*futures)
        except KafkaError as exc:
            raise KafkaUnavailable(f"Kafka produce failed: {exc!r}", retry_after=0.5) from exc
        except TimeoutError as exc:
            # aiokafka keeps batches for a topic the broker no longer knows without ever failing them; a deadline
            # of our own turns that into a retry (after which ``repair`` recreates the topic).
            raise KafkaUnavailable(f"Kafka did not acknowledge within {self._timeout_s:.0f} s") from exc

    async def partition_count(self, topic: str) -> int:
        """The topic's partition count from the producer's metadata (refreshed when missing)."""
        producer = self._producer
        if producer is None:
            raise KafkaUnavailable("producer not started", retry_after=0.5)
        try:
            partitions = await asyncio.wait_for(producer.partitions_for(topic), 10)
        except (KafkaError, TimeoutError) as exc:
            raise KafkaUnavailable(f"no metadata for topic {topic!r}: {exc!r}", retry_after=0.5) from exc
        return len(partitions)

    async def repair(self) -> None:
        """After a failure: recreate topics a restarted broker may have forgotten. Never raises."""
        if self._repairing.locked():
            return
        async with self._repairing:
            try:
                created = await ensure_topics(self._conn.kafka_bootstrap, self._topics, timeout_ms=3000)
            except KafkaUnavailable as exc:
                logger.debug("topic repair failed: %s", exc)
                return
        if created:
            logger.warning("Kafka had lost topics %s (broker restarted?); recreated them", ", ".join(created))

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
