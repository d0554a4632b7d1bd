"""The registry on Kafka: the gateway's directory follows creations and deletions within seconds."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka import AIOKafkaProducer

from core.clock import now_ms
from core.kafka.admin import TopicSpec, ensure_topics
from devices.directory import KafkaDirectory
from devices.feed import DevicePublisher, follow_health
from devices.health import HealthBatch, HealthSeen, HealthTracker
from harness import builders
from ingest.settings import GatewaySettings
from tests.integration.conftest import GatewayFactory
from tests.kafka_util import consume, count_readings, readings_of
from tests.mqtt_util import Collector, publish_all, publisher
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def test_directory_follows_creations_and_deletions(gateway_settings: GatewaySettings, unique: str) -> None:
    conn = gateway_settings.model_copy(update={"topic_devices": f"devices.{unique}"})
    feed = DevicePublisher(conn)
    await feed.start()
    await feed.publish([builders.device(f"gas-{unique}-{i}") for i in range(100)])
    directory = KafkaDirectory(conn)
    await directory.start()
    try:
        await asyncio.wait_for(directory.ready.wait(), 20)
        assert len(directory) == 100
        assert directory.is_registered(f"gas-{unique}-7")
        await feed.publish([builders.device(f"gas-{unique}-new")])
        await feed.remove(f"gas-{unique}-7")
        assert await eventually(lambda: directory.is_registered(f"gas-{unique}-new")), "a creation did not arrive"
        assert await eventually(lambda: not directory.is_registered(f"gas-{unique}-7")), "a deletion did not arrive"
    finally:
        await directory.stop()
        await feed.stop()


async def test_catch_up_sees_a_registration_the_moment_kafka_acknowledged_it(
    gateway_settings: GatewaySettings, unique: str
) -> None:
    """Read-your-writes: right after the publish returns, ``catch_up`` and the device is known (50 times over)."""
    conn = gateway_settings.model_copy(update={"topic_devices": f"devices.{unique}"})
    feed = DevicePublisher(conn)
    await feed.start()
    directory = KafkaDirectory(conn, keep_records=True)
    await directory.start()
    try:
        await asyncio.wait_for(directory.ready.wait(), 20)
        late = 0
        for i in range(50):
            device = f"gas-{unique}-{i}"
            await feed.publish([builders.device(device)])
            late += not directory.is_registered(device)
            assert await directory.catch_up(10)
            assert directory.is_registered(device), f"round {i}"
            assert directory.get(device) is not None, f"round {i}"
            if i % 10 == 9:  # a removal is read-your-writes too
                await feed.remove(device)
                assert await directory.catch_up(10)
                assert not directory.is_registered(device)
        # Concurrent callers share rounds, and each sees what was written before it called.
        devices = [f"gas-{unique}-c{i}" for i in range(20)]
        await feed.publish([builders.device(d) for d in devices])
        assert all(await asyncio.gather(*(directory.catch_up(10) for _ in devices)))
        assert all(directory.is_registered(d) for d in devices)
    finally:
        await directory.stop()
        await feed.stop()
    assert late > 0, "every registration had arrived before the check: this test did not test catch_up"


async def test_gateway_refuses_unregistered_and_accepts_a_device_registered_while_it_runs(
    gateway_settings: GatewaySettings,
    run_gateway: GatewayFactory,
    mqtt_url: str,
    kafka_bootstrap: str,
    unique: str,
) -> None:
    settings = gateway_settings.model_copy(update={"topic_devices": f"devices.{unique}"})
    device = f"gas-{unique}"
    feed = DevicePublisher(settings)
    await feed.start()
    directory = KafkaDirectory(settings)
    await directory.start()
    errors = Collector(mqtt_url, f"devices/{device}/errors")
    body = builders.telemetry({"ch4_lel": 3.5}, seq=1)
    try:
        await asyncio.wait_for(directory.ready.wait(), 20)
        async with run_gateway(settings, directory):
            with publisher(mqtt_url) as pub:
                await asyncio.to_thread(publish_all, pub, [(f"devices/{device}/telemetry", body)])
                got = await asyncio.to_thread(errors.wait_for, 1)
                assert json.loads(got[0][1])["reason"] == "unknown_device"
                await feed.publish([builders.device(device)])
                assert await eventually(lambda: directory.is_registered(device))
                await asyncio.to_thread(publish_all, pub, [(f"devices/{device}/telemetry", body)])
            records = await consume(kafka_bootstrap, settings.topic_readings, lambda r: count_readings(r) >= 1)
    finally:
        errors.close()
        await directory.stop()
        await feed.stop()
    assert [r.device_id for _, _, b in readings_of(records) for r in b.readings] == [device]


async def test_health_is_read_from_ten_minutes_back_when_the_api_starts(
    gateway_settings: GatewaySettings, kafka_bootstrap: str, unique: str
) -> None:
    """An API that starts knows the devices the stream workers reported in the last ten minutes, not only those
    heard from after it started; what is older than that it does not read."""
    conn = gateway_settings.model_copy(update={"topic_health": f"devices.health.{unique}"})
    await ensure_topics(kafka_bootstrap, [TopicSpec(conn.topic_health, 2, 1)])

    async def report(device_id: str, partition: int) -> None:
        batch = HealthBatch(devices=[HealthSeen(device_id=device_id, last_seen=now_ms(), values={"battery_pct": 81.0})])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(conn.topic_health, batch.model_dump_json().encode(), partition=partition)
        finally:
            await producer.stop()

    await report(f"gas-{unique}-earlier", 0)
    just_started, much_later = HealthTracker(), HealthTracker()
    followers = [
        asyncio.create_task(follow_health(conn, just_started)),
        asyncio.create_task(follow_health(conn, much_later, clock=lambda: now_ms() + 11 * 60 * 1000)),
    ]
    try:
        device = builders.device(f"gas-{unique}-earlier", interval_s=60)
        assert await eventually(lambda: just_started.health(device, now_ms()).last_seen is not None, timeout=20)
        assert just_started.health(device, now_ms()).battery_pct == 81.0
        await asyncio.sleep(2)  # both followers are past their start
        await report(f"gas-{unique}-after", 1)
        after = builders.device(f"gas-{unique}-after", interval_s=60)
        assert await eventually(lambda: much_later.health(after, now_ms()).last_seen is not None, timeout=20)
        assert much_later.health(device, now_ms()).last_seen is None  # reported "eleven minutes" before it started
    finally:
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
