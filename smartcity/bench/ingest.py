"""Ingest benchmark: MQTT QoS 1 -> gateway -> Kafka, at controlled rates, measuring loss and the gateway's CPU.

Everything runs on this machine: Mosquitto and Tansu from the stack launchers, the gateway as its own process,
the publisher as another (``simulators.publisher``). CPU time per reading comes from each process's own accounting
(``/proc/<pid>/stat`` utime + stime) over the measured window. Loss is checked against Kafka itself: every
(device, seq) published must be in the readings topic.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.contracts import ReadingBatch
from core.kafka.reading import read_to_end
from core.process import ManagedProcess, die_with_parent, free_port
from harness.measure import ACCEPTED, cpu_seconds, metric
from smartcity.stack.services import Launch, http_ok, mosquitto, tansu


@dataclass
class Result:
    scenario: str
    per_message: int
    target_msgs_per_s: float
    messages: int
    readings: int
    publish_rate_msgs_per_s: float
    readings_per_s: float
    in_kafka: int
    lost: int
    gateway_cpu_us_per_reading: float
    mosquitto_cpu_us_per_reading: float
    kafka_cpu_us_per_reading: float
    seconds: float


async def _distinct_in_kafka(bootstrap: str, topic: str) -> int:
    seen: set[tuple[str, int | None]] = set()

    def keep(record: Any) -> None:
        seen.update((r.device_id, r.seq) for r in ReadingBatch.model_validate_json(record.value).readings)

    await read_to_end(bootstrap, topic, keep)
    return len(seen)


class IngestBench:
    def __init__(self, work: Path, devices: int) -> None:
        self.work = work
        self.devices = devices
        self.mqtt: Launch = mosquitto(work / "mosquitto", "127.0.0.1", free_port())
        self.kafka: Launch = tansu("127.0.0.1", free_port(), work / "tansu.log")
        self.seq_base = 0

    def __enter__(self) -> IngestBench:
        self.mqtt.start()
        self.kafka.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.kafka.process.stop()
        self.mqtt.process.stop()

    def run(self, name: str, per_message: int, rate: float, messages: int) -> Result:
        topic = f"readings.bench.{name}"
        port = free_port()
        env = {
            **os.environ,
            "SMARTCITY_MQTT_URL": self.mqtt.url,
            "SMARTCITY_KAFKA_BOOTSTRAP": self.kafka.url,
            "SMARTCITY_TOPIC_READINGS": topic,
            "SMARTCITY_TOPIC_REJECTED": f"{topic}.rejected",
            "SMARTCITY_GATEWAY_HTTP_PORT": str(port),
            "SMARTCITY_GATEWAY_CLIENT_ID": "bench-gateway",
            "SMARTCITY_GATEWAY_SHARE_GROUP": "bench",
            "SMARTCITY_GATEWAY_REGISTRY": "open",  # the load uses 10,000 unregistered ids
            "SMARTCITY_LOG_LEVEL": "WARNING",
        }
        gateway = ManagedProcess(
            "gateway", [sys.executable, "-m", "smartcity", "gateway"], self.work / f"gateway-{name}.log", env=env
        )
        gateway.start()
        try:
            gateway.wait_healthy(lambda: http_ok(f"http://127.0.0.1:{port}/healthz", (200,)), 30)
            metrics = f"http://127.0.0.1:{port}/metrics"
            pids = {"gateway": gateway.pid, "mosquitto": self.mqtt.process.pid, "kafka": self.kafka.process.pid}
            before = {k: cpu_seconds(p) for k, p in pids.items()}
            started = time.monotonic()
            argv = [
                sys.executable,
                "-m",
                "simulators.publisher",
                "--url",
                self.mqtt.url,
                "--devices",
                str(self.devices),
                "--per-message",
                str(per_message),
                "--count",
                str(messages),
                "--rate",
                str(rate),
                "--seq-base",
                str(self.seq_base),
            ]
            self.seq_base += messages * per_message
            out = subprocess.run(argv, check=True, capture_output=True, text=True, preexec_fn=die_with_parent).stdout
            published = json.loads(out.strip().splitlines()[-1])
            if published["acked"] != messages or published["disconnects"]:
                raise RuntimeError(f"the load publisher itself failed: {published}")
            expected = messages * per_message
            deadline = time.monotonic() + 120
            while metric(metrics, ACCEPTED) < expected and time.monotonic() < deadline:
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            after = {k: cpu_seconds(p) for k, p in pids.items()}
        finally:
            gateway.stop()
        in_kafka = asyncio.run(_distinct_in_kafka(self.kafka.url, topic))
        per = {k: (after[k] - before[k]) / expected * 1e6 for k in pids}
        return Result(
            scenario=name,
            per_message=per_message,
            target_msgs_per_s=rate,
            messages=messages,
            readings=expected,
            publish_rate_msgs_per_s=round(published["rate_reached"], 1),
            readings_per_s=round(expected / elapsed, 1),
            in_kafka=in_kafka,
            lost=expected - in_kafka,
            gateway_cpu_us_per_reading=round(per["gateway"], 2),
            mosquitto_cpu_us_per_reading=round(per["mosquitto"], 2),
            kafka_cpu_us_per_reading=round(per["kafka"], 2),
            seconds=round(elapsed, 2),
        )


SCENARIOS: list[tuple[str, int, float, float]] = [
    # name, readings per message, target messages/s (0 = as fast as the publisher can), seconds of load
    ("single-2k", 1, 2_000, 10),
    ("single-5k", 1, 5_000, 10),
    ("single-8k", 1, 8_000, 10),
    ("single-max", 1, 0, 10),
    ("batch50-200", 50, 200, 10),
    ("batch50-1k", 50, 1_000, 10),
    ("batch50-max", 50, 0, 10),
]


def run_all(devices: int, out: Path, quick: bool) -> list[Result]:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="smartcity-bench-") as tmp, IngestBench(Path(tmp), devices) as bench:
        for name, per_message, rate, seconds in SCENARIOS:
            duration = seconds / 4 if quick else seconds
            count = int((rate or (15_000 if per_message == 1 else 1_500)) * duration)
            console.print(f"running {name}: {count} messages x {per_message} readings ...")
            results.append(bench.run(name, per_message, rate, count))
    table = Table(title=f"ingest benchmark, {devices} devices, QoS 1")
    for column in (
        "scenario",
        "msgs/s target",
        "msgs/s reached",
        "readings/s",
        "lost",
        "gateway µs/reading",
        "mosquitto µs/reading",
        "kafka µs/reading",
    ):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            r.scenario,
            f"{r.target_msgs_per_s:.0f}" if r.target_msgs_per_s else "max",
            f"{r.publish_rate_msgs_per_s:.0f}",
            f"{r.readings_per_s:.0f}",
            str(r.lost),
            f"{r.gateway_cpu_us_per_reading:.1f}",
            f"{r.mosquitto_cpu_us_per_reading:.1f}",
            f"{r.kafka_cpu_us_per_reading:.1f}",
        )
    console.print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"devices": devices, "cpus": os.cpu_count(), "results": [asdict(r) for r in results]}, indent=2)
    )
    console.print(f"written to {out}")
    return results
