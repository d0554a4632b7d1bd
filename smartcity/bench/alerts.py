"""Alert latency benchmark (issue 5): from the MQTT publish of a reading to its alert on ``alerts/{department}``.

The system measured is the real one-machine stack: ``python -m smartcity up`` in a temporary data directory on free
ports, every service its own process (``harness.stack.StackRun``). A background fleet and probe gas detectors are
registered through the HTTP API; then, for each background rate:

- **load**: ``simulators.publisher`` in its own process as the operator account ``admin``: one reading per message,
  QoS 1, round robin over the fleet, every reading ``ch4_lel`` 2.0 and battery 87 %, so the load raises no alert.
- **probes** (``harness.probes``): every ``interval`` a fresh probe device (its own site: no site correlation)
  publishes ``ch4_lel`` 30, QoS 1, without ``ts``: ``gas.ch4`` raises an orange alert for ``emergency``. A subscriber
  logged in as ``dept-emergency`` notes when the ``raised`` message of that key arrives. Latency is that arrival
  minus the moment just before ``publish`` (one monotonic clock, one process); none within ``TIMEOUT_S`` is a lost
  probe. Each probe is cleared (``ch4_lel`` 5) a few probes later.

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
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from core.process import die_with_parent
from core.settings import KafkaConnection
from harness.builders import device_record
from harness.kafka import Audit, read_topic
from harness.measure import ACCEPTED, REFUSED, cpu_seconds, metric, quantile
from harness.probes import CLEAR_AFTER, CLEAR_CH4, PROBE_CH4, TIMEOUT_S, Probes, Sample, warm_up
from harness.stack import DEPARTMENT, StackRun

SITE_NAME = "龙岗 bench"
SETTLE_S = 3.0  # load running before the first probe
SEGMENTS = ("publish to gateway", "gateway to Kafka", "Kafka to finding", "finding to alert", "alert to officer")


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
    accepted = partial(metric, stack.gateway_metrics, ACCEPTED)
    refused = partial(metric, stack.gateway_metrics, REFUSED)
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
            samples.append(probes.send(device, PROBE_CH4))
            if n >= CLEAR_AFTER:
                probes.send(probe_ids[n - CLEAR_AFTER], CLEAR_CH4)
        while any(s.arrived is None for s in samples) and time.monotonic() < samples[-1].sent + TIMEOUT_S:
            time.sleep(0.05)
        window = time.monotonic() - t0
        cpu = {k: round((cpu_seconds(p) - cpu0[k]) / window * 100, 1) for k, p in pids.items()}
        rate_reached, refusals = (accepted() - accepted0) / window, refused() - refused0
    finally:
        load.terminate()
        load.wait()
    for device in probe_ids[-CLEAR_AFTER:]:
        probes.send(device, CLEAR_CH4)
    ms = [m for s in samples if (m := s.latency_ms()) is not None]
    result = LevelResult(
        rate, round(rate_reached), round(window, 1), len(samples), len(samples) - len(ms), quantile(ms, 0.5),
        quantile(ms, 0.95), quantile(ms, 0.99), round(max(ms, default=math.nan), 1), cpu, int(refusals),
        [round(m, 1) for m in ms],
    )  # fmt: skip
    return result, samples, count


class _Produced:
    """When each probe's alarming reading was produced to Kafka, from an audit of the readings topic as it comes
    (``harness.kafka.Audit``: the Kafka store trims readings once every group has passed them)."""

    def __init__(self) -> None:
        self.at: dict[str, int] = {}

    def keep(self, record: Any) -> None:
        if b'"probe-' in record.value:  # only the records carrying a probe are decoded
            for r in json.loads(record.value)["readings"]:
                if r["device_id"].startswith("probe-") and r["values"].get("ch4_lel", 0) >= 25:
                    self.at.setdefault(r["device_id"], record.timestamp)


async def _stamps(kafka: KafkaConnection, produced: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Probe device -> (when its reading's Kafka record was produced, ``detected_at`` of its ``raised`` finding)."""
    from core.contracts.finding import Finding

    detected: dict[str, int] = {}

    def finding(_ts: int, value: bytes) -> None:
        f = Finding.model_validate_json(value)
        if f.event == "raised" and f.device_id:
            detected.setdefault(f.device_id, f.detected_at)

    await read_topic(kafka.kafka_bootstrap, kafka.topic_findings, finding)
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
    return {name: {"p50": quantile(span, 0.5), "p99": quantile(span, 0.99)} for name, span in pairs}


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
    fleet = [
        device_record(f"bench-{i:06d}", site=f"bench-site-{i // 8:05d}", site_name=SITE_NAME) for i in range(devices)
    ]
    fleet += [device_record(d, site_name=SITE_NAME) for d in warm + [d for ids in probe_ids for d in ids]]
    results: list[tuple[LevelResult, list[Sample]]] = []
    with tempfile.TemporaryDirectory(prefix="smartcity-bench-alerts-") as tmp, StackRun(Path(tmp)) as stack:
        stack.register(fleet)
        probes = Probes(stack)
        produced = _Produced()
        readings = KafkaConnection(kafka_bootstrap=stack.kafka).topic_readings
        with Audit(stack.kafka, readings, produced.keep) as audit:
            try:
                print(f"first alert after {warm_up(probes, warm):.1f} s of warm-up", flush=True)
                seq_base = 0
                for rate, ids in zip(rates, probe_ids, strict=True):
                    print(
                        f"background {rate} readings/s, {samples} probes every {interval_s * 1000:.0f} ms", flush=True
                    )
                    result, level_samples, count = run_level(
                        stack, probes, rate, devices, ids, interval_s, seq_base, per_message
                    )
                    results.append((result, level_samples))
                    seq_base += count  # seq stays increasing per device
                    stack.wait_drained()
                audit.caught_up(60)
            finally:
                probes.close()
        stamps = asyncio.run(_stamps(KafkaConnection(kafka_bootstrap=stack.kafka), produced.at))
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
