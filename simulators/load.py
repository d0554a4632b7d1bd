"""Load mode (issue 7): ramp a fleet's rate, hold it, and account for every reading end to end.

A run starts the whole one-machine stack (``smartcity up`` on free ports, ``smartcity.bench.alerts.StackRun``),
registers a generated Longgang fleet (``simulators.fleet``: realistic records, realistic healthy values that raise
no alert) and probe gas detectors, and drives the fleet from ``simulators.load_publisher``, its own process, through
steps: each rate of ``rates`` for ``step_s`` (the ramp), the last one held for ``hold_s``. Each step measures, over
its window (the step less its first seconds while the rate settles):

- readings/s asked, published, accepted by the gateway, evaluated by the stream worker, stored by the writer (each
  service's own Prometheus counter);
- alert latency, publish to ``alerts/emergency``, of probes sent every ``probe_interval_s`` (``Probes``, as in the
  alert benchmark), so probe alerts are the only alerts;
- CPU of each platform process (``/proc``, pids from stack.json) and of the publisher, reported apart.

After the last step the run waits until the writer and the stream worker have caught up with the gateway, then
looks for every reading the publisher sent: distinct (device, seq) on the Kafka readings topic, points in InfluxDB.
Seqs and timestamps are unique per device by construction (see ``simulators.load_publisher``), so both counts are
exact. The stack is stopped at the end; nothing of a run outlives it but the report.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from simulators.fleet import Fleet, generate_fleet
from simulators.load_publisher import LoadPublisher, published_per_device, template
from simulators.load_report import PLATFORM, PUBLISHER, Accounting, Latency, LoadReport, StepResult, save, table
from smartcity.bench.alerts import ACCEPTED, CLEAR_AFTER, Probes, Sample, StackRun, _device, _metric, _quantile
from smartcity.bench.alerts import _read_all as read_topic
from smartcity.bench.alerts import warm_up as warm_up_probes
from smartcity.bench.ingest import cpu_seconds
from smartcity.contracts.telemetry import decode_batch
from smartcity.settings import KafkaConnection

EVALUATED, STORED = "smartcity_streams_readings_total", "smartcity_writer_readings_total"
REFUSED = "smartcity_ingest_refusals_total"
SETTLE_S = 3.0  # the start of each step not measured, while the publisher reaches the new rate
VARIANTS = 4  # healthy payloads per device, cycled


@dataclass(frozen=True)
class LoadPlan:
    """The parameters of ``run_load``, named: the presets below, and what the CLI builds."""

    name: str
    devices: int
    per_message: int
    rates: tuple[int, ...]
    step_s: float
    hold_s: float
    probes: bool = True
    probe_interval_s: float = 0.5
    seed: int = 1

    def run(self, out: Path) -> LoadReport:
        return run_load(**asdict(self), out=out)


def w1(quick: bool = False) -> LoadPlan:
    """W1: one reading per message, QoS 1, 10,000 devices, ramped to and held at 12,000 readings/s."""
    if quick:
        return LoadPlan("W1 quick", 2_000, 1, (3_000, 6_000, 12_000), step_s=8, hold_s=15)
    return LoadPlan("W1", 10_000, 1, (3_000, 6_000, 9_000, 12_000), step_s=20, hold_s=60)


def w2(quick: bool = False) -> LoadPlan:
    """W2: 50 readings per message, 100,000 devices, ramped to and held at 100,000 readings/s."""
    if quick:
        return LoadPlan("W2 quick", 10_000, 50, (25_000, 50_000, 100_000), step_s=8, hold_s=15)
    return LoadPlan("W2", 100_000, 50, (25_000, 50_000, 75_000, 100_000), step_s=20, hold_s=60)


def latency(rate: int, quick: bool = False) -> LoadPlan:
    """Alert latency under a steady W1-shaped load of ``rate`` readings/s (the issue: half of W1's peak)."""
    if quick:
        return LoadPlan(f"latency at {rate:,}/s quick", 2_000, 1, (rate,), step_s=0, hold_s=20, probe_interval_s=0.2)
    return LoadPlan(f"latency at {rate:,}/s", 10_000, 1, (rate,), step_s=0, hold_s=60, probe_interval_s=0.15)


@dataclass
class _Snap:
    t: float
    counters: tuple[float, float, float, float]  # accepted, evaluated, stored, refused
    cpu: dict[str, float]  # seconds
    sent: int  # messages the publisher has sent


class _Run:
    """One stack, one fleet, one publisher: snapshots, steps, the drain, and the live progress bar."""

    def __init__(self, stack: StackRun, publisher: LoadPublisher, probes: Probes, progress: Progress) -> None:
        self.stack, self.publisher, self.probes, self.progress = stack, publisher, probes, progress
        self.pids = {name: stack.pids[name] for name in PLATFORM} | {PUBLISHER: publisher.pid}
        self.task = progress.add_task("starting", total=None, status="")
        self.probe_readings = 0  # sent during the steps: taken out of the gateway's count
        self.done_s = 0.0  # of the steps before the current one
        self.label = ""

    def counters(self) -> tuple[float, float, float, float]:
        s = self.stack
        return (_metric(s.gateway_metrics, ACCEPTED), _metric(s.streams_metrics, EVALUATED),
                _metric(s.writer_metrics, STORED), _metric(s.gateway_metrics, REFUSED))  # fmt: skip

    def snap(self) -> _Snap:
        try:
            cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        except FileNotFoundError as e:
            raise RuntimeError(f"a process of the run is gone (crashed, or restarted by smartcity up): {e}") from e
        return _Snap(time.monotonic(), self.counters(), cpu, self.publisher.stat()[0])

    def _probe(self, device: str, ch4: float) -> Sample:
        self.probe_readings += 1
        return self.probes.send(device, ch4)

    def _wait(self, until: float, started: float) -> None:
        """Sleep until ``until``, showing the gateway's accepted readings/s about once a second."""
        last = (time.monotonic(), self.counters()[0])
        while (now := time.monotonic()) < until:
            time.sleep(min(1.0, until - now))
            now, accepted = time.monotonic(), self.counters()[0]
            per_s, last = (accepted - last[1]) / max(now - last[0], 1e-3), (now, accepted)
            self.progress.update(
                self.task, description=self.label, status=f"accepted {per_s:>9,.0f}/s",
                completed=self.done_s + now - started,
            )  # fmt: skip

    def step(self, label: str, rate: int, seconds: float, probe_ids: list[str], interval_s: float) -> tuple[
        _Snap, _Snap, list[Sample]
    ]:  # fmt: skip
        """``rate`` for ``seconds``: snapshots at the ends of the window, and the probes sent in it."""
        self.label = label
        self.publisher.rate(rate)
        started = time.monotonic()
        end = started + seconds
        self._wait(started + min(SETTLE_S, seconds / 4), started)
        first, samples = self.snap(), list[Sample]()
        for device in probe_ids:
            due = first.t + len(samples) * interval_s
            if due >= end:
                break
            self._wait(due, started)
            samples.append(self._probe(device, 30.0))
            if len(samples) > CLEAR_AFTER:
                self._probe(samples[-1 - CLEAR_AFTER].device, 5.0)
        self._wait(end, started)
        last = self.snap()
        for sample in samples[-CLEAR_AFTER:]:
            self._probe(sample.device, 5.0)
        self.done_s += seconds
        return first, last, samples

    def drain(self, expected: float, timeout: float = 900) -> float:
        """Until the gateway has taken ``expected`` readings (accepted or refused) and the stream worker and the
        writer have caught up with it, or nothing has moved for 15 s; the seconds it took."""
        started = still = time.monotonic()
        self.label, moved = "draining", None
        while (now := time.monotonic()) < started + timeout:
            accepted, evaluated, stored, refused = self.counters()
            if accepted + refused >= expected and evaluated >= accepted and stored >= accepted:
                break
            if (accepted, evaluated, stored) != moved:
                moved, still = (accepted, evaluated, stored), now
            elif now - still > 15:
                break  # what never arrives shows as loss
            status = f"evaluated {evaluated:,.0f}, stored {stored:,.0f} of {accepted:,.0f}"
            self.progress.update(self.task, description=self.label, status=status)
            time.sleep(0.5)
        return time.monotonic() - started


def _per(cpu_s: float, readings: float) -> float | None:
    """Microseconds of CPU per reading; none when no reading went through."""
    return round(cpu_s / readings * 1e6, 1) if readings > 0 else None


def _total(per: dict[str, float | None]) -> float | None:
    values = list(per.values())
    return None if None in values else round(sum(v or 0.0 for v in values), 1)


def _result(n: int, phase: str, rate: int, a: _Snap, b: _Snap, samples: list[Sample] | None, per_message: int) -> (
    StepResult
):  # fmt: skip
    window = b.t - a.t
    accepted, evaluated, stored, refused = (y - x for x, y in zip(a.counters, b.counters, strict=True))
    cpu = {name: b.cpu[name] - a.cpu[name] for name in a.cpu}
    per = {name: _per(cpu[name], accepted) for name in PLATFORM}
    lat = None
    if samples is not None:
        ms = [m for s in samples if (m := s.latency_ms()) is not None]
        p50, p95, p99 = (None if math.isnan(v := _quantile(ms, q)) else v for q in (0.5, 0.95, 0.99))
        lat = Latency(len(samples), len(samples) - len(ms), p50, p95, p99, round(max(ms), 1) if ms else None)
    published, accepted_s, evaluated_s, stored_s = (
        round(v / window, 1) for v in ((b.sent - a.sent) * per_message, accepted, evaluated, stored)
    )
    return StepResult(
        step=n,
        phase=phase,
        target_readings_per_s=rate,
        window_s=round(window, 2),
        published_readings_per_s=published,
        accepted_readings_per_s=accepted_s,
        evaluated_readings_per_s=evaluated_s,
        stored_readings_per_s=stored_s,
        sustained_readings_per_s=min(accepted_s, evaluated_s, stored_s),
        refused=int(refused),
        latency=lat,
        cpu_percent={name: round(v / window * 100, 1) for name, v in cpu.items()},
        cpu_us_per_reading=per,
        platform_cpu_us_per_reading=_total(per),
        publisher_cpu_us_per_reading=_per(cpu[PUBLISHER], accepted),
    )


def _pool(fleet: Fleet) -> dict[str, Any]:
    """Per device, ``VARIANTS`` healthy payload templates from its baseline (quiet by design: no alert)."""
    now = int(time.time() * 1000)
    rows = [[template(d.baseline.values(60.0 * v, now)) for v in range(VARIANTS)] for d in fleet.devices]
    return {"ids": [d.id for d in fleet.devices], "templates": rows}


async def _in_kafka(bootstrap: str, topic: str, ids: list[str], messages: int, per_message: int) -> int:
    """Distinct published (device, seq) pairs on the readings topic."""
    index = {d: i for i, d in enumerate(ids)}
    sent = [published_per_device(i, len(ids), messages, per_message) for i in range(len(ids))]
    stride = max(sent) or 1
    seen = bytearray(len(ids) * stride)

    def keep(_ts: int, value: bytes) -> None:
        for r in decode_batch(value):
            i, seq = index.get(r["device_id"]), r["seq"]
            if i is not None and seq is not None and 0 <= seq < sent[i]:
                seen[i * stride + seq] = 1

    await read_topic(bootstrap, topic, keep)
    return seen.count(1)


def _in_influx(url: str) -> int:
    """Points with ``battery_pct``: one per load reading (probes send only ``ch4_lel``)."""
    q = 'SELECT count("battery_pct") FROM "device_health"'
    answer = httpx.get(f"{url}/query", params={"db": "smartcity", "q": q}, timeout=600).json()
    series = answer["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


def run_load(
    devices: int,
    per_message: int,
    rates: Sequence[int],
    *,
    step_s: float,
    hold_s: float,
    out: Path,
    probes: bool = True,
    probe_interval_s: float = 0.5,
    seed: int = 1,
    name: str = "load",
) -> LoadReport:
    """Ramp through ``rates[:-1]`` (``step_s`` each), hold ``rates[-1]`` for ``hold_s``, account for every reading;
    the report is written to ``out`` (JSON) with its plot beside it (``.png``), printed, and returned."""
    if not rates or min(rates) <= 0 or hold_s <= 0 or (len(rates) > 1 and step_s <= 0):
        raise ValueError("rates must be positive, hold_s > 0, and step_s > 0 for a ramp")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per metrics poll otherwise
    console = Console(width=160)
    plan = [("ramp", r, step_s) for r in rates[:-1]] + [("hold", rates[-1], hold_s)]
    probe_ids = [[f"probe-{n}-{k:04d}" for k in range(int(s / probe_interval_s) + 1)] if probes else []
                 for n, (_p, _r, s) in enumerate(plan)]  # fmt: skip
    warm = [f"probe-w{k:02d}" for k in range(20)]
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    console.print(f"[bold]{name}[/]: generating {devices:,} devices (seed {seed}) ...")
    # interval_s 3600: the offline rule counts 3 intervals from registration for a device not yet heard from,
    # and registering 100,000 devices takes longer than 3 minutes' worth of the default 60 s.
    fleet = generate_fleet(devices, seed, interval_s=3600, prefix="load")
    records = [r.model_dump(mode="json") for r in fleet.records()]
    records += [_device(d, f"site-{d}") for d in warm + [d for ids in probe_ids for d in ids]]
    with tempfile.TemporaryDirectory(prefix="smartcity-load-") as tmp, StackRun(Path(tmp)) as stack:
        pool_path = Path(tmp) / "load-pool.json"
        pool_path.write_text(json.dumps(_pool(fleet)))
        console.print(f"stack up; registering {len(records):,} devices ...")
        stack.register(records)
        env = {**stack.env, "SMARTCITY_MQTT_PASSWORD": stack.admin_password}
        publisher = LoadPublisher(stack.mqtt_url, pool_path, per_message, env)
        prober = Probes(stack)
        columns = (TextColumn("[bold]{task.description:<26}"), BarColumn(), TextColumn("{task.fields[status]}"),
                   TimeElapsedColumn())  # fmt: skip
        try:
            console.print(f"first alert after {warm_up_probes(prober, warm):.1f} s of warm-up probes")
            time.sleep(2)  # the followers of the devices topic have the last of the fleet
            with Progress(*columns, console=console) as progress:
                run = _Run(stack, publisher, prober, progress)
                progress.update(run.task, total=sum(s for _p, _r, s in plan))
                begin = run.snap()
                raw = [run.step(f"step {n} {phase} {rate:,}/s", rate, s, probe_ids[n], probe_interval_s)
                       for n, (phase, rate, s) in enumerate(plan)]  # fmt: skip
                final = publisher.stop()
                expected = begin.counters[0] + begin.counters[3] + final["acked"] * per_message + run.probe_readings
                drain_s = run.drain(expected)
                counters = run.counters()
                cpu = {name: cpu_seconds(pid) for name, pid in run.pids.items() if name != PUBLISHER}
        finally:
            publisher.kill()
            prober.close()
        console.print("counting the readings in Kafka and InfluxDB ...")
        topic = KafkaConnection(kafka_bootstrap=stack.kafka).topic_readings
        in_kafka = asyncio.run(_in_kafka(stack.kafka, topic, [d.id for d in fleet.devices], final["sent"], per_message))
        in_influx = _in_influx(stack.influx)
    steps = [_result(n, phase, rate, a, b, s if probes else None, per_message)
             for n, ((phase, rate, _s), (a, b, s)) in enumerate(zip(plan, raw, strict=True))]  # fmt: skip
    acked = final["acked"] * per_message
    accepted = int(counters[0] - begin.counters[0]) - run.probe_readings
    accounting = Accounting(
        final["sent"] * per_message, acked, accepted, in_kafka, in_influx, acked - in_kafka, acked - in_influx,
        int(counters[3] - begin.counters[3]), final["disconnects"], round(drain_s, 1),
    )  # fmt: skip
    run_cpu = {k: _per(cpu[k] - begin.cpu[k], accepted) for k in PLATFORM}
    report = LoadReport(
        name, started_at, os.cpu_count() or 0, devices, per_message, seed, steps, accounting, run_cpu,
        _total(run_cpu), _per(raw[-1][1].cpu[PUBLISHER] - begin.cpu[PUBLISHER], accepted),
    )  # fmt: skip
    save(report, out)
    console.print(table(report))
    console.print(f"written to {out} and {report.plot_path}")
    return report
