"""What a load run measured, as JSON, a plot and a table.

The report is plain dataclasses, written with ``json`` (a missing figure is ``null``, never NaN, so any JSON reader
takes the file). The plot goes beside the JSON (same name, ``.png``): for each run, the readings/s asked of each
step against those accepted by the gateway, evaluated by the stream worker and stored by the writer, and the alert
latency percentiles of each step's probes. ``plot`` takes several reports, one column each, for the end-to-end
benchmark's summary figure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.table import Table

#: The platform's own processes, as ``smartcity up`` names them in stack.json; the load publisher is not one.
PLATFORM = ("mosquitto", "kafka (tansu)", "influxdb", "ingest gateway", "stream worker", "influx writer", "api")
PUBLISHER = "load publisher"


@dataclass
class Latency:
    """Publish of a probe reading to its ``raised`` alert on ``alerts/emergency``; a probe with none in 5 s is lost."""

    probes: int
    lost: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


@dataclass
class StepResult:
    """One step, over its window (the step less its first seconds, while the rate settles). Rates are per second
    of the window; CPU per reading divides each process's CPU time by the readings the gateway accepted in it."""

    step: int
    phase: str  # "ramp" or "hold"
    target_readings_per_s: int
    window_s: float
    published_readings_per_s: float
    accepted_readings_per_s: float
    evaluated_readings_per_s: float
    stored_readings_per_s: float
    sustained_readings_per_s: float  # the slowest of accepted, evaluated and stored: what the whole flow kept up with
    refused: int
    latency: Latency | None
    cpu_percent: dict[str, float]  # of one core; the platform's processes and the load publisher
    cpu_us_per_reading: dict[str, float | None]  # the platform's processes; none if no reading was accepted
    platform_cpu_us_per_reading: float | None
    publisher_cpu_us_per_reading: float | None


@dataclass
class Accounting:
    """Every reading the publisher sent, looked for after the flow drained. ``in_kafka`` counts distinct
    (device, seq) pairs of the published ones on the readings topic; ``in_influx`` the points in InfluxDB carrying
    ``battery_pct`` (every load reading has one, no probe reading does). Lost = acknowledged but not found."""

    sent_readings: int
    acked_readings: int
    accepted_readings: int  # the gateway's counter, probes' readings taken out
    in_kafka: int
    in_influx: int
    lost_kafka: int
    lost_influx: int
    refused: int
    disconnects: int
    drain_s: float

    @property
    def lost(self) -> int:
        return max(self.lost_kafka, self.lost_influx, 0)


@dataclass
class LoadReport:
    name: str
    started_at: str
    cpus: int
    devices: int
    per_message: int
    seed: int
    steps: list[StepResult]
    accounting: Accounting
    #: From the first step's start until the flow drained, per load reading: the honest figure when a stage lags.
    run_cpu_us_per_reading: dict[str, float | None] = field(default_factory=dict)
    run_platform_cpu_us_per_reading: float | None = None
    run_publisher_cpu_us_per_reading: float | None = None
    json_path: str = ""
    plot_path: str = ""

    @property
    def hold(self) -> StepResult:
        return self.steps[-1]

    @property
    def peak_readings_per_s(self) -> float:
        """The highest sustained rate of any step."""
        return max(s.sustained_readings_per_s for s in self.steps)

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "lost": self.accounting.lost, "peak_readings_per_s": self.peak_readings_per_s}


def save(report: LoadReport, out: Path) -> None:
    """The JSON at ``out`` and the plot beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    report.json_path, report.plot_path = str(out), str(out.with_suffix(".png"))
    plot([report], out.with_suffix(".png"))
    out.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False))


def plot(reports: list[LoadReport], path: Path) -> None:
    """Readings/s per step (asked, accepted, evaluated, stored) above, latency percentiles per step below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    fig, axes = plt.subplots(2, len(reports), figsize=(6 * len(reports), 7), squeeze=False)
    for column, report in enumerate(reports):
        top, bottom = axes[0][column], axes[1][column]
        x = [s.step for s in report.steps]
        labels = [f"{s.phase}\n{s.target_readings_per_s:,}" for s in report.steps]
        top.plot(x, [s.target_readings_per_s for s in report.steps], "k--", marker="o", label="asked")
        for name, style in (("accepted", "-"), ("evaluated", ":"), ("stored", "-.")):
            values = [getattr(s, f"{name}_readings_per_s") for s in report.steps]
            top.plot(x, values, style, marker="s", label=name)
        top.set_title(f"{report.name}: {report.devices:,} devices, {report.per_message} reading(s)/message")
        top.set_ylabel("readings/s")
        top.legend()
        for name in ("p50", "p95", "p99"):
            values = [getattr(s.latency, f"{name}_ms") if s.latency else None for s in report.steps]
            bottom.plot(x, [v if v is not None else float("nan") for v in values], marker="o", label=name)
        bottom.set_ylabel("alert latency, ms")
        bottom.set_yscale("log")
        bottom.yaxis.set_major_formatter(ScalarFormatter())
        bottom.legend()
        for ax in (top, bottom):
            ax.set_xticks(x, labels)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(report: LoadReport) -> Table:
    a = report.accounting
    title = (
        f"{report.name}: {report.devices:,} devices, {report.per_message}/message; sent {a.sent_readings:,}, "
        f"acked {a.acked_readings:,}, in Kafka {a.in_kafka:,}, in InfluxDB {a.in_influx:,}, lost {a.lost:,}; "
        f"platform CPU over the run {_us(report.run_platform_cpu_us_per_reading)} µs/reading"
    )
    out = Table(title=title)
    columns = ("step", "asked/s", "published/s", "accepted/s", "evaluated/s", "stored/s", "probes", "lost",
               "p50 ms", "p95 ms", "p99 ms", "platform µs/reading", "publisher µs/reading")  # fmt: skip
    for column in columns:
        out.add_column(column, justify="right")
    for s in report.steps:
        lat = s.latency
        out.add_row(
            f"{s.step} {s.phase}", f"{s.target_readings_per_s:,}", f"{s.published_readings_per_s:,.0f}",
            f"{s.accepted_readings_per_s:,.0f}", f"{s.evaluated_readings_per_s:,.0f}",
            f"{s.stored_readings_per_s:,.0f}", str(lat.probes if lat else "-"), str(lat.lost if lat else "-"),
            _ms(lat.p50_ms if lat else None), _ms(lat.p95_ms if lat else None), _ms(lat.p99_ms if lat else None),
            _us(s.platform_cpu_us_per_reading), _us(s.publisher_cpu_us_per_reading),
        )  # fmt: skip
    return out
