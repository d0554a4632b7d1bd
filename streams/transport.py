"""Faust's aiokafka transport with a configurable fetch wait, and fetches that skip offsets fetched again.

Faust 0.15 builds its consumer with ``fetch_max_wait_ms=1500`` and no setting to change it. A broker answers a
fetch when data arrives or when that wait ends; Tansu answers only when the wait ends, so on the one-machine stack
every quiet-topic hop (a finding to the site agent, a clock tick) would cost 1.5 s. This transport sets the wait
from ``streams_fetch_wait_ms`` before the consumer starts. It is selected by the broker URL scheme ``smartcity+kafka``.

Faust's fetcher and its seek to the committed offsets after a rebalance race (faust-streaming 0.15): a batch fetched
before the seek goes on being handed out after it, and each record it hands out moves Faust's read offset past what
it will hand out again. Faust drops records below its read offset, so the records between the committed offset and
the end of that stale batch were never processed: a stream worker restarted after SIGKILL skipped what was written
while it was down (found by the fault suite). ``_Consumer`` stops a batch once a seek has happened since it was
asked for, and seeks to the committed offsets again; the records are fetched again from there.

Faust's table recovery reads each changelog to the end offsets ListOffsets gives and drops what lies past them;
Tansu's are a floor (``core.kafka.reading``), so ``_highwaters`` reads exact ones from a fetch.

Faust takes a jump in offsets as normal (compaction, transaction markers) and reads on. On the topics named in
``install`` (readings and findings: neither compacted nor transactional) a jump means the broker skipped records
(core/kafka/offsets.py), so those are fetched again before Faust sees what follows them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, ClassVar, cast

import aiokafka
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message

from core.kafka.lag import ConsumerMetrics
from core.kafka.offsets import OffsetGaps
from core.kafka.reading import exact_end_offsets

logger = logging.getLogger(__name__)

SCHEME = "smartcity+kafka"


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    bootstrap: ClassVar[str | None] = None
    fetch_wait_ms: ClassVar[int] = 50
    gap_topics: ClassVar[frozenset[str]] = frozenset()
    gap_metrics: ClassVar[ConsumerMetrics | None] = None
    _gaps: OffsetGaps | None = None

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_wait_ms  # read by the fetcher when the consumer starts
        if self.gap_metrics is not None:  # one per consumer: a new consumer starts from its own positions
            self._gaps = self.gap_metrics.gaps()
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        """The end offsets Faust's table recovery reads the changelogs to: exact ones, from a fetch
        (``core.kafka.reading.exact_end_offsets``). Faust asks ListOffsets, which Tansu answers with the first offset
        of a partition's last batch plus one; recovery then stopped inside the last batch of a changelog and dropped
        the records after that offset, the newest rule states among them (found by the power-cut test: an alarm
        raised just before the cut was not there after it, so its clearing reading cleared nothing)."""
        if self.consumer.in_transaction or self.bootstrap is None or not partitions:
            return await super()._highwaters(partitions)
        ends = await exact_end_offsets(self.bootstrap, [TopicPartition(tp.topic, tp.partition) for tp in partitions])
        return {TP(tp.topic, tp.partition): end for tp, end in ends.items()}

    async def _fetch_records(
        self,
        consumer: aiokafka.AIOKafkaConsumer,
        active_partitions: set[TP],
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        fetched = await super()._fetch_records(consumer, active_partitions, timeout=timeout, max_records=max_records)
        gaps = self._gaps
        if gaps is None:
            return fetched
        out = {}
        for tp, records in fetched.items():
            if tp.topic in self.gap_topics:
                records = gaps.take(consumer, TopicPartition(tp.topic, tp.partition), records)
            if records:
                out[tp] = records
        return out


class _Consumer(driver.Consumer):
    _seeks = 0  # counted up at the start and at the end of every seek to the committed offsets

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        self._seeks += 1
        try:
            await super().perform_seek()
        finally:
            self._seeks += 1

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's batch, cut short once a seek to the committed offsets has begun or ended since it was asked for,
        and then the consumer seeks to the committed offsets again.

        Such a batch may hold records fetched from before the seek, and the fetcher loop moves the read offsets over
        whatever it is handed, so what follows the seek could be dropped as already read; records fetched after the
        seek moved the fetch positions past themselves, so cutting them off alone would skip them. Seeking again puts
        the read offsets and the fetch positions back in step at the committed offsets: records after those may be
        processed twice (findings and rule state take repeats), none is skipped. The fetcher loop sets the read
        offset of a record after handing it on, before asking for the next, so that is checked before each record
        and after the last.
        """
        seeks = self._seeks
        batch = cast(AsyncGenerator[tuple[TP, Message], None], super().getmany(timeout))
        try:
            async for tp, message in batch:
                if self._seeks != seeks:
                    break
                yield tp, message
                if self._seeks != seeks:
                    break
        finally:
            await batch.aclose()
        if self._seeks != seeks:
            try:
                await self.perform_seek()
            except (KafkaError, TimeoutError) as exc:  # a rebalance under way: it seeks when it ends
                logger.warning("seek to the committed offsets after a cut batch failed: %r", exc)
            # Faust counts offsets it saw jumped over as done (for compacted topics); everything after the committed
            # offsets is read again now, so a jump it saw in the cut batch must not let a commit pass unread records.
            self._gap.clear()


class Transport(driver.Transport):
    Consumer = _Consumer


def install(
    fetch_wait_ms: int,
    gap_topics: frozenset[str] = frozenset(),
    gap_metrics: ConsumerMetrics | None = None,
    bootstrap: str | None = None,
) -> None:
    """Register the scheme (idempotent); set the fetch wait, and the topics whose skipped offsets are fetched again
    (counted on ``gap_metrics``), for consumers created from now on; with ``bootstrap``, recovery's end offsets are
    read from a fetch."""
    _ConsumerThread.fetch_wait_ms = fetch_wait_ms
    _ConsumerThread.bootstrap = bootstrap
    _ConsumerThread.gap_topics = gap_topics
    if gap_metrics is not None:
        _ConsumerThread.gap_metrics = gap_metrics
    TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
