"""Load mode (issue 7): ramp a fleet's rate, hold it, and account for every reading end to end.

A run starts the whole one-machine stack (``smartcity up`` on free ports, ``harness.stack.StackRun``),
registers a generated Longgang fleet (``simulators.fleet``: realistic records, realistic healthy values that raise
no alert) and probe gas detectors, and drives the fleet from ``simulators.load_publisher``, its own process, through
steps: each rate of ``rates`` for ``step_s`` (the ramp), the last one held for ``hold_s``. Each step measures, over
its window (the step less its first seconds while the rate settles):

- readings/s asked, acknowledged by the broker, accepted by the gateway, evaluated by the stream worker and stored
  by the writer (each service's own Prometheus counter);
- alert latency, publish to ``alerts/emergency``, of probes sent every ``probe_interval_s`` (``harness.probes``,
  as in the alert benchmark), so probe alerts are the only alerts;
- CPU of each platform process (``/proc``, pids from stack.json) and of the publisher, reported apart.

After the last step the run waits until the writer and the stream worker have caught up with the gateway, then
looks for every reading the publisher sent: distinct (device, seq) on the Kafka readings topic, points in InfluxDB.
Seqs and timestamps are unique per device by construction (see ``simulators.load_publisher``), so both counts are
exact. The stack is stopped at the end; nothing of a run outlives it but the report.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from core.clock import local_now
from core.settings import KafkaConnection
from harness.builders import device_record
from harness.kafka import Audit
from harness.measure import ACCEPTED, EVALUATED, REFUSED, STORED, cpu_seconds, get, metric, sample_sum
from harness.probes import CLEAR_AFTER, CLEAR_CH4, PROBE_CH4, Probes, Sample
from harness.probes import warm_up as warm_up_probes
from harness.stack import StackRun
from simulators.fleet import Fleet, generate_fleet
from simulators.load_publisher import LoadPublisher, template
from simulators.load_report import (
    HARNESS,
    KAFKA_CLIENTS,
    PLATFORM,
    PUBLISHER,
    STORE,
    Accounting,
    KafkaCount,
    LoadReport,
    Snapshot,
    count_in_influx,
    kafka_requests,
    per_reading,
    platform_total,
    requests_table,
    save,
    step_result,
    table,
)  # fmt: skip

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

    def run(self, out: Path, logs: Path | None = None) -> LoadReport:
        return run_load(**asdict(self), out=out, logs=logs)


def w1(quick: bool = False) -> LoadPlan:
    """W1: one reading per message, QoS 1, 10,000 devices, ramped to and held at 12,000 readings/s."""
    if quick:
        return LoadPlan("W1 quick", 2_000, 1, (3_000, 6_000, 12_000), step_s=8, hold_s=15)
    return LoadPlan("W1", 10_000, 1, (3_000, 6_000, 9_000, 12_000), step_s=20, hold_s=60)


def w2(quick: bool = False) -> LoadPlan:
    """W2: 50 readings per message, 100,000 devices, ramped to and held at 100,000 readings/s."""
    if quick:
        return LoadPlan("W2 quick", 10_000, 50, (50_000, 100_000), step_s=5, hold_s=8)
    # Shorter than W1: the gateway takes batches faster than rules and storage can follow on this machine, and the
    # backlog of a longer run takes minutes to drain.
    return LoadPlan("W2", 100_000, 50, (25_000, 50_000, 75_000, 100_000), step_s=15, hold_s=45)


def latency(rate: int, quick: bool = False) -> LoadPlan:
    """Alert latency under a steady W1-shaped load of ``rate`` readings/s (the issue: half of W1's peak)."""
    if quick:
        return LoadPlan(f"latency at {rate:,}/s quick", 2_000, 1, (rate,), step_s=0, hold_s=20, probe_interval_s=0.2)
    return LoadPlan(f"latency at {rate:,}/s", 10_000, 1, (rate,), step_s=0, hold_s=60, probe_interval_s=0.15)


def _text(url: str) -> str:
    """A service's metrics; a service busy with a backlog may take seconds to answer, so it is asked three times."""
    for attempt in range(3):
        try:
            return get(url, timeout=20).text
        except httpx.HTTPError:
            if attempt == 2:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


class _Run:
    """One stack, one fleet, one publisher: the schedule, snapshots, steps, the drain, and the live progress bar.

    The publisher's rate follows the plan on a clock of its own (a thread), so a snapshot that is slow because a
    busy service is slow to answer never stretches a step's load; it only blurs that window's ends (``took``)."""

    def __init__(self, stack: StackRun, publisher: LoadPublisher, probes: Probes, progress: Progress) -> None:
        self.stack, self.publisher, self.probes, self.progress = stack, publisher, probes, progress
        self.pids = {name: stack.pids[name] for name in PLATFORM if name in stack.pids}
        self.pids |= {PUBLISHER: publisher.pid, HARNESS: os.getpid()}
        self.task = progress.add_task("starting", total=None, status="")
        self.probe_readings = 0  # sent during the steps: taken out of the gateway's count
        self.t0, self.label = 0.0, ""
        self._schedule: threading.Thread | None = None

    def start(self, plan: list[tuple[str, int, float]]) -> list[float]:
        """Start the schedule now; returns each step's start (monotonic). After the last step the rate is 0."""
        self.t0 = time.monotonic()
        starts = [self.t0 + sum(s for _p, _r, s in plan[:n]) for n in range(len(plan) + 1)]
        changes = [(t, rate) for t, (_p, rate, _s) in zip(starts, plan, strict=False)] + [(starts[-1], 0)]

        def follow() -> None:
            for t, rate in changes:
                time.sleep(max(0.0, t - time.monotonic()))
                self.publisher.rate(rate)

        self._schedule = threading.Thread(target=follow, daemon=True)
        self._schedule.start()
        return starts

    def finish(self) -> dict[str, int]:
        """After the schedule's end: the publisher's final counts, every message acknowledged."""
        if self._schedule is not None:
            self._schedule.join()
        return self.publisher.stop()

    def _texts(self, with_requests: bool = False) -> dict[str, str]:
        """Each service's metrics, fetched at once (one busy service does not delay the others' figures): the
        gateway's, the stream worker's and the writer's; with ``with_requests`` every Kafka client's and the store's."""
        s = self.stack
        urls = {
            "ingest gateway": s.gateway_metrics,
            "stream worker": s.streams_metrics,
            "influx writer": s.writer_metrics,
        }
        if with_requests:
            urls |= {
                name: s.urls[name] + "/metrics"
                for name in (*KAFKA_CLIENTS, STORE)
                if name not in urls and name in s.urls
            }
        with ThreadPoolExecutor(len(urls)) as pool:
            return dict(zip(urls, pool.map(_text, urls.values()), strict=True))

    @staticmethod
    def _counters(texts: dict[str, str]) -> tuple[float, float, float, float]:
        gateway = texts["ingest gateway"]
        return (
            sample_sum(gateway, ACCEPTED), sample_sum(texts["stream worker"], EVALUATED),
            sample_sum(texts["influx writer"], STORED), sample_sum(gateway, REFUSED),
        )  # fmt: skip

    def counters(self) -> tuple[float, float, float, float]:
        return self._counters(self._texts())

    def snap(self) -> Snapshot:
        began = time.monotonic()
        texts = self._texts(with_requests=True)
        # Kafka requests so far, by client and API, and the Kafka store's by method and kind (when it runs)
        requests = {name: kafka_requests(texts[name]) for name in (*KAFKA_CLIENTS, STORE) if name in texts}
        try:
            cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        except FileNotFoundError as e:
            raise RuntimeError(f"a process of the run is gone (crashed, or restarted by smartcity up): {e}") from e
        acked = self.publisher.stat()[1]
        now = time.monotonic()
        return Snapshot(now, self._counters(texts), cpu, acked, round(now - began, 2), requests)

    def _probe(self, device: str, ch4: float) -> Sample:
        self.probe_readings += 1
        return self.probes.send(device, ch4)

    def _wait(self, until: float) -> None:
        """Sleep until ``until``, showing the gateway's accepted readings/s about once a second."""
        last: tuple[float, float] | None = None
        while (now := time.monotonic()) < until:
            try:
                accepted = metric(self.stack.gateway_metrics, ACCEPTED, timeout=min(2.0, until - now))
            except httpx.HTTPError:
                continue  # busy: the next second's figure will do
            if last is not None:
                per_s = (accepted - last[1]) / max(now - last[0], 1e-3)
                status = f"accepted {per_s:>9,.0f}/s"
                self.progress.update(self.task, description=self.label, status=status, completed=now - self.t0)
            last = (now, accepted)
            time.sleep(max(0.0, min(1.0, until - time.monotonic())))

    def step(self, label: str, start: float, end: float, probe_ids: list[str], interval_s: float) -> tuple[
        Snapshot, Snapshot, list[Sample]
    ]:  # fmt: skip
        """The step scheduled from ``start`` to ``end``: snapshots at its window's ends, and the probes sent in it."""
        self.label = label
        self._wait(start + min(SETTLE_S, (end - start) / 4))
        first, samples = self.snap(), list[Sample]()
        for device in probe_ids:
            due = first.t + len(samples) * interval_s
            if due >= end:
                break
            self._wait(due)
            samples.append(self._probe(device, PROBE_CH4))
            if len(samples) > CLEAR_AFTER:
                self._probe(samples[-1 - CLEAR_AFTER].device, CLEAR_CH4)
        self._wait(end)
        last = self.snap()
        for sample in samples[-CLEAR_AFTER:]:
            self._probe(sample.device, CLEAR_CH4)
        return first, last, samples

    def drain(self, expected: float, timeout: float = 600, stall: float = 60) -> tuple[float, bool]:
        """Until the gateway has taken ``expected`` readings (accepted or refused) and the stream worker and the
        writer have caught up with it; or ``timeout`` passed, or nothing moved for ``stall`` seconds (a writer
        backing off from a busy InfluxDB is still for tens of seconds). The seconds it took, and whether it did."""
        started = still = time.monotonic()
        self.label, moved = "draining", None
        while (now := time.monotonic()) < started + timeout:
            accepted, evaluated, stored, refused = self.counters()
            if accepted + refused >= expected and evaluated >= accepted and stored >= accepted:
                return time.monotonic() - started, True
            if (accepted, evaluated, stored) != moved:
                moved, still = (accepted, evaluated, stored), now
            elif now - still > stall:
                break  # what never arrives shows as loss
            status = f"evaluated {evaluated:,.0f}, stored {stored:,.0f} of {accepted:,.0f}"
            self.progress.update(self.task, description=self.label, status=status, completed=now - self.t0)
            time.sleep(0.5)
        return time.monotonic() - started, False


def payload_pool(fleet: Fleet) -> dict[str, Any]:
    """Per device, ``VARIANTS`` healthy payload templates from its baseline (quiet by design: no alert)."""
    now = int(time.time() * 1000)
    rows = [[template(d.baseline.values(60.0 * v, now)) for v in range(VARIANTS)] for d in fleet.devices]
    return {"ids": [d.id for d in fleet.devices], "templates": rows}


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
    logs: Path | None = None,
) -> LoadReport:
    """Ramp through ``rates[:-1]`` (``step_s`` each), hold ``rates[-1]`` for ``hold_s``, account for every reading;
    the report is written to ``out`` (JSON) with its plot beside it (``.png``), printed, and returned. ``logs``: a
    folder to keep the services' logs in (the stack's own data directory is temporary)."""
    if not rates or min(rates) <= 0 or hold_s <= 0 or (len(rates) > 1 and step_s <= 0):
        raise ValueError("rates must be positive, hold_s > 0, and step_s > 0 for a ramp")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per metrics poll otherwise
    console = Console(width=160)
    plan = [("ramp", r, step_s) for r in rates[:-1]] + [("hold", rates[-1], hold_s)]
    probe_ids = [[f"probe-{n}-{k:04d}" for k in range(int(s / probe_interval_s) + 1)] if probes else []
                 for n, (_p, _r, s) in enumerate(plan)]  # fmt: skip
    warm = [f"probe-w{k:02d}" for k in range(20)]
    started_at = local_now().isoformat(timespec="seconds")
    console.print(f"[bold]{name}[/]: generating {devices:,} devices (seed {seed}) ...")
    # interval_s 3600: the offline rule counts 3 intervals from registration for a device not yet heard from,
    # and registering 100,000 devices takes longer than 3 minutes' worth of the default 60 s.
    fleet = generate_fleet(devices, seed, interval_s=3600, prefix="load")
    records = [r.model_dump(mode="json") for r in fleet.records()]
    records += [device_record(d) for d in warm + [d for ids in probe_ids for d in ids]]
    with tempfile.TemporaryDirectory(prefix="smartcity-load-") as tmp, StackRun(Path(tmp)) as stack:
        pool_path = Path(tmp) / "load-pool.json"
        pool_path.write_text(json.dumps(payload_pool(fleet)))
        console.print(f"stack up; registering {len(records):,} devices ...")
        stack.register(records)
        env = {**stack.env, "SMARTCITY_MQTT_PASSWORD": stack.admin_password}
        publisher = LoadPublisher(stack.mqtt_url, pool_path, per_message, env)
        prober = Probes(stack)
        columns = (TextColumn("[bold]{task.description:<26}"), BarColumn(), TextColumn("{task.fields[status]}"),
                   TimeElapsedColumn())  # fmt: skip
        topic = KafkaConnection(kafka_bootstrap=stack.kafka).topic_readings
        counted = KafkaCount([d.id for d in fleet.devices])
        with Audit(stack.kafka, topic, counted.keep, group="load-audit") as audit:  # joined: counts from the first
            try:
                console.print(f"first alert after {warm_up_probes(prober, warm):.1f} s of warm-up probes")
                time.sleep(2)  # the devices topic's followers have read the fleet's last records too (other partitions)
                with Progress(*columns, console=console) as progress:
                    run = _Run(stack, publisher, prober, progress)
                    begin = run.snap()
                    starts = run.start(plan)
                    progress.update(run.task, total=starts[-1] - starts[0])
                    raw = [run.step(f"step {n} {phase} {rate:,}/s", starts[n], starts[n + 1], probe_ids[n],
                                    probe_interval_s) for n, (phase, rate, _s) in enumerate(plan)]  # fmt: skip
                    final = run.finish()
                    expected = begin.counters[0] + begin.counters[3] + final["acked"] * per_message + run.probe_readings
                    drain_s, drained = run.drain(expected)
                    counters = run.counters()
                    cpu = {name: cpu_seconds(pid) for name, pid in run.pids.items() if name in PLATFORM}
            finally:
                publisher.kill()
                prober.close()
            console.print("counting the readings in Kafka and InfluxDB ...")
            caught_up = audit.caught_up(120)
            if not caught_up:
                console.print("[red]the Kafka audit did not catch up with the readings topic within 120 s[/]")
            in_kafka = counted.count(final["sent"], per_message)
        in_influx = count_in_influx(stack.influx)
        if logs is not None:
            shutil.copytree(Path(tmp) / "logs", logs, dirs_exist_ok=True)
    steps = [step_result(n, phase, rate, a, b, s if probes else None, per_message)
             for n, ((phase, rate, _s), (a, b, s)) in enumerate(zip(plan, raw, strict=True))]  # fmt: skip
    acked = final["acked"] * per_message
    accepted = int(counters[0] - begin.counters[0]) - run.probe_readings
    accounting = Accounting(
        final["sent"] * per_message, acked, accepted, in_kafka, in_influx, acked - in_kafka, acked - in_influx,
        int(counters[3] - begin.counters[3]), final["disconnects"], round(drain_s, 1), drained,
    )  # fmt: skip
    run_cpu = {k: per_reading(cpu[k] - begin.cpu[k], accepted) for k in PLATFORM if k in begin.cpu}
    report = LoadReport(
        name, started_at, os.cpu_count() or 0, devices, per_message, seed, steps, accounting, run_cpu,
        platform_total(run_cpu), per_reading(raw[-1][1].cpu[PUBLISHER] - begin.cpu[PUBLISHER], accepted),
    )  # fmt: skip
    save(report, out)
    console.print(table(report))
    console.print(requests_table(report))
    console.print(f"written to {out} and {report.plot_path}")
    return report
