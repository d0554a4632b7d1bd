"""End-to-end benchmark (issue 7): W1, W2, and alert latency at half of W1's peak, through the whole stack.

Each workload is a load run (``simulators.load``) on its own fresh one-machine stack, with the load publisher on
the same machine: MQTT, gateway, Kafka, rules evaluated by the stream worker, readings stored by the writer in
InfluxDB, alerts. The figures judged against the issue's targets are the hold step's: its sustained rate (the
slowest of accepted, evaluated and stored) and the platform's CPU per reading over its window (brokers, gateway,
stream worker, writer, API with the alerts service, InfluxDB; never the load publisher). The whole run's CPU per
reading, drain included, is reported beside it: it is the honest figure when a stage falls behind during the hold.
Half of W1's peak is half the highest sustained rate any W1 step reached, rounded down to 100 readings/s.

The targets are for figures, never for timed tests: a run that misses them is reported as missed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from simulators.load import latency, w1, w2
from simulators.load_report import PLATFORM, LoadReport, plot


@dataclass(frozen=True)
class Target:
    readings_per_s: float | None = None  # sustained, at least
    cpu_us_per_reading: float | None = None  # platform, at most
    p50_ms: float | None = None
    p99_ms: float | None = None


TARGETS = {
    "W1": Target(readings_per_s=12_000, cpu_us_per_reading=80),
    "W2": Target(readings_per_s=100_000, cpu_us_per_reading=10),
    "latency": Target(p50_ms=50, p99_ms=250),
}


@dataclass
class Row:
    workload: str
    devices: int
    per_message: int
    asked_readings_per_s: int
    sustained_readings_per_s: float
    accepted_readings_per_s: float
    evaluated_readings_per_s: float
    stored_readings_per_s: float
    lost: int  # readings, over the whole run
    drained: bool
    late_probes: int  # probes of the hold whose alert took longer than 5 s (or never came)
    platform_cpu_us_per_reading: float | None  # the hold's window
    run_platform_cpu_us_per_reading: float | None  # the whole run, drain included
    p50_ms: float | None
    p99_ms: float | None
    met: dict[str, bool]  # target -> met


def _row(workload: str, report: LoadReport, target: Target) -> Row:
    hold, lat = report.hold, report.hold.latency
    p50, p99 = (lat.p50_ms, lat.p99_ms) if lat else (None, None)
    met = {"zero loss": report.accounting.lost == 0}
    if target.readings_per_s is not None:
        met[f">= {target.readings_per_s:,.0f} readings/s"] = hold.sustained_readings_per_s >= target.readings_per_s
    cpu = hold.platform_cpu_us_per_reading
    if target.cpu_us_per_reading is not None:
        met[f"<= {target.cpu_us_per_reading:.0f} µs/reading"] = cpu is not None and cpu <= target.cpu_us_per_reading
    if target.p50_ms is not None:
        met[f"p50 <= {target.p50_ms:.0f} ms"] = p50 is not None and p50 <= target.p50_ms
    if target.p99_ms is not None:
        met[f"p99 <= {target.p99_ms:.0f} ms"] = p99 is not None and p99 <= target.p99_ms
    return Row(
        workload, report.devices, report.per_message, hold.target_readings_per_s, hold.sustained_readings_per_s,
        hold.accepted_readings_per_s, hold.evaluated_readings_per_s, hold.stored_readings_per_s,
        report.accounting.lost, report.accounting.drained, lat.lost if lat else 0, cpu,
        report.run_platform_cpu_us_per_reading, p50, p99, met,
    )  # fmt: skip


def _f(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _tables(rows: list[Row], reports: list[LoadReport]) -> tuple[Table, Table]:
    summary = Table(title="end to end, hold step (everything on this machine, load publisher included)")
    columns = ("workload", "devices", "per msg", "asked/s", "sustained/s", "accepted/s", "evaluated/s", "stored/s",
               "lost", "platform µs/reading (hold / run)", "p50 ms", "p99 ms", "late probes", "targets")  # fmt: skip
    for column in columns:
        summary.add_column(column, justify="right")
    for r in rows:
        missed = [name for name, ok in r.met.items() if not ok]
        verdicts = f"missed: {'; '.join(missed)}" if missed else "all met"
        summary.add_row(
            r.workload, f"{r.devices:,}", str(r.per_message), f"{r.asked_readings_per_s:,}",
            _f(r.sustained_readings_per_s), _f(r.accepted_readings_per_s), _f(r.evaluated_readings_per_s),
            _f(r.stored_readings_per_s), f"{r.lost:,}" + ("" if r.drained else " (not drained)"),
            f"{_f(r.platform_cpu_us_per_reading, 1)} / {_f(r.run_platform_cpu_us_per_reading, 1)}",
            _f(r.p50_ms, 1), _f(r.p99_ms, 1), str(r.late_probes), verdicts,
        )  # fmt: skip
    cpu = Table(title="where the CPU goes: µs per reading over the hold window (load publisher apart)")
    for column in ("workload", *PLATFORM, "platform", "load publisher"):
        cpu.add_column(column, justify="right")
    for r, report in zip(rows, reports, strict=True):
        hold = report.hold
        per = [_f(hold.cpu_us_per_reading.get(name), 1) for name in PLATFORM]
        cpu.add_row(r.workload, *per, _f(hold.platform_cpu_us_per_reading, 1), _f(hold.publisher_cpu_us_per_reading, 1))
    return summary, cpu


def run_all(out: Path, quick: bool) -> list[Row]:
    """W1, then latency at half of W1's peak, then W2; each run's JSON, plot and services' logs beside ``out``
    (``<stem>-w1.json``, ``<stem>-w1.png``, ``<stem>-w1-logs/`` ...), the summary in ``out`` and the three runs'
    plot in ``out`` with ``.png``."""
    console = Console(width=180)

    def at(key: str) -> tuple[Path, Path]:  # each run's JSON (its plot beside it), and the services' logs
        return out.with_name(f"{out.stem}-{key}.json"), out.with_name(f"{out.stem}-{key}-logs")

    first = w1(quick).run(*at("w1"))
    half = max(100, int(first.peak_readings_per_s / 2) // 100 * 100)
    console.print(f"W1 peak {first.peak_readings_per_s:,.0f} readings/s: alert latency at {half:,}/s")
    at_half = latency(half, quick).run(*at("latency"))
    second = w2(quick).run(*at("w2"))
    reports = [first, at_half, second]
    rows = [
        _row("W1", first, TARGETS["W1"]),
        _row(f"latency at {half:,}/s", at_half, TARGETS["latency"]),
        _row("W2", second, TARGETS["W2"]),
    ]
    for table in _tables(rows, reports):
        console.print(table)
    plot(reports, out.with_suffix(".png"))
    summary = {
        "quick": quick,
        "cpus": first.cpus,
        "w1_peak_readings_per_s": first.peak_readings_per_s,
        "targets": {name: asdict(t) for name, t in TARGETS.items()},
        "summary": [asdict(r) for r in rows],
        "runs": [r.to_json() for r in reports],
    }
    out.write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    console.print(f"written to {out} and {out.with_suffix('.png')}")
    return rows
