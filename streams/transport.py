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
fetched, and puts back the read offsets the seek set; the records are fetched again from the committed offsets.

Faust takes a jump in offsets as normal (compaction, transaction markers) and reads on. On the topics named in
``install`` (readings and findings: neither compacted nor transactional) a jump means the broker skipped records
(smartcity/offsets.py), so those are fetched again before Faust sees what follows them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, ClassVar, cast

import aiokafka
from aiokafka import TopicPartition
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message

from smartcity.lag import ConsumerMetrics
from smartcity.offsets import OffsetGaps

SCHEME = "smartcity+kafka"


class _ConsumerThread(driver.AIOKafkaConsumerThread):
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
    _seeks = 0  # counted up at the start and at the end of every seek to the committed offsets: odd while seeking
    _sought: frozenset[TP] = frozenset()
    _after_seek: Mapping[TP, int | None] = {}

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        self._sought = frozenset(TP(tp.topic, tp.partition) for tp in committed)
        return committed

    async def perform_seek(self) -> None:
        self._seeks += 1
        try:
            await super().perform_seek()
            self._after_seek = {tp: self._read_offset.get(tp) for tp in self._sought}  # no await since it set them
        finally:
            self._seeks += 1

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's batch, cut short once a seek has happened since it was fetched.

        The fetcher loop sets the read offset of each record it was handed after handing it on, then asks for the
        next; so when a seek ended in between, the read offsets it set are put back here before anything else runs.
        While a seek is under way nothing is handed out; the seek sets the read offsets when it ends.
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
            if self._seeks != seeks and self._seeks % 2 == 0:
                self._read_offset.update(self._after_seek)
        finally:
            await batch.aclose()


class Transport(driver.Transport):
    Consumer = _Consumer


def install(
    fetch_wait_ms: int, gap_topics: frozenset[str] = frozenset(), gap_metrics: ConsumerMetrics | None = None
) -> None:
    """Register the scheme (idempotent); set the fetch wait, and the topics whose skipped offsets are fetched again
    (counted on ``gap_metrics``), for consumers created from now on."""
    _ConsumerThread.fetch_wait_ms = fetch_wait_ms
    _ConsumerThread.gap_topics = gap_topics
    if gap_metrics is not None:
        _ConsumerThread.gap_metrics = gap_metrics
    TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
