"""A reading published over MQTT arrives in Kafka, in the right partition, and bad input is refused with a reason."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import pytest
from aiokafka.partitioner import murmur2

from core.kafka.partitioning import Partitioner
from devices.directory import DeviceDirectory, StaticDirectory
from harness.builders import telemetry
from ingest.settings import GatewaySettings
from tests.integration.conftest import GatewayFactory
from tests.kafka_util import Consumed, consume, count_readings, heartbeats_of, readings_of, refused_of
from tests.mqtt_util import Collector, publish_all, publisher

pytestmark = pytest.mark.integration


T0 = 1763900000000


def _reading(seq: int) -> bytes:
    """Reading ``seq`` of a device with a clock: stamped ``T0 + seq``."""
    return telemetry({"ch4_lel": 12.5}, ts=T0 + seq, seq=seq)


@dataclass
class Rig:
    """A gateway on the session's brokers, with this test's own topics, and ways to talk to it."""

    settings: GatewaySettings
    run_gateway: GatewayFactory
    mqtt_url: str
    bootstrap: str

    @asynccontextmanager
    async def running(self, directory: DeviceDirectory | None = None) -> AsyncIterator[None]:
        async with self.run_gateway(self.settings, directory):
            yield

    async def publish(self, messages: list[tuple[str, bytes]]) -> None:
        with publisher(self.mqtt_url) as pub:
            await asyncio.to_thread(publish_all, pub, messages)

    async def readings(self, at_least: int) -> list[Consumed]:
        return await consume(self.bootstrap, self.settings.topic_readings, lambda r: count_readings(r) >= at_least)

    async def refused(self, at_least: int) -> list[Consumed]:
        return await consume(self.bootstrap, self.settings.topic_rejected, lambda r: len(r) >= at_least)

    @contextmanager
    def errors_of(self, device: str) -> Iterator[Collector]:
        collector = Collector(self.mqtt_url, f"devices/{device}/errors")
        try:
            yield collector
        finally:
            collector.close()


@pytest.fixture
def rig(gateway_settings: GatewaySettings, run_gateway: GatewayFactory, mqtt_url: str, kafka_bootstrap: str) -> Rig:
    return Rig(gateway_settings, run_gateway, mqtt_url, kafka_bootstrap)


async def test_reading_arrives_keyed_on_its_device_partition(rig: Rig, unique: str) -> None:
    devices = [f"gas-{unique}-{i}" for i in range(40)]
    async with rig.running():
        await rig.publish([(f"devices/{d}/telemetry", _reading(i)) for i, d in enumerate(devices)])
        records = await rig.readings(len(devices))
    batches = readings_of(records)
    partitions = rig.settings.readings_partitions
    partitioner = Partitioner(partitions)
    seen = set()
    for partition, key, batch in batches:
        assert key is not None
        assert (murmur2(key) & 0x7FFFFFFF) % partitions == partition
        for reading in batch.readings:
            assert partitioner.partition_of(reading.device_id) == partition
            seen.add(reading.device_id)
            assert reading.values == {"ch4_lel": 12.5}
            assert reading.ts == T0 + reading.seq
    assert seen == set(devices)
    # Many readings per record: 40 readings published at once must not become 40 records.
    assert len(batches) < len(devices)


async def test_malformed_message_gets_reason_on_errors_topic_and_refused_topic(rig: Rig, unique: str) -> None:
    device = f"gas-{unique}"
    with rig.errors_of(device) as errors:
        async with rig.running():
            await rig.publish([(f"devices/{device}/telemetry", b"{not json")])
            got = await asyncio.to_thread(errors.wait_for, 1)
            refused = await rig.refused(1)
    assert len(got) == 1
    body = json.loads(got[0][1])
    assert body["reason"] == "invalid_json"
    assert body["device_id"] == device
    assert body["accepted"] == 0
    [message] = refused_of(refused)
    assert message.raw == b"{not json"
    assert message.refusal.errors[0].reason == "invalid_json"


async def test_batch_with_one_bad_item_keeps_the_good_ones(rig: Rig, unique: str) -> None:
    device = f"water-{unique}"
    batch = [
        {"seq": 1, "values": {"level_m": 2.5}},
        {"seq": 2, "values": {"level_m": "high"}},
        {"seq": 3, "values": {"level_m": 2.7}},
    ]
    with rig.errors_of(device) as errors:
        async with rig.running():
            await rig.publish([(f"devices/{device}/telemetry", json.dumps(batch).encode())])
            got = await asyncio.to_thread(errors.wait_for, 1)
            records = await rig.readings(2)
    body = json.loads(got[0][1])
    assert body["accepted"] == 2
    assert body["errors"] == [
        {"reason": "bad_value_type", "detail": "values.level_m: must be a number or a boolean", "index": 1, "seq": 2}
    ]
    stored = sorted(r.seq or 0 for _, _, b in readings_of(records) for r in b.readings)
    assert stored == [1, 3]


async def test_unregistered_device_is_refused(rig: Rig, unique: str) -> None:
    known, stranger = f"fire-{unique}", f"fire-{unique}-x"
    with rig.errors_of(stranger) as errors:
        async with rig.running(StaticDirectory([known])):
            await rig.publish(
                [(f"devices/{stranger}/telemetry", _reading(1)), (f"devices/{known}/telemetry", _reading(2))]
            )
            got = await asyncio.to_thread(errors.wait_for, 1)
            records = await rig.readings(1)
            refused = await rig.refused(1)
    assert json.loads(got[0][1])["reason"] == "unknown_device"
    assert {r.device_id for _, _, b in readings_of(records) for r in b.readings} == {known}
    assert [m.refusal.device_id for m in refused_of(refused)] == [stranger]


async def test_the_gateway_beats_on_every_partition_while_subscribed(
    gateway_settings: GatewaySettings, run_gateway: GatewayFactory, kafka_bootstrap: str
) -> None:
    """Empty batches tell the stream workers how far the pipeline into each partition has got (docs/rules.md)."""
    settings = gateway_settings.model_copy(update={"gateway_heartbeat_s": 0.2})
    async with run_gateway(settings):
        records = await consume(
            kafka_bootstrap,
            settings.topic_readings,
            lambda r: set(heartbeats_of(r)) == set(range(settings.readings_partitions)),
            timeout=10,
        )
    assert set(heartbeats_of(records)) == set(range(settings.readings_partitions))
    assert readings_of(records) == []
