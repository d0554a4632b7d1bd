"""Merging small batch objects of kept topics: which runs, and a merged batch that holds every record as it was."""

from __future__ import annotations

import pytest
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from hypothesis import given
from hypothesis import strategies as st

from smartcity.stack.merging import Member, Unmergeable, merge, plan_runs

NOW = 1_795_564_800_000
OLD = NOW - 120_000

Record = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]  # (timestamp, key, value, headers)


def members(count: int, *, size: int = 500, written_ms: int = OLD, start: int = 0) -> list[Member]:
    return [Member(f"k{start + i:05d}", start + i * 2, size, written_ms + i) for i in range(count)]


def test_a_run_of_old_small_objects_is_merged_but_never_the_newest() -> None:
    found = members(20)
    assert plan_runs(found, NOW) == [found[:-1]]


def test_young_objects_end_the_planning_and_short_runs_wait() -> None:
    old, young = members(10), members(30, written_ms=NOW - 1_000, start=10)
    assert plan_runs(old + young, NOW) == [], "ten old ones: fewer than 16, and not waiting ten minutes yet"
    stale = members(10, written_ms=NOW - 700_000)
    assert plan_runs(stale + young, NOW) == [stale], "older than ten minutes: merged however few"


def test_large_objects_split_runs_and_runs_are_bounded() -> None:
    first, big, second = members(20), [Member("big", 40, 100_000, OLD)], members(20, start=50)
    assert plan_runs([*first, *big, *second, *members(1, start=90)], NOW) == [first, second]
    many = members(5_000)
    runs = plan_runs(many, NOW, max_objects=2_000)
    assert [len(r) for r in runs] == [2_000, 2_000, 999]
    assert [m for r in runs for m in r] == many[:-1]
    by_bytes = plan_runs(members(40, size=40_000), NOW, max_bytes=400_000, min_objects=2)
    assert [len(r) for r in by_bytes] == [10, 10, 10, 9]


def _stored(records: list[Record], *, transactional: bool = False) -> bytes:
    """A batch as Tansu stores it: the producer's batch, base offset 0."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=int(transactional), producer_id=7, producer_epoch=0,
        base_sequence=0, batch_size=2**31 - 1,
    )  # fmt: skip
    for i, (ts, key, value, headers) in enumerate(records):
        builder.append(i, ts, key, value, headers)
    return bytes(builder.build())


record_strategy = st.tuples(
    st.integers(min_value=NOW - 10**9, max_value=NOW),
    st.none() | st.binary(max_size=12),
    st.none() | st.binary(max_size=40),
    st.lists(st.tuples(st.text(max_size=5), st.binary(max_size=5)), max_size=2),
)


@given(st.lists(st.lists(record_strategy, min_size=1, max_size=5), min_size=1, max_size=12), st.integers(0, 10**6))
def test_a_merged_batch_holds_every_record_at_its_offset_as_it_was(batches: list[list[Record]], first: int) -> None:
    bodies, expected, offset = [], [], first
    for records in batches:
        bodies.append((offset, _stored(records)))
        expected += [(offset + i, *r) for i, r in enumerate(records)]
        offset += len(records)
    merged = DefaultRecordBatch(merge(bodies))
    assert merged.validate_crc()
    got = [(first + r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in merged]
    assert got == expected
    assert merged.last_offset_delta == offset - first - 1
    assert merged.producer_id == -1


def test_transactional_batches_stay_as_they_are() -> None:
    with pytest.raises(Unmergeable) as caught:
        merge([(0, _stored([(NOW, None, b"x", [])])), (1, _stored([(NOW, None, b"y", [])], transactional=True))])
    assert caught.value.offset == 1
