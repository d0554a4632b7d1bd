"""The agents' logic without Faust: which states are saved when, in which buckets, and reloaded after a restart."""

from __future__ import annotations

from core.kafka.partitioning import Partitioner
from rules.engine import Engine
from streams.processor import RuleProcessor
from tests.unit.rules.helpers import DEFAULT, T0, device, reading

DEVICES = {f"gas-{i}": device(f"gas-{i}") for i in range(50)}


def processor(checkpoint_s: float = 10) -> RuleProcessor:
    return RuleProcessor(
        Engine(DEFAULT), DEVICES.get, Partitioner(4), checkpoint_s=checkpoint_s, buckets_per_partition=4
    )


def test_an_alarm_change_is_saved_at_once_and_the_rest_at_the_checkpoint() -> None:
    proc, table = processor(), {}
    quiet = [reading({"ch4_lel": 1.0}, 0, d) for d in DEVICES]
    batch = [*quiet, reading({"ch4_lel": 60.0}, 1, "gas-7")]
    findings, now = proc.readings(batch, 0, T0, table)
    assert [f.key for f in findings] == ["gas-7:gas.ch4"]
    assert now == {"gas-7"}
    assert proc.checkpoint_due(0, T0) == set()  # the first record starts the clock
    assert proc.checkpoint_due(0, T0 + 5_000) == set()
    due = proc.checkpoint_due(0, T0 + 10_000)
    assert due == set(DEVICES) - {"gas-7"}
    assert proc.checkpoint_due(0, T0 + 20_000) == set()  # nothing changed since


def test_bucket_writes_group_devices_and_keep_the_others_in_the_bucket() -> None:
    proc, table = processor(), {}
    proc.readings([reading({"ch4_lel": 1.0}, 0, d) for d in DEVICES], 0, T0, table)
    writes = proc.bucket_writes(set(DEVICES), table)
    assert len(writes) <= 16  # 4 partitions x 4 buckets
    assert sum(len(b) for b in writes.values()) == len(DEVICES)
    assert all(k == proc.bucket_of(d) for k, b in writes.items() for d in b)
    table.update(writes)
    one = proc.bucket_of("gas-3")
    again = proc.bucket_writes({"gas-3"}, table)
    assert set(again[one]) == set(table[one])  # rewriting one device keeps its bucket neighbours


def test_a_new_worker_resumes_from_the_table() -> None:
    first, table = processor(), {}
    findings, save = first.readings([reading({"ch4_lel": 30.0}, 0, "gas-1")], 0, T0, table)
    assert [f.event.value for f in findings] == ["raised"]
    table.update(first.bucket_writes(save, table))
    second = processor()  # another process: nothing in memory
    findings, _ = second.readings([reading({"ch4_lel": 55.0}, 10, "gas-1")], 0, T0, table)
    assert [(f.event.value, f.level.value) for f in findings] == [("escalated", "red")]


def test_forgetting_partitions_drops_their_cached_states() -> None:
    proc, table = processor(), {}
    proc.readings([reading({"ch4_lel": 1.0}, 0, d) for d in DEVICES], 0, T0, table)
    part = proc.partitioner.partition_of("gas-1")
    proc.forget_partitions({part})
    assert all(proc.partitioner.partition_of(d) != part for d in proc._states)
    assert len(proc) < len(DEVICES)


def test_tick_raises_offline_for_registered_devices_of_its_partition_only() -> None:
    proc, table = processor(), {}
    part = proc.partitioner.partition_of("gas-1")
    mine = {d for d in DEVICES if proc.partitioner.partition_of(d) == part}
    assert proc.tick(part, DEVICES, T0, table) == ([], set())  # nothing arrived on the partition: no evidence
    proc.advance(part, T0)
    _, saved = proc.tick(part, DEVICES, T0, table)
    assert saved == mine  # first sight of a never-heard device is saved (its "since")
    proc.advance(part, T0 + 31_000)
    findings, _ = proc.tick(part, DEVICES, T0 + 31_000, table)
    assert {f.device_id for f in findings} == mine
    assert {f.rule for f in findings} == {"device.offline"}


def test_a_stalled_pipeline_declares_no_device_offline() -> None:
    """Silence is measured on the partition's stream time: with nothing arriving (gateway or Kafka down), however
    long the wall clock runs, no offline storm; when records flow again, the silent devices are found."""
    proc, table = processor(), {}
    part = proc.partitioner.partition_of("gas-1")
    proc.readings(
        [reading({"ch4_lel": 1.0}, 0, d) for d in DEVICES if proc.partitioner.partition_of(d) == part], part, T0, table
    )
    assert proc.tick(part, DEVICES, T0 + 3_600_000, table)[0] == []  # an hour of wall clock, no records
    proc.advance(part, T0 + 31_000)  # a heartbeat: the pipeline is alive, and the devices said nothing
    findings, _ = proc.tick(part, DEVICES, T0 + 3_600_000, table)
    assert {f.rule for f in findings} == {"device.offline"}
    assert all(f.detected_at == T0 + 3_600_000 and f.ts == T0 + 31_000 for f in findings)
