"""Nothing is lost when the gateway is killed with -9, or when the Kafka-compatible broker goes away for 10 s."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aiokafka import TopicPartition

from core.contracts import ReadingBatch
from core.errors import KafkaUnavailable
from core.kafka.reading import read_to_end
from core.process import ManagedProcess, free_port
from harness.builders import telemetry
from harness.measure import metric
from ingest.settings import GatewaySettings
from smartcity.stack.services import Launch, http_ok, tansu
from tests.kafka_util import consume, distinct_seqs, partitions_of, refused_of
from tests.mqtt_util import publisher

pytestmark = pytest.mark.integration


def _stream(count: int, devices: int, prefix: str) -> list[tuple[str, bytes, tuple[str, int]]]:
    out = []
    for seq in range(count):
        device = f"{prefix}-{seq % devices}"
        payload = telemetry({"ch4_lel": seq % 30}, ts=1763900000000 + seq, seq=seq)
        out.append((f"devices/{device}/telemetry", payload, (device, seq)))
    return out


class _Publishing(threading.Thread):
    """Publishes a stream at ``rate`` messages/s (0: as fast as possible), counting broker acknowledgements."""

    def __init__(self, url: str, stream: list[tuple[str, bytes, tuple[str, int]]], rate: float = 0) -> None:
        super().__init__(daemon=True)
        self.url, self.stream, self.rate = url, stream, rate
        self.acked = 0
        self.sent = 0
        self.gate = threading.Event()  # cleared: publishing pauses
        self.gate.set()
        self.parked = threading.Event()  # set while publishing waits at the closed gate
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with publisher(self.url) as pub:
                pub.on_publish = self._on_publish
                started = time.monotonic()
                infos = []
                for i, (topic, payload, _) in enumerate(self.stream):
                    if self.rate:
                        ahead = started + i / self.rate - time.monotonic()
                        if ahead > 0:
                            time.sleep(ahead)
                    if not self.gate.is_set():
                        self.parked.set()
                        self.gate.wait()
                        self.parked.clear()
                        started = time.monotonic() - i / self.rate if self.rate else started
                    infos.append(pub.publish(topic, payload, qos=1))
                    self.sent += 1
                for info in infos:
                    info.wait_for_publish(60)
                    assert info.is_published()
        except BaseException as exc:
            self.error = exc

    def _on_publish(self, *_args: object) -> None:
        self.acked += 1


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def _kafka_ok(health_url: str) -> bool:
    try:
        with urllib.request.urlopen(health_url, timeout=2) as response:
            return bool(json.loads(response.read())["checks"]["kafka"])
    except urllib.error.HTTPError as exc:
        return bool(json.loads(exc.read())["checks"]["kafka"])
    except OSError:
        return False


def _with_http(settings: GatewaySettings) -> tuple[GatewaySettings, str]:
    port = free_port()
    return settings.model_copy(update={"gateway_http_port": port}), f"http://127.0.0.1:{port}/healthz"


async def test_gateway_killed_with_sigkill_mid_stream_loses_nothing(
    gateway_settings: GatewaySettings,
    gateway_process: Callable[[GatewaySettings], ManagedProcess],
    mqtt_url: str,
    kafka_bootstrap: str,
    unique: str,
) -> None:
    settings, health = _with_http(gateway_settings)
    gateway = gateway_process(settings)
    gateway.start()
    await asyncio.to_thread(gateway.wait_healthy, lambda: http_ok(health, (200,)), 20)

    stream = _stream(10_000, 200, f"gas-{unique}")
    pub = _Publishing(mqtt_url, stream)
    pub.start()
    await asyncio.to_thread(_wait, lambda: pub.acked >= 3000, 60, "publisher stalled")
    gateway.kill()
    killed_at = pub.acked
    # The broker takes readings while the gateway is dead: they wait in its session and must arrive after the restart.
    await asyncio.to_thread(_wait, lambda: pub.acked >= killed_at + 1000, 30, "nothing published while it was down")
    gateway.start()
    await asyncio.to_thread(pub.join, 120)
    assert pub.error is None
    assert killed_at < len(stream), "the kill must happen mid-stream"

    expected = {key for _, _, key in stream}
    records = await consume(
        kafka_bootstrap, settings.topic_readings, lambda r: distinct_seqs(r) >= expected, timeout=120
    )
    assert distinct_seqs(records) == expected


async def _collect_forever(
    bootstrap: str,
    topic: str,
    seen: set[tuple[str, int | None]],
    stop: asyncio.Event,
    collecting: asyncio.Event,
    idle: asyncio.Event,
) -> None:
    """Re-read ``topic`` from the start every pass and keep what we saw: the memory broker forgets everything on
    restart (and a consumer's old position then points past the new log), so each pass starts afresh. Paused while
    the broker is away, so that our own metadata requests never take part in recreating the topic; ``idle`` is set
    while paused, once the current pass has ended."""
    while not stop.is_set():
        if not collecting.is_set():
            idle.set()
            await asyncio.sleep(0.05)
            continue
        idle.clear()

        def keep(m: Any) -> None:
            seen.update((r.device_id, r.seq) for r in ReadingBatch.model_validate_json(m.value).readings)

        try:
            await partitions_of(bootstrap, topic, timeout=2)  # never let our metadata request create the topic
            await read_to_end(bootstrap, [TopicPartition(topic, p) for p in range(4)], keep, timeout_s=3)
        except (KafkaUnavailable, TimeoutError):
            pass
        await asyncio.sleep(0.3)


async def test_kafka_broker_down_for_ten_seconds_loses_nothing(
    gateway_settings: GatewaySettings,
    gateway_process: Callable[[GatewaySettings], ManagedProcess],
    mqtt_url: str,
    unique: str,
    tmp_path: Path,
) -> None:
    port = free_port()
    broker = tansu("127.0.0.1", port, tmp_path / "tansu.log")
    broker.start()
    bootstrap = broker.url
    settings, health = _with_http(gateway_settings.model_copy(update={"kafka_bootstrap": bootstrap}))
    gateway = gateway_process(settings)
    gateway.start()
    await asyncio.to_thread(gateway.wait_healthy, lambda: http_ok(health, (200,)), 20)

    seen: set[tuple[str, int | None]] = set()
    stop, collecting, idle = asyncio.Event(), asyncio.Event(), asyncio.Event()
    collecting.set()
    collector = asyncio.create_task(_collect_forever(bootstrap, settings.topic_readings, seen, stop, collecting, idle))
    stream = _stream(5_000, 100, f"water-{unique}")
    expected = {key for _, _, key in stream}
    pub = _Publishing(mqtt_url, stream, rate=250)
    pub.start()
    try:
        await asyncio.to_thread(_wait, lambda: len(seen) >= 1000, 30, "readings did not flow before the outage")
        # The memory broker loses what it holds when it stops; let the collector see all of it first, so that
        # every reading is either seen before the outage or must arrive after it.
        pub.gate.clear()
        await asyncio.to_thread(_wait, pub.parked.is_set, 10, "the publisher did not stop at the gate")
        await asyncio.to_thread(
            _wait,
            lambda: pub.acked == pub.sent and seen >= {k for _, _, k in stream[: pub.sent]},
            30,
            "catch-up",
        )
        collecting.clear()
        await asyncio.wait_for(idle.wait(), 10)  # the collector's current pass has ended
        broker.process.stop()
        pub.gate.set()
        during = pub.acked
        await asyncio.sleep(10)
        assert pub.acked > during, "the stream must go on while Kafka is down"
        broker = tansu("127.0.0.1", port, tmp_path / "tansu-2.log")
        broker.start()
        await asyncio.to_thread(_wait, lambda: _kafka_ok(health), 60, "the gateway did not get back to Kafka")
        collecting.set()
        await asyncio.to_thread(pub.join, 120)
        assert pub.error is None
        try:
            await asyncio.to_thread(_wait, lambda: seen >= expected, 60, "readings missing")
        except TimeoutError:
            url = health.replace("healthz", "metrics")
            metrics = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
            lines = [
                line for line in metrics.splitlines() if line.startswith("smartcity_ingest_") and "_bucket" not in line
            ]
            missing = sorted(expected - seen)
            raise AssertionError(f"{len(missing)} missing, e.g. {missing[:5]}; gateway: {lines}") from None
    finally:
        stop.set()
        await collector
        broker.process.stop()
    assert seen == expected


@dataclass
class _OwnKafka:
    """A gateway process on a Tansu of its own (to freeze with SIGSTOP), warmed up, and a publisher."""

    broker: Launch
    settings: GatewaySettings
    metrics: str
    pub: mqtt.Client

    def freeze(self, frozen: bool) -> None:
        os.kill(self.broker.process.pid, signal.SIGSTOP if frozen else signal.SIGCONT)


@asynccontextmanager
async def _own_kafka(
    gateway_settings: GatewaySettings,
    gateway_process: Callable[[GatewaySettings], ManagedProcess],
    mqtt_url: str,
    tmp_path: Path,
    warm: list[tuple[str, bytes, tuple[str, int]]],
    **updates: object,
) -> AsyncIterator[_OwnKafka]:
    broker = tansu("127.0.0.1", free_port(), tmp_path / "tansu.log")
    broker.start()
    settings, health = _with_http(gateway_settings.model_copy(update={"kafka_bootstrap": broker.url, **updates}))
    gateway = gateway_process(settings)
    gateway.start()
    await asyncio.to_thread(gateway.wait_healthy, lambda: http_ok(health, (200,)), 20)
    try:
        with publisher(mqtt_url) as pub:
            for topic, payload, _ in warm:
                pub.publish(topic, payload, qos=1).wait_for_publish(10)
            await consume(broker.url, settings.topic_readings, lambda r: len(distinct_seqs(r)) >= len(warm))
            yield _OwnKafka(broker, settings, health.replace("healthz", "metrics"), pub)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(broker.process.pid, signal.SIGCONT)
        broker.process.stop()


async def test_a_stalled_kafka_pauses_mqtt_reading_at_the_unacked_limit(
    gateway_settings: GatewaySettings,
    gateway_process: Callable[[GatewaySettings], ManagedProcess],
    mqtt_url: str,
    unique: str,
    tmp_path: Path,
) -> None:
    """With Kafka frozen (SIGSTOP) and a receive maximum that lets the broker send everything, the gateway holds no
    more than ``gateway_max_unacked`` messages: it stops reading MQTT, the broker keeps the rest, reading resumes on
    a timer so the connection stays alive, and after Kafka thaws every reading arrives."""
    limit = 300
    stream = _stream(3_000, 50, f"bp-{unique}")
    warm, rest = stream[:100], stream[100:]
    updates = {"gateway_receive_maximum": 65535, "gateway_max_unacked": limit}
    async with _own_kafka(gateway_settings, gateway_process, mqtt_url, tmp_path, warm, **updates) as own:
        own.freeze(True)
        infos = [own.pub.publish(topic, payload, qos=1) for topic, payload, _ in rest]
        for info in infos:
            await asyncio.to_thread(info.wait_for_publish, 30)  # Mosquitto took them all
        held: list[float] = []
        deadline = time.monotonic() + 13  # past one keepalive-driven resume (every 10 s)
        while time.monotonic() < deadline:
            held.append(await asyncio.to_thread(metric, own.metrics, "smartcity_ingest_unacked_messages"))
            await asyncio.sleep(0.2)
        paused = await asyncio.to_thread(metric, own.metrics, "smartcity_ingest_mqtt_reading_paused")
        pauses = await asyncio.to_thread(metric, own.metrics, "smartcity_ingest_mqtt_reading_pauses_total")
        connected = await asyncio.to_thread(metric, own.metrics, "smartcity_ingest_mqtt_connected")
        own.freeze(False)
        assert max(held) >= limit, "the gateway should have filled up to its limit"
        assert max(held) <= limit + 1, f"held {max(held):.0f} messages past the limit of {limit}"
        assert (paused, connected) == (1, 1)
        assert pauses >= 2, "the timer resumes reading, and the next message pauses it again"
        records = await consume(
            own.broker.url, own.settings.topic_readings, lambda r: len(distinct_seqs(r)) >= len(stream), timeout=90
        )
        assert distinct_seqs(records) == {key for _, _, key in stream}
        assert await asyncio.to_thread(metric, own.metrics, "smartcity_ingest_mqtt_reading_paused") == 0


async def test_a_stalled_kafka_pauses_mqtt_reading_at_the_byte_limit_under_large_messages(
    gateway_settings: GatewaySettings,
    gateway_process: Callable[[GatewaySettings], ManagedProcess],
    mqtt_url: str,
    unique: str,
    tmp_path: Path,
) -> None:
    """Few but large messages (60 KB of garbage each, refused and kept whole) while Kafka is frozen: the gateway
    holds one stuck flush and one gathered flush of ``gateway_max_flush_bytes`` each, then stops reading MQTT, long
    before the message count limit. Before this limit it held every message it was sent (here 24 MB; in the hostile
    input test a single flush grew to 8 MB, and the gateway's memory with it). After the thaw every one is kept."""
    flush_bytes, size, count = 256 * 1024, 60_000, 400
    warm = _stream(20, 5, f"big-{unique}")
    updates = {"gateway_receive_maximum": 65535, "gateway_max_flushes": 1, "gateway_max_flush_bytes": flush_bytes}
    async with _own_kafka(gateway_settings, gateway_process, mqtt_url, tmp_path, warm, **updates) as own:
        own.freeze(True)
        garbage = [(f"devices/big-{unique}-{i % 100}/telemetry", bytes([i % 200 + 1]) * size) for i in range(count)]
        infos = [own.pub.publish(topic, payload, qos=1) for topic, payload in garbage]
        for info in infos:
            await asyncio.to_thread(info.wait_for_publish, 30)  # Mosquitto took them all
        held: list[float] = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            held.append(await asyncio.to_thread(metric, own.metrics, "smartcity_ingest_unacked_messages"))
            await asyncio.sleep(0.2)
        paused = await asyncio.to_thread(metric, own.metrics, "smartcity_ingest_mqtt_reading_paused")
        own.freeze(False)
        # Two flushes' worth, and a few more: paho reads on past a pause by one packet for each of our own QoS 1
        # publishes still awaiting the broker's acknowledgement (here the refusal replies on devices/+/errors).
        bound = 2 * -(-flush_bytes // size) + 20
        assert max(held) <= bound, f"held {max(held):.0f} messages of {size} bytes (at most {bound})"
        assert paused == 1
        records = await consume(own.broker.url, own.settings.topic_rejected, lambda r: len(r) >= count, timeout=90)
        kept = sorted(m.raw for m in refused_of(records))
        assert kept == sorted(payload for _, payload in garbage), "every refused message is kept whole"


async def test_a_slow_kafka_gets_fewer_larger_flushes_not_a_queue_of_small_ones(
    gateway_settings: GatewaySettings,
    gateway_process: Callable[[GatewaySettings], ManagedProcess],
    mqtt_url: str,
    unique: str,
    tmp_path: Path,
) -> None:
    """One delivery slot, Kafka frozen for 2 s while 1,000 messages arrive over them (one per 2 ms, a 5 ms linger):
    they gather behind the stuck flush and go out together after the thaw, instead of as hundreds of small flushes
    each waiting its turn (each paying Kafka's per-request cost, which is what slowed the soak's alerts)."""
    stream = _stream(1_100, 50, f"slow-{unique}")
    warm, rest = stream[:100], stream[100:]
    async with _own_kafka(gateway_settings, gateway_process, mqtt_url, tmp_path, warm, gateway_max_flushes=1) as own:
        flushes_before = await asyncio.to_thread(metric, own.metrics, "smartcity_ingest_flush_readings_count")
        own.freeze(True)
        frozen = time.monotonic()
        for i, (topic, payload, _) in enumerate(rest):
            own.pub.publish(topic, payload, qos=1)
            await asyncio.sleep(max(0.0, frozen + i * 0.002 - time.monotonic()))
        await asyncio.sleep(max(0.0, frozen + 2 - time.monotonic()))
        own.freeze(False)
        records = await consume(
            own.broker.url, own.settings.topic_readings, lambda r: len(distinct_seqs(r)) >= len(stream), timeout=60
        )
        assert distinct_seqs(records) == {key for _, _, key in stream}
        flushes = await asyncio.to_thread(metric, own.metrics, "smartcity_ingest_flush_readings_count") - flushes_before
        assert flushes <= 10, f"{flushes:.0f} flushes for 1,000 messages that arrived while Kafka was frozen"
