"""Faust's aiokafka transport with a configurable fetch wait, and fetches that skip offsets fetched again.

Faust 0.15 builds its consumer with ``fetch_max_wait_ms=1500`` and no setting to change it. A broker answers a
fetch when data arrives or when that wait ends; Tansu answers only when the wait ends, so on the one-machine stack
every quiet-topic hop (a finding to the site agent, a clock tick) would cost 1.5 s. This transport sets the wait
from ``streams_fetch_wait_ms`` before the consumer starts. It is selected by the broker URL scheme ``smartcity+kafka``.

Faust takes a jump in offsets as normal (compaction, transaction markers) and reads on. On the topics named in
``install`` (readings and findings: neither compacted nor transactional) a jump means the broker skipped records
(smartcity/offsets.py), so those are fetched again before Faust sees what follows them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import aiokafka
from aiokafka import TopicPartition
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

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
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


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
