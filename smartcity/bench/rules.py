"""Rules benchmark: readings per second through rule evaluation, pure and through one Faust worker on Tansu, and the
memory of rule state per device.

- **pure**: ``rules.engine.Engine.evaluate`` in this process over a mixed fleet (gas, water, fire, structural), each
  reading carrying the metrics its kind reports plus battery, with event times advancing by the device's interval,
  so rate windows fill as in service. Memory per device is what ``tracemalloc`` sees held by the fleet's ``DeviceState``
  objects after the run, and the JSON size of a saved state.
- **faust**: the readings topic is filled first (records of 1,000 readings grouped by partition, as the gateway
  writes them), then one worker (``smartcity streams`` as its own process) consumes the backlog. Throughput is the
  worker's own ``smartcity_streams_readings_total`` over the time between its first and its last evaluated record;
  CPU from ``/proc``. A few devices cross the methane alarm level so findings flow during the run.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from core.contracts import ReadingDict
from core.contracts.device import Device
from core.kafka.admin import all_topics, ensure_topics
from core.kafka.partitioning import Partitioner, group_by_partition
from core.process import ManagedProcess, free_port
from devices.feed import DevicePublisher
from harness.builders import device, reading
from harness.measure import EVALUATED, cpu_seconds, metric
from rules.engine import Engine
from rules.pack import load_pack
from rules.state import DeviceState
from smartcity.stack.services import http_ok, tansu
from streams.app import streams_topics
from streams.settings import StreamsSettings

KINDS = ("gas", "water", "fire", "structural")
T0 = 1_795_000_000_000


def fleet(n: int) -> list[Device]:
    devices = []
    for i in range(n):
        kind = KINDS[i % 4]
        thresholds: dict[str, dict[str, float]] = {}
        if kind == "water":
            thresholds = {"level_m": {"orange": 3.0, "red": 4.0}}
        elif kind == "structural":
            thresholds = {"tilt_deg": {"orange": 0.5, "red": 1.0}}
        site = f"site-{i // 8:05d}"
        devices.append(
            device(f"{kind}-{i:06d}", kind, site=site, site_name="龙岗 bench", interval_s=600, thresholds=thresholds)
        )
    return devices


def values_for(kind: str, rng: random.Random) -> dict[str, float | bool]:
    battery = round(rng.uniform(60, 100), 1)
    if kind == "gas":
        return {"ch4_lel": round(rng.uniform(0, 5), 2), "co_ppm": round(rng.uniform(0, 5), 1), "battery_pct": battery}
    if kind == "water":
        return {"level_m": round(rng.uniform(1.0, 1.2), 3), "battery_pct": battery}
    if kind == "fire":
        return {"temp_c": round(rng.uniform(24, 27), 1), "smoke": False, "battery_pct": battery}
    return {"tilt_deg": round(rng.uniform(0, 0.1), 3), "displacement_mm": round(rng.uniform(0, 1), 2),
            "battery_pct": battery}  # fmt: skip


def readings(devices: list[Device], rounds: int, seed: int = 1) -> list[ReadingDict]:
    rng = random.Random(seed)
    out: list[ReadingDict] = []
    for r in range(rounds):
        ts = T0 + r * 10_000
        for d in devices:
            out.append(reading(d.id, values_for(d.kind, rng), ts=ts))
    return out


def pure(n: int, rounds: int) -> dict[str, Any]:
    """Timed without tracemalloc (it slows allocation several times), then measured again with it for memory."""
    devices = fleet(n)
    by_id = {d.id: d for d in devices}
    engine = Engine(load_pack())
    stream = readings(devices, rounds)
    evaluate = engine.evaluate
    states = {d.id: DeviceState() for d in devices}
    started = time.perf_counter()
    for r in stream:
        evaluate(r, by_id[r["device_id"]], states[r["device_id"]], r["received_at"])
    elapsed = time.perf_counter() - started
    del states
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    states = {d.id: DeviceState() for d in devices}
    for r in stream:
        evaluate(r, by_id[r["device_id"]], states[r["device_id"]], r["received_at"])
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(s.size_diff for s in after.compare_to(before, "filename"))
    saved = sum(len(json.dumps(s.dump(), separators=(",", ":"))) for s in states.values())
    return {
        "devices": n,
        "readings": len(stream),
        "readings_per_s": round(len(stream) / elapsed),
        "state_bytes_per_device": round(held / n),
        "saved_json_bytes_per_device": round(saved / n),
    }


async def _fill(settings: StreamsSettings, devices: list[Device], rounds: int) -> int:
    feed = DevicePublisher(settings)
    await feed.start()
    for start in range(0, len(devices), 5000):
        await feed.publish(devices[start : start + 5000])
    await feed.stop()
    partitioner = Partitioner(settings.readings_partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, linger_ms=5, compression_type="lz4", max_request_size=4 << 20
    )
    await producer.start()
    total = 0
    try:
        rng = random.Random(2)
        for r in range(rounds):
            batch = readings(devices, 1, seed=r)
            stamp = int(time.time() * 1000) - (rounds - r) * 10_000  # one event time per round, as in service
            for reading in batch:
                reading["ts"] = reading["received_at"] = stamp
            for device in rng.sample(devices[::4], 10):  # a few gas detectors cross their alarm level
                batch.append({**batch[0], "device_id": device.id, "values": {"ch4_lel": 30.0 + r % 2 * 30}})
            futures = []
            for partition, group in group_by_partition(batch, partitioner, 1000):
                body = json.dumps({"v": 1, "readings": group}, separators=(",", ":")).encode()
                futures.append(await producer.send(settings.topic_readings, body, partition=partition))
            await asyncio.gather(*futures)
            total += len(batch)
    finally:
        await producer.stop()
    return total


def through_faust(n: int, rounds: int, work: Path) -> dict[str, Any]:
    kafka = tansu("127.0.0.1", free_port(), work / "tansu.log")
    kafka.start()
    port = free_port()
    settings = StreamsSettings(
        kafka_bootstrap=kafka.url, streams_http_port=port, streams_data_dir=work / "streams", streams_tick_s=5
    )
    env = {**os.environ, "SMARTCITY_KAFKA_BOOTSTRAP": kafka.url, "SMARTCITY_STREAMS_HTTP_PORT": str(port),
           "SMARTCITY_STREAMS_DATA_DIR": str(work / "streams"), "SMARTCITY_LOG_LEVEL": "WARNING"}  # fmt: skip
    worker = ManagedProcess(
        "streams", [sys.executable, "-m", "smartcity", "streams"], work / f"streams-{n}.log", env=env
    )
    try:
        asyncio.run(ensure_topics(kafka.url, [*all_topics(settings), *streams_topics(settings)]))
        total = asyncio.run(_fill(settings, fleet(n), rounds))
        worker.start()
        metrics = f"http://127.0.0.1:{port}/metrics"
        worker.wait_healthy(lambda: http_ok(metrics, (200,)), 60)
        first = last = None
        cpu_first = cpu_last = 0.0
        deadline = time.monotonic() + 900
        done = 0.0
        while time.monotonic() < deadline:
            done = metric(metrics, EVALUATED)
            now = time.monotonic()
            if done > 0 and first is None:
                first, cpu_first = now, cpu_seconds(worker.pid)
            if done >= total:
                last, cpu_last = now, cpu_seconds(worker.pid)
                break
            time.sleep(0.05)
        if first is None or last is None:
            raise RuntimeError(f"the worker evaluated {done:.0f} of {total} readings in time")
        findings = metric(metrics, "smartcity_streams_findings_total")
        saved = metric(metrics, "smartcity_streams_state_bucket_writes_total")
        elapsed = max(last - first, 1e-9)
        return {
            "devices": n,
            "readings": total,
            "readings_per_s": round(total / elapsed),
            "seconds": round(elapsed, 2),
            "cpu_us_per_reading": round((cpu_last - cpu_first) / total * 1e6, 1),
            "findings": int(findings),
            "state_bucket_writes": int(saved),
        }
    finally:
        worker.stop()
        kafka.process.stop()


def run_all(out: Path, quick: bool) -> dict[str, Any]:
    sizes = (10_000, 100_000)
    results: dict[str, Any] = {"pure": [], "faust": []}
    for n in sizes:
        r = pure(n, 10 if not quick else 3)
        print(json.dumps({"pure": r}), flush=True)
        results["pure"].append(r)
    with tempfile.TemporaryDirectory(prefix="smartcity-bench-rules-") as tmp:
        for n in sizes:
            rounds = (30 if n == 10_000 else 5) if not quick else 2
            r = through_faust(n, rounds, Path(tmp))
            print(json.dumps({"faust": r}), flush=True)
            results["faust"].append(r)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return results
