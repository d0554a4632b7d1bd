"""OffsetGaps: a fetch that skips offsets is fetched again; the records used are every offset, once, in order."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter

from core.kafka.offsets import OffsetGaps

TP = TopicPartition("readings", 0)


@dataclass(frozen=True)
class Rec:
    offset: int


class Broker:
    """One partition of ``size`` records. A fetch from ``position`` returns up to ``most`` records; while a planned
    hiccup lasts it leaves out ``skip`` records after the first ``at`` (0: it starts late), as Tansu does while a
    concurrent write is not yet visible."""

    def __init__(self, size: int, hiccups: dict[int, tuple[int, int, int]]) -> None:
        self.size = size
        self.hiccups = dict(hiccups)  # position -> (records skipped, fetches it lasts, records before the gap)
        self.position = 0

    def seek(self, partition: TopicPartition, offset: int) -> None:
        assert partition == TP
        self.position = offset

    def fetch(self, most: int) -> list[Rec]:
        start = self.position
        skip, lasts, at = self.hiccups.get(start, (0, 0, 0))
        offsets = list(range(start, self.size))
        if lasts:
            self.hiccups[start] = (skip, lasts - 1, at)
            offsets = offsets[:at] + offsets[at + skip :]
        records = [Rec(o) for o in offsets[:most]]
        if records:
            self.position = records[-1].offset + 1
        return records


def _gaps(patience: int = 50) -> tuple[OffsetGaps, Counter, Counter]:
    registry = CollectorRegistry()
    refetched = Counter("gaps", "", registry=registry)
    skipped = Counter("skipped", "", registry=registry)
    return OffsetGaps(refetched, skipped, patience=patience), refetched, skipped


def _drain(broker: Broker, gaps: OffsetGaps, most: int) -> list[int]:
    used: list[int] = []
    for _ in range(10 * broker.size + 100):
        if broker.position >= broker.size:
            break
        used += [r.offset for r in gaps.take(broker, TP, broker.fetch(most))]
    return used


@given(
    size=st.integers(1, 300),
    most=st.integers(1, 40),
    hiccups=st.dictionaries(
        st.integers(1, 299), st.tuples(st.integers(1, 5), st.integers(1, 10), st.integers(0, 5)), max_size=10
    ),
)
def test_transient_gaps_are_fetched_again_and_nothing_is_lost_or_doubled(
    size: int, most: int, hiccups: dict[int, tuple[int, int]]
) -> None:
    gaps, refetched, skipped = _gaps()
    used = _drain(Broker(size, hiccups), gaps, most)
    assert used == list(range(size))
    assert skipped._value.get() == 0
    assert refetched._value.get() <= sum(lasts for _, lasts, _ in hiccups.values())


def test_a_gap_that_never_fills_is_given_up_after_patience_and_counted() -> None:
    gaps, refetched, skipped = _gaps(patience=5)
    broker = Broker(100, {40: (3, 10_000, 0)})  # offsets 40 to 42 are never returned
    used = _drain(broker, gaps, most=10)
    assert used == [*range(40), *range(43, 100)]
    assert refetched._value.get() == 5
    assert skipped._value.get() == 3


def test_records_read_again_after_a_rewind_are_no_gap() -> None:
    gaps, refetched, _ = _gaps()
    broker = Broker(30, {})
    assert [r.offset for r in gaps.take(broker, TP, broker.fetch(20))] == list(range(20))
    broker.seek(TP, 5)  # a rebalance: back to the committed offset
    assert [r.offset for r in gaps.take(broker, TP, broker.fetch(20))] == list(range(5, 25))
    assert refetched._value.get() == 0
    assert gaps.expected(TP) == 25
