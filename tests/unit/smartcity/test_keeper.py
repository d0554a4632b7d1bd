"""The Kafka store's retention and compaction plan: what goes, what must stay."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.kafka.admin import ALERT_STATE_TOMBSTONES_MS, READINGS_RETENTION_MS, all_topics
from core.settings import KafkaConnection
from smartcity.stack.keeper import (
    DEFAULT_DELETE_RETENTION_MS,
    DEFAULT_RETENTION_MS,
    Batch,
    Policy,
    committed_offset,
    parse_batch_key,
    parse_offset_key,
    plan,
    policy,
)

NOW = 10_000_000_000
DELETE = Policy(retention_ms=3_600_000)
TRIM = Policy(retention_ms=3_600_000, trim_consumed=True)
COMPACT = Policy(compact=True, delete=False, retention_ms=None)


def batches(*spec: tuple[int, int]) -> list[Batch]:
    """(offset, age in ms) per batch object."""
    return [Batch(f"b{offset:03d}", offset, NOW - age) for offset, age in spec]


def test_topic_configs_become_a_policy() -> None:
    assert policy([]) == Policy(retention_ms=DEFAULT_RETENTION_MS)
    assert policy([{"name": "cleanup.policy", "value": "compact"}]).compact
    assert not policy([{"name": "cleanup.policy", "value": "compact"}], trim_consumed=True).trim_consumed
    both = policy([{"name": "cleanup.policy", "value": "compact,delete"}, {"name": "retention.ms", "value": "5"}])
    assert (both.compact, both.delete, both.retention_ms) == (True, True, 5)
    assert policy([{"name": "retention.ms", "value": "-1"}]).retention_ms is None


def test_the_alert_state_topic_drops_its_tombstones_after_an_hour() -> None:
    """What ``ensure_topics`` asks for is what the keeper applies: alerts.state's tombstones go after an hour, the
    devices' after the broker's default day (a device removed is rare, and its readers may be down longer)."""
    kafka = KafkaConnection()
    specs = {spec.name: spec for spec in all_topics(kafka)}
    as_created = {
        name: policy([{"name": k, "value": v} for k, v in spec.configs().items()]) for name, spec in specs.items()
    }
    assert as_created[kafka.topic_alert_state].compact
    assert as_created[kafka.topic_alert_state].delete_retention_ms == ALERT_STATE_TOMBSTONES_MS == 3_600_000
    assert as_created[kafka.topic_devices].delete_retention_ms == DEFAULT_DELETE_RETENTION_MS
    assert as_created[kafka.topic_readings].retention_ms == READINGS_RETENTION_MS


@pytest.mark.parametrize(
    ("rule", "spec", "committed", "gone"),
    [
        (DELETE, [(0, 7_200_000), (10, 7_000_000), (20, 1_000)], [], ["b000", "b010"]),
        (DELETE, [(0, 7_200_000), (10, 1_000), (20, 7_200_000)], [], ["b000"]),  # a prefix only
        (DELETE, [(0, 7_200_000)], [], []),  # never the newest
        (DELETE, [(0, 120_000), (10, 120_000), (20, 1_000)], [20], []),  # consumed, but not a trimmed topic
        (TRIM, [(0, 120_000), (10, 120_000), (20, 1_000)], [20], ["b000", "b010"]),
        (TRIM, [(0, 120_000), (10, 120_000), (20, 1_000)], [20, 10], ["b000"]),  # the slowest group decides
        (TRIM, [(0, 120_000), (10, 30_000), (20, 1_000)], [20], ["b000"]),  # within the grace: kept
        (TRIM, [(0, 120_000), (10, 120_000), (20, 1_000)], [], []),  # nobody consumes it: retention only
    ],
)
def test_delete_plan(rule: Policy, spec: list[tuple[int, int]], committed: list[int], gone: list[str]) -> None:
    assert plan(batches(*spec), committed, rule, NOW) == gone


def test_compaction_removes_objects_whose_every_record_was_superseded() -> None:
    found = batches((0, 9), (2, 8), (4, 7), (6, 6))
    found[0].records = [(0, b"a", False), (1, b"b", False)]
    found[1].records = [(2, b"a", False), (3, b"c", False)]  # c is never written again
    found[2].records = [(4, b"b", False), (5, b"a", False)]
    found[3].records = [(6, b"d", False)]
    assert plan(found, [], COMPACT, NOW) == ["b000"]


def test_a_tombstone_goes_after_delete_retention_but_never_the_newest_object() -> None:
    found = batches((0, 2 * 86_400_000), (1, 1_000), (2, 10))
    found[0].records = [(0, b"a", True)]
    found[1].records = [(1, b"b", True)]  # a fresh tombstone stays
    found[2].records = [(2, b"c", True)]
    assert plan(found, [], COMPACT, NOW) == ["b000"]
    found[2].written_ms = NOW - 2 * 86_400_000
    assert "b002" not in plan(found, [], COMPACT, NOW)


records_strategy = st.lists(
    st.lists(st.tuples(st.sampled_from([b"a", b"b", b"c", b"d"]), st.booleans()), min_size=1, max_size=4),
    min_size=1,
    max_size=12,
)


@given(records_strategy, st.integers(0, 3 * 86_400_000))
def test_compaction_keeps_every_keys_latest_record(spec: list[list[tuple[bytes, bool]]], age: int) -> None:
    found, offset = [], 0
    for i, entries in enumerate(spec):
        batch = Batch(f"b{i:03d}", offset, NOW - age + i)
        batch.records = [(offset + k, key, tomb) for k, (key, tomb) in enumerate(entries)]
        offset += len(entries)
        found.append(batch)
    gone = set(plan(found, [], COMPACT, NOW))
    assert found[-1].key not in gone
    latest = {key: (o, tomb, b.written_ms) for b in found for o, key, tomb in b.records}
    for batch in found:
        for o, key, _tomb in batch.records:
            last, tomb, written = latest[key]
            if o == last and not (tomb and written < NOW - COMPACT.delete_retention_ms):
                assert batch.key not in gone, f"{key!r}'s latest record at {o} was removed"


@given(st.lists(st.integers(0, 10_000_000), min_size=1, max_size=20), st.lists(st.integers(0, 400), max_size=3))
def test_delete_plan_is_a_prefix_and_spares_what_a_group_has_not_passed(ages: list[int], groups: list[int]) -> None:
    found = [Batch(f"b{i:03d}", i * 20, NOW - age) for i, age in enumerate(sorted(ages, reverse=True))]
    gone = plan(found, groups, Policy(retention_ms=None, trim_consumed=True), NOW)
    assert gone == [b.key for b in found[: len(gone)]]
    assert len(gone) < len(found)
    for i, batch in enumerate(found[: len(gone)]):
        assert groups
        assert found[i + 1].offset <= min(groups)
        assert batch.written_ms < NOW - 60_000


def test_keys_of_tansus_layout() -> None:
    where, offset = parse_batch_key(
        "clusters/tansu_cluster/topics/readings/partitions/0000000003/records/00000000000000000042.batch"
    ) or (None, None)
    assert where is not None
    assert (where.topic, where.partition, offset) == ("readings", 3, 42)
    assert parse_batch_key("clusters/c/topics/readings/partitions/0000000003/watermark.json") is None
    group = parse_offset_key("clusters/c/groups/consumers/smartcity-writer/offsets/readings/partitions/0000000001.json")
    assert group is not None
    assert (group.topic, group.partition) == ("readings", 1)
    assert committed_offset(b'{"offset":18,"leader_epoch":null}') == 18
    assert committed_offset(b"not json") is None
    assert committed_offset(b'{"offset":-1}') is None
