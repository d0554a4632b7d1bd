"""Alert latency benchmark (issue 5): from the MQTT publish of a reading to its alert on ``alerts/{department}``.

The system measured is the real one-machine stack: ``python -m smartcity up`` in a temporary data directory on free
ports, every service its own process. A background fleet and probe gas detectors are registered through the HTTP
API; then, for each background rate:

- **load**: ``simulators.publisher`` in its own process as the operator account ``admin``: one reading per message,
  QoS 1, round robin over the fleet, every reading ``ch4_lel`` 2.0 and battery 87 %, so the load raises no alert.
- **probes**: every ``interval`` a fresh probe device (its own site: no site correlation) publishes ``ch4_lel`` 30,
  QoS 1, without ``ts``: ``gas.ch4`` raises an orange alert for ``emergency``. A subscriber logged in as
  ``dept-emergency`` notes when the ``raised`` message of that key arrives. Latency is that arrival minus the moment
  just before ``publish`` (one monotonic clock, one process); none within ``TIMEOUT_S`` is a lost probe. Each probe
  is cleared (``ch4_lel`` 5) a few probes later.

Where the time goes, from wall-clock stamps (one machine, one clock, milliseconds): the gateway's receive time (the
alert's ``ts``), the time the gateway produced the reading's Kafka record and the stream worker's ``detected_at``
(both read back from Kafka afterwards), the alerts service's decision (the alert's ``updated_at``). The accepted
rate is the gateway's own counter over the probe window; CPU is ``/proc/<pid>/stat`` utime + stime of every child
(pids from ``<data dir>/stack.json``) and of the load publisher over the same window.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaConsumer, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion

from core.contracts import TELEMETRY_TOPIC, TelemetryItem
from core.contracts.alert import ALERTS_MQTT_TOPIC, Alert
from core.process import die_with_parent, free_port, port_is_free
from core.secrets import saved_secrets
from core.settings import KafkaConnection
from smartcity.bench.ingest import cpu_seconds

DEPARTMENT = "emergency"
TIMEOUT_S = 5.0  # a probe whose alert takes longer is lost
SETTLE_S = 3.0  # load running before the first probe
CLEAR_AFTER = 5  # a probe is cleared this many probes later
SEGMENTS = ("publish to gateway", "gateway to Kafka", "Kafka to finding", "finding to alert", "alert to officer")
ACCEPTED = "smartcity_ingest_readings_accepted_total"


@dataclass
class Sample:
    device: str
    sent: float  # monotonic, just before publish
    sent_wall_ms: float
    arrived: float | None = None
    arrived_wall_ms: float = 0.0
    gateway_ms: int = 0  # the alert's ts: the gateway's receive time
    decided_ms: int = 0  # the alert's updated_at: the alerts service's decision
    stamps: tuple[int, int] | None = None  # the reading's Kafka record time, the finding's detected_at

    def latency_ms(self) -> float | None:
        if self.arrived is None or self.arrived - self.sent > TIMEOUT_S:
            return None
        return (self.arrived - self.sent) * 1000


@dataclass
class LevelResult:
    target_readings_per_s: int  # 0: as fast as the publisher can
    accepted_readings_per_s: int
    window_s: float
    samples: int
    lost: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    cpu_percent: dict[str, float]  # of one core, per process
    refused: int  # messages the gateway refused in the window: 0 unless its registry lags
    latencies_ms: list[float]
    segments_ms: dict[str, dict[str, float]] | None = None  # span -> {"p50", "p99"}


def _quantile(values: list[float], q: float) -> float:
    """Nearest rank; NaN when there is nothing to rank."""
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(len(ordered) * q) - 1)], 1) if ordered else float("nan")


def _metric(url: str, name: str, timeout: float = 5) -> float:
    """Sum of a Prometheus sample over its labels."""
    text = httpx.get(url, timeout=timeout).text
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+]+)$", text, re.M))


class StackRun:
    """``python -m smartcity up`` on free ports in ``data_dir``; stopped with SIGTERM, which stops its children."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        """``env``: more settings for ``smartcity up`` (``SMARTCITY_GATEWAYS``: replicas on the next ports)."""
        self.data_dir = data_dir
        self.env = {"SMARTCITY_LOG_LEVEL": "WARNING", **os.environ, **(env or {})}
        replicas = {
            "GATEWAY_HTTP": int(self.env.get("SMARTCITY_GATEWAYS", "1")),
            "STREAMS_HTTP": int(self.env.get("SMARTCITY_STREAM_WORKERS", "1")),
        }
        ports: dict[str, int] = {}
        for name in ("MQTT", "KAFKA", "INFLUX", "INFLUX_RPC", "GATEWAY_HTTP", "STREAMS_HTTP", "WRITER_HTTP", "HTTP"):
            while True:  # the OS hands out ports in sequence: a replica's port+n may be another's
                port = free_port()
                block = range(port, port + replicas.get(name, 1))
                taken = {p for other, first in ports.items() for p in range(first, first + replicas.get(other, 1))}
                if not taken.intersection(block) and all(port_is_free("127.0.0.1", p) for p in block):
                    ports[name] = port
                    break
        self.env |= {f"SMARTCITY_{name}_PORT": str(port) for name, port in ports.items()}
        self.mqtt_url, self.kafka = f"mqtt://127.0.0.1:{ports['MQTT']}", f"127.0.0.1:{ports['KAFKA']}"
        self.api = f"http://127.0.0.1:{ports['HTTP']}"
        self.influx = f"http://127.0.0.1:{ports['INFLUX']}"
        self.gateway_metrics = f"http://127.0.0.1:{ports['GATEWAY_HTTP']}/metrics"
        self.streams_metrics = f"http://127.0.0.1:{ports['STREAMS_HTTP']}/metrics"
        self.writer_metrics = f"http://127.0.0.1:{ports['WRITER_HTTP']}/metrics"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> StackRun:
        from smartcity.stack.supervisor import READY_LINE

        log = self.data_dir / "up.log"
        with log.open("wb") as out:  # a file, not a pipe: nobody would drain a pipe once the stack is up
            argv = [sys.executable, "-m", "smartcity", "up", "--data-dir", str(self.data_dir)]
            # A benchmark killed without its cleanup (SIGTERM, SIGKILL) takes its stack with it.
            self.proc = subprocess.Popen(
                argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        deadline = time.monotonic() + 180
        while READY_LINE not in log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"smartcity up did not come up:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        secrets = saved_secrets(self.data_dir)
        self.admin_password: str = secrets["admin_password"]
        self.dept_password: str = secrets["departments"][DEPARTMENT]
        self.token: str = secrets["api_token"]
        self.read_state()
        return self

    def read_state(self) -> None:
        """Pids and addresses from ``stack.json`` (the supervisor rewrites it when it restarts a child)."""
        state = json.loads((self.data_dir / "stack.json").read_text())
        self.pids = {k: int(v["pid"]) for k, v in state.items()}
        self.urls: dict[str, str] = {k: str(v["url"]) for k, v in state.items()}

    def __exit__(self, *exc: object) -> None:
        if exc and exc[0] is not None:  # the data directory is about to go: show what the services said
            for log in sorted((self.data_dir / "logs").glob("*.log")):
                print(
                    f"--- {log.name}:", *log.read_text(errors="replace").splitlines()[-15:], sep="\n", file=sys.stderr
                )
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def register(self, devices: list[dict[str, Any]]) -> None:
        with httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {self.token}"}, timeout=300) as http:
            for start in range(0, len(devices), 5000):
                http.post("/api/devices/import", json=devices[start : start + 5000]).raise_for_status()

    def wait_drained(self, timeout: float = 120) -> None:
        """Until neither the gateway nor the stream worker has counted a reading for a second."""
        last, deadline = (-1.0, -1.0), time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = (
                _metric(self.gateway_metrics, ACCEPTED),
                _metric(self.streams_metrics, "smartcity_streams_readings_total"),
            )
            if now == last:
                return
            last = now
            time.sleep(1)


def _device(device_id: str, site: str) -> dict[str, Any]:
    return {"id": device_id, "kind": "gas", "site_id": site, "site_name": "龙岗 bench", "lat": 22.72, "lon": 114.25,
            "interval_s": 3600, "departments": [DEPARTMENT]}  # fmt: skip


def _client(url: str, username: str, password: str, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-alerts-{name}")
    client.username_pw_set(username, password)
    client.connect(urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 1883)
    client.loop_start()
    return client


class Probes:
    """The probe publisher (operator account) and the department's subscriber, in this process."""

    def __init__(self, stack: StackRun) -> None:
        self.pending: dict[str, Sample] = {}  # alert key -> sample
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.sub = _client(stack.mqtt_url, f"dept-{DEPARTMENT}", stack.dept_password, "officer")
        self.sub.on_subscribe = lambda *_a: subscribed.set()
        self.sub.on_message = self._on_alert
        self.sub.subscribe(ALERTS_MQTT_TOPIC.format(department=DEPARTMENT), qos=1)
        self.pub = _client(stack.mqtt_url, "admin", stack.admin_password, "probe")
        if not subscribed.wait(10):
            raise RuntimeError("the department's subscriber did not get its subscription")

    def _on_alert(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        arrived, wall = time.monotonic(), time.time() * 1000
        alert = Alert.model_validate_json(msg.payload)
        with self.lock:
            sample = self.pending.get(alert.key)
            if alert.event == "raised" and sample is not None and sample.arrived is None:
                sample.arrived, sample.arrived_wall_ms = arrived, wall
                sample.gateway_ms, sample.decided_ms = alert.ts, alert.updated_at

    def send(self, device: str, ch4: float) -> Sample:
        body = TelemetryItem.model_construct(values={"ch4_lel": ch4}).model_dump_json(exclude_none=True).encode()
        sample = Sample(device, time.monotonic(), time.time() * 1000)
        if ch4 >= 25:
            with self.lock:
                self.pending[f"{device}:gas.ch4"] = sample
        self.pub.publish(TELEMETRY_TOPIC.format(device_id=device), body, qos=1)
        return sample

    def close(self) -> None:
        for client in (self.pub, self.sub):
            client.disconnect()
            client.loop_stop()


def warm_up(probes: Probes, devices: list[str]) -> float:
    """Probe until one alert arrives: the worker has its partitions, the gateway's directory knows the probes."""
    started = time.monotonic()
    for device in devices:
        sample = probes.send(device, 30.0)
        while time.monotonic() < sample.sent + 3:
            if sample.arrived is not None:
                return time.monotonic() - started
            time.sleep(0.05)
    raise RuntimeError(f"no alert arrived in {time.monotonic() - started:.0f} s of warm-up probes")


def _load(
    stack: StackRun, rate: int, devices: int, probes: int, interval_s: float, seq_base: int, per_message: int
) -> tuple[subprocess.Popen[bytes], int]:
    """The load publisher, with messages enough to last until the last probe's timeout (rate 0: as fast as it can,
    about 12,000 messages/s in the ingest benchmark); and how many it will send."""
    messages_per_s = rate / per_message
    count = int((messages_per_s or 20_000) * (SETTLE_S + probes * interval_s + TIMEOUT_S + 15))
    argv = [sys.executable, "-m", "simulators.publisher", "--url", stack.mqtt_url, "--devices", str(devices),
            "--count", str(count), "--rate", str(messages_per_s), "--seq-base", str(seq_base), "--value", "2.0",
            "--username", "admin", "--per-message", str(per_message)]  # fmt: skip
    env = {**stack.env, "SMARTCITY_MQTT_PASSWORD": stack.admin_password}
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, preexec_fn=die_with_parent), count * per_message


def run_level(
    stack: StackRun,
    probes: Probes,
    rate: int,
    devices: int,
    probe_ids: list[str],
    interval_s: float,
    seq_base: int,
    per_message: int = 1,
) -> tuple[LevelResult, list[Sample], int]:
    """One background rate: returns its result, its samples and how many load messages were planned."""
    accepted = partial(_metric, stack.gateway_metrics, ACCEPTED)
    refused = partial(_metric, stack.gateway_metrics, "smartcity_ingest_refusals_total")
    load, count = _load(stack, rate, devices, len(probe_ids), interval_s, seq_base, per_message)
    try:
        base, deadline = accepted(), time.monotonic() + 120
        while accepted() < base + rate / 10:  # the publisher builds its payloads first
            if load.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the background load did not start")
            time.sleep(0.2)
        time.sleep(SETTLE_S)
        pids = {**stack.pids, "load publisher": load.pid}
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        accepted0, refused0, t0 = accepted(), refused(), time.monotonic()
        samples: list[Sample] = []
        for n, device in enumerate(probe_ids):
            time.sleep(max(0.0, t0 + n * interval_s - time.monotonic()))
            samples.append(probes.send(device, 30.0))
            if n >= CLEAR_AFTER:
                probes.send(probe_ids[n - CLEAR_AFTER], 5.0)
        while any(s.arrived is None for s in samples) and time.monotonic() < samples[-1].sent + TIMEOUT_S:
            time.sleep(0.05)
        window = time.monotonic() - t0
        cpu = {k: round((cpu_seconds(p) - cpu0[k]) / window * 100, 1) for k, p in pids.items()}
        rate_reached, refusals = (accepted() - accepted0) / window, refused() - refused0
    finally:
        load.terminate()
        load.wait()
    for device in probe_ids[-CLEAR_AFTER:]:
        probes.send(device, 5.0)
    ms = [m for s in samples if (m := s.latency_ms()) is not None]
    result = LevelResult(
        rate, round(rate_reached), round(window, 1), len(samples), len(samples) - len(ms), _quantile(ms, 0.5),
        _quantile(ms, 0.95), _quantile(ms, 0.99), round(max(ms, default=math.nan), 1), cpu, int(refusals),
        [round(m, 1) for m in ms],
    )  # fmt: skip
    return result, samples, count


async def _read_all(bootstrap: str, topic: str, keep: Callable[[int, bytes], None]) -> None:
    """Every record of ``topic`` from the beginning to its end now: (timestamp, value) given to ``keep``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    try:
        await consumer.topics()  # metadata, for the partitions
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    keep(record.timestamp, record.value)
    finally:
        await consumer.stop()


async def _stamps(kafka: KafkaConnection) -> dict[str, tuple[int, int]]:
    """Probe device -> (when its reading's Kafka record was produced, ``detected_at`` of its ``raised`` finding)."""
    from core.contracts.finding import Finding

    produced: dict[str, int] = {}
    detected: dict[str, int] = {}

    def reading(ts: int, value: bytes) -> None:
        if b'"probe-' in value:  # only the records carrying a probe are decoded
            for r in json.loads(value)["readings"]:
                if r["device_id"].startswith("probe-") and r["values"].get("ch4_lel", 0) >= 25:
                    produced.setdefault(r["device_id"], ts)

    def finding(_ts: int, value: bytes) -> None:
        f = Finding.model_validate_json(value)
        if f.event == "raised" and f.device_id:
            detected.setdefault(f.device_id, f.detected_at)

    await _read_all(kafka.kafka_bootstrap, kafka.topic_readings, reading)
    await _read_all(kafka.kafka_bootstrap, kafka.topic_findings, finding)
    return {d: (produced[d], detected[d]) for d in detected.keys() & produced.keys()}


def _segments(samples: list[Sample]) -> dict[str, dict[str, float]]:
    """p50 and p99 of each span between stamps, over the probes that arrived in time."""
    spans: list[list[float]] = [[] for _ in SEGMENTS]
    for s in samples:
        if s.latency_ms() is not None and s.stamps is not None:
            points = (s.sent_wall_ms, s.gateway_ms, *s.stamps, s.decided_ms, s.arrived_wall_ms)
            for i, span in enumerate(spans):
                span.append(points[i + 1] - points[i])
    pairs = zip(SEGMENTS, spans, strict=True)
    return {name: {"p50": _quantile(span, 0.5), "p99": _quantile(span, 0.99)} for name, span in pairs}


def _print(levels: list[LevelResult], devices: int) -> None:
    from rich.console import Console
    from rich.table import Table

    latency = Table(title=f"alert latency: MQTT publish -> alerts/{DEPARTMENT} (ms), {devices:,} background devices")
    spans = Table(title="where the time goes (ms, p50 / p99 of each span)")
    cpu = Table(title="CPU over the probe window (% of one core)")
    columns = ("accepted/s", "probes", "lost", "p50", "p95", "p99", "max")
    for table, names in ((latency, columns), (spans, SEGMENTS), (cpu, list(levels[0].cpu_percent) if levels else [])):
        for name in ("readings/s target", *names):
            table.add_column(name, justify="right")
    for r in levels:
        target = f"{r.target_readings_per_s:,}" if r.target_readings_per_s else "max"
        counts = (f"{r.accepted_readings_per_s:,}", str(r.samples), str(r.lost))
        latency.add_row(target, *counts, *(f"{v:,.1f}" for v in (r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms)))
        spans.add_row(target, *(f"{v['p50']:.0f} / {v['p99']:.0f}" for v in (r.segments_ms or {}).values()))
        cpu.add_row(target, *(f"{v:.0f}" for v in r.cpu_percent.values()))
    Console(width=160).print(latency, spans, cpu)


def run_all(
    rates: list[int], samples: int, interval_s: float, devices: int, out: Path, per_message: int = 1
) -> list[LevelResult]:
    """``per_message``: background readings per MQTT message (field concentrators send batches)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per metrics poll otherwise
    warm = [f"probe-w{n:02d}" for n in range(20)]
    probe_ids = [[f"probe-{r}-{n:04d}" for n in range(samples)] for r in range(len(rates))]
    fleet = [_device(f"bench-{i:06d}", f"bench-site-{i // 8:05d}") for i in range(devices)]
    fleet += [_device(d, f"site-{d}") for d in warm + [d for ids in probe_ids for d in ids]]
    results: list[tuple[LevelResult, list[Sample]]] = []
    with tempfile.TemporaryDirectory(prefix="smartcity-bench-alerts-") as tmp, StackRun(Path(tmp)) as stack:
        stack.register(fleet)
        probes = Probes(stack)
        try:
            print(f"first alert after {warm_up(probes, warm):.1f} s of warm-up", flush=True)
            seq_base = 0
            for rate, ids in zip(rates, probe_ids, strict=True):
                print(f"background {rate} readings/s, {samples} probes every {interval_s * 1000:.0f} ms", flush=True)
                result, level_samples, count = run_level(
                    stack, probes, rate, devices, ids, interval_s, seq_base, per_message
                )
                results.append((result, level_samples))
                seq_base += count  # seq stays increasing per device
                stack.wait_drained()
        finally:
            probes.close()
        stamps = asyncio.run(_stamps(KafkaConnection(kafka_bootstrap=stack.kafka)))
    for result, level_samples in results:
        for s in level_samples:
            s.stamps = stamps.get(s.device)
        result.segments_ms = _segments(level_samples)
    levels = [r for r, _ in results]
    _print(levels, devices)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "devices": devices, "interval_ms": interval_s * 1000, "timeout_s": TIMEOUT_S,
            "per_message": per_message}  # fmt: skip
    out.write_text(json.dumps({**meta, "results": [asdict(r) for r in levels]}, indent=2))
    print(f"written to {out}")
    return levels
