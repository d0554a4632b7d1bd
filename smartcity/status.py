"""``smartcity status``: every service of a deployment on one screen, with its health, consumer lag and rates.

Targets come from ``--target NAME=URL`` (else ``SMARTCITY_STATUS_TARGETS``, comma-separated), else from the
``stack.json`` that ``smartcity up`` writes into its data directory. What a target is follows from its URL and from
what it serves, never from its name (a deployment may run several gateways and stream workers, named anyhow):

- ``mqtt://`` / ``mqtts://``: an MQTT broker; ``tcp://``, ``kafka://`` or a bare ``host:port``: a Kafka broker.
  Both are up when they accept a TCP connection.
- ``http(s)://``: ``/healthz`` (200 healthy, anything else unhealthy) and ``/metrics``, whose namespace names the role
  (``smartcity_ingest_`` gateway, ``smartcity_streams_`` stream worker, ``smartcity_writer_`` writer,
  ``smartcity_alerts_`` the API with the alerts service). Without ``/healthz`` (404): ``/ping``, as InfluxDB answers.
- A target with a pid (stack.json) whose process is gone is down, whatever answers on its port.

Rates are counter increases between two scrapes ``interval`` seconds apart, summed over labels; a metric a service
does not export (an older version) shows as "–". A service that cannot be reached is "down", never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import threading
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Literal
from urllib.parse import SplitResult, urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, computed_field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from core.errors import ConfigError
from core.logs import quiet

Health = Literal["ok", "unhealthy", "down"]
SCHEMES = {  # URL scheme -> how the target is checked, and its role unless its metrics say otherwise
    "http": "http",
    "https": "http",
    "mqtt": "mqtt broker",
    "mqtts": "mqtt broker",
    "tcp": "kafka broker",
    "kafka": "kafka broker",
}
NAMESPACES = (
    ("smartcity_ingest_", "gateway"),
    ("smartcity_streams_", "stream worker"),
    ("smartcity_writer_", "writer"),
    ("smartcity_alerts_", "api"),
    ("smartcity_devices", "api"),  # the API without the alerts service still counts devices
)


class StatusSettings(BaseSettings):
    """Where the targets come from when ``--target`` names none."""

    model_config = SettingsConfigDict(env_prefix="SMARTCITY_", frozen=True, extra="ignore")

    data_dir: Path = Field(Path(".smartcity"), description="the one-machine stack's directory (stack.json)")
    status_targets: str = Field("", description="comma-separated NAME=URL; when set, stack.json is not read")
    status_timeout_s: float = Field(1.0, gt=0, le=30, description="per connection or request")


class Target(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    url: str
    pid: int | None = None

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        parts = _split(value)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ValueError(f"expected http(s)://, mqtt(s)://, tcp://, kafka:// or host:port, got {value!r}")
        return value

    @property
    def kind(self) -> str:
        return SCHEMES[_split(self.url).scheme]


def _split(url: str) -> SplitResult:
    """A bare ``host:port`` (a Kafka bootstrap address, as stack.json has it) is ``tcp://host:port``."""
    return urlsplit(url if "://" in url else f"tcp://{url}")


# -- the pure part: metrics text -> figures -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scrape:
    """One ``/metrics`` answer, and when it came (monotonic seconds)."""

    at: float
    families: frozenset[str]
    samples: tuple[Sample, ...]

    @classmethod
    def parse(cls, text: str, at: float) -> Scrape:
        families = list(text_string_to_metric_families(text))
        return cls(at, frozenset(f.name for f in families), tuple(s for f in families for s in f.samples))

    def total(self, name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        matching = (s for s in self.samples if s.name == name)
        return sum(s.value for s in matching if all(s.labels.get(k) == v for k, v in labels))

    def buckets(self, family: str) -> dict[float, float]:
        """Cumulative histogram counts by upper bound, summed over the other labels."""
        counts: dict[float, float] = defaultdict(float)
        for s in self.samples:
            if s.name == f"{family}_bucket":
                counts[float(s.labels["le"])] += s.value
        return dict(sorted(counts.items()))


class Kind(Enum):
    RATE = "per second, from a counter"
    GAUGE = "the latest value"
    FLAG = "a 0/1 gauge"
    P99 = "99th percentile between the scrapes: the upper bound of its histogram bucket"


@dataclass(frozen=True, slots=True)
class Figure:
    key: str  # in the JSON report
    label: str  # in the table
    family: str
    kind: Kind
    column: Literal["throughput", "lag", "details"] = "details"
    labels: tuple[tuple[str, str], ...] = ()

    def value(self, before: Scrape | None, now: Scrape | None) -> float | None:
        if now is None or self.family not in now.families:
            return None
        if self.kind in (Kind.GAUGE, Kind.FLAG):
            return now.total(self.family, self.labels)
        if before is None or self.family not in before.families or now.at <= before.at:
            return None
        if self.kind is Kind.RATE:
            current, previous = (
                now.total(f"{self.family}_total", self.labels),
                before.total(f"{self.family}_total", self.labels),
            )
            return (current - previous if current >= previous else current) / (now.at - before.at)  # reset: restart
        current_b, previous_b = now.buckets(self.family), before.buckets(self.family)
        delta = {le: n - previous_b.get(le, 0.0) for le, n in current_b.items()}
        if any(n < 0 for n in delta.values()):
            delta = current_b
        observed = delta.get(math.inf, 0.0)
        return next((le for le, n in delta.items() if n >= 0.99 * observed), None) if observed > 0 else None


UNDELIVERED = ("outcome", "undelivered")
FIGURES: dict[str, tuple[Figure, ...]] = {  # by role, in table order
    "gateway": (
        Figure("received_per_s", "", "smartcity_ingest_readings_received", Kind.RATE, "throughput"),
        Figure("accepted_per_s", "accepted", "smartcity_ingest_readings_accepted", Kind.RATE),
        Figure("refused_per_s", "refused", "smartcity_ingest_refusals", Kind.RATE),
        Figure("unacked", "unacked", "smartcity_ingest_unacked_messages", Kind.GAUGE),
        Figure("mqtt_connected", "mqtt", "smartcity_ingest_mqtt_connected", Kind.FLAG),
        Figure("kafka_ok", "kafka", "smartcity_ingest_kafka_ok", Kind.FLAG),
    ),
    "stream worker": (
        Figure("evaluated_per_s", "", "smartcity_streams_readings", Kind.RATE, "throughput"),
        Figure("consumer_lag_records", "", "smartcity_streams_consumer_lag_records", Kind.GAUGE, "lag"),
        Figure("event_lag_s", "event lag", "smartcity_streams_event_lag_seconds", Kind.GAUGE),
        Figure("findings_per_s", "findings", "smartcity_streams_findings", Kind.RATE),
        Figure("evaluation_p99_s", "eval p99", "smartcity_streams_evaluation_seconds", Kind.P99),
    ),
    "writer": (
        Figure("written_per_s", "", "smartcity_writer_readings", Kind.RATE, "throughput"),
        Figure("consumer_lag_records", "", "smartcity_writer_consumer_lag_records", Kind.GAUGE, "lag"),
        Figure("retries_per_s", "retries", "smartcity_writer_retries", Kind.RATE),
        Figure("influx_up", "influx", "smartcity_writer_influx_up", Kind.FLAG),
    ),
    "api": (
        Figure("alerts_per_s", "", "smartcity_alerts_messages", Kind.RATE, "throughput"),
        Figure("consumer_lag_records", "", "smartcity_alerts_consumer_lag_records", Kind.GAUGE, "lag"),
        Figure("open_alerts", "open", "smartcity_alerts_open", Kind.GAUGE),
        Figure("undelivered_per_s", "undelivered", "smartcity_alerts_deliveries", Kind.RATE, labels=(UNDELIVERED,)),
        Figure("mqtt_connected", "mqtt", "smartcity_alerts_mqtt_connected", Kind.FLAG),
        Figure("devices_online", "online", "smartcity_devices", Kind.GAUGE, labels=(("status", "online"),)),
        Figure("devices_offline", "offline", "smartcity_devices", Kind.GAUGE, labels=(("status", "offline"),)),
    ),
}


def role_of(scrape: Scrape) -> str | None:
    """The role a service plays, from the namespace of the metrics it exports."""
    return next((role for prefix, role in NAMESPACES if any(f.startswith(prefix) for f in scrape.families)), None)


@dataclass(frozen=True, slots=True)
class Probe:
    """What one look at a target found."""

    health: Health
    detail: str = ""
    role: str | None = None
    scrape: Scrape | None = None


class ServiceStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    url: str
    role: str | None
    pid: int | None
    pid_alive: bool | None
    health: Health
    detail: str = ""
    figures: dict[str, float | None] = Field(default_factory=dict)


class StatusReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    interval_s: float
    services: list[ServiceStatus]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def healthy(self) -> bool:
        return all(s.health == "ok" for s in self.services)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verdict(self) -> str:
        bad = [s for s in self.services if s.health != "ok"]
        if not bad:
            return f"healthy: all {len(self.services)} services up"
        named = ", ".join(f"{s.name} {s.health}" + (f" ({s.detail})" if s.detail else "") for s in bad)
        return f"{len(bad)} of {len(self.services)} services need attention: {named}"


def service_status(target: Target, before: Probe | None, now: Probe, pid_alive: bool | None) -> ServiceStatus:
    role = now.role or (before.role if before else None)
    health, detail = (now.health, now.detail) if pid_alive is not False else ("down", f"process {target.pid} exited")
    figures = {f.key: f.value(before.scrape if before else None, now.scrape) for f in FIGURES.get(role or "", ())}
    return ServiceStatus(
        name=target.name,
        url=target.url,
        role=role,
        pid=target.pid,
        pid_alive=pid_alive,
        health=health,
        detail=detail,
        figures=figures,
    )


# -- targets --------------------------------------------------------------------------------------------------------


def parse_targets(items: Iterable[str]) -> list[Target]:
    """``NAME=URL`` items, each possibly several separated by commas; a name may hold spaces."""
    targets: list[Target] = []
    for item in (part.strip() for text in items for part in text.split(",")):
        name, equals, url = item.partition("=")
        try:
            if not equals:
                raise ValueError("no '='")
            targets.append(Target(name=name.strip(), url=url.strip()))
        except ValueError as exc:  # pydantic's ValidationError is one
            reason = "; ".join(str(e["msg"]) for e in exc.errors()) if isinstance(exc, ValidationError) else str(exc)
            raise ConfigError(
                f"bad target {item!r} ({reason}): expected NAME=URL, e.g. --target 'gateway 1=http://10.0.0.5:9301'"
            ) from None
    return targets


class _StackEntry(BaseModel):
    pid: int | None = None
    url: str


def stack_targets(data_dir: Path) -> list[Target]:
    path = data_dir / "stack.json"
    if not path.exists():
        raise ConfigError(
            f"no {path}: start the stack with `smartcity up` (or pass --data-dir), or name the services to check "
            "with --target NAME=URL (repeatable) or SMARTCITY_STATUS_TARGETS"
        )
    try:
        entries = TypeAdapter(dict[str, _StackEntry]).validate_json(path.read_bytes())
        return [Target(name=name, url=entry.url, pid=entry.pid) for name, entry in entries.items()]
    except ValidationError as exc:
        raise ConfigError(f"{path} is not what `smartcity up` writes: {exc}") from exc


def choose_targets(settings: StatusSettings, cli_targets: list[str]) -> list[Target]:
    """``--target``, else ``SMARTCITY_STATUS_TARGETS``, else stack.json."""
    given = cli_targets or ([settings.status_targets] if settings.status_targets.strip() else [])
    targets = parse_targets(given) if given else stack_targets(settings.data_dir)
    names = [t.name for t in targets]
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError(f"target names must differ; given twice: {', '.join(twice)}")
    if not targets:
        raise ConfigError("no targets to check")
    return targets


# -- the I/O part ---------------------------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


async def _tcp(target: Target, timeout: float) -> Probe:
    parts = _split(target.url)
    port = parts.port or {"mqtt": 1883, "mqtts": 8883}.get(parts.scheme, 9092)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(parts.hostname, port)
    except (OSError, TimeoutError) as exc:
        return Probe("down", _why(exc, timeout), target.kind)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Probe("ok", "", target.kind)


def _why(exc: Exception, timeout: float) -> str:
    """Why a target is down, in a few words."""
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"no answer within {timeout:g} s"
    cause = exc.__cause__ if isinstance(exc, httpx.ConnectError) else exc
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, socket.gaierror):
        return f"unknown host ({cause.strerror})"
    return "cannot connect" if isinstance(exc, httpx.ConnectError) else (str(exc) or type(exc).__name__)


def _unhealthy_reason(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return f"/healthz answered {answer.status_code}"
    checks = body.get("checks") if isinstance(body, dict) else None
    if isinstance(checks, dict) and (failing := [name for name, ok in checks.items() if not ok]):
        return "failing: " + ", ".join(failing)
    return str(body.get("status")) if isinstance(body, dict) and body.get("status") else f"HTTP {answer.status_code}"


async def _http(client: httpx.AsyncClient, target: Target, timeout: float) -> Probe:
    base = target.url.rstrip("/")
    try:
        answer = await client.get(f"{base}/healthz")
        if answer.status_code == 404:  # not one of ours: InfluxDB (and anything Influx-compatible) answers /ping
            ping = await client.get(f"{base}/ping")
            return Probe("ok", "", "influxdb") if ping.is_success else Probe("unhealthy", f"/ping: {ping.status_code}")
        metrics = await client.get(f"{base}/metrics")
    except httpx.HTTPError as exc:
        return Probe("down", _why(exc, timeout))
    try:
        scrape = Scrape.parse(metrics.text, time.monotonic()) if metrics.is_success else None
    except ValueError:  # not Prometheus text
        scrape = None
    health: Health = "ok" if answer.status_code == 200 else "unhealthy"
    return Probe(
        health, "" if health == "ok" else _unhealthy_reason(answer), role_of(scrape) if scrape else None, scrape
    )


async def probe_all(client: httpx.AsyncClient, targets: list[Target], timeout: float) -> list[Probe]:
    """Every target at once; each answer within ``timeout`` or it is down."""
    return await asyncio.gather(*(_http(client, t, timeout) if t.kind == "http" else _tcp(t, timeout) for t in targets))


async def rounds(targets: list[Target], interval: float, timeout: float) -> AsyncGenerator[StatusReport, None]:
    """A report every ``interval`` seconds, each from the last two looks (the first after two)."""
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        before = await probe_all(client, targets, timeout)
        while True:
            await asyncio.sleep(interval)
            now = await probe_all(client, targets, timeout)
            alive = [pid_alive(t.pid) if t.pid is not None else None for t in targets]
            statuses = [service_status(*row) for row in zip(targets, before, now, alive, strict=True)]
            yield StatusReport(interval_s=interval, services=statuses)
            before = now


# -- the screen -----------------------------------------------------------------------------------------------------

STYLES = {"ok": "green", "unhealthy": "yellow", "down": "bold red"}


def _format(figure: Figure, value: float | None) -> str:
    if value is None:
        return "–"
    if figure.kind is Kind.FLAG:
        return "yes" if value >= 1 else "[red]no[/]"
    if figure.key.endswith("_per_s"):
        return f"{value:,.1f}/s" if value < 10 else f"{value:,.0f}/s"
    if figure.key.endswith("_s"):
        prefix = "≤" if figure.kind is Kind.P99 else ""
        if math.isinf(value):
            return "off scale"
        return f"{prefix}{value * 1000:.3g} ms" if value < 1 else f"{prefix}{value:,.1f} s"
    return f"{value:,.0f}"


def _cell(service: ServiceStatus, column: str) -> str:
    figures = [f for f in FIGURES.get(service.role or "", ()) if f.column == column]
    return ", ".join(f"{f.label} {_format(f, service.figures.get(f.key))}".strip() for f in figures)


#: Below this many columns the details leave the table for lines of their own under it: at 80 (a default terminal)
#: a details column would be a few characters wide, and the headers would break mid-word.
WIDE = 120


def render(report: StatusReport, width: int = WIDE) -> Group:
    table = Table(
        title=f"SmartCity status (rates over {report.interval_s:g} s)", title_justify="left", box=box.SIMPLE_HEAD
    )
    wide = width >= WIDE
    # Every header keeps its width, so none is broken mid-word; the cells wrap at spaces below them.
    for name in ("service", "role", "pid", "health", "throughput", "lag (records)"):
        table.add_column(name, overflow="fold", min_width=len(name))
    if wide:
        table.add_column("details", overflow="fold", ratio=1, min_width=len("details"))
    below: list[Padding] = []
    for s in report.services:
        pid = "–" if s.pid is None else (str(s.pid) if s.pid_alive else f"[red strike]{s.pid}[/]")
        details = _cell(s, "details")
        if s.detail:
            details = f"[{STYLES[s.health]}]{escape(s.detail)}[/]" + (f"; {details}" if details else "")
        health = f"[{STYLES[s.health]}]{s.health}[/]"
        row = [escape(s.name), escape(s.role or "–"), pid, health, _cell(s, "throughput"), _cell(s, "lag")]
        table.add_row(*row, *([details] if wide else []))
        if not wide and details:
            below.append(Padding(Text.from_markup(f"[bold]{escape(s.name)}[/]: {details}"), (0, 0, 0, 2)))
    verdict = Text(report.verdict, style="green" if report.healthy else "bold red")
    return Group(table, *below, *([Text("")] if below else []), verdict)


async def _next(reports: AsyncIterator[StatusReport]) -> StatusReport:
    return await anext(reports)


def run_status(cli_targets: list[str], data_dir: Path | None, interval: float, *, watch: bool, as_json: bool) -> int:
    """Print one report (or, with ``watch``, one per interval until Ctrl-C); 0 if the last was healthy, else 1.

    ``--json`` prints the report as one JSON document; with ``--watch``, one document per line (JSON Lines)."""
    settings = StatusSettings() if data_dir is None else StatusSettings(data_dir=data_dir)
    targets = choose_targets(settings, cli_targets)
    if watch and threading.current_thread() is threading.main_thread():
        # Ctrl-C must stop a watch even when a parent started us with SIGINT ignored (nohup, some CI runners): with
        # Python's own handler back, asyncio's runner takes SIGINT over each round and raises KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    quiet("httpx")  # a line per request would bury the table
    console = Console()
    report: StatusReport | None = None
    with asyncio.Runner() as runner:
        reports = rounds(targets, interval, settings.status_timeout_s)
        if not watch:
            report = runner.run(_next(reports))
            if as_json:
                console.out(report.model_dump_json(indent=2), highlight=False)
            else:
                console.print(render(report, console.width))
        elif as_json:
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    report = runner.run(_next(reports))
                    console.out(report.model_dump_json(), highlight=False)
        else:
            with contextlib.suppress(KeyboardInterrupt), Live(console=console, auto_refresh=False) as live:
                while True:
                    report = runner.run(_next(reports))
                    live.update(render(report, console.width), refresh=True)
    return 0 if report is not None and report.healthy else 1
