"""The Faust agents in Faust's own test context (no broker): decode, call the rules, save state, send."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from core.contracts.device import Device
from core.contracts.finding import Finding
from core.kafka.partitioning import Partitioner
from harness.builders import reading
from streams.app import Streams, build
from streams.metrics import StreamMetrics
from streams.settings import StreamsSettings
from tests.unit.rules.helpers import T0, device

pytestmark = pytest.mark.asyncio(loop_scope="function")


@dataclass
class FixedRegistry:
    devices: dict[str, Device]
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    late: dict[str, Device] = field(default_factory=dict)  # registered, not yet read from the registry's topic
    catch_ups: int = 0

    async def start(self) -> None:
        self.ready.set()

    async def catch_up(self, timeout_s: float = 10.0) -> bool:
        self.catch_ups += 1
        self.devices.update(self.late)
        self.late.clear()
        return True

    def get(self, device_id: str) -> Device | None:
        return self.devices.get(device_id)

    def records(self) -> dict[str, Device]:
        return self.devices


@dataclass
class Rig:
    streams: Streams
    sent: list[Finding]
    now: list[int]
    partitions: Partitioner

    def batch(self, *readings: tuple[str, dict[str, float | bool], int]) -> bytes:
        return json.dumps(
            {
                "v": 1,
                "readings": [reading(d, v, ts=T0 + at) for d, v, at in readings],
            }
        ).encode()


@pytest.fixture
async def rig(tmp_path: Path) -> Rig:
    settings = StreamsSettings(
        kafka_bootstrap="127.0.0.1:1", streams_app_id="agents-test", streams_data_dir=tmp_path, streams_checkpoint_s=60
    )
    registry = FixedRegistry({"gas-1": device("gas-1", interval_s=1), "gas-2": device("gas-2")})
    registry.ready.set()
    sent: list[Finding] = []
    now = [T0]

    async def sink(findings: list[Finding]) -> None:
        sent.extend(findings)

    streams = build(settings, StreamMetrics.create(CollectorRegistry()), registry, sink=sink, clock=lambda: now[0])
    return Rig(streams, sent, now, Partitioner(settings.readings_partitions))


async def test_a_reading_record_becomes_findings_and_saved_state(rig: Rig) -> None:
    table = rig.streams.app.tables["rule-state"]
    partition = rig.partitions.partition_of("gas-1")
    async with rig.streams.agents["evaluate"].test_context() as agent:
        await agent.put(rig.batch(("gas-1", {"ch4_lel": 60.0}, 0)), key=b"gas-1", partition=partition)
        await agent.put(rig.batch(("gas-1", {"ch4_lel": 3.0}, 1000)), key=b"gas-1", partition=partition)
    assert [(f.key, f.event.value, f.level.value) for f in rig.sent] == [
        ("gas-1:gas.ch4", "raised", "red"),
        ("gas-1:gas.ch4", "cleared", "red"),
    ]
    bucket = rig.streams.processor.bucket_of("gas-1")
    assert bucket.startswith(f"{partition}:")
    assert json.loads(table[bucket]["gas-1"])[3] == T0 + 1000  # the saved state's newest event time
    # The changelog record goes to the readings partition the device hashes to (co-partitioned state).
    changelog = [
        m for m in rig.streams.app.producer.buffer.pending._queue if "rule-state" in m.message.channel.get_topic_name()
    ]  # type: ignore[attr-defined]
    assert {m.message.partition for m in changelog} == {partition}


async def test_an_unreadable_record_is_skipped_and_counted(rig: Rig) -> None:
    async with rig.streams.agents["evaluate"].test_context() as agent:
        await agent.put(b"not json at all", key=b"x", partition=0)
        await agent.put(rig.batch(("gas-2", {"ch4_lel": 30.0}, 0)), key=b"gas-2", partition=0)
    assert rig.streams.metrics.undecodable._value.get() == 1  # type: ignore[attr-defined]
    assert [f.rule for f in rig.sent] == ["gas.ch4"]


async def test_a_device_registered_a_moment_ago_is_evaluated_under_its_record(rig: Rig) -> None:
    """The worker has not read the registration yet: it catches up with the registry before evaluating."""
    registry = rig.streams.directory
    assert isinstance(registry, FixedRegistry)
    registry.late["gas-3"] = device("gas-3", site="site-new")
    async with rig.streams.agents["evaluate"].test_context() as agent:
        await agent.put(rig.batch(("gas-3", {"ch4_lel": 30.0}, 0)), key=b"gas-3", partition=0)
        await agent.put(rig.batch(("gas-1", {"ch4_lel": 3.0}, 0)), key=b"gas-1", partition=0)
    assert [(f.key, f.level.value, f.site_id) for f in rig.sent] == [("gas-3:gas.ch4", "orange", "site-new")]
    assert registry.catch_ups == 1  # only for the record with a device it did not know


async def test_a_tick_finds_a_device_that_never_spoke(rig: Rig) -> None:
    partition = rig.partitions.partition_of("gas-1")
    processor = rig.streams.processor
    async with rig.streams.agents["tick"].test_context() as agent:
        await agent.put(b"tick", partition=partition)  # no record on the partition yet: no evidence, no check
        processor.advance(partition, T0)  # a heartbeat or reading: the pipeline has got to T0
        await agent.put(b"tick", partition=partition)
        processor.advance(partition, T0 + 3_500)  # three intervals of 1 s and a half later, still silent
        await agent.put(b"tick", partition=partition)
    assert [(f.key, f.event.value) for f in rig.sent] == [("gas-1:device.offline", "raised")]


async def test_site_findings_are_correlated_by_the_site_agent(rig: Rig) -> None:
    async with rig.streams.agents["evaluate"].test_context() as agent:
        for name in ("gas-1", "gas-2"):
            await agent.put(
                rig.batch((name, {"ch4_lel": 30.0}, 0)), key=name.encode(), partition=rig.partitions.partition_of(name)
            )
    device_findings = list(rig.sent)
    assert {f.key for f in device_findings} == {"gas-1:gas.ch4", "gas-2:gas.ch4"}
    rig.sent.clear()
    async with rig.streams.agents["correlate"].test_context() as agent:
        for f in device_findings:
            [site_key] = rig.streams.sites.routes(f)
            await agent.put(f.model_dump_json().encode(), key=site_key, partition=0)
    [site] = rig.sent
    assert (site.key, site.level.value, site.confirmed) == ("site:site-a:gas.site", "red", True)
    assert rig.streams.app.tables["site-state"]["site:site-a:gas.site"]


async def test_an_alarm_state_is_saved_once_its_finding_is_delivered_and_the_next_records_do_not_wait(
    tmp_path: Path,
) -> None:
    settings = StreamsSettings(
        kafka_bootstrap="127.0.0.1:1",
        streams_app_id="agents-test",
        streams_data_dir=tmp_path,
        streams_checkpoint_s=0.001,
    )
    registry = FixedRegistry({"gas-1": device("gas-1", interval_s=1)})
    registry.ready.set()
    deliveries: list[asyncio.Future[None]] = []

    async def slow_kafka(findings: list[Finding]) -> asyncio.Future[None]:
        deliveries.append(asyncio.get_running_loop().create_future())
        return deliveries[-1]

    now = [T0]
    streams = build(
        settings, StreamMetrics.create(CollectorRegistry()), registry, sink=slow_kafka, clock=lambda: now[0]
    )
    rig = Rig(streams, [], now, Partitioner(settings.readings_partitions))
    table = streams.app.tables["rule-state"]
    partition, bucket = rig.partitions.partition_of("gas-1"), streams.processor.bucket_of("gas-1")
    async with streams.agents["evaluate"].test_context() as agent:
        await agent.put(rig.batch(("gas-1", {"ch4_lel": 60.0}, 0)), key=b"gas-1", partition=partition)
        now[0] += 1000  # a checkpoint is due: it must not save the alarm before its finding arrived
        await agent.put(rig.batch(("gas-1", {"ch4_lel": 61.0}, 1000)), key=b"gas-1", partition=partition)
        assert len(deliveries) == 1  # the second record was evaluated while the first's finding was on its way
        assert bucket not in table  # and nothing of gas-1 saved yet
        deliveries[0].set_result(None)
        await agent.put(rig.batch(("gas-1", {"ch4_lel": 62.0}, 2000)), key=b"gas-1", partition=partition)
    saved = json.loads(table[bucket]["gas-1"])
    assert saved[3] >= T0 + 1000  # delivered: the alarm state, as of the records evaluated, saved
