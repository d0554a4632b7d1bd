"""What a load run measured: a step's figures from two snapshots, every reading looked for in Kafka and InfluxDB,
and the report as JSON, a plot and a table.

The report is plain dataclasses, written with ``json`` (a missing figure is ``null``, never NaN, so any JSON reader
takes the file). The plot goes beside the JSON (same name, ``.png``): for each run, the readings/s asked of each
step against those accepted by the gateway, evaluated by the stream worker and stored by the writer, and the alert
latency percentiles of each step's probes. ``plot`` takes several reports, one column each, for the end-to-end
benchmark's summary figure.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from core.contracts.catalogue import DeviceKind
from core.contracts.telemetry import decode_batch
from harness.measure import get, quantile
from harness.probes import Sample
from simulators.load_publisher import published_per_device

#: The platform's own processes, as ``smartcity up`` names them in stack.json; the load publisher is not one.
#: The platform's processes; the Kafka store runs only under Tansu on disk (``SMARTCITY_KAFKA_STORAGE=disk``, the
#: default since issue 19): a run without it counts the others.
PLATFORM = (
    "mosquitto", "kafka (tansu)", "kafka store", "influxdb", "ingest gateway", "stream worker", "influx writer", "api",
)  # fmt: skip
PUBLISHER = "load publisher"
#: The run itself: its Kafka audit (every reading decoded), probes and metric polls; same cores, not the platform.
HARNESS = "load run"
#: The platform's Kafka clients (each exports ``smartcity_kafka_requests_total`` by API), and the store under Tansu.
KAFKA_CLIENTS = ("ingest gateway", "stream worker", "influx writer", "api")
STORE = "kafka store"
_CLIENT_REQUESTS = re.compile(r'^smartcity_kafka_requests_total\{api="(\w+)"\} (\S+)$', re.M)
_STORE_REQUESTS = re.compile(r'^smartcity_kafka_store_requests_total\{kind="(\w+)",method="(\w+)"\} (\S+)$', re.M)


def kafka_requests(text: str) -> dict[str, float]:
    """Requests so far from a service's metrics ``text``: a Kafka client's by API (``Fetch``), the Kafka store's by
    method and kind of object (``GET batch``)."""
    found = {api: float(v) for api, v in _CLIENT_REQUESTS.findall(text)}
    found |= {f"{method} {kind}": float(v) for kind, method, v in _STORE_REQUESTS.findall(text)}
    return found


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
    snapshot_s: float  # the slower of the window's two snapshots: how blurred its ends are (a busy service is slow
    # to answer for its metrics)
    acked_readings_per_s: float  # the load's readings the broker acknowledged
    accepted_readings_per_s: float
    evaluated_readings_per_s: float
    stored_readings_per_s: float
    sustained_readings_per_s: float  # the slowest of accepted, evaluated and stored: what the whole flow kept up with
    refused: int
    latency: Latency | None
    cpu_percent: dict[str, float]  # of one core; the platform's processes, the load publisher and the run itself
    cpu_us_per_reading: dict[str, float | None]  # the platform's processes; none if no reading was accepted
    platform_cpu_us_per_reading: float | None
    publisher_cpu_us_per_reading: float | None
    #: Kafka requests a second by client and API, and the Kafka store's by method and kind (``kafka_requests``).
    kafka_requests_per_s: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class Accounting:
    """Every reading the publisher sent, looked for after the flow drained. ``in_kafka`` counts distinct
    (device, seq) pairs of the published ones on the readings topic; ``in_influx`` the points of the load's devices
    (``load-*``; probes are ``probe-*``) in InfluxDB. Lost = acknowledged but not found; when
    the flow did not drain in time (``drained`` false), "not found" includes readings still on their way."""

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
    drained: bool  # the stream worker and the writer caught up with the gateway before the counts were taken

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


@dataclass
class Snapshot:
    """The counters, CPU times and the publisher's acknowledged messages at one moment (``t``, monotonic)."""

    t: float
    counters: tuple[float, float, float, float]  # accepted, evaluated, stored, refused
    cpu: dict[str, float]  # seconds
    acked: int  # messages of the publisher the broker has acknowledged
    took: float  # seconds to take it: a service busy with a backlog is slow to answer for its metrics
    requests: dict[str, dict[str, float]] = field(default_factory=dict)  # ``kafka_requests`` by client (and store)


def per_reading(cpu_s: float, readings: float) -> float | None:
    """Microseconds of CPU per reading; none when no reading went through."""
    return round(cpu_s / readings * 1e6, 1) if readings > 0 else None


def platform_total(per: dict[str, float | None]) -> float | None:
    """The platform's processes together; none if any is unknown."""
    values = list(per.values())
    return None if None in values else round(sum(v or 0.0 for v in values), 1)


def step_result(
    n: int, phase: str, rate: int, a: Snapshot, b: Snapshot, samples: list[Sample] | None, per_message: int
) -> StepResult:
    """A step's figures over the window between two snapshots; ``samples`` none when it sent no probes."""
    window = b.t - a.t
    accepted, evaluated, stored, refused = (y - x for x, y in zip(a.counters, b.counters, strict=True))
    cpu = {name: b.cpu[name] - a.cpu[name] for name in a.cpu}
    per = {name: per_reading(cpu[name], accepted) for name in PLATFORM if name in cpu}
    lat = None
    if samples is not None:
        ms = [m for s in samples if (m := s.latency_ms()) is not None]
        p50, p95, p99 = (None if math.isnan(v := quantile(ms, q)) else v for q in (0.5, 0.95, 0.99))
        lat = Latency(len(samples), len(samples) - len(ms), p50, p95, p99, round(max(ms), 1) if ms else None)
    acked, accepted_s, evaluated_s, stored_s = (
        round(v / window, 1) for v in ((b.acked - a.acked) * per_message, accepted, evaluated, stored)
    )
    return StepResult(
        step=n,
        phase=phase,
        target_readings_per_s=rate,
        window_s=round(window, 2),
        snapshot_s=max(a.took, b.took),
        acked_readings_per_s=acked,
        accepted_readings_per_s=accepted_s,
        evaluated_readings_per_s=evaluated_s,
        stored_readings_per_s=stored_s,
        sustained_readings_per_s=min(accepted_s, evaluated_s, stored_s),
        refused=int(refused),
        latency=lat,
        cpu_percent={name: round(v / window * 100, 1) for name, v in cpu.items()},
        cpu_us_per_reading=per,
        platform_cpu_us_per_reading=platform_total(per),
        publisher_cpu_us_per_reading=per_reading(cpu[PUBLISHER], accepted),
        kafka_requests_per_s={
            client: {k: round((v - a.requests[client].get(k, 0.0)) / window, 1) for k, v in sorted(counts.items())}
            for client, counts in b.requests.items()
            if client in a.requests
        },
    )


class KafkaCount:
    """Distinct published (device, seq) pairs on the readings topic, counted as an audit reads them
    (``harness.kafka.Audit``: the one-machine Kafka on disk trims readings once every group has passed them, so they
    are counted as they come, not read back after the run). ``keep`` is the audit's; ``count`` after the run."""

    def __init__(self, ids: list[str]) -> None:
        self.index = {d: i for i, d in enumerate(ids)}
        self.seen = [bytearray() for _ in ids]  # per device, a byte per seq

    def keep(self, record: Any) -> None:
        for r in decode_batch(record.value):
            i, seq = self.index.get(r["device_id"]), r["seq"]
            if i is not None and isinstance(seq, int) and seq >= 0:
                marks = self.seen[i]
                if seq >= len(marks):
                    marks.extend(bytes(seq + 1 - len(marks) + 64))
                marks[seq] = 1

    def count(self, messages: int, per_message: int) -> int:
        """How many of the (device, seq) pairs published (``messages`` messages of ``per_message``) were read."""
        n = len(self.seen)
        return sum(m[: published_per_device(i, n, messages, per_message)].count(1) for i, m in enumerate(self.seen))


def count_in_influx(url: str) -> int:
    """The load fleet's points (``load-*``; probes are ``probe-*``): one per load reading. Per kind's measurement,
    ``count(*)`` counts each field, and every reading of a kind carries all its kind's metrics, so the largest count
    is the number of points (``device_health`` is sampled, so it is not a count)."""
    total = 0
    for kind in DeviceKind:
        q = f'SELECT count(*) FROM "{kind.value}" WHERE "device_id" =~ /^load-/'  # noqa: S608 - our own names
        answer = get(f"{url}/query", params={"db": "smartcity", "q": q}, timeout=600).json()
        for series in answer["results"][0].get("series", []):
            total += max(int(v) for v in series["values"][0][1:] if v is not None)
    return total


def read(path: Path) -> LoadReport:
    """A report written by ``save``, to plot or compare again."""
    data = json.loads(path.read_text())
    steps = [
        StepResult(**{**s, "latency": Latency(**s["latency"]) if s["latency"] else None}) for s in data.pop("steps")
    ]
    accounting = Accounting(**data.pop("accounting"))
    for derived in ("lost", "peak_readings_per_s"):
        data.pop(derived)
    return LoadReport(**{**data, "steps": steps, "accounting": accounting})


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
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

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
        top.set_ylim(bottom=0)
        top.legend()
        for name in ("p50", "p95", "p99"):
            values = [getattr(s.latency, f"{name}_ms") if s.latency else None for s in report.steps]
            bottom.plot(x, [v if v is not None else float("nan") for v in values], marker="o", label=name)
        bottom.set_ylabel("alert latency, ms")
        bottom.set_yscale("log")
        bottom.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 100, 200, 500, 1000 ...
        bottom.yaxis.set_major_formatter(ScalarFormatter())
        bottom.yaxis.set_minor_formatter(NullFormatter())
        bottom.legend()
        late = [f"\n{s.latency.lost} late" if s.latency and s.latency.lost else "" for s in report.steps]
        top.set_xticks(x, labels)
        bottom.set_xticks(x, [label + extra for label, extra in zip(labels, late, strict=True)])
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def requests_table(report: LoadReport) -> Table:
    """Kafka requests a second in each step, by client (total, then by API, most first), and the store's."""
    out = Table(title=f"{report.name}: Kafka requests a second by client, and the Kafka store's")
    for column, justify in (("step", "right"), ("client", "left"), ("requests/s", "right"), ("by API", "left")):
        out.add_column(column, justify=justify)  # type: ignore[arg-type]
    for s in report.steps:
        for client, per_s in s.kafka_requests_per_s.items():
            top = sorted(per_s.items(), key=lambda kv: -kv[1])
            shown = ", ".join(f"{k} {v:,.0f}" for k, v in top if v >= 0.5)
            out.add_row(f"{s.step} {s.phase}", client, f"{sum(per_s.values()):,.0f}", shown)
    return out


def table(report: LoadReport) -> Table:
    a = report.accounting
    title = (
        f"{report.name}: {report.devices:,} devices, {report.per_message}/message; sent {a.sent_readings:,}, "
        f"acked {a.acked_readings:,}, in Kafka {a.in_kafka:,}, in InfluxDB {a.in_influx:,}, lost {a.lost:,}"
        f"{'' if a.drained else f' (not drained after {a.drain_s:.0f} s)'}; "
        f"platform CPU over the run {_us(report.run_platform_cpu_us_per_reading)} µs/reading"
    )
    out = Table(title=title)
    columns = ("step", "asked/s", "acked/s", "accepted/s", "evaluated/s", "stored/s", "probes", "lost",
               "p50 ms", "p95 ms", "p99 ms", "platform µs/reading", "publisher µs/reading")  # fmt: skip
    for column in columns:
        out.add_column(column, justify="right")
    for s in report.steps:
        lat = s.latency
        out.add_row(
            f"{s.step} {s.phase}", f"{s.target_readings_per_s:,}", f"{s.acked_readings_per_s:,.0f}",
            f"{s.accepted_readings_per_s:,.0f}", f"{s.evaluated_readings_per_s:,.0f}",
            f"{s.stored_readings_per_s:,.0f}", str(lat.probes if lat else "-"), str(lat.lost if lat else "-"),
            _ms(lat.p50_ms if lat else None), _ms(lat.p95_ms if lat else None), _ms(lat.p99_ms if lat else None),
            _us(s.platform_cpu_us_per_reading), _us(s.publisher_cpu_us_per_reading),
        )  # fmt: skip
    return out
