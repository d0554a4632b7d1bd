"""InfluxDB's share (issue 19): influxd 1.6 alone under a steady load of readings, its CPU and memory over time.

- influxd is started by the stack's own launcher, and retention is set up by ``ensure_retention``, as the writer
  sets it up.
- A fleet of ``devices`` (10,000, four kinds) reports ``rate`` readings/s in all (3,000), stamped now, each with
  its hazard value and its battery and RSSI. The writer's own ``LineBuilder`` makes the lines (one point per
  reading, and a device_health point when a health value moved past its dead band or a minute passed), and
  ``LineWriter`` writes them in batches of ``batch_points`` (5,000), one write at a time, at least once a second.
  The hourly aggregates are the writer's too (``storage.aggregate``): folded as the lines are built, written into
  ``agg_1h`` as each hour closes (30 s after it ends).
- Before the measured window, ``prefill_minutes`` (10) of the same readings are written as fast as influxd takes
  them, so influxd holds what a long run holds (and the legacy continuous query reads a full window from its first
  run).
- Every 10 s: influxd's CPU share over the last 10 s (``/proc/<pid>/stat``), its resident memory and the anonymous
  part of it (heap and stacks; the rest is mapped files that the kernel may drop). From influxd's log, each run of
  the continuous query: how long it took and how many points it wrote.
- ``compacted``: after the steady window, no more writes; influxd writes every shard's cache out and compacts it
  fully once the shard has been cold for ``COLD_AFTER`` (as it does with a past day's shard four hours after the
  day), and the database's files are measured before and after: the bytes a reading costs in the raw shards once
  compacted, and so what the raw retention (``RAW_DAYS``) holds at ``rate``; the same for the aggregates
  (``AGG_DAYS``; the history's hours are aggregated too). A day's shard of the district (60,000 devices once a
  minute) has the points per series that ``--devices 6000 --rate 100 --prefill-minutes 1440`` writes, so the same
  compression, in a tenth of the points.
- ``backfill``: at the end, what the writer's backfill of every device costs influxd (``storage.backfill``, as for
  a partition taken over or an InfluxDB outage) over the history's last full hour (at least two hours of history):
  as the writer runs it, the devices listed and aggregated in parts of ``PART_DEVICES``, then in parts of
  ``BACKFILL_PARTS``' other sizes, then as one statement over every series (what the writer did before it split
  them). Before each, influxd collects its garbage (``/debug/pprof/heap?gc=1``), so each starts from the heap that
  the data needs. Each: the wall time, influxd's CPU seconds, its heap before and the highest read every 0.2 s
  (``/debug/vars``).
- ``legacy``: the behaviour before issue 19. Every reading writes a device_health point as well; a continuous
  query computes the aggregates, ``RESAMPLE EVERY 1m FOR 10m`` (the old ``RESAMPLE FOR 10m``); influxd runs with its
  defaults (in-memory series index, 1 GiB cache per shard, compactions on half the cores).

The figures are influxd's alone. The load generator runs in this process, on the same machine, so the CPU it uses
is not available to influxd.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from statistics import fmean
from typing import Final

import httpx
from rich.console import Console
from rich.table import Table

from core.contracts.device import Device
from core.contracts.telemetry import ReadingDict
from core.influx.client import InfluxConnection, LineWriter
from core.process import free_port
from harness.builders import device
from harness.measure import cpu_seconds, memory_mib, quantile
from smartcity.bench.soak import go_heap_mib
from smartcity.stack.services import influxdb
from storage.aggregate import Aggregates
from storage.backfill import PART_DEVICES, Backfill, devices_of, devices_statement
from storage.lines import Fold, LineBuilder
from storage.retention import (
    AGG_DAYS,
    AGG_RP,
    CQ_NAME,
    RAW_DAYS,
    RAW_RP,
    aggregation,
    ensure_retention,
    ident,
    query_result,
    run_statement,
)

SAMPLE_S: Final = 10.0
LEGACY_RESAMPLE_FOR: Final = "10m"
_HAZARD: Final = {"gas": ("ch4_lel", 2.0), "water": ("level_m", 1.5), "fire": ("temp_c", 24.0),
                  "structural": ("tilt_deg", 0.1)}  # fmt: skip
#: ``compacted``: a shard with no write this long is written out and compacted fully; the wait for it, at most.
COLD_AFTER_S: Final = 20
COLD_AFTER: Final = f"{COLD_AFTER_S}s"
COMPACTION_TIMEOUT_S: Final = 900.0
STATEMENT_TIMEOUT_S: Final = 600.0  # ``backfill``: one statement over every device took up to 71 s at 60,000 devices
HOUR_MS: Final = 3_600_000
#: ``backfill``: devices per statement, in the order timed (None: one statement over every device).
BACKFILL_PARTS: Final = (PART_DEVICES, 10_000, None)
_TSM: Final = re.compile(r"^(\d+)-(\d+)\.tsm$")
_CQ_LINE: Final = re.compile(r'msg="Finished continuous query".*?written=(-?\d+).*?duration=([\d.]+)ms')


@dataclass
class Sample:
    t_s: float
    cpu_percent: float
    rss_mib: float
    anon_mib: float


@dataclass
class BackfillCost:
    every: str  # the aggregation's interval: the range is one of it
    parts: int  # statements: 1 over every device, or the writer's parts
    part_devices: int | None  # devices per statement (None: every device in one)
    wall_s: float
    cpu_s: float  # influxd's
    heap_before_mib: float | None
    heap_peak_mib: float | None
    points_written: int


@dataclass
class Run:
    mode: str
    devices: int
    rate: int
    minutes: float
    prefill_minutes: float
    batch_points: int
    resample_for: str
    prefill_points: int = 0
    prefill_s: float = 0.0
    readings: int = 0
    points: int = 0
    readings_per_s: float = 0.0
    points_per_s: float = 0.0
    write_p50_ms: float = 0.0
    write_p99_ms: float = 0.0
    cpu_mean_percent: float = 0.0
    rss_max_mib: float = 0.0
    rss_end_mib: float = 0.0
    anon_max_mib: float = 0.0
    cq_runs: int = 0
    cq_mean_ms: float = 0.0
    cq_max_ms: float = 0.0
    cq_points_per_run: float = 0.0
    aggregate_points: int = 0
    compacted: bool = False
    #: ``compacted``: the database's files by part (MiB), when the load stopped and once compacted
    disk_before_mib: dict[str, float] = field(default_factory=dict)
    disk_compacted_mib: dict[str, float] = field(default_factory=dict)
    compaction_s: float = 0.0
    #: compacted, the raw shards' files (TSM and index); the series file grows with the series, not the readings,
    #: and the aggregates with the devices and their own retention
    bytes_per_reading: float = 0.0
    gib_at_retention: float = 0.0  # the raw shards at ``rate`` for the raw retention's days
    agg_bytes_per_reading: float = 0.0  # compacted, the aggregates' shards
    agg_gib_at_retention: float = 0.0  # the aggregates' shards at ``rate`` for their retention's days
    backfill: bool = False
    backfills: list[BackfillCost] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


class Fleet:
    """Readings of ``count`` devices in turn: a hazard value near its kind's baseline, a battery that drains slowly
    and an RSSI that jitters (sigma 2 dB, as the simulator's), so health points follow ``LineBuilder``'s rule."""

    def __init__(self, count: int, seed: int = 19) -> None:
        kinds = list(_HAZARD)
        self.devices = [device(f"bench-{i:06d}", kinds[i % 4], site=f"site-{i // 8:05d}") for i in range(count)]
        self._random = random.Random(seed)
        self._battery = [60.0 + 40.0 * self._random.random() for _ in range(count)]
        self._rssi = [-95.0 + 30.0 * self._random.random() for _ in range(count)]
        self._next = 0
        self._seq = 0

    def lookup(self) -> dict[str, Device]:
        return {d.id: d for d in self.devices}

    def reading(self, ts: int) -> ReadingDict:
        i, rng = self._next, self._random
        self._next = (i + 1) % len(self.devices)
        self._seq += 1
        d = self.devices[i]
        metric, base = _HAZARD[d.kind.value]
        self._battery[i] = max(0.0, self._battery[i] - 0.002)
        values: dict[str, float | bool] = {
            metric: round(base * (1 + 0.05 * rng.gauss(0, 1)), 3),
            "battery_pct": round(self._battery[i], 1),
            "rssi_dbm": round(self._rssi[i] + rng.gauss(0, 2), 1),
        }
        return {"device_id": d.id, "ts": ts, "seq": self._seq, "values": values, "drill": False,
                "received_at": ts}  # fmt: skip


async def _prefill(
    writer: LineWriter,
    builder: LineBuilder,
    fleet: Fleet,
    rate: int,
    minutes: float,
    batch: int,
    aggregates: _Aggregates | None = None,
) -> int:
    """``minutes`` of readings up to now at ``rate``, written as fast as influxd takes them, with their minutes'
    aggregates when ``aggregates`` is given (closed by the history's clock). Returns the raw points."""
    count = int(rate * minutes * 60)
    start = int(time.time() * 1000) - int(minutes * 60_000)
    fold = aggregates.fold if aggregates is not None else None
    lines: list[str] = []
    points = 0
    for n in range(count):
        ts = start + n * 1000 // rate
        lines.extend(builder.lines(fleet.reading(ts), fold))
        if len(lines) >= batch:
            await writer.write(lines)
            points += len(lines)
            lines = []
            if aggregates is not None:
                await aggregates.close_intervals(ts)
    if lines:
        await writer.write(lines)
        points += len(lines)
    return points


class _Aggregates:
    """The writer's hourly aggregates (``storage.aggregate``), for one partition, written as hours close."""

    def __init__(self, conn: InfluxConnection, history: bool = False) -> None:
        """``history``: every hour is folded, the history's too; else from the next hour on."""
        self._minutes = Aggregates()
        self._minutes.assign(0, int(time.time() * 1000), fresh=history)
        self.fold: Fold = partial(self._minutes.fold, 0)
        self._writer = LineWriter(conn.model_copy(update={"influx_rp": AGG_RP}))
        self.points = 0

    async def __aenter__(self) -> _Aggregates:
        await self._writer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._writer.close()

    async def close_intervals(self, now_ms: int | None = None) -> None:
        closed = self._minutes.close(int(time.time() * 1000) if now_ms is None else now_ms)
        if closed.lines:
            await self._writer.write(closed.lines)
            self.points += len(closed.lines)


async def _steady(
    writer: LineWriter,
    builder: LineBuilder,
    fleet: Fleet,
    rate: int,
    seconds: float,
    batch: int,
    aggregates: _Aggregates | None,
) -> tuple[int, int, list[float]]:
    """``rate`` readings/s for ``seconds``, stamped now; a write when ``batch`` points are held or a second has
    passed, one at a time, and the closed hours' aggregates after it. Returns readings, points and each write's
    seconds."""
    started = last_write = time.monotonic()
    made = points = 0
    lines: list[str] = []
    writes: list[float] = []
    fold = aggregates.fold if aggregates is not None else None
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(rate * elapsed)
        now_ms = int(time.time() * 1000)
        for _ in range(due - made):
            lines.extend(builder.lines(fleet.reading(now_ms), fold))
        made = due
        if len(lines) >= batch or (lines and time.monotonic() - last_write >= 1.0):
            chunk, lines = lines[:batch], lines[batch:]
            began = time.monotonic()
            await writer.write(chunk)
            last_write = time.monotonic()
            writes.append(last_write - began)
            points += len(chunk)
            if aggregates is not None:
                await aggregates.close_intervals()
        else:
            await asyncio.sleep(0.02)
    if lines:
        await writer.write(lines)
        points += len(lines)
    return made, points, writes


async def _sample(pid: int, samples: list[Sample], started: float) -> None:
    """Every ``SAMPLE_S``: influxd's CPU share since the last sample, its resident and anonymous memory."""
    last_cpu, last_t = cpu_seconds(pid), time.monotonic()
    while True:
        await asyncio.sleep(SAMPLE_S)
        cpu, now = cpu_seconds(pid), time.monotonic()
        memory = memory_mib(pid)
        share = 100 * (cpu - last_cpu) / (now - last_t)
        samples.append(Sample(round(now - started, 1), round(share, 1), memory["rss"], memory["anon"]))
        last_cpu, last_t = cpu, now


def disk_parts(data: Path, wal: Path) -> dict[str, float]:
    """MiB of the database's files (``data``: its directory; ``wal``: its WAL's) by part: the raw shards' TSM files
    and their series index, the series file, the aggregates' shards, and the WAL."""
    parts = dict.fromkeys(("raw tsm", "raw index", "series file", "aggregates", "wal"), 0)
    for f in (f for f in data.rglob("*") if f.is_file()):
        rel = f.relative_to(data).parts
        if rel[0] == "_series":
            part = "series file"
        elif rel[0] == AGG_RP:
            part = "aggregates"
        elif rel[0] == RAW_RP and len(rel) > 2:
            part = "raw index" if rel[2] == "index" else "raw tsm"
        else:
            continue
        parts[part] += f.stat().st_size
    parts["wal"] = sum(f.stat().st_size for f in wal.rglob("*") if f.is_file())
    return {k: round(v / 2**20, 2) for k, v in parts.items()}


def fully_compacted(data: Path) -> bool:
    """Every shard's TSM files are of one generation (a full compaction leaves one) and none is being written."""
    shards: dict[Path, set[str]] = {}
    for f in data.rglob("*.tsm*"):
        if not _TSM.match(f.name):
            return False  # a .tsm.tmp: a compaction is writing
        shards.setdefault(f.parent, set()).add(f.name.split("-")[0])
    return bool(shards) and all(len(generations) == 1 for generations in shards.values())


async def _wait_compacted(data: Path, cold_s: float, timeout_s: float) -> float:
    """Seconds until ``fully_compacted`` holds and stayed so for 10 s, counted from ``cold_s`` after the last write
    (before it, one generation can be a level compaction's passing state). Raises ``TimeoutError`` past
    ``timeout_s``."""
    began = time.monotonic()
    steady_since = None
    while time.monotonic() - began < timeout_s:
        await asyncio.sleep(2.0)
        if time.monotonic() - began < cold_s or not fully_compacted(data):
            steady_since = None
        elif steady_since is None:
            steady_since = time.monotonic()
        elif time.monotonic() - steady_since >= 10.0:
            return round(steady_since - began, 1)
    raise TimeoutError(f"influxd did not compact {data} fully in {timeout_s:.0f} s")


async def _backfill_cost(conn: InfluxConnection, pid: int, start_ms: int, part_devices: int | None) -> BackfillCost:
    """The backfill of every device over the hour from ``start_ms``, timed: the writer's way, the devices listed then
    aggregated ``part_devices`` at a time, or (None) one statement. influxd collects its garbage first; its heap is
    read every 0.2 s meanwhile."""
    url, db = conn.influx_url, conn.influx_db
    whole = Backfill(start_ms, start_ms + HOUR_MS, None, (start_ms,))
    heap = partial(go_heap_mib, f"{url}/debug/vars", 2)
    async with httpx.AsyncClient(timeout=60) as client:  # a profile taken after a collection: only the collection
        (await client.get(f"{url}/debug/pprof/heap", params={"gc": "1"})).raise_for_status()
    before = await asyncio.to_thread(heap)
    peak = before
    done = asyncio.Event()

    async def poll() -> None:
        nonlocal peak
        while not done.is_set():
            now = await asyncio.to_thread(heap)
            if now is not None and (peak is None or now > peak):
                peak = now
            await asyncio.sleep(0.2)

    poller = asyncio.create_task(poll())
    cpu, began = cpu_seconds(pid), time.monotonic()
    written = 0
    try:
        async with LineWriter(conn.model_copy(update={"influx_timeout_s": STATEMENT_TIMEOUT_S})) as influx:
            todo = [whole]
            if part_devices is not None:
                todo = whole.parts(devices_of(await query_result(influx, devices_statement(db))), part_devices)
            for backfill in todo:
                result = await query_result(influx, backfill.statement(db))
                written += int(result["series"][0]["values"][0][1]) if result.get("series") else 0
    finally:
        done.set()
        await poller
    return BackfillCost(
        "1h",
        len(todo),
        part_devices,
        round(time.monotonic() - began, 1),
        round(cpu_seconds(pid) - cpu, 1),
        before,
        peak,
        written,
    )


def _cq_runs(log: Path, offset: int) -> list[tuple[int, float]]:
    """(points written, milliseconds) of each continuous-query run influxd logged after ``offset``."""
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    return [(int(w), float(ms)) for w, ms in _CQ_LINE.findall(text)]


async def _measure(run: Run, work: Path, legacy: bool) -> Run:
    cold = COLD_AFTER if run.compacted else ""
    launch = influxdb(work / "influxdb", "127.0.0.1", free_port(), free_port(), bounded=not legacy, cold_after=cold)
    launch.start(30)
    try:
        conn = InfluxConnection(
            influx_url=launch.url, influx_api="v1", influx_rp=RAW_RP, influx_batch_lines=run.batch_points
        )
        await ensure_retention(conn)
        if legacy:
            async with LineWriter(conn) as statements:
                await run_statement(statements, _legacy_continuous_query(conn.influx_db))
        fleet = Fleet(run.devices)
        devices = fleet.lookup()
        builder = LineBuilder(devices.get, health_every_ms=0 if legacy else 60_000)
        async with LineWriter(conn) as writer, contextlib.AsyncExitStack() as stack:
            # --compacted: the history's hours are aggregated too, so the aggregates' shards hold what they would
            aggregates = None if legacy else await stack.enter_async_context(_Aggregates(conn, run.compacted))
            history_end = int(time.time() * 1000)
            if run.prefill_minutes > 0:
                began = time.monotonic()
                run.prefill_points = await _prefill(
                    writer, builder, fleet, run.rate, run.prefill_minutes, run.batch_points,
                    aggregates if run.compacted else None,
                )  # fmt: skip
                run.prefill_s = round(time.monotonic() - began, 1)
            log, pid = launch.process.log_path, launch.process.pid
            offset = log.stat().st_size
            started = time.monotonic()
            sampler = asyncio.create_task(_sample(pid, run.samples, started))
            try:
                readings, points, writes = await _steady(
                    writer, builder, fleet, run.rate, run.minutes * 60, run.batch_points, aggregates
                )
                if aggregates is not None:
                    await aggregates.close_intervals(int(time.time() * 1000) + 2 * HOUR_MS)  # the last hours too
                    run.aggregate_points = aggregates.points
            finally:
                sampler.cancel()
            seconds = time.monotonic() - started
        cq = _cq_runs(log, offset)
        if run.compacted:
            data, wal = work / "influxdb" / "data" / conn.influx_db, work / "influxdb" / "wal" / conn.influx_db
            run.disk_before_mib = disk_parts(data, wal)
            run.compaction_s = await _wait_compacted(data, COLD_AFTER_S, COMPACTION_TIMEOUT_S)
            run.disk_compacted_mib = disk_parts(data, wal)
            total = int(run.rate * run.prefill_minutes * 60) + readings
            raw = run.disk_compacted_mib["raw tsm"] + run.disk_compacted_mib["raw index"]
            run.bytes_per_reading = round(raw * 2**20 / total, 2)
            run.gib_at_retention = round(run.bytes_per_reading * run.rate * RAW_DAYS * 86_400 / 2**30, 1)
            run.agg_bytes_per_reading = round(run.disk_compacted_mib["aggregates"] * 2**20 / total, 2)
            run.agg_gib_at_retention = round(run.agg_bytes_per_reading * run.rate * AGG_DAYS * 86_400 / 2**30, 1)
        if run.backfill:
            end = history_end - history_end % HOUR_MS  # the history's last full hour ends here
            for part_devices in BACKFILL_PARTS:
                run.backfills.append(await _backfill_cost(conn, pid, end - HOUR_MS, part_devices))
    finally:
        launch.process.stop()
    run.readings, run.points = readings, points
    run.readings_per_s, run.points_per_s = round(readings / seconds), round(points / seconds)
    run.write_p50_ms = quantile([w * 1000 for w in writes], 0.5)
    run.write_p99_ms = quantile([w * 1000 for w in writes], 0.99)
    if run.samples:
        run.cpu_mean_percent = round(fmean(s.cpu_percent for s in run.samples), 1)
        run.rss_max_mib = max(s.rss_mib for s in run.samples)
        run.rss_end_mib = run.samples[-1].rss_mib
        run.anon_max_mib = max(s.anon_mib for s in run.samples)
    if cq:
        run.cq_runs = len(cq)
        run.cq_mean_ms = round(fmean(ms for _, ms in cq), 1)
        run.cq_max_ms = round(max(ms for _, ms in cq), 1)
        run.cq_points_per_run = round(fmean(w for w, _ in cq))
    return run


def _legacy_continuous_query(db: str) -> str:
    """The continuous query of before issue 19 (``RESAMPLE EVERY 1m FOR 10m``)."""
    return (
        f"CREATE CONTINUOUS QUERY {ident(CQ_NAME)} ON {ident(db)} RESAMPLE EVERY 1m FOR {LEGACY_RESAMPLE_FOR} "
        f"BEGIN {aggregation(db, '1m')} END"
    )


def run(
    minutes: float,
    rate: int,
    devices: int,
    batch_points: int,
    prefill_minutes: float,
    legacy: bool,
    out: Path,
    compacted: bool = False,
    backfill: bool = False,
) -> Run:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    mode = "legacy" if legacy else "bounded"
    resample_for = LEGACY_RESAMPLE_FOR if legacy else "-"
    result = Run(
        mode, devices, rate, minutes, prefill_minutes, batch_points, resample_for,
        compacted=compacted, backfill=backfill,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="smartcity-bench-influx-") as tmp:
        asyncio.run(_measure(result, Path(tmp), legacy))
    _print(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(result), indent=2))
    return result


def _print(r: Run) -> None:
    console = Console(width=140)
    title = (
        f"influxd 1.6 alone, {r.mode}: {r.devices:,} devices, {r.rate:,} readings/s for {r.minutes:g} min after "
        f"{r.prefill_minutes:g} min of history; "
        + (f"continuous query RESAMPLE EVERY 1m FOR {r.resample_for}" if r.mode == "legacy" else "writer's aggregates")
    )
    console.print(title)
    samples = Table()
    for column in ("t (s)", "influxd CPU %", "RSS MiB", "anonymous MiB"):
        samples.add_column(column, justify="right")
    for s in r.samples:
        samples.add_row(f"{s.t_s:.0f}", f"{s.cpu_percent}", f"{s.rss_mib}", f"{s.anon_mib}")
    console.print(samples)
    summary = Table(title=f"{r.mode}: summary")
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    rows = [
        ("history written first", f"{r.prefill_points:,} points in {r.prefill_s} s"),
        ("readings/s written", f"{r.readings_per_s:,.0f}"),
        ("points/s written", f"{r.points_per_s:,.0f}"),
        ("write p50 / p99 ms", f"{r.write_p50_ms} / {r.write_p99_ms}"),
        ("influxd CPU % (mean of samples)", f"{r.cpu_mean_percent}"),
        ("RSS max / end MiB", f"{r.rss_max_mib} / {r.rss_end_mib}"),
        ("anonymous max MiB", f"{r.anon_max_mib}"),
        ("aggregate points written by the writer", f"{r.aggregate_points:,}"),
        ("continuous query runs", f"{r.cq_runs}"),
        ("run ms mean / max", f"{r.cq_mean_ms} / {r.cq_max_ms}"),
        ("points written per run", f"{r.cq_points_per_run:,.0f}"),
    ]
    if r.compacted:
        before, after = sum(r.disk_before_mib.values()), sum(r.disk_compacted_mib.values())
        parts = ", ".join(f"{k} {v:,.1f}" for k, v in r.disk_compacted_mib.items())
        rows += [
            ("on disk when the load stopped, MiB", f"{before:,.1f}"),
            (f"compacted fully after {r.compaction_s} s, MiB", f"{after:,.1f} ({parts})"),
            ("bytes per reading in the raw shards, compacted", f"{r.bytes_per_reading}"),
            (f"raw shards over their retention ({RAW_DAYS} days) at {r.rate:,}/s", f"{r.gib_at_retention:,} GiB"),
            ("bytes per reading in the aggregates' shards, compacted", f"{r.agg_bytes_per_reading}"),
            (f"aggregates over their retention ({AGG_DAYS} days)", f"{r.agg_gib_at_retention:,} GiB"),
        ]
    for b in r.backfills:
        rows.append(
            (f"backfill of every device, one {b.every}, {b.parts} statement{'s' if b.parts > 1 else ''}",
             f"{b.wall_s} s, influxd CPU {b.cpu_s} s, heap {b.heap_before_mib} -> {b.heap_peak_mib} MiB, "
             f"{b.points_written:,} points written")
        )  # fmt: skip
    for name, value in rows:
        summary.add_row(name, value)
    console.print(summary)
