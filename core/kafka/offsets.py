"""Offset gaps: a fetch that skips records is fetched again, never taken as it is.

Our topics of readings and findings are neither compacted nor transactional, so their offsets are contiguous: a
consumer that reads offset 1501 and then 1503 of a partition was not shown 1502. Apache Kafka never does that (a
fetch returns records up to the high watermark only). The one-machine broker, Tansu, sometimes does while two
producers append to the same partition at once: it answers with the records after one whose write is not visible
yet. Measured with two gateways: 4 readings of about 130,000 were never read by a consumer tailing the topic, while
a read from the beginning later found them. ``OffsetGaps`` notices a gap, keeps the records before it, and moves the
consumer back to the first missing offset so the next fetch asks for it again. A gap that is still there after
``patience`` fetches is taken as real (logged and counted), so a broker that truly lost records cannot stall us.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

from aiokafka import TopicPartition
from prometheus_client import Counter

logger = logging.getLogger(__name__)


class _Record(Protocol):
    @property
    def offset(self) -> int: ...


R = TypeVar("R", bound=_Record)


class _Seeker(Protocol):
    def seek(self, partition: TopicPartition, offset: int) -> None: ...


class OffsetGaps:
    """Per consumer: the next offset expected of each partition, and how often a gap was fetched again."""

    def __init__(
        self,
        refetched: Counter,
        skipped: Counter,
        *,
        patience: int = 50,
        on_read: Callable[[str, int, int], None] | None = None,
    ) -> None:
        """``on_read(topic, partition, offset)`` hears of the last record ``take`` hands out (consumer lag)."""
        self._on_read = on_read
        self._refetched = refetched
        self._skipped = skipped
        self._patience = patience
        self._next: dict[TopicPartition, int] = {}
        self._tries: dict[tuple[TopicPartition, int], int] = {}

    def expected(self, tp: TopicPartition) -> int | None:
        """The next offset of ``tp`` this consumer should read, if it has read any."""
        return self._next.get(tp)

    def take(self, consumer: _Seeker, tp: TopicPartition, records: list[R]) -> list[R]:
        """The records to use now. On a gap: those before it, and ``consumer`` is moved back to the first missing
        offset. Records before the expected offset (read again after a rebalance or a restart) are no gap."""
        if not records:
            return records
        expected = self._next.get(tp)
        for i, record in enumerate(records):
            want = expected if i == 0 else records[i - 1].offset + 1
            if want is None or record.offset <= want:
                continue
            tries = self._tries.get((tp, want), 0) + 1
            if tries <= self._patience:
                self._tries[(tp, want)] = tries
                self._refetched.inc()
                consumer.seek(tp, want)
                self._next[tp] = want
                return self._read(tp, records[:i])
            self._tries.pop((tp, want), None)
            self._skipped.inc(record.offset - want)
            logger.error(
                "%s[%d]: offsets %d to %d were never returned by the broker after %d fetches; going on without them",
                tp.topic,
                tp.partition,
                want,
                record.offset - 1,
                self._patience,
            )
        self._next[tp] = records[-1].offset + 1
        if self._tries:
            self._tries = {k: v for k, v in self._tries.items() if k[0] != tp or k[1] >= self._next[tp]}
        return self._read(tp, records)

    def _read(self, tp: TopicPartition, records: list[R]) -> list[R]:
        if records and self._on_read is not None:
            self._on_read(tp.topic, tp.partition, records[-1].offset)
        return records
