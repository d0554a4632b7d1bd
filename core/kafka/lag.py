"""Consumer lag as a Prometheus gauge: how many records a consumer still has to read, per topic.

Lag of a partition = its high watermark (as the consumer's last fetch saw it) minus the next offset the consumer will
read. The consumer code reports what it read (``read``); the collector works the figure out when Prometheus scrapes,
over the partitions the consumer holds at that moment, so a partition that moved to another member stops counting
here. A partition held but not read from yet counts as 0 (its position is unknown, and a scrape must not block on
a broker round trip); a consumer's first fetch of it returns records and so a position. Labels: topic only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.kafka.offsets import OffsetGaps


class TopicPartitionLike(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


class ConsumerLag(Collector):
    """``<name>{topic}``: records behind the high watermark, summed over the partitions held."""

    def __init__(
        self,
        name: str,
        documentation: str,
        *,
        assignment: Callable[[], Iterable[TopicPartitionLike]],
        highwater: Callable[[TopicPartitionLike], int | None],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self._assignment = assignment
        self._highwater = highwater
        self._next: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset to read
        registry.register(self)

    def read(self, topic: str, partition: int, offset: int) -> None:
        """A record at ``offset`` was read: the next one to read is ``offset + 1``."""
        key = (topic, partition)
        if offset + 1 > self._next.get(key, -1):
            self._next[key] = offset + 1

    def bind(
        self,
        assignment: Callable[[], Iterable[TopicPartitionLike]],
        highwater: Callable[[TopicPartitionLike], int | None],
    ) -> None:
        """Follow another consumer (a reconnect makes a new one); what was read stays known."""
        self._assignment, self._highwater = assignment, highwater

    def lag(self) -> dict[str, int]:
        by_topic: dict[str, int] = {}
        try:
            held = list(self._assignment())
        except Exception:  # noqa: BLE001 - a consumer between states: nothing to report, never a failed scrape
            return by_topic
        for tp in held:
            by_topic.setdefault(tp.topic, 0)
            high, position = self._highwater(tp), self._next.get((tp.topic, tp.partition))
            if high is not None and position is not None:
                by_topic[tp.topic] += max(high - position, 0)
        return by_topic

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=["topic"])
        for topic, records in sorted(self.lag().items()):
            family.add_metric([topic], records)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation, labels=["topic"])


def no_assignment() -> list[TopicPartitionLike]:
    return []


def no_highwater(_tp: TopicPartitionLike) -> int | None:
    return None


@dataclass(frozen=True, slots=True)
class ConsumerMetrics:
    """What every Kafka consumer of ours reports: its lag, and the fetches that skipped offsets (core/kafka/offsets.py),
    as ``<ns>_consumer_lag_records{topic}``, ``<ns>_fetch_gaps_total`` and ``<ns>_skipped_offsets_total``."""

    lag: ConsumerLag
    fetch_gaps: Counter
    skipped_offsets: Counter

    @classmethod
    def create(cls, ns: str, prometheus: CollectorRegistry) -> ConsumerMetrics:
        return cls(
            lag=ConsumerLag(
                f"{ns}_consumer_lag_records",
                "Records behind the newest offset, per topic, over the partitions this member holds",
                assignment=no_assignment,
                highwater=no_highwater,
                registry=prometheus,
            ),
            fetch_gaps=Counter(
                f"{ns}_fetch_gaps", "Fetches that skipped offsets and were fetched again", registry=prometheus
            ),
            skipped_offsets=Counter(
                f"{ns}_skipped_offsets",
                "Offsets the broker never returned, given up after many fetches",
                registry=prometheus,
            ),
        )

    def gaps(self) -> OffsetGaps:
        """A gap tracker for one consumer (a new consumer starts from its own positions)."""
        return OffsetGaps(self.fetch_gaps, self.skipped_offsets)

    def attach(self, consumer: AIOKafkaConsumer) -> OffsetGaps:
        """Follow ``consumer``: its lag from what its gap tracker hands out; use that tracker on every fetch."""
        self.lag.bind(consumer.assignment, consumer.highwater)
        return OffsetGaps(self.fetch_gaps, self.skipped_offsets, on_read=self.lag.read)
