"""The InfluxDB writer against real Tansu, Mosquitto and influxd 1.6: readings over MQTT land with the right tags and
timestamps; InfluxDB down for 20 s, or the writer killed with SIGKILL, and every reading is still stored exactly
once; a point InfluxDB refuses goes to the refused topic with its reason while the rest are stored."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from core.contracts.device import Device
from core.contracts.refusal import RefusedMessage
from core.contracts.telemetry import ReadingBatch, ReadingDict
from core.kafka.admin import TopicSpec, devices_topic, ensure_topics
from core.process import ManagedProcess, free_port
from devices.feed import DevicePublisher
from harness import builders
from ingest.settings import GatewaySettings
from smartcity.stack.services import Launch, influxdb
from storage.main import run_writer
from storage.settings import WriterSettings
from tests.influx_util import influx_rows
from tests.integration.conftest import GatewayFactory, settings_env
from tests.kafka_util import consume, group_members
from tests.mqtt_util import publish_all, publisher
from tests.waiting import until

pytestmark = pytest.mark.integration

T0 = 1_763_900_000_000


SITE = "S01"


@pytest.fixture
def own_influx(tmp_path: Path) -> Iterator[Launch]:
    """An influxd of this test alone, which it may kill and start again on the same data."""
    launch = influxdb(tmp_path / "influxdb", "127.0.0.1", free_port(), free_port())
    launch.start(timeout=20)
    yield launch
    launch.process.stop()


def _settings(kafka_bootstrap: str, influx_url: str, unique: str) -> WriterSettings:
    return WriterSettings(
        kafka_bootstrap=kafka_bootstrap,
        influx_url=influx_url,
        influx_db=f"w{unique}",
        topic_readings=f"readings.{unique}",
        topic_rejected=f"rejected.{unique}",
        topic_devices=f"devices.{unique}",
        writer_group=f"writer-{unique}",
        writer_http_port=0,
        writer_batch_ms=300,
        writer_retention=False,
    )


async def _prepare(settings: WriterSettings, devices: list[Device]) -> None:
    await ensure_topics(
        settings.kafka_bootstrap,
        [
            TopicSpec(settings.topic_readings, settings.readings_partitions),
            TopicSpec(settings.topic_rejected, 1),
            devices_topic(settings),
        ],
    )
    feed = DevicePublisher(settings)
    await feed.start()
    try:
        await feed.publish(devices)
    finally:
        await feed.stop()


@contextlib.asynccontextmanager
async def _writer(settings: WriterSettings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_writer(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _reading(device_id: str, i: int, late_ms: int = 0) -> ReadingDict:
    """The ``i``-th reading of a stream: seq ``i``, received at a millisecond of its own, stamped ``late_ms`` after."""
    return builders.reading(device_id, {"ch4_lel": i % 20 + 0.5}, ts=T0 + i + late_ms, seq=i, received_at=T0 + i)


def _batch(readings: list[ReadingDict]) -> bytes:
    return ReadingBatch.model_validate({"readings": readings}).model_dump_json().encode()


async def _produce(
    settings: WriterSettings,
    device_ids: list[str],
    count: int,
    per_record: int = 100,
    pause_s: float = 0.05,
    start: int = 0,
) -> None:
    """``count`` readings round robin over ``device_ids``, ``per_record`` to a Kafka record, each its own ms."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for first in range(start, count, per_record):
            span = range(first, min(first + per_record, count))
            readings = [_reading(device_ids[i % len(device_ids)], i) for i in span]
            await producer.send(settings.topic_readings, _batch(readings), key=readings[0]["device_id"].encode())
            if first % 2000 == 0:
                await producer.flush()
                await asyncio.sleep(pause_s)  # a stream, not one burst
        await producer.flush()
    finally:
        await producer.stop()


async def _count(url: str, db: str) -> int:
    with contextlib.suppress(httpx.HTTPError, KeyError, AssertionError):  # no database yet: nothing stored
        rows = await influx_rows(url, db, 'SELECT count("ch4_lel") FROM "gas"')
        return int(rows[0]["count"]) if rows else 0
    return -1


async def _wait_count(url: str, db: str, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        seen = await _count(url, db)
        if seen >= expected:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.5)  # and nothing more arrives
    return await _count(url, db)


async def _more_than(url: str, db: str, count: int) -> bool:
    return await _count(url, db) > count


async def _members(settings: WriterSettings, count: int) -> bool:
    """The writers' group has ``count`` members and has finished rebalancing (each member has its partitions)."""
    return await group_members(settings.kafka_bootstrap, settings.writer_group) == ("Stable", count)


async def test_readings_over_mqtt_land_with_their_tags_and_timestamps(
    gateway_settings: GatewaySettings, run_gateway: GatewayFactory, own_influx: Launch, unique: str, mqtt_url: str
) -> None:
    settings = _settings(gateway_settings.kafka_bootstrap, own_influx.url, unique).model_copy(
        update={"topic_readings": gateway_settings.topic_readings, "topic_rejected": gateway_settings.topic_rejected}
    )
    await _prepare(settings, [builders.device("gas-m1", site=SITE), builders.device("fire-m1", "fire", site="S02")])
    async with run_gateway(gateway_settings), _writer(settings):
        with publisher(mqtt_url) as client:
            gas = builders.telemetry({"ch4_lel": 12.5, "battery_pct": 80}, ts=T0, seq=1)
            fire = builders.telemetry({"temp_c": 31.0, "smoke": True}, ts=T0 + 7, seq=1, drill=True)
            publish_all(client, [("devices/gas-m1/telemetry", gas), ("devices/fire-m1/telemetry", fire)])
        deadline = time.monotonic() + 20
        while await _count(own_influx.url, settings.influx_db) < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        gas = await influx_rows(own_influx.url, settings.influx_db, 'SELECT * FROM "gas"')
        fire = await influx_rows(own_influx.url, settings.influx_db, 'SELECT * FROM "fire"')
        health = await influx_rows(own_influx.url, settings.influx_db, 'SELECT * FROM "device_health"')
    assert [(r["time"], r["device_id"], r["site_id"], r["kind"], r["drill"], r["ch4_lel"]) for r in gas] == [
        (T0, "gas-m1", "S01", "gas", "false", 12.5)
    ]
    assert [(r["time"], r["device_id"], r["drill"], r["temp_c"], r["smoke"]) for r in fire] == [
        (T0 + 7, "fire-m1", "true", 31.0, True)
    ]
    assert [(r["time"], r["device_id"], r["battery_pct"]) for r in health] == [(T0, "gas-m1", 80.0)]


async def test_influxdb_down_for_20_s_loses_and_doubles_nothing(
    kafka_bootstrap: str, own_influx: Launch, unique: str
) -> None:
    settings = _settings(kafka_bootstrap, own_influx.url, unique)
    devices = [f"gas-d{i}" for i in range(50)]
    await _prepare(settings, [builders.device(d, site=SITE) for d in devices])
    async with _writer(settings):
        stream = asyncio.create_task(_produce(settings, devices, 20_000))
        await asyncio.sleep(1.0)
        own_influx.process.kill()
        await asyncio.sleep(20)
        own_influx.start(timeout=20)
        await stream
        stored = await _wait_count(own_influx.url, settings.influx_db, 20_000, 60)
    assert stored == 20_000


async def test_the_writer_killed_mid_batch_loses_and_doubles_nothing(
    kafka_bootstrap: str, own_influx: Launch, unique: str, tmp_path: Path
) -> None:
    settings = _settings(kafka_bootstrap, own_influx.url, unique)
    devices = [f"gas-k{i}" for i in range(50)]
    await _prepare(settings, [builders.device(d, site=SITE) for d in devices])
    process = ManagedProcess(
        "writer", [sys.executable, "-m", "smartcity", "writer"], tmp_path / "writer.log", env=settings_env(settings)
    )
    process.start()
    try:
        await _produce(settings, devices, 4_000)
        await _wait_count(own_influx.url, settings.influx_db, 4_000, 60)  # the writer is in its group, writing
        stream = asyncio.create_task(_produce(settings, devices, 20_000, per_record=50, pause_s=1.0, start=4_000))
        await asyncio.sleep(2.5)
        process.kill()  # SIGKILL, most likely with a batch taken from Kafka and not yet committed
        partial = await _count(own_influx.url, settings.influx_db)
        await stream
        process.start()
        stored = await _wait_count(own_influx.url, settings.influx_db, 20_000, 60)
    finally:
        process.stop()
    assert 0 < partial < 20_000
    assert stored == 20_000


async def test_a_repeat_arriving_after_the_writer_restarted_is_dropped(
    kafka_bootstrap: str, own_influx: Launch, unique: str
) -> None:
    """The writer's repeat window follows the partition: a copy of a reading written before a restart (a message
    redelivered to the gateway, stamped on arrival with a later time) is not a second point after it."""
    settings = _settings(kafka_bootstrap, own_influx.url, unique)
    device = "gas-r0"
    await _prepare(settings, [builders.device(device, site=SITE)])
    async with _writer(settings):
        await _produce(settings, [device], 1_000)
        assert await _wait_count(own_influx.url, settings.influx_db, 1_000, 60) == 1_000
    # Stopped with everything committed. The copies of its 50 newest, 5 s later, then one new reading.
    copies = [_reading(device, i, late_ms=5_000) for i in range(950, 1_000)]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for batch in (copies, [_reading(device, 1_000)]):
            await producer.send_and_wait(settings.topic_readings, _batch(batch), key=device.encode())
    finally:
        await producer.stop()
    async with _writer(settings):
        stored = await _wait_count(own_influx.url, settings.influx_db, 1_001, 60)
    assert stored == 1_001, f"{stored - 1_001} copies written after the restart"


async def test_a_refused_point_is_recorded_with_its_reason_and_the_rest_are_stored(
    kafka_bootstrap: str, own_influx: Launch, unique: str
) -> None:
    settings = _settings(kafka_bootstrap, own_influx.url, unique)
    await _prepare(settings, [builders.device("gas-c1", site=SITE)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    readings = [
        builders.reading("gas-c1", {"ch4_lel": 3.0}, ts=T0, seq=1),
        builders.reading("gas-c1", {"ch4_lel": True}, ts=T0 + 1, seq=2, received_at=T0),  # type changed
        builders.reading("gas-c1", {"ch4_lel": 4.0}, ts=T0 + 2, seq=3, received_at=T0),
    ]
    try:
        for one in readings:  # one record each: the first is stored before the conflicting one comes
            await producer.send_and_wait(settings.topic_readings, _batch([one]), key=b"gas-c1")
    finally:
        await producer.stop()
    async with _writer(settings):
        stored = await _wait_count(own_influx.url, settings.influx_db, 2, 30)
        refused = await consume(kafka_bootstrap, settings.topic_rejected, lambda r: len(r) >= 1, timeout=30)
    assert stored == 2
    [message] = [RefusedMessage.model_validate_json(r.value) for r in refused]
    assert message.refusal.device_id == "gas-c1"
    assert message.refusal.reason == "storage_refused"
    assert "field type conflict" in message.refusal.errors[0].detail
    assert b"ch4_lel=true" in message.raw


async def test_the_v2_path_through_influxdb_client(kafka_bootstrap: str, victoria_service: Launch, unique: str) -> None:
    """``SMARTCITY_INFLUX_API=v2`` (InfluxDB 2.x/3.x in production), here into VictoriaMetrics' ``/api/v2/write``,
    which keeps ``{measurement}_{field}`` with the tags as labels."""
    settings = _settings(kafka_bootstrap, victoria_service.url, unique).model_copy(
        update={"influx_api": "v2", "influx_token": SecretStr("unused"), "influx_bucket": "readings"}
    )
    devices = [f"gas-v{unique[:4]}{i}" for i in range(5)]
    await _prepare(settings, [builders.device(d, site=SITE) for d in devices])
    await _produce(settings, devices, 500)
    async with _writer(settings), httpx.AsyncClient(base_url=victoria_service.url) as vm:
        series: list[dict[str, Any]] = []
        for _ in range(100):
            await vm.get("/internal/force_flush")
            match = f'gas_ch4_lel{{device_id=~"gas-v{unique[:4]}.*"}}'
            answer = await vm.get("/api/v1/export", params={"match[]": match})
            series = [json.loads(line) for line in answer.text.splitlines() if line]
            if sum(len(s["values"]) for s in series) >= 500:
                break
            await asyncio.sleep(0.2)
    assert sum(len(s["values"]) for s in series) == 500
    labels = {s["metric"]["device_id"]: s["metric"] for s in series}
    assert set(labels) == set(devices)
    assert {(m["site_id"], m["kind"], m["drill"]) for m in labels.values()} == {("S01", "gas", "false")}
    assert min(t for s in series for t in s["timestamps"]) == T0


async def test_a_rebalance_while_a_write_hangs_loses_nothing(
    kafka_bootstrap: str, own_influx: Launch, unique: str
) -> None:
    """InfluxDB frozen (SIGSTOP) with a write in flight; a second writer joins the group and leaves again, so the
    first is handed partitions, unpaused, while it waits: what it polls meanwhile must be read again, not dropped.
    The test waits for each rebalance to complete (the group stable with two members, then with one): the fault is
    the rebalance, and a test that only slept could not tell whether it happened while the write hung."""
    settings = _settings(kafka_bootstrap, own_influx.url, unique)
    devices = [f"gas-r{i}" for i in range(50)]
    await _prepare(settings, [builders.device(d, site=SITE) for d in devices])
    assert own_influx.process.popen is not None
    influxd = own_influx.process.popen.pid
    async with _writer(settings):
        await _produce(settings, devices, 2_000)
        await _wait_count(own_influx.url, settings.influx_db, 2_000, 60)  # in its group, writing
        stream = asyncio.create_task(_produce(settings, devices, 12_000, per_record=50, pause_s=0.5, start=2_000))
        await until(lambda: _more_than(own_influx.url, settings.influx_db, 2_000), 30, "the second stream not written")
        before_freeze = await _count(own_influx.url, settings.influx_db)
        os.kill(influxd, signal.SIGSTOP)
        try:
            async with _writer(settings):
                await until(lambda: _members(settings, 2), 60, "the second writer never joined")  # partitions split
            await until(lambda: _members(settings, 1), 60, "the second writer never left")  # the first holds all
        finally:
            os.kill(influxd, signal.SIGCONT)
        assert before_freeze < 12_000, "every reading was written before InfluxDB froze: no write hung"
        await stream
        stored = await _wait_count(own_influx.url, settings.influx_db, 12_000, 90)
    assert stored == 12_000
