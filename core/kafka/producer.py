"""One Kafka producer for flushes delivered whole or retried whole, shared by the services that write batches.

The gateway (readings), the alerts service (its state and messages) and the InfluxDB writer (refused points) all
write through ``FlushProducer``.

A flush is a list of records; ``deliver`` returns once Kafka has acknowledged all of them (``acks=all``), or raises
``KafkaUnavailable``. A failed flush is resent whole, so a record may reach Kafka twice: consumers drop duplicates
by (device, seq). Our own batching replaces the producer's linger, so ``linger_ms`` is 0.

After a failure the producer is replaced (``reset``), not reused: aiokafka keeps the batches of a failed flush and
would deliver them later, concurrently with our resend; and the replacement is made only after the topics are
checked and recreated. That order matters on the one-machine broker, which keeps topics in memory and, after a
restart, recreates a topic on any client's metadata request in a form it then cannot serve to consumers; a
CreateTopics racing that recreation leaves two offset counters for one log. With no producer alive while we
recreate the topics, nothing of ours races.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from core.backoff import Backoff, retry_after
from core.errors import KafkaUnavailable
from core.kafka.admin import TopicSpec, ensure_topics
from core.settings import KafkaConnection

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    value: bytes | None  # None: a tombstone (compacted topics)
    key: bytes
    partition: int | None = None


class FlushProducer:
    """Owns the producer: starts it once Kafka answers and the topics exist, replaces it after failures."""

    def __init__(self, conn: KafkaConnection, topics: list[TopicSpec], *, timeout_s: float = 10.0) -> None:
        self._conn = conn
        self._timeout_s = timeout_s
        self._topics = topics
        self._producer: AIOKafkaProducer | None = None
        self._resetting = asyncio.Lock()
        self._replacing: asyncio.Task[None] | None = None
        #: Bumped by every reset, so that several failed flushes cause one reset, not one each.
        self.generation = 0

    async def start(self) -> None:
        """Connect, retrying with backoff until Kafka answers; create missing topics first."""
        backoff = Backoff(0.5, 10.0)
        while True:
            producer: AIOKafkaProducer | None = None
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
                if producer is not None:
                    with contextlib.suppress(KafkaError, OSError):
                        await producer.stop()
                wait = backoff.next(retry_after(exc))
                logger.warning("Kafka %s not ready (%s); retrying in %.1f s", self._conn.kafka_bootstrap, exc, wait)
                await asyncio.sleep(wait)
                continue
            self._producer = producer
            logger.info("connected to Kafka %s", self._conn.kafka_bootstrap)
            return

    def _live(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise KafkaUnavailable("no Kafka producer (reconnecting)", retry_after=0.5)
        return self._producer

    async def partition_count(self, topic: str) -> int:
        """The topic's partition count from the producer's metadata."""
        try:
            partitions = await asyncio.wait_for(self._live().partitions_for(topic), self._timeout_s)
        except (KafkaError, TimeoutError) as exc:
            raise KafkaUnavailable(f"no metadata for topic {topic!r}: {exc!r}", retry_after=0.5) from exc
        return len(partitions)

    async def deliver(self, records: list[Record]) -> None:
        """All records acknowledged by Kafka, or ``KafkaUnavailable``."""
        producer = self._live()
        try:
            async with asyncio.timeout(self._timeout_s):
                futures = [await producer.send(r.topic, r.value, key=r.key, partition=r.partition) for r in records]
                await asyncio.gather(*futures)
        except KafkaError as exc:
            raise KafkaUnavailable(f"Kafka produce failed: {exc!r}", retry_after=0.5) from exc
        except AssertionError as exc:
            # aiokafka asserts a partition it does not know (the topic changed under us): new metadata fixes it.
            raise KafkaUnavailable(f"Kafka metadata changed during a flush: {exc!r}", retry_after=0.5) from exc
        except TimeoutError as exc:
            # aiokafka never fails batches for a topic the broker has forgotten; our own deadline does.
            raise KafkaUnavailable(f"Kafka did not acknowledge within {self._timeout_s:.0f} s") from exc

    async def deliver_or_replace(self, records: list[Record]) -> None:
        """``deliver`` once; after a failure the producer is replaced in the background and ``KafkaUnavailable`` is
        raised at once, so a caller that answers someone (an officer's request) answers now, not when Kafka is back."""
        generation = self.generation
        try:
            await self.deliver(records)
        except KafkaUnavailable:
            self._replacing = asyncio.get_running_loop().create_task(self.reset(generation))
            raise

    async def deliver_retrying(
        self,
        records: Callable[[], Awaitable[list[Record]]],
        backoff: Backoff,
        on_failure: Callable[[KafkaUnavailable, float], None],
    ) -> list[Record]:
        """``deliver`` until Kafka acknowledged: after each failure ``on_failure(error, wait)``, the wait (the backoff,
        never less than the error's ``retry_after``), then a replaced producer. ``records`` is built again for each
        attempt (a topic recreated meanwhile may have other partitions); the records Kafka took are returned."""
        while True:
            generation = self.generation
            try:
                built = await records()
                await self.deliver(built)
                return built
            except KafkaUnavailable as exc:
                wait = backoff.next(exc.retry_after)
                on_failure(exc, wait)
                await asyncio.sleep(wait)
                await self.reset(generation)

    async def reset(self, generation: int) -> None:
        """Replace the producer that failed at ``generation`` (once, however many flushes saw it fail)."""
        async with self._resetting:
            if generation != self.generation:
                return
            old, self._producer = self._producer, None
            if old is not None:
                # Close its connections before stopping it: ``stop`` alone flushes the batches it still holds,
                # and would deliver them to a restarted broker while we recreate the topics.
                with contextlib.suppress(KafkaError, TimeoutError, OSError):
                    await old.client.close()
                    await asyncio.wait_for(old.stop(), 2)
            await self.start()
            self.generation += 1

    async def stop(self) -> None:
        if self._replacing is not None:
            self._replacing.cancel()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
