"""A reading published over MQTT arrives in Kafka, in the right partition, and bad input is refused with a reason."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka.partitioner import murmur2

from devices.directory import StaticDirectory
from ingest.partitioning import Partitioner
from ingest.settings import GatewaySettings
from tests.integration.conftest import GatewayFactory
from tests.kafka_util import consume, count_readings, readings_of, refused_of
from tests.mqtt_util import Collector, publish_all, publisher

pytestmark = pytest.mark.integration


def _reading(seq: int, value: float = 12.5) -> bytes:
    return json.dumps({"ts": 1763900000000 + seq, "seq": seq, "values": {"ch4_lel": value}}).encode()


async def test_reading_arrives_keyed_on_its_device_partition(
    gateway_settings: GatewaySettings,
    run_gateway: GatewayFactory,
    mqtt_url: str,
    kafka_bootstrap: str,
    unique: str,
) -> None:
    devices = [f"gas-{unique}-{i}" for i in range(40)]
    async with run_gateway(gateway_settings):
        with publisher(mqtt_url) as pub:
            await asyncio.to_thread(
                publish_all, pub, [(f"devices/{d}/telemetry", _reading(i)) for i, d in enumerate(devices)]
            )
        records = await consume(
            kafka_bootstrap, gateway_settings.topic_readings, lambda r: count_readings(r) >= len(devices)
        )
    batches = readings_of(records)
    partitioner = Partitioner(gateway_settings.readings_partitions)
    seen = set()
    for partition, key, batch in batches:
        assert key is not None
        assert (murmur2(key) & 0x7FFFFFFF) % gateway_settings.readings_partitions == partition
        for reading in batch.readings:
            assert partitioner.partition_of(reading.device_id) == partition
            seen.add(reading.device_id)
            assert reading.values == {"ch4_lel": 12.5}
            assert reading.ts == 1763900000000 + reading.seq
    assert seen == set(devices)
    # Many readings per record: 40 readings published at once must not become 40 records.
    assert len(batches) < len(devices)


async def test_malformed_message_gets_reason_on_errors_topic_and_refused_topic(
    gateway_settings: GatewaySettings,
    run_gateway: GatewayFactory,
    mqtt_url: str,
    kafka_bootstrap: str,
    unique: str,
) -> None:
    device = f"gas-{unique}"
    errors = Collector(mqtt_url, f"devices/{device}/errors")
    try:
        async with run_gateway(gateway_settings):
            with publisher(mqtt_url) as pub:
                await asyncio.to_thread(publish_all, pub, [(f"devices/{device}/telemetry", b"{not json")])
            got = await asyncio.to_thread(errors.wait_for, 1)
            refused = await consume(kafka_bootstrap, gateway_settings.topic_rejected, lambda r: len(r) >= 1)
    finally:
        errors.close()
    assert len(got) == 1
    body = json.loads(got[0][1])
    assert body["reason"] == "invalid_json"
    assert body["device_id"] == device
    assert body["accepted"] == 0
    [message] = refused_of(refused)
    assert message.raw == b"{not json"
    assert message.refusal.errors[0].reason == "invalid_json"


async def test_batch_with_one_bad_item_keeps_the_good_ones(
    gateway_settings: GatewaySettings,
    run_gateway: GatewayFactory,
    mqtt_url: str,
    kafka_bootstrap: str,
    unique: str,
) -> None:
    device = f"water-{unique}"
    batch = [
        {"seq": 1, "values": {"level_m": 2.5}},
        {"seq": 2, "values": {"level_m": "high"}},
        {"seq": 3, "values": {"level_m": 2.7}},
    ]
    errors = Collector(mqtt_url, f"devices/{device}/errors")
    try:
        async with run_gateway(gateway_settings):
            with publisher(mqtt_url) as pub:
                await asyncio.to_thread(publish_all, pub, [(f"devices/{device}/telemetry", json.dumps(batch).encode())])
            got = await asyncio.to_thread(errors.wait_for, 1)
            records = await consume(kafka_bootstrap, gateway_settings.topic_readings, lambda r: count_readings(r) >= 2)
    finally:
        errors.close()
    body = json.loads(got[0][1])
    assert body["accepted"] == 2
    assert body["errors"] == [
        {
            "reason": "bad_value_type",
            "detail": "values.level_m: must be a number or a boolean",
            "index": 1,
            "seq": 2,
        }
    ]
    stored = sorted(r.seq or 0 for _, _, b in readings_of(records) for r in b.readings)
    assert stored == [1, 3]


async def test_unregistered_device_is_refused(
    gateway_settings: GatewaySettings,
    run_gateway: GatewayFactory,
    mqtt_url: str,
    kafka_bootstrap: str,
    unique: str,
) -> None:
    known, stranger = f"fire-{unique}", f"fire-{unique}-x"
    errors = Collector(mqtt_url, f"devices/{stranger}/errors")
    try:
        async with run_gateway(gateway_settings, StaticDirectory([known])):
            with publisher(mqtt_url) as pub:
                await asyncio.to_thread(
                    publish_all,
                    pub,
                    [
                        (f"devices/{stranger}/telemetry", _reading(1)),
                        (f"devices/{known}/telemetry", _reading(2)),
                    ],
                )
            got = await asyncio.to_thread(errors.wait_for, 1)
            records = await consume(kafka_bootstrap, gateway_settings.topic_readings, lambda r: count_readings(r) >= 1)
            refused = await consume(kafka_bootstrap, gateway_settings.topic_rejected, lambda r: len(r) >= 1)
    finally:
        errors.close()
    assert json.loads(got[0][1])["reason"] == "unknown_device"
    assert {r.device_id for _, _, b in readings_of(records) for r in b.readings} == {known}
    assert [m.refusal.device_id for m in refused_of(refused)] == [stranger]
