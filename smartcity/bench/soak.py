"""Soak (issue 10): the whole stack for half an hour at half of W1's peak; memory, lag and latency must stay flat.

Not part of ``make bench`` nor of CI: it wants 30 minutes of a quiet machine (``make soak``).

A run is the end-to-end benchmark's latency workload, held: ``smartcity up`` on free ports in a temporary data
directory (``harness.stack.StackRun``), a generated Longgang fleet of 10,000 devices driven by
``simulators.load_publisher`` at one steady rate (healthy readings: no alert), and every 0.5 s a probe gas detector
crossing the ``gas.ch4`` threshold (``harness.probes``, as in the alert benchmark: publish to its ``raised`` message
on ``alerts/emergency``), acknowledged by the duty officer through the API and cleared five probes later, so it
closes. Probes cycle through a pool of 800 devices, each raised at most once every 400 s: that stays under the
rules' flap detection (6 changes in 600 s). The soak's stack lists closed alerts for 5 minutes instead of 7 days, so
the alerts service's book (about 600 closed alerts and a few open) is at its steady size well within the first half,
and the probes cause no growth of their own. (Left open, a probe's alert would be raised again under its key every
cycle and its history would grow to its 200 entries over 11 hours.)

Every ``sample_s`` (30 s; less for a short run, so that every run has 12 samples) one row:

- **memory**: RSS and its anonymous part (``/proc/<pid>/status``) of every process in ``stack.json``, read again
  each time: a changed pid is a restart. The anonymous part is judged: it is what a process holds itself (heap,
  stacks); the file-backed rest is mapped files the kernel drops under pressure (influxd maps its TSM files, so its
  RSS grows with the data on disk, as the page cache would). It is also read at every lag poll (3 s), and the
  window's lowest is judged: what the process returns to between bursts. influxd's garbage-collected heap swings by
  hundreds of MiB within a minute (compactions, snapshots), so one reading a window is noise around its level,
  while a leak raises the floor. The window's highest is reported beside it (``anon_peak_mib``). For a process whose
  heap a garbage collector manages (``GO_HEAP``: influxd), the heap its runtime reports is read at every poll too,
  and its floor is judged instead: the anonymous memory of such a process follows the collector's goal, which rises
  to its soft limit, and is held to that limit;
- **CPU**: each process's share of a core over the window (``/proc/<pid>/stat``), reported per process;
- **disk**: what the stores hold in the data directory (blocks used): the Kafka store split into the topics it trims
  once consumed (readings, the stream worker's internal topics) and those it keeps for their retention (findings,
  alerts, refused readings: days), InfluxDB's WAL and its data files, Mosquitto's persistence file;
- **lag**: every ``*_consumer_lag_records`` gauge, per service and topic: the mean of polls every 3 s in the window;
- **throughput**: readings/s accepted by the gateway, evaluated by the stream worker, stored by the writer (their own
  counters); the backlog, accepted minus stored;
- **alert latency**: p50, p95 and max of the probes sent in the window, shifted back by the 5 s timeout so that each
  probe judged had its chance; a probe whose alert took longer is late and counts as 5 s.

The verdicts are pure (``judge``): a series is flat when the least-squares slope over the second half of the run
(the first is warm-up: caches fill, heaps grow to their working size), extended over the whole run, adds no more than
its tolerance (``tolerances``). What is judged is each series' envelope over the last five minutes (``envelope``):
the floor of what a process, a disk or a queue holds, the median of the latency's p95. Also required (``checks``),
as a flat series cannot show them: the rate held (the gateway accepted at least 95 % of it over the second half),
at most 1 % of those probes late (a p95 pinned at the timeout is flat too), no process restarted, the flow
drained after the load, and a process with a collected heap under its soft limit (``within_limit``). Each slope's
standard error is reported beside it: on a short run a "growing" within two standard errors may be noise, and a
3-minute run is all warm-up; it checks the machinery, the 30-minute run judges the system.

Every process's memory is judged, the stores' included, when the one-machine Kafka keeps its records on disk (the
default): only Tansu on its memory engine (``SMARTCITY_KAFKA_STORAGE=memory``) holds the data it was given, and is
reported instead (``HOLDS_DATA``). Disk (``DISK``, judged in ``verdicts``): what is trimmed once consumed (the
Kafka store's readings), InfluxDB's WAL and series file and Mosquitto's file must stay flat; what retention keeps
for days (InfluxDB's raw points, 90 days; its hourly aggregates, 3 years; its alert archive, kept for good; the
Kafka topics for people, 7 days) grows with what was written until its retention, so its rate is reported per
reading and projected over that retention. InfluxDB compacts a day's shard fully only hours after the day, so a
run's growth of its shards is an upper bound of what they keep (``smartcity bench influx --compacted`` measures it).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from harness.builders import device_record
from harness.measure import (
    ACCEPTED,
    EVALUATED,
    EVALUATED_REPEATS,
    STORED,
    STORED_REPEATS,
    cpu_seconds,
    get,
    memory_mib,
    quantile,
)
from harness.probes import CLEAR_AFTER, TIMEOUT_S, Probes, Sample, warm_up
from harness.stack import StackRun
from simulators.fleet import generate_fleet
from simulators.load import payload_pool
from simulators.load_publisher import LoadPublisher
from smartcity.stack.supervisor import TANSU, StackSettings, trimmed_topics
from smartcity.status import Scrape
from storage.retention import AGG_DAYS, AGG_RP, RAW_DAYS, RAW_RP

#: W1's peak as recorded in docs/benchmarks.md ("End to end", measured 2026-11-25 on the 2-core machine): the best
#: sustained rate of the W1 run, its 6,000 step. Halved and rounded down to 100 as ``smartcity bench e2e`` does.
W1_PEAK_READINGS_PER_S = 5_983
RECEIVED = "smartcity_ingest_readings_received_total"
DEVICES, PROBE_INTERVAL_S, PROBE_POOL, POLL_S = 10_000, 0.5, 800, 3.0
#: the duty officer who acknowledges the probes' alerts; closed alerts are listed this long in the soak (7 days by
#: default): the alerts service's book reaches its steady size in the first half, where a week would take a week
OFFICER, CLOSED_RETENTION_S = "soak-officer", 300


def half_of_peak(peak: float) -> int:
    return max(100, int(peak / 2) // 100 * 100)


DEFAULT_RATE = half_of_peak(W1_PEAK_READINGS_PER_S)  # 2,900 readings/s


# -- the pure part: series -> verdicts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """What a series may add over the run: ``absolute`` (in its unit), or ``per_hour`` of its level for each hour of
    the run, whichever is larger."""

    absolute: float
    per_hour: float = 0.0

    def allowed(self, level: float, run_s: float) -> float:
        return max(self.absolute, self.per_hour * abs(level) * run_s / 3600)


def tolerances(rate: float) -> dict[str, Tolerance]:
    """Memory: 5 MiB over the run or 5 %/h of its level. Disk that must stay flat: 10 MiB over the run or 5 %/h (a
    WAL and a trimmed topic swing by a segment). Lag and backlog: two seconds of the rate. Latency: p95 up by 150 ms
    (a probe every 0.5 s gives a noisy p95 per window; a real rise is a trend of seconds)."""
    return {
        "memory": Tolerance(5.0, 0.05),
        "disk": Tolerance(10.0, 0.05),
        "lag": Tolerance(2 * rate),
        "backlog": Tolerance(2 * rate),
        "latency": Tolerance(150.0),
    }


@dataclass(frozen=True)
class Fit:
    slope: float  # per second
    slope_se: float  # its standard error; infinite with two points
    level: float  # the mean


def least_squares(points: Sequence[tuple[float, float]]) -> Fit:
    """The straight line through ``(t, value)`` points; at least two, at two different times."""
    n = len(points)
    mean_t, mean_v = sum(t for t, _ in points) / max(n, 1), sum(v for _, v in points) / max(n, 1)
    sxx = sum((t - mean_t) ** 2 for t, _ in points)
    if n < 2 or sxx == 0:
        raise ValueError("a fit needs two points at different times")
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / sxx
    residuals = sum((v - mean_v - slope * (t - mean_t)) ** 2 for t, v in points)
    se = math.sqrt(residuals / (n - 2) / sxx) if n > 2 else math.inf
    return Fit(slope, se, mean_v)


@dataclass(frozen=True)
class Verdict:
    series: str
    unit: str
    points: int  # judged: those of the run's second half
    level: float | None  # their mean
    slope_per_h: float | None
    slope_se_per_h: float | None
    growth: float | None  # the slope, extended over the whole run
    allowed: float | None
    flat: bool
    judged: bool = True  # false: reported only (a store whose memory is the data it keeps, ``HOLDS_DATA``)


def judge(
    series: str, unit: str, points: Sequence[tuple[float, float | None]], run_s: float, tol: Tolerance
) -> Verdict:
    """Flat when the second half's trend, over the whole run, grows by no more than ``tol`` allows; falling is flat.
    Fewer than three points in the second half cannot be judged, and are not flat."""
    half = [(t, v) for t, v in points if v is not None and t >= run_s / 2]
    if len(half) < 3 or len({t for t, _ in half}) < 2:
        return Verdict(series, unit, len(half), None, None, None, None, None, False)
    fit = least_squares(half)
    growth, allowed = fit.slope * run_s, tol.allowed(fit.level, run_s)
    se = None if math.isinf(fit.slope_se) else round(fit.slope_se * 3600, 3)
    return Verdict(series, unit, len(half), round(fit.level, 3), round(fit.slope * 3600, 3), se, round(growth, 3),
                   round(allowed, 3), growth <= allowed)  # fmt: skip


@dataclass(frozen=True)
class ProbeWindow:
    probes: int
    late: int  # no alert within TIMEOUT_S
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None


def probe_window(latencies_ms: Sequence[float | None], timeout_ms: float = TIMEOUT_S * 1000) -> ProbeWindow:
    """Nearest-rank percentiles; a late probe (``None``) counts as ``timeout_ms``, so lateness raises the p95."""
    values = [timeout_ms if v is None else v for v in latencies_ms]
    if not values:
        return ProbeWindow(0, 0, None, None, None)
    late = sum(v is None for v in latencies_ms)
    return ProbeWindow(len(values), late, quantile(values, 0.5), quantile(values, 0.95), round(max(values), 1))


@dataclass
class Row:
    t_s: float  # since the load started
    acked_per_s: float | None  # by the broker, the load publisher's PUBACKs
    accepted_per_s: float | None
    evaluated_per_s: float | None
    stored_per_s: float | None
    backlog: float | None  # readings accepted by the gateway, not yet stored by the writer
    lag_records: dict[str, float]  # "service topic" -> the mean of the window's polls
    lag_max_records: dict[str, float]
    rss_mib: dict[str, float | None]  # process -> resident memory
    latency: ProbeWindow
    restarted: list[str] = field(default_factory=list)
    load_1m: float = 0.0  # the machine's load average: a soak means something only on a quiet machine
    mqtt_queue: float | None = None  # readings the broker acknowledged to publishers, not yet read by the gateway
    anon_mib: dict[str, float | None] = field(default_factory=dict)  # process -> the window's lowest anonymous MiB
    cpu_percent: dict[str, float | None] = field(default_factory=dict)  # process -> % of one core over the window
    disk_mib: dict[str, float] = field(default_factory=dict)  # store part (``DISK``) -> MiB of blocks used
    stored_total: float | None = None  # readings stored by the writer so far (disk per reading)
    anon_peak_mib: dict[str, float | None] = field(default_factory=dict)  # process -> the window's highest
    heap_mib: dict[str, float | None] = field(default_factory=dict)  # ``GO_HEAP`` process -> the window's lowest heap
    # the machine's other users over the window, % of one core: the load publisher and the soak itself (``OUTSIDE``)
    outside_cpu_percent: dict[str, float | None] = field(default_factory=dict)
    # service (its /metrics) -> % of one core its cyclic garbage collector took over the window (``GC_SECONDS``)
    gc_percent: dict[str, float | None] = field(default_factory=dict)
    # the whole machine over the window, % of one core by state (``MACHINE_STATES``), from /proc/stat: a stall in
    # which every process's CPU falls shows here as idle, I/O wait or time the hypervisor gave to others (steal)
    machine_percent: dict[str, float] = field(default_factory=dict)


#: The machine's other users, whose CPU is reported beside the stack's, never judged: the load publisher's process and
#: this one (the probes, the sampler's polls). On one machine what they take is not the platform's to use.
OUTSIDE = ("load publisher", "soak itself")
#: A service's cyclic garbage collector's seconds (``core.gc_tuning``): reported per row, never judged.
GC_SECONDS = "smartcity_gc_seconds_total"

#: Processes whose memory is the data they keep, so it grows with what they were given: reported, not judged. Only
#: Tansu on its memory engine (``SMARTCITY_KAFKA_STORAGE=memory``); on disk (the default) every process is judged.
HOLDS_DATA = {
    TANSU: "the one-machine Kafka on its memory engine stores every record in memory",
}

#: Processes whose heap a garbage collector manages, with where their runtime says what the heap holds: influxd (Go,
#: ``/debug/vars``: ``memstats.HeapAlloc``, the bytes of live objects and of garbage not yet collected). Their
#: anonymous memory follows the collector's goal, not what they hold: Go collects when the heap has doubled since the
#: last collection (``GOGC``), sooner near its soft limit (``GOMEMLIMIT``), and keeps what it freed for a while; so
#: influxd's floor climbed to near its limit while its heap after each collection stayed at 250-300 MiB
#: (docs/benchmarks.md, "What raised influxd's floor"). For these the window's lowest heap is judged (read at every
#: poll, it is at most a few seconds of garbage above what the last collection kept: what a leak raises), and their
#: anonymous memory is held to the soft limit (``checks``).
GO_HEAP: dict[str, str] = {"influxdb": "/debug/vars"}

#: The parts of the data directory measured: part -> the days retention keeps it (0: it must stay flat).
DISK: dict[str, float] = {
    "kafka trimmed": 0,  # the Kafka store's readings and internal topics, removed once every group passed them
    "kafka kept": 7,  # its other topics: findings, alerts, refused readings (retention 1-7 days)
    "influxdb wal": 0,  # InfluxDB's write-ahead log, emptied into data files by snapshots
    "influxdb raw": RAW_DAYS,  # InfluxDB's raw points (``raw``): shards of a day with their series index
    "influxdb aggregates": AGG_DAYS,  # the writer's hourly aggregates (``agg_1h``): shards of a week
    "influxdb alerts": AGG_DAYS,  # the alert archive (``autogen``): kept for good; projected over the aggregates' years
    "influxdb series": 0,  # the series file: grows with new series only (devices, alert keys), not with points
    "influxdb data": RAW_DAYS,  # all of InfluxDB's data files, in reports written before the parts above
    "mosquitto": 0,  # Mosquitto's persistence file (sessions, retained and queued messages)
}


def _blocks_mib(root: Path) -> float:
    """MiB of blocks the files under ``root`` use (0 when it does not exist); files vanishing meanwhile are skipped."""
    used = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            try:
                used += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return round(used / 2**20, 2)


def disk_mib(data_dir: Path, trimmed: frozenset[str]) -> dict[str, float]:
    """``DISK``'s parts of a ``smartcity up`` data directory; ``trimmed``: the topics the Kafka store trims."""
    topics = data_dir / "kafka" / "store"
    kafka = {"kafka trimmed": 0.0, "kafka kept": 0.0}
    for topic in topics.glob("*/clusters/*/topics/*"):
        kafka["kafka trimmed" if topic.name in trimmed else "kafka kept"] += _blocks_mib(topic)
    influx = data_dir / "influxdb"
    policies = {RAW_RP: "influxdb raw", AGG_RP: "influxdb aggregates", "autogen": "influxdb alerts"}
    data = dict.fromkeys(policies.values(), 0.0) | {"influxdb series": 0.0}
    for database in (influx / "data").glob("*"):
        for part in database.glob("*"):
            data[policies.get(part.name, "influxdb series")] += _blocks_mib(part)
    return {
        **{k: round(v, 2) for k, v in kafka.items()},
        "influxdb wal": _blocks_mib(influx / "wal"),
        **{k: round(v, 2) for k, v in data.items()},
        "mosquitto": _blocks_mib(data_dir / "mosquitto"),
    }


#: The span of the envelopes judged (``envelope``): five minutes hold several of influxd's compaction cycles, and ten
#: windows of the probes' p95.
ENVELOPE_S = 300.0

Points = Sequence[tuple[float, float | None]]


def envelope(points: Points, span_s: float = ENVELOPE_S, *, floor: bool = True) -> list[tuple[float, float | None]]:
    """Each value replaced by the lowest (``floor``) or the median of the values within ``span_s`` up to it.

    What a process or a queue holds swings with its garbage collector, its compactions and its batches: the floor it
    returns to is what a leak raises (influxd's heap swung by 300-800 MiB from one 30 s window to the next, and a
    single window's low could tilt a 15-minute fit by 100 MiB/h). A window's p95 of 60 probes swings with one slow
    probe: the median of the last ten windows is what a growing queue raises. A steady rise passes through either
    unchanged, a span later, so a leak is judged as before."""
    known = [(t, v) for t, v in points if v is not None]
    out: list[tuple[float, float | None]] = []
    for t, v in points:
        recent = [x for s, x in known if t - span_s < s <= t]
        if v is None or not recent:
            out.append((t, None))
        else:
            out.append((t, min(recent) if floor else statistics.median(recent)))
    return out


def collected(rows: list[Row]) -> list[str]:
    """The processes whose garbage-collected heap was read (``GO_HEAP``)."""
    return sorted({p for r in rows for p, v in r.heap_mib.items() if v is not None})


def verdicts(rows: list[Row], rate: float, run_s: float, holds_data: frozenset[str] = frozenset()) -> list[Verdict]:
    """Memory (anonymous) of every process, every lag, the backlog, alert latency and the disk that must stay flat
    judged, each by its ``envelope`` (the floor; the latency's median); the memory of a process in ``holds_data``
    (``HOLDS_DATA``) and the disk that retention keeps for days reported beside them. A process whose collected heap
    was read (``GO_HEAP``) has that heap judged, and its anonymous memory reported (``checks`` holds it to a limit)."""
    tol = tolerances(rate)
    out = []
    heaps = collected(rows)

    def floor(series: str, unit: str, points: Points, tolerance: Tolerance) -> Verdict:
        return judge(series, unit, envelope(points), run_s, tolerance)

    for p in rows[0].rss_mib:
        points = [(r.t_s, r.anon_mib.get(p, r.rss_mib.get(p))) for r in rows]
        verdict = floor(f"memory: {p}", "MiB", points, tol["memory"])
        out.append(replace(verdict, judged=False) if p in holds_data or p in heaps else verdict)
    for p in heaps:
        out.append(floor(f"heap: {p}", "MiB", [(r.t_s, r.heap_mib.get(p)) for r in rows], tol["memory"]))
    for part, days in DISK.items():
        if any(part in r.disk_mib for r in rows):
            verdict = floor(f"disk: {part}", "MiB", [(r.t_s, r.disk_mib.get(part)) for r in rows], tol["disk"])
            out.append(replace(verdict, judged=False) if days else verdict)
    lags = sorted({k for r in rows for k in r.lag_records})
    out += [floor(f"lag: {k}", "records", [(r.t_s, r.lag_records.get(k)) for r in rows], tol["lag"]) for k in lags]
    out.append(floor("backlog: accepted - stored", "readings", [(r.t_s, r.backlog) for r in rows], tol["backlog"]))
    queue = [(r.t_s, r.mqtt_queue) for r in rows]
    out.append(floor("queue: MQTT broker -> gateway", "readings", queue, tol["backlog"]))
    p95 = envelope([(r.t_s, r.latency.p95_ms) for r in rows], floor=False)
    out.append(judge("alert latency p95", "ms", p95, run_s, tol["latency"]))
    return out


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def checks(
    rows: list[Row],
    judged: list[Verdict],
    rate: int,
    run_s: float,
    drain: tuple[float, bool],
    acks: tuple[int, Sequence[str]] = (0, ()),
    heap_limit_mib: float = 0.0,
) -> list[Check]:
    """Flatness, and what a flat series cannot show: a rate not taken, alerts pinned at the timeout, a restart, an
    officer's acknowledgement refused (``acks``: how many were taken, and the refusals), a collected heap's process
    above its soft limit (``heap_limit_mib``, 0: none set)."""
    second = [r for r in rows if r.t_s >= run_s / 2]
    accepted = [r.accepted_per_s for r in second if r.accepted_per_s is not None]
    mean = sum(accepted) / len(accepted) if accepted else 0.0
    late, probes = sum(r.latency.late for r in second), sum(r.latency.probes for r in second)
    restarts = [name for r in rows for name in r.restarted]
    return [
        flatness(judged),
        within_limit(rows, run_s, heap_limit_mib),
        Check("rate held", mean >= 0.95 * rate, f"accepted {mean:,.0f}/s over the second half, 95 % of {rate:,} asked"),
        Check("alerts on time", late <= 0.01 * probes, f"{late} of {probes} probes late (> {TIMEOUT_S:g} s) over the "
              "second half, at most 1 %"),
        Check("no restart", not restarts, f"restarted: {', '.join(restarts) or 'none'}"),
        Check("drained", drain[1], f"the writer and the stream worker caught up {drain[0]:g} s after the load"),
        Check("acknowledged", not acks[1], f"{acks[0]:,} probe alerts acknowledged by the officer, "
              f"{len(acks[1])} refused{': ' + acks[1][0] if acks[1] else ''}"),
    ]  # fmt: skip


def flatness(judged: list[Verdict]) -> Check:
    """The check that every series judged is flat, naming those that are not."""
    growing = [v.series for v in judged if v.judged and not v.flat]
    return Check("every series flat", not growing, f"not flat: {', '.join(growing)}" if growing else "all flat")


def within_limit(rows: list[Row], run_s: float, limit_mib: float) -> Check:
    """Over the second half, the anonymous floor (``envelope``) of each process with a collected heap stays under the
    heap's soft limit: the collector keeps memory there while what is live fits under it, and a heap that outgrows
    it lifts the floor above. Peaks may pass it: the limit is soft and freed memory goes back to the system later."""
    name = "within the heap limit"
    heaps = collected(rows)
    if not heaps or limit_mib <= 0:
        return Check(name, True, "no collected heap with a soft limit measured")
    highest = {
        p: max((v for t, v in envelope([(r.t_s, r.anon_mib.get(p)) for r in rows]) if v is not None and t >= run_s / 2),
               default=None)
        for p in heaps
    }  # fmt: skip
    over = {p: v for p, v in highest.items() if v is None or v > limit_mib}
    shown = ", ".join(f"{p} {_f(v, 1)} MiB" for p, v in highest.items())
    return Check(name, not over, f"anonymous floor at most {shown} over the second half; soft limit {limit_mib:g} MiB")


def _mean(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return round(sum(got) / len(got), 1) if got else None


def window_memory(
    last: dict[str, float | None], polled: Sequence[dict[str, float]]
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """The window's lowest and highest anonymous MiB of each process, from the row's own reading (``last``: None
    for a process gone) and the window's polls."""
    lowest: dict[str, float | None] = {}
    highest: dict[str, float | None] = {}
    for name, value in last.items():
        seen = [] if value is None else [value, *(p[name] for p in polled if name in p)]
        lowest[name], highest[name] = (min(seen), max(seen)) if seen else (None, None)
    return lowest, highest


def process_table(rows: list[Row], run_s: float) -> dict[str, dict[str, float | None]]:
    """Per process, over the run's second half: mean CPU (% of one core), mean and last RSS, the mean of the
    windows' lowest anonymous MiB and the highest anonymous MiB read, and for a collected heap its windows' lowest."""
    second = _second_half(rows, run_s)
    heaps = collected(rows)
    return {
        name: {
            "cpu_percent": _mean([r.cpu_percent.get(name) for r in second]),
            "rss_mib": _mean([r.rss_mib.get(name) for r in second]),
            "anon_mib": _mean([r.anon_mib.get(name) for r in second]),
            "anon_peak_mib": max((p for r in second if (p := r.anon_peak_mib.get(name)) is not None), default=None),
            "rss_last_mib": rows[-1].rss_mib.get(name),
            **({"heap_mib": _mean([r.heap_mib.get(name) for r in second])} if name in heaps else {}),
        }
        for name in rows[0].rss_mib
    }


def disk_growth(rows: list[Row], run_s: float) -> dict[str, dict[str, float | None]]:
    """Per part of ``DISK``: its size at the end, its growth per hour (the second half's trend) and per million
    readings stored, and for what retention keeps for days the size that growth reaches over the retention."""
    second = [r for r in rows if r.t_s >= run_s / 2 and r.stored_total is not None]
    out: dict[str, dict[str, float | None]] = {}
    for part, days in DISK.items():
        points = [(r.t_s, r.disk_mib[part]) for r in second if part in r.disk_mib]
        if len(points) < 3 or len({t for t, _ in points}) < 2:
            continue
        per_s = least_squares(points).slope
        stored = (second[-1].stored_total or 0) - (second[0].stored_total or 0)
        grew = points[-1][1] - points[0][1]
        out[part] = {
            "last_mib": points[-1][1],
            "mib_per_hour": round(per_s * 3600, 2),
            "mib_per_million_readings": round(grew / stored * 1e6, 2) if stored > 0 else None,
            "retention_days": days or None,
            "projected_gib_at_retention": round(per_s * days * 86400 / 1024, 1) if days else None,
        }
    return out


# -- the run --------------------------------------------------------------------------------------------------------


def _memory(pid: int) -> dict[str, float] | None:
    try:
        return memory_mib(pid)
    except (FileNotFoundError, ProcessLookupError):
        return None


def _cpu(pid: int) -> float | None:
    try:
        return cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError):
        return None


def go_heap_mib(url: str, timeout: float = 5) -> float | None:
    """The heap a Go runtime reports at ``url`` (``/debug/vars``: ``memstats.HeapAlloc``), in MiB; None when it does
    not answer."""
    try:
        answer = get(url, timeout=timeout)
        answer.raise_for_status()
        return round(float(answer.json()["memstats"]["HeapAlloc"]) / 2**20, 1)
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def _scrape(url: str, timeout: float = 10) -> Scrape | None:
    """A service busy with a backlog may be slow to answer: a poll without it is a poll without its figures."""
    try:
        answer = get(url, timeout=timeout)
        answer.raise_for_status()
    except httpx.HTTPError:
        return None
    return Scrape.parse(answer.text, time.monotonic())


class _ProbeLoop(threading.Thread):
    """A probe every ``PROBE_INTERVAL_S`` through the pool, each cleared ``CLEAR_AFTER`` probes later. The duty
    officer acknowledges each probe's alert before it is cleared, as officers do, so the cleared alert closes and
    the next probe of that device raises a fresh one (``OFFICER``)."""

    def __init__(self, probes: Probes, devices: list[str], api: httpx.Client) -> None:
        super().__init__(daemon=True)
        self.probes, self.devices, self.sent, self.halt = probes, devices, list[Sample](), threading.Event()
        self.api, self.acked, self.ack_errors = api, 0, list[str]()

    def run(self) -> None:
        t0, n, pool = time.monotonic(), 0, len(self.devices)
        while not self.halt.wait(max(0.0, t0 + n * PROBE_INTERVAL_S - time.monotonic())):
            self.sent.append(self.probes.send(self.devices[n % pool], 30.0))
            if n >= CLEAR_AFTER:
                self.acknowledge(self.sent[n - CLEAR_AFTER])
                self.probes.send(self.devices[(n - CLEAR_AFTER) % pool], 5.0)
            n += 1

    def acknowledge(self, sample: Sample) -> None:
        """The officer's ``ack`` of the probe's alert, if it arrived; a failure is kept with its reason."""
        if not sample.alert_id:
            return
        try:
            answer = self.api.post(f"/api/alerts/{sample.alert_id}/ack", json={"by": OFFICER})
        except httpx.HTTPError as exc:
            self.ack_errors.append(f"{sample.alert_id}: {exc!r}")
            return
        if answer.status_code == 200:
            self.acked += 1
        else:
            self.ack_errors.append(f"{sample.alert_id}: HTTP {answer.status_code} {answer.text[:200]}")

    def stop(self) -> None:
        self.halt.set()
        self.join()
        for sample in self.sent[-CLEAR_AFTER:]:
            self.acknowledge(sample)
            self.probes.send(sample.device, 5.0)


class _Sampler:
    """Polls our services' ``/metrics`` (those in stack.json that export ``smartcity_`` metrics) and ``/proc``; one
    ``Row`` per window."""

    def __init__(self, stack: StackRun, publisher: LoadPublisher, probes: _ProbeLoop, t0: float) -> None:
        self.stack, self.publisher, self.probes, self.t0 = stack, publisher, probes, t0
        http = {name: f"{url}/metrics" for name, url in stack.urls.items() if url.startswith("http")}
        self.urls = {
            n: u for n, u in http.items() if (s := _scrape(u)) and any(f.startswith("smartcity_") for f in s.families)
        }
        self.pids = dict(stack.pids)
        self.heap_urls = {name: stack.urls[name] + path for name, path in GO_HEAP.items() if name in stack.urls}
        self.heaps: list[dict[str, float]] = []  # the window's heap readings, per ``GO_HEAP`` process
        self.trimmed = frozenset(trimmed_topics())
        self.cpu = {name: (pid, _cpu(pid), time.monotonic()) for name, pid in self.pids.items()}
        self.outside = {OUTSIDE[0]: publisher.pid, OUTSIDE[1]: os.getpid()}
        self.outside_cpu = {name: (pid, _cpu(pid), time.monotonic()) for name, pid in self.outside.items()}
        self.gc_seconds: dict[str, tuple[float, float]] = {}  # service -> its collector's seconds, when read
        self.machine = _machine_ticks()
        self.judged = 0  # probes already in a row
        self.lags: list[dict[str, float]] = []  # the window's polls
        self.anon: list[dict[str, float]] = []  # the window's anonymous memory readings, per process
        # the last good poll: when, counters (accepted, evaluated, stored), messages acknowledged
        self.last: tuple[float, tuple[float, float, float], int] = (t0, self._counters_now(), publisher.stat()[1])
        # what the gateway had read before the load
        self.queue_base = self.publisher.stat()[1] - self.received(self.poll())

    @staticmethod
    def received(scrapes: dict[str, Scrape | None]) -> float:
        return sum(s.total(RECEIVED) for s in scrapes.values() if s is not None)

    def _counters_now(self) -> tuple[float, float, float]:
        for _ in range(10):
            if (counters := self.counters(self.poll())) is not None:
                return counters
            time.sleep(1)
        raise RuntimeError("the services did not answer for their metrics")

    def poll(self) -> dict[str, Scrape | None]:
        with ThreadPoolExecutor(len(self.urls)) as pool:  # at once: one busy service does not delay the others
            return dict(zip(self.urls, pool.map(_scrape, self.urls.values()), strict=True))

    @staticmethod
    def counters(scrapes: dict[str, Scrape | None]) -> tuple[float, float, float] | None:
        if any(s is None for s in scrapes.values()):
            return None
        got = [s for s in scrapes.values() if s is not None]
        return (
            sum(s.total(ACCEPTED) for s in got),
            sum(s.total(EVALUATED) + s.total(EVALUATED_REPEATS) for s in got),  # a repeat is handled too
            sum(s.total(STORED) + s.total(STORED_REPEATS) for s in got),
        )

    def poll_lag(self) -> dict[str, Scrape | None]:
        scrapes = self.poll()
        lag: dict[str, float] = {}
        for name, scrape in scrapes.items():
            for s in scrape.samples if scrape is not None else ():
                if s.name.endswith("_consumer_lag_records"):
                    key = f"{name} {s.labels.get('topic', '')}".strip()
                    lag[key] = lag.get(key, 0.0) + s.value
        self.lags.append(lag)
        self.anon.append({name: m["anon"] for name, pid in self.pids.items() if (m := _memory(pid)) is not None})
        self.heaps.append({name: v for name, url in self.heap_urls.items() if (v := go_heap_mib(url)) is not None})
        return scrapes

    def row(self) -> Row:
        """The window since the last row: ends with a poll of the counters, the lag, memory and the probes."""
        scrapes, now = self.poll_lag(), time.monotonic()
        keys = sorted({k for lag in self.lags for k in lag})
        lag_mean = {k: round(sum(v) / len(v), 1) for k in keys if (v := [lag[k] for lag in self.lags if k in lag])}
        lag_max = {k: max(lag.get(k, 0.0) for lag in self.lags) for k in keys}
        self.lags, polled_anon, polled_heaps = [], self.anon, self.heaps
        self.anon, self.heaps = [], []
        self.stack.read_state()
        restarted = [name for name, pid in self.stack.pids.items() if self.pids.get(name) not in (None, pid)]
        self.pids = dict(self.stack.pids)
        acked, counters = self.publisher.stat()[1], self.counters(scrapes)
        # Probe readings count as published too: each probe, and its clearing reading five probes later.
        probed = len(self.probes.sent) + max(0, len(self.probes.sent) - CLEAR_AFTER)
        queue = None
        if all(s is not None for s in scrapes.values()):
            queue = max(0.0, acked + probed - self.received(scrapes) - self.queue_base)
        then, before, acked_before = self.last
        rates: list[float | None] = [None] * 4  # acked, accepted, evaluated, stored
        backlog = None
        if counters is not None:  # else this row has no rates, and the next one's cover both windows
            pairs = zip((acked, *counters), (acked_before, *before), strict=True)
            rates = [round((a - b) / (now - then), 1) for a, b in pairs]
            backlog, self.last = counters[0] - counters[2], (now, counters, acked)
        due = [s for s in self.probes.sent[self.judged :] if s.sent <= now - TIMEOUT_S]
        self.judged += len(due)
        memory = {name: _memory(pid) for name, pid in self.pids.items()}
        rss = {name: None if m is None else m["rss"] for name, m in memory.items()}
        anon, peak = window_memory({name: None if m is None else m["anon"] for name, m in memory.items()}, polled_anon)
        heap, _ = window_memory({name: go_heap_mib(url) for name, url in self.heap_urls.items()}, polled_heaps)
        return Row(
            round(now - self.t0, 1), rates[0], rates[1], rates[2], rates[3], backlog, lag_mean, lag_max,
            rss, probe_window([s.latency_ms() for s in due]), restarted, os.getloadavg()[0], queue, anon,
            self.cpu_percent(), disk_mib(self.stack.data_dir, self.trimmed), counters and counters[2], peak,
            heap_mib=heap, outside_cpu_percent=_shares(self.outside, self.outside_cpu),
            gc_percent=self.gc_share(scrapes), machine_percent=self.machine_share(),
        )  # fmt: skip

    def machine_share(self) -> dict[str, float]:
        now = _machine_ticks()
        shares, self.machine = machine_shares(self.machine, now), now
        return shares

    def gc_share(self, scrapes: dict[str, Scrape | None]) -> dict[str, float | None]:
        return gc_shares(scrapes, self.gc_seconds, time.monotonic())

    def cpu_percent(self) -> dict[str, float | None]:
        """Each process's share of a core since the last row (none for a process restarted or gone meanwhile)."""
        return _shares(self.pids, self.cpu)

    def drain(self, timeout: float = 180) -> tuple[float, bool]:
        """Until the stream worker and the writer have caught up with the gateway (after the load stopped): each has
        evaluated or stored, or dropped as a repeat, every reading the gateway accepted."""
        started, counters = time.monotonic(), None
        while time.monotonic() < started + timeout:
            counters = self.counters(self.poll())
            if counters is not None and counters[1] >= counters[0] and counters[2] >= counters[0]:
                return round(time.monotonic() - started, 1), True
            time.sleep(1)
        if counters is not None:
            print(f"not drained: accepted {counters[0]:,.0f}, evaluated {counters[1]:,.0f}, stored {counters[2]:,.0f}")
        return round(time.monotonic() - started, 1), False


#: Per process: the pid, its CPU seconds and when they were read.
CpuMark = tuple[int, float | None, float]


def _shares(pids: dict[str, int], last: dict[str, CpuMark]) -> dict[str, float | None]:
    """Each process's share of a core since ``last`` (updated), none for one restarted or gone meanwhile."""
    out: dict[str, float | None] = {}
    now = time.monotonic()
    for name, pid in pids.items():
        used, (was_pid, before, then) = _cpu(pid), last.get(name, (-1, None, now))
        share = None
        if was_pid == pid and used is not None and before is not None and now > then:
            share = round((used - before) / (now - then) * 100, 1)
        out[name], last[name] = share, (pid, used, now)
    return out


def _second_half(rows: list[Row], run_s: float) -> list[Row]:
    """The rows the verdicts and tables are about: the run's second half (every row of a run too short for one)."""
    return [r for r in rows if r.t_s >= run_s / 2] or rows


def _half_means(
    rows: list[Row], run_s: float, figures: Callable[[Row], Mapping[str, float | None]], names: Iterable[str]
) -> dict[str, float | None]:
    """Each name's mean over the second half of what ``figures`` gives per row."""
    second = _second_half(rows, run_s)
    return {name: _mean([figures(r).get(name) for r in second]) for name in names}


def outside_table(rows: list[Row], run_s: float) -> dict[str, float | None]:
    """The machine's other users' mean CPU (% of one core) over the run's second half."""
    return _half_means(rows, run_s, lambda r: r.outside_cpu_percent, OUTSIDE)


#: /proc/stat's CPU states, in its order (user, nice, system, idle, iowait, irq, softirq, steal).
MACHINE_STATES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def _machine_ticks() -> tuple[int, ...]:
    """The machine's CPU time by state since boot (clock ticks summed over every CPU), and the CPU count last."""
    lines = Path("/proc/stat").read_text().splitlines()
    total = [int(v) for v in lines[0].split()[1 : 1 + len(MACHINE_STATES)]]
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return (*total, cpus)


def machine_shares(before: tuple[int, ...], after: tuple[int, ...]) -> dict[str, float]:
    """Each state's share between two ``_machine_ticks`` reads, in % of one core (they add up to 100 x CPUs)."""
    deltas = [b - a for a, b in zip(before[:-1], after[:-1], strict=True)]
    elapsed = sum(deltas)
    if elapsed <= 0:
        return {}
    return {state: round(d / elapsed * 100 * after[-1], 1) for state, d in zip(MACHINE_STATES, deltas, strict=True)}


def machine_table(rows: list[Row], run_s: float) -> dict[str, float | None]:
    """The machine's mean CPU by state, % of one core, over the run's second half."""
    return _half_means(rows, run_s, lambda r: r.machine_percent, MACHINE_STATES)


def gc_shares(
    scrapes: dict[str, Scrape | None], last: dict[str, tuple[float, float]], now: float
) -> dict[str, float | None]:
    """Each service's collector time since ``last`` (updated), % of one core; none without two reads of it."""
    out: dict[str, float | None] = {}
    for name, scrape in scrapes.items():
        if scrape is None or not any(s.name == GC_SECONDS for s in scrape.samples):
            out[name] = None
            continue
        seconds, before = scrape.total(GC_SECONDS), last.get(name)
        out[name] = None
        if before is not None and now > before[1] and seconds >= before[0]:
            out[name] = round((seconds - before[0]) / (now - before[1]) * 100, 2)
        last[name] = (seconds, now)
    return out


def gc_table(rows: list[Row], run_s: float) -> dict[str, float | None]:
    """Each service's collector time, % of one core, over the run's second half."""
    return _half_means(rows, run_s, lambda r: r.gc_percent, sorted({name for r in rows for name in r.gc_percent}))


def _f(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


_SHORT = {"stream worker": "streams", "influx writer": "writer", "ingest gateway": "gateway", "kafka (tansu)": "tansu",
          "smartcity-streams-": ""}  # fmt: skip


def _short(name: str) -> str:
    for long, short in _SHORT.items():
        name = name.replace(long, short)
    return name


def _row_table(row: Row, lags: list[str], processes: list[str], header: bool) -> Table:
    """One row, columns of fixed width, so that rows printed one by one line up under the header."""
    table = Table(show_header=header, box=None, pad_edge=False, header_style="bold")
    names = ["m:ss", "acked/s", "accepted/s", "stored/s", "backlog", "mqtt queue", *(f"lag {_short(k)}" for k in lags),
             "p50 ms", "p95 ms", "late", *(f"{_short(p)} MiB" for p in processes), "load"]  # fmt: skip
    for name in names:
        table.add_column(name, justify="right", width=max(7, min(len(name), 10)), overflow="fold")
    lat = row.latency
    table.add_row(
        f"{int(row.t_s // 60)}:{int(row.t_s % 60):02d}", _f(row.acked_per_s), _f(row.accepted_per_s),
        _f(row.stored_per_s), _f(row.backlog), _f(row.mqtt_queue),
        *(_f(row.lag_records.get(k)) for k in lags), _f(lat.p50_ms), _f(lat.p95_ms), f"{lat.late}/{lat.probes}",
        *(_f(row.rss_mib.get(p), 1) for p in processes), f"{row.load_1m:.1f}",
    )  # fmt: skip
    return table


def run(minutes: float, rate: int, out: Path, devices: int = DEVICES) -> dict[str, Any]:
    """The soak; the report is printed, written to ``out`` (the services' logs beside it, ``<stem>-logs/``) and
    returned. ``ok`` is false when one of ``checks`` failed: a series not flat, the rate not held, alerts late, a
    process restarted, or the flow not drained."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per metrics poll otherwise
    console = Console(width=200)
    run_s, sample_s = minutes * 60, min(30.0, minutes * 60 / 12)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    fleet = generate_fleet(devices, 1, interval_s=3600, prefix="load")
    warm, pool = [f"probe-w{k:02d}" for k in range(20)], [f"probe-s{k:04d}" for k in range(PROBE_POOL)]
    records = [r.model_dump(mode="json") for r in fleet.records()] + [device_record(d) for d in warm + pool]
    console.print(
        f"[bold]soak[/]: {minutes:g} min at {rate:,} readings/s, {devices:,} devices, a row every {sample_s:g} s"
    )
    with (
        tempfile.TemporaryDirectory(prefix="smartcity-soak-") as tmp,
        StackRun(Path(tmp), env={"SMARTCITY_ALERTS_CLOSED_RETENTION_S": str(CLOSED_RETENTION_S)}) as stack,
    ):
        (pool_path := Path(tmp) / "load-pool.json").write_text(json.dumps(payload_pool(fleet)))
        stack.register(records)
        publisher = LoadPublisher(
            stack.mqtt_url, pool_path, 1, {**stack.env, "SMARTCITY_MQTT_PASSWORD": stack.admin_password}
        )
        probes, api = Probes(stack), stack.api_client(timeout=10)
        try:
            console.print(f"stack up, {len(records):,} devices; first alert after {warm_up(probes, warm):.1f} s")
            time.sleep(2)  # the devices topic's followers have read the fleet's last records too
            publisher.rate(rate)
            loop, t0 = _ProbeLoop(probes, pool, api), time.monotonic()
            loop.start()
            sampler, rows = _Sampler(stack, publisher, loop, t0), list[Row]()
            processes = list(sampler.pids)
            for k in range(1, round(run_s / sample_s) + 1):
                while (left := t0 + k * sample_s - time.monotonic()) > POLL_S:
                    time.sleep(min(POLL_S, left - POLL_S))
                    sampler.poll_lag()
                time.sleep(max(0.0, left))
                rows.append(sampler.row())
                lags = sorted(rows[0].lag_records)
                console.print(_row_table(rows[-1], lags, processes, header=k == 1))
            publisher.rate(0)
            loop.stop()
            publisher.stop()
            drain_s, drained = sampler.drain()
        finally:
            publisher.kill()
            probes.close()
            api.close()
        shutil.copytree(Path(tmp) / "logs", out.with_name(f"{out.stem}-logs"), dirs_exist_ok=True)
    settings = StackSettings()
    storage, heap_limit = settings.kafka_storage, settings.influxd_memory_limit_mib
    judged = verdicts(rows, rate, run_s, frozenset(HOLDS_DATA) if storage == "memory" else frozenset())
    passed = checks(rows, judged, rate, run_s, (drain_s, drained), (loop.acked, loop.ack_errors), heap_limit)
    source = f"half of W1's recorded peak, {W1_PEAK_READINGS_PER_S:,}/s (docs/benchmarks.md, End to end)"
    table, disk, outside = process_table(rows, run_s), disk_growth(rows, run_s), outside_table(rows, run_s)
    collector, machine = gc_table(rows, run_s), machine_table(rows, run_s)
    _print_processes(console, table, disk, outside)
    console.print("cyclic garbage collector, % of a core over the second half: "
                  + (", ".join(f"{name} {_f(v, 2)}" for name, v in collector.items()) or "not exported"))  # fmt: skip
    console.print("the machine, % of a core over the second half: "
                  + ", ".join(f"{state} {_f(v, 1)}" for state, v in machine.items()))  # fmt: skip
    _print_verdicts(console, judged, passed)
    report = {
        "started_at": started_at, "minutes": minutes, "rate_readings_per_s": rate,
        "rate_source": source if rate == DEFAULT_RATE else "--rate",
        "devices": devices, "sample_s": sample_s, "probe_interval_s": PROBE_INTERVAL_S, "probe_pool": PROBE_POOL,
        "tolerances": {k: asdict(t) for k, t in tolerances(rate).items()},
        "kafka_storage": storage, "heap_limit_mib": heap_limit, "processes": table, "outside": outside,
        "gc_percent": collector, "machine_percent": machine, "disk": disk,
        "samples": [asdict(r) for r in rows], "verdicts": [asdict(v) for v in judged],
        "checks": [asdict(c) for c in passed], "holds_data": HOLDS_DATA if storage == "memory" else {},
        "ok": all(c.ok for c in passed),
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    console.print(f"written to {out} (services' logs in {out.with_name(f'{out.stem}-logs')})")
    return report


def rejudge(report_path: Path) -> bool:
    """Judge a saved soak (``run``'s report) again with today's ``verdicts``, print the verdicts and the checks, and
    return whether it passes: the samples are kept whole, so a change of judgement is compared on the same runs. The
    checks that do not depend on the verdicts (rate, lateness, restarts, drain, acknowledgements) are the run's own."""
    report = json.loads(report_path.read_text())
    rows = [Row(**{**sample, "latency": ProbeWindow(**sample["latency"])}) for sample in report["samples"]]
    run_s = report["minutes"] * 60
    holds = frozenset(HOLDS_DATA) if report.get("kafka_storage") == "memory" else frozenset()
    judged = verdicts(rows, report["rate_readings_per_s"], run_s, holds)
    again = [flatness(judged), within_limit(rows, run_s, report.get("heap_limit_mib", 0))]
    names = {c.name for c in again}
    passed = [*again, *(Check(**c) for c in report["checks"] if c["name"] not in names)]
    console = Console(width=200)
    console.print(f"[bold]{report_path}[/]: {report['minutes']:g} min at {report['rate_readings_per_s']:,} readings/s")
    _print_verdicts(console, judged, passed)
    return all(c.ok for c in passed)


def _print_processes(
    console: Console,
    table: dict[str, dict[str, float | None]],
    disk: dict[str, dict[str, float | None]],
    outside: dict[str, float | None],
) -> None:
    shown = Table(title="per process, over the second half")
    columns = ("process", "CPU % of a core", "RSS MiB", "anonymous MiB (lowest)", "anonymous peak", "RSS at the end",
               "heap MiB (lowest)")  # fmt: skip
    for name in columns:
        shown.add_column(name, justify="left" if name == "process" else "right")
    for name, row in table.items():
        shown.add_row(name, _f(row["cpu_percent"], 1), _f(row["rss_mib"], 1), _f(row["anon_mib"], 1),
                      _f(row["anon_peak_mib"], 1), _f(row["rss_last_mib"], 1), _f(row.get("heap_mib"), 1))  # fmt: skip
    total = sum(row["cpu_percent"] or 0.0 for row in table.values())
    shown.add_row("[bold]all[/]", f"{total:,.1f}", "", "", "")
    for name, cpu in outside.items():
        shown.add_row(f"[dim]{name} (not the stack)[/]", _f(cpu, 1), "", "", "")
    console.print(shown)
    parts = Table(title="disk, over the second half")
    for name in ("part", "MiB at the end", "MiB per hour", "MiB per million readings", "kept", "at retention"):
        parts.add_column(name, justify="left" if name == "part" else "right")
    for part, row in disk.items():
        kept = f"{row['retention_days']:g} days" if row["retention_days"] else "flat"
        projected = "-" if row["projected_gib_at_retention"] is None else f"{row['projected_gib_at_retention']} GiB"
        parts.add_row(part, _f(row["last_mib"], 1), _f(row["mib_per_hour"], 1),
                      _f(row["mib_per_million_readings"], 2), kept, projected)  # fmt: skip
    console.print(parts)


def _print_verdicts(console: Console, judged: list[Verdict], passed: list[Check]) -> None:
    heaps = {v.series.removeprefix("heap: ") for v in judged if v.series.startswith("heap: ")}
    table = Table(title="second half's trend, extended over the whole run")
    for name in ("series", "level", "trend per hour (± s.e.)", "over the run", "allowed", "verdict"):
        table.add_column(name, justify="left" if name == "series" else "right")
    for v in judged:
        trend = f"{_f(v.slope_per_h, 1)} ± {_f(v.slope_se_per_h, 1)}"
        verdict = "flat" if v.flat else ("[red]too few points[/]" if v.level is None else "[red]growing[/]")
        if not v.judged:
            verdict = "kept for its retention: reported" if v.series.startswith("disk") else "holds the data: reported"
            if v.series.removeprefix("memory: ") in heaps:
                verdict = "its heap is judged; held to its limit"
        table.add_row(f"{v.series} ({v.unit})", _f(v.level, 1), trend, _f(v.growth, 1), _f(v.allowed, 1), verdict)
    console.print(table)
    for c in passed:
        console.print(f"{'[green]ok[/]    ' if c.ok else '[red]FAILED[/]'} {c.name}: {c.detail}")
