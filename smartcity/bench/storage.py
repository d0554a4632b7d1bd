"""InfluxDB writer benchmark (issue 6): writer throughput, and the lag from MQTT publish to queryable in InfluxDB.

- **throughput**: Tansu and influxd 1.6 started here (the stack's own launchers), a fleet registered on the devices
  topic, N readings put on the readings topic beforehand (records of 500 readings, as a busy gateway writes them),
  then one writer process (``python -m smartcity writer``) started against the backlog. Throughput is the readings
  its own counter (``smartcity_writer_readings_total``) saw written, over the time from its first write to its last;
  the count in InfluxDB is checked afterwards (every reading stored once). CPU: ``/proc`` of the writer and influxd.
- **lag**: the whole one-machine stack (``smartcity up``); a registered device publishes a reading over MQTT (QoS 1)
  with a unique timestamp; the lag is the time until an InfluxQL query finds it (polled every 20 ms).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from core.contracts.device import Device
from core.contracts.telemetry import ReadingBatch
from core.kafka.admin import TopicSpec, devices_topic, ensure_topics
from core.process import die_with_parent, free_port
from devices.feed import DevicePublisher
from harness.builders import device, device_record, reading, telemetry
from harness.measure import STORED, cpu_seconds, get, metric
from harness.stack import StackRun
from smartcity.stack.services import influxdb, tansu
from storage.settings import WriterSettings


@dataclass
class Throughput:
    readings: int
    batch_points: int
    seconds: float
    readings_per_s: float
    stored: int
    cpu_percent: dict[str, float]


@dataclass
class Lag:
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def _devices(count: int) -> list[Device]:
    kinds = ["gas", "water", "fire", "structural"]
    return [device(f"bench-{i:06d}", kinds[i % 4], site=f"site-{i // 8:05d}", site_name="基准") for i in range(count)]


async def _backlog(settings: WriterSettings, devices: list[Device], readings: int) -> None:
    measured = {"gas": "ch4_lel", "water": "level_m", "fire": "temp_c", "structural": "tilt_deg"}
    await ensure_topics(
        settings.kafka_bootstrap,
        [TopicSpec(settings.topic_readings, settings.readings_partitions), TopicSpec(settings.topic_rejected, 1),
         devices_topic(settings)],
    )  # fmt: skip
    feed = DevicePublisher(settings)
    await feed.start()
    await feed.publish(devices)
    await feed.stop()
    t0 = int(time.time() * 1000) - readings - 3_600_000  # recent: inside the raw retention policy (90 days)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks=1, linger_ms=20, max_request_size=8 << 20
    )
    await producer.start()
    try:
        for first in range(0, readings, 500):
            batch = []
            for i in range(first, min(first + 500, readings)):
                d = devices[i % len(devices)]
                batch.append(
                    reading(d.id, {measured[d.kind.value]: float(i % 50), "battery_pct": 80.0}, ts=t0 + i, seq=i)
                )
            body = ReadingBatch.model_validate({"readings": batch}).model_dump_json().encode()
            await producer.send(settings.topic_readings, body)
        await producer.flush()
    finally:
        await producer.stop()


def throughput(readings: int, devices: int, batch_points: int) -> Throughput:
    with tempfile.TemporaryDirectory(prefix="smartcity-bench-storage-") as tmp:
        work = Path(tmp)
        kafka = tansu("127.0.0.1", free_port(), work / "tansu.log")
        influx = influxdb(work / "influxdb", "127.0.0.1", free_port(), free_port())
        kafka.start(20)
        influx.start(20)
        try:
            port = free_port()
            settings = WriterSettings(
                kafka_bootstrap=kafka.url,
                influx_url=influx.url,
                writer_http_port=port,
                writer_batch_points=batch_points,
            )
            asyncio.run(_backlog(settings, _devices(devices), readings))
            env = {"SMARTCITY_KAFKA_BOOTSTRAP": kafka.url, "SMARTCITY_INFLUX_URL": influx.url,
                   "SMARTCITY_WRITER_HTTP_PORT": str(port), "SMARTCITY_WRITER_BATCH_POINTS": str(batch_points),
                   "SMARTCITY_LOG_LEVEL": "WARNING"}  # fmt: skip
            writer = subprocess.Popen(
                [sys.executable, "-m", "smartcity", "writer"], env={**_environ(), **env}, preexec_fn=die_with_parent
            )
            try:
                metrics = f"http://127.0.0.1:{port}/metrics"
                return _measure(writer.pid, influx.process.pid, metrics, influx.url, readings, batch_points)
            finally:
                writer.terminate()
                writer.wait(30)
        finally:
            influx.process.stop()
            kafka.process.stop()


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}


def _written(metrics: str) -> float:
    try:
        return metric(metrics, STORED)
    except httpx.HTTPError:
        return -1.0  # not serving yet: it reads the registry and sets up retention first


def _measure(writer: int, influxd: int, metrics: str, influx_url: str, readings: int, batch_points: int) -> Throughput:
    deadline = time.monotonic() + 600
    while _written(metrics) <= 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the writer wrote nothing")
        time.sleep(0.02)
    started, cpu0 = time.monotonic(), {"writer": cpu_seconds(writer), "influxd": cpu_seconds(influxd)}
    first = _written(metrics)
    while (done := _written(metrics)) < readings and time.monotonic() < deadline:
        time.sleep(0.02)
    seconds = time.monotonic() - started
    cpu = {
        k: round(100 * (cpu_seconds(p) - cpu0[k]) / seconds, 1) for k, p in (("writer", writer), ("influxd", influxd))
    }
    stored = 0
    for measurement in ("gas", "water", "fire", "structural"):
        q = f'SELECT count(*) FROM "{measurement}"'  # noqa: S608 - our own constant names
        answer = get(f"{influx_url}/query", params={"db": "smartcity", "q": q}, timeout=60).json()
        for series in answer["results"][0].get("series", []):
            stored += int(series["values"][0][1])
    rate = (done - first) / seconds if seconds > 0 else 0.0
    return Throughput(readings, batch_points, round(seconds, 2), round(rate), stored, cpu)


def lag(samples: int) -> Lag:
    with tempfile.TemporaryDirectory(prefix="smartcity-bench-lag-") as tmp, StackRun(Path(tmp)) as stack:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        stack.register([device_record("lag-1", site="lag", site_name="基准")])
        time.sleep(2)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-lag")
        client.username_pw_set("admin", stack.admin_password)
        host, port = stack.mqtt_url.removeprefix("mqtt://").split(":")
        client.connect(host, int(port))
        client.loop_start()
        found: list[float] = []
        try:
            for n in range(samples):
                ts = int(time.time() * 1000)
                body = telemetry({"ch4_lel": 1.0}, ts=ts, seq=n)
                sent = time.monotonic()
                client.publish("devices/lag-1/telemetry", body, qos=1)
                q = f'SELECT "ch4_lel" FROM "gas" WHERE time = {ts}ms'  # noqa: S608 - an integer we made
                while time.monotonic() - sent < 10:
                    answer = get(f"{stack.influx}/query", params={"db": "smartcity", "q": q}).json()
                    if answer["results"][0].get("series"):
                        found.append((time.monotonic() - sent) * 1000)
                        break
                    time.sleep(0.02)
                time.sleep(0.2)
        finally:
            client.loop_stop()
            client.disconnect()
    found.sort()
    return Lag(samples, round(statistics.median(found), 1), round(found[int(0.99 * (len(found) - 1))], 1),
               round(found[-1], 1))  # fmt: skip


def run_all(readings: int, devices: int, samples: int, out: Path) -> tuple[list[Throughput], Lag]:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per poll otherwise
    results = [throughput(readings, devices, points) for points in (5000, 20_000)]
    end_to_end = lag(samples)
    table = Table(title=f"InfluxDB writer: {readings:,} readings backlog, {devices:,} devices, influxd 1.6")
    for column in ("points per write", "readings/s", "seconds", "stored", "writer CPU %", "influxd CPU %"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(f"{r.batch_points:,}", f"{r.readings_per_s:,.0f}", f"{r.seconds}", f"{r.stored:,}",
                      f"{r.cpu_percent['writer']}", f"{r.cpu_percent['influxd']}")  # fmt: skip
    console = Console(width=140)
    console.print(table)
    console.print(f"lag MQTT publish -> queryable: p50 {end_to_end.p50_ms} ms, p99 {end_to_end.p99_ms} ms, "
                  f"max {end_to_end.max_ms} ms ({samples} readings)")  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"throughput": [asdict(r) for r in results], "lag": asdict(end_to_end)}, indent=2))
    return results, end_to_end
