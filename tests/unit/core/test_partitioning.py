"""Readings land on the partition Kafka's default partitioner gives their device id."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from core.kafka.partitioning import Partitioner, group_by_partition
from harness.builders import reading

device_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True)


@given(device_ids, st.integers(min_value=1, max_value=64))
def test_partition_matches_kafkas_default_partitioner(device_id: str, partitions: int) -> None:
    expected = DefaultPartitioner()(device_id.encode(), list(range(partitions)), list(range(partitions)))
    assert Partitioner(partitions).partition_of(device_id) == expected


def test_known_values_from_the_java_client() -> None:
    # murmur2 test vectors used by Apache Kafka's own Utils tests, as partition of 2**31-1 buckets.
    p = Partitioner(2**31 - 1)
    assert p.partition_of("21") == (-973932308 & 0x7FFFFFFF) % (2**31 - 1)
    assert p.partition_of("foobar") == (-790332482 & 0x7FFFFFFF) % (2**31 - 1)


@given(
    st.lists(st.tuples(st.sampled_from([f"d{i}" for i in range(30)]), st.integers(0, 10**6)), max_size=300),
    st.integers(1, 50),
)
def test_grouping_keeps_every_reading_in_device_order_within_record_limits(
    items: list[tuple[str, int]], max_per_record: int
) -> None:
    partitioner = Partitioner(4)
    readings = [reading(d, {"a": 1.0}, ts=1, seq=s) for d, s in items]
    records = group_by_partition(readings, partitioner, max_per_record)
    flat = [r for _, group in records for r in group]
    assert sorted(flat, key=id) == sorted(readings, key=id)
    for partition, group in records:
        assert 1 <= len(group) <= max_per_record
        assert all(partitioner.partition_of(r["device_id"]) == partition for r in group)
    for device in {d for d, _ in items}:
        assert [r["seq"] for r in flat if r["device_id"] == device] == [s for d, s in items if d == device]
