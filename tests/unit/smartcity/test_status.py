"""``smartcity status`` against real HTTP endpoints: the services' own ``serve_health`` on free ports, serving real
registries built from the services' metric classes; counters move between the two scrapes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from rich.console import Console
from typer.testing import CliRunner, Result

from alerts.metrics import AlertMetrics
from core.http.health import serve_health
from core.kafka.lag import ConsumerLag
from core.process import free_port
from ingest.metrics import GatewayMetrics
from smartcity.cli import app
from smartcity.stack.services import Launch
from smartcity.status import (
    FIGURES,
    Figure,
    Kind,
    Scrape,
    ServiceStatus,
    StatusReport,
    StatusSettings,
    Target,
    choose_targets,
    parse_targets,
    probe_all,
    render,
    role_of,
    rounds,
    service_status,
    stack_targets,
)
from storage.metrics import WriterMetrics
from streams.metrics import StreamMetrics

RUNNER = CliRunner()


@dataclass(frozen=True)
class _TopicPartition:
    topic: str
    partition: int


@dataclass
class Served:
    """One of our services as ``status`` sees it: its registry, its health checks, its URL."""

    registry: CollectorRegistry
    url: str
    checks: dict[str, bool] = field(default_factory=lambda: {"mqtt": True, "kafka": True})


Serve = Callable[[CollectorRegistry], Awaitable[Served]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(registry: CollectorRegistry) -> Served:
        port = free_port()
        served = Served(registry, f"http://127.0.0.1:{port}")
        runners.append(await serve_health("127.0.0.1", port, registry, lambda: served.checks))
        return served

    yield start
    for runner in runners:
        await runner.cleanup()


def _lagging(lag: ConsumerLag, topic: str, high: int, read_up_to: int) -> None:
    """A consumer holding partition 0 of ``topic``, whose high watermark is ``high``, has read up to ``read_up_to``."""
    lag.bind(lambda: [_TopicPartition(topic, 0)], lambda _tp: high)
    lag.read(topic, 0, read_up_to)


def _invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return RUNNER.invoke(app, ["status", *args], env={"COLUMNS": "160", **(env or {})})


# -- the pure part --------------------------------------------------------------------------------------------------


def test_rates_gauges_and_p99_from_two_scrapes() -> None:
    registry = CollectorRegistry()
    metrics = StreamMetrics.create(registry)
    metrics.readings.inc(100)
    metrics.evaluation_seconds.observe(0.2)  # before the window: must not count
    before = Scrape.parse(generate_latest(registry).decode(), at=10.0)
    metrics.readings.inc(50)
    metrics.findings.labels("gas", "warning", "raised").inc(2)
    metrics.findings.labels("gas", "danger", "escalated").inc(3)
    for _ in range(99):
        metrics.evaluation_seconds.observe(0.0003)
    metrics.evaluation_seconds.observe(0.004)
    metrics.lag_seconds.set(1.5)
    now = Scrape.parse(generate_latest(registry).decode(), at=12.0)

    figures = {f.key: f.value(before, now) for f in FIGURES["stream worker"]}
    assert figures["evaluated_per_s"] == 25.0
    assert figures["findings_per_s"] == 2.5  # summed over labels
    assert figures["event_lag_s"] == 1.5
    assert figures["evaluation_p99_s"] == 0.0005  # the bucket holding the 99th of the 100 in the window
    assert figures["consumer_lag_records"] == 0  # exported, nothing held
    assert role_of(now) == "stream worker"


def test_a_missing_metric_is_none_and_a_counter_reset_counts_from_zero() -> None:
    old = Scrape.parse("# TYPE smartcity_writer_readings counter\nsmartcity_writer_readings_total 500\n", at=0.0)
    restarted = Scrape.parse("# TYPE smartcity_writer_readings counter\nsmartcity_writer_readings_total 20\n", at=2.0)
    written, lag = FIGURES["writer"][0], FIGURES["writer"][1]
    assert written.value(old, restarted) == 10.0
    assert lag.value(old, restarted) is None  # an older writer without the lag gauge
    assert written.value(None, restarted) is None  # one scrape: no rate
    assert Figure("p", "p", "absent_seconds", Kind.P99).value(old, restarted) is None


def test_roles_follow_the_metric_namespace_not_the_name() -> None:
    creators: dict[str, Callable[[CollectorRegistry], object]] = {
        "gw": GatewayMetrics.create, "st": StreamMetrics.create, "wr": WriterMetrics.create, "al": AlertMetrics.create
    }  # fmt: skip
    roles = {}
    for kind, create in creators.items():
        registry = CollectorRegistry()
        create(registry)
        roles[kind] = role_of(Scrape.parse(generate_latest(registry).decode(), at=0))
    assert roles == {"gw": "gateway", "st": "stream worker", "wr": "writer", "al": "api"}
    assert role_of(Scrape.parse("", at=0)) is None


def test_a_dead_pid_is_down_whatever_answers() -> None:
    from smartcity.status import Probe

    target = Target(name="stream worker 2", url="http://127.0.0.1:1", pid=4242)
    status = service_status(target, None, Probe("ok", role="stream worker"), pid_alive=False)
    assert (status.health, status.detail) == ("down", "process 4242 exited")
    assert status.figures["evaluated_per_s"] is None


# -- targets --------------------------------------------------------------------------------------------------------


def test_target_parsing() -> None:
    targets = parse_targets(["ingest gateway 1=http://10.0.0.5:9301,kafka=kafka-0:9092", "mqtt = mqtts://broker"])
    assert [(t.name, t.url, t.kind) for t in targets] == [
        ("ingest gateway 1", "http://10.0.0.5:9301", "http"),
        ("kafka", "kafka-0:9092", "kafka broker"),
        ("mqtt", "mqtts://broker", "mqtt broker"),
    ]


def test_stack_json(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(
        json.dumps(
            {
                "mosquitto": {"pid": 11, "url": "mqtt://127.0.0.1:1883"},
                "kafka (tansu)": {"pid": 12, "url": "127.0.0.1:9092"},
                "ingest gateway 2": {"pid": 13, "url": "http://127.0.0.1:9302"},
            }
        )
    )
    targets = stack_targets(tmp_path)
    assert [(t.name, t.pid, t.kind) for t in targets] == [
        ("mosquitto", 11, "mqtt broker"),
        ("kafka (tansu)", 12, "kafka broker"),
        ("ingest gateway 2", 13, "http"),
    ]
    # --target wins over stack.json, and the environment's list over stack.json
    settings = StatusSettings(data_dir=tmp_path, status_targets="a=http://h:1, b=tcp://h:2")
    assert [t.name for t in choose_targets(settings, [])] == ["a", "b"]
    assert [t.name for t in choose_targets(settings, ["c=http://h:3"])] == ["c"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "gateway"], "bad target 'gateway' (no '=')"),
        (["--target", "gw=ftp://host:21"], "expected http(s)://"),
        (["--target", "=http://host:1"], "bad target '=http://host:1'"),
        (["--target", "a=http://h:1", "--target", "a=http://h:2"], "given twice: a"),
        (["--data-dir", "/nonexistent"], "start the stack with `smartcity up`"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_broken_stack_json_exits_2(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text('{"api": {"pid": "x"}}')
    result = _invoke("--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "is not what `smartcity up` writes" in result.output


# -- real services --------------------------------------------------------------------------------------------------


async def test_rates_and_lags_of_every_role(serve: Serve) -> None:
    gw_registry, st_registry, wr_registry, api_registry = (CollectorRegistry() for _ in range(4))
    gw, st = GatewayMetrics.create(gw_registry), StreamMetrics.create(st_registry)
    wr, al = WriterMetrics.create(wr_registry), AlertMetrics.create(api_registry)
    devices = Gauge("smartcity_devices", "Registered devices by health status", ["status"], registry=api_registry)
    servers = [await serve(r) for r in (gw_registry, st_registry, wr_registry, api_registry)]
    names = ["ingest gateway 1", "stream worker 1", "influx writer", "api"]
    targets = [Target(name=n, url=s.url, pid=os.getpid()) for n, s in zip(names, servers, strict=True)]
    gw.mqtt_connected.set(1)
    gw.kafka_ok.set(1)
    gw.readings_received.inc(1_000)
    al.deliveries.labels("webhook", "fire", "undelivered").inc(2)
    al.deliveries.labels("mqtt", "fire", "delivered").inc(50)  # other outcomes, before and during: not undelivered

    async with httpx.AsyncClient(timeout=1) as client:
        before = await probe_all(client, targets, 1.0)
        gw.readings_received.inc(400)
        gw.readings_accepted.inc(390)
        gw.refusals.labels("schema").inc(6)
        gw.refusals.labels("unknown_device").inc(4)
        gw.unacked.set(7)
        st.readings.inc(390)
        _lagging(st.consumer.lag, "readings", high=100, read_up_to=39)
        st.lag_seconds.set(0.25)
        wr.readings.inc(390)
        wr.retries.labels("timeout").inc(1)
        wr.influx_up.set(1)
        _lagging(wr.consumer.lag, "readings", high=500, read_up_to=99)
        al.messages.labels("raised", "warning", "gas", "false").inc(3)
        al.open_alerts.labels("false").set(2)
        al.open_alerts.labels("true").set(1)
        al.deliveries.labels("webhook", "fire", "undelivered").inc(1)
        al.deliveries.labels("mqtt", "fire", "delivered").inc(5)
        devices.labels("online").set(280)
        devices.labels("offline").set(20)
        await asyncio.sleep(0.05)
        now = await probe_all(client, targets, 1.0)

    report = StatusReport(
        interval_s=0.05, services=[service_status(t, b, n, True) for t, b, n in zip(targets, before, now, strict=True)]
    )
    gateway, streams, writer, api = report.services
    seconds = [n.scrape.at - b.scrape.at for b, n in zip(before, now, strict=True) if n.scrape and b.scrape]
    assert [s.role for s in report.services] == ["gateway", "stream worker", "writer", "api"]
    assert report.healthy
    assert gateway.figures["received_per_s"] == pytest.approx(400 / seconds[0])
    assert gateway.figures["refused_per_s"] == pytest.approx(10 / seconds[0])
    assert (gateway.figures["unacked"], gateway.figures["mqtt_connected"]) == (7, 1)
    assert streams.figures["evaluated_per_s"] == pytest.approx(390 / seconds[1])
    assert (streams.figures["consumer_lag_records"], streams.figures["event_lag_s"]) == (60, 0.25)
    assert writer.figures["consumer_lag_records"] == 400
    assert writer.figures["retries_per_s"] == pytest.approx(1 / seconds[2])
    assert api.figures["alerts_per_s"] == pytest.approx(3 / seconds[3])
    assert api.figures["undelivered_per_s"] == pytest.approx(1 / seconds[3])  # delivered ones do not count
    assert (api.figures["open_alerts"], api.figures["devices_online"], api.figures["devices_offline"]) == (3, 280, 20)
    assert api.figures["consumer_lag_records"] == 0
    assert api.figures["mqtt_connected"] == 0


async def test_unhealthy_and_down_services_exit_1(serve: Serve) -> None:
    gateway = await serve(_registry(GatewayMetrics))
    gateway.checks["kafka"] = False
    writer = await serve(_registry(WriterMetrics))
    dead = f"http://127.0.0.1:{free_port()}"
    args = ["--interval", "0.2", "--json", "--target", f"gw 1={gateway.url}", "--target", f"writer={writer.url}"]
    result = await asyncio.to_thread(_invoke, *args, "--target", f"stream worker 3={dead}")

    assert result.exit_code == 1, result.output
    report = StatusReport.model_validate_json(result.stdout)
    health = {s.name: (s.health, s.detail) for s in report.services}
    assert health["gw 1"] == ("unhealthy", "failing: kafka")
    assert health["writer"] == ("ok", "")
    assert health["stream worker 3"][0] == "down"
    assert not report.healthy
    assert report.verdict.startswith("2 of 3 services need attention: gw 1 unhealthy (failing: kafka)")


async def test_the_table_from_stack_json_with_a_broker_and_a_dead_process(serve: Serve, tmp_path: Path) -> None:
    stream = await serve(_registry(StreamMetrics))
    broker = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    broker_port = broker.sockets[0].getsockname()[1]
    exited = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await exited.wait()
    stack = {
        "kafka (tansu)": {"pid": os.getpid(), "url": f"127.0.0.1:{broker_port}"},
        "stream worker 1": {"pid": os.getpid(), "url": stream.url},
        "stream worker 2": {"pid": exited.pid, "url": f"http://127.0.0.1:{free_port()}"},
    }
    (tmp_path / "stack.json").write_text(json.dumps(stack))
    try:
        result = await asyncio.to_thread(_invoke, "--interval", "0.2", env={"SMARTCITY_DATA_DIR": str(tmp_path)})
    finally:
        broker.close()
        await broker.wait_closed()

    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line.strip()) for line in lines)}
    assert rows["kafka (tansu)"] == ["kafka broker", str(os.getpid()), "ok"]
    assert rows["stream worker 1"] == [
        "stream worker",
        str(os.getpid()),
        "ok",
        "0.0/s",
        "0",
        "event lag 0 ms, findings 0.0/s, eval p99 –",
    ]
    assert rows["stream worker 2"] == ["–", str(exited.pid), "down", f"process {exited.pid} exited"]
    assert lines[-1] == f"1 of 3 services need attention: stream worker 2 down (process {exited.pid} exited)"


async def test_healthy_means_exit_0_and_rounds_keep_coming(serve: Serve) -> None:
    served = await serve(_registry(WriterMetrics))
    result = await asyncio.to_thread(_invoke, "--interval", "0.1", env={"SMARTCITY_STATUS_TARGETS": f"w={served.url}"})
    assert result.exit_code == 0, result.output
    assert "healthy: all 1 services up" in result.output

    reports = rounds([Target(name="w", url=served.url)], 0.05, 1.0)
    first, second = await anext(reports), await anext(reports)
    await reports.aclose()
    assert first.healthy
    assert second.healthy
    assert second.services[0].figures["written_per_s"] == 0


async def _watch(served: Any, **popen: Any) -> asyncio.subprocess.Process:
    """``smartcity status --watch --json`` in its own process, watching ``served`` as a gateway."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smartcity", "status", "--watch", "--json", "--interval", "0.1",
        "--target", f"gateway={served.url}",
        stdout=asyncio.subprocess.PIPE,
        **popen,
    )  # fmt: skip


async def test_watch_until_ctrl_c(serve: Serve) -> None:
    """The real command in its own process: JSON lines every interval; SIGINT ends it with the last verdict."""
    process = await _watch(await serve(_registry(GatewayMetrics)))
    assert process.stdout is not None
    lines = [await asyncio.wait_for(process.stdout.readline(), 30) for _ in range(2)]
    process.send_signal(signal.SIGINT)
    rest, _ = await asyncio.wait_for(process.communicate(), 10)
    reports = [StatusReport.model_validate_json(line) for line in [*lines, *rest.splitlines()] if line.strip()]
    assert len(reports) >= 2
    assert all(r.services[0].role == "gateway" for r in reports)
    assert process.returncode == 0  # healthy, though gauges say MQTT is not connected: /healthz decides
    assert reports[-1].services[0].figures["received_per_s"] == 0


async def test_watch_stops_on_ctrl_c_even_when_started_with_sigint_ignored(serve: Serve) -> None:
    """Under nohup or a CI runner that ignores SIGINT, a child inherits SIG_IGN; `--watch` sets its own handler."""
    process = await _watch(
        await serve(_registry(GatewayMetrics)), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)
    )
    assert process.stdout is not None
    await asyncio.wait_for(process.stdout.readline(), 30)
    process.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0


def test_the_table_fits_80_columns_without_breaking_a_header() -> None:
    services = [
        ServiceStatus(name="ingest gateway 1", url="http://127.0.0.1:9301", role="gateway", pid=123456, pid_alive=True,
                      health="ok", figures={"received_per_s": 2911.0, "accepted_per_s": 2900.0, "unacked": 120.0}),
        ServiceStatus(name="kafka (tansu)", url="127.0.0.1:9092", role="kafka broker", pid=123458, pid_alive=True,
                      health="down", detail="connection refused at 127.0.0.1:9092"),
    ]  # fmt: skip
    report = StatusReport(interval_s=2, services=services)
    console = Console(width=80, record=True, color_system=None)
    console.print(render(report, console.width))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "service" in line)
    for name in ("service", "role", "pid", "health", "throughput", "lag (records)"):
        assert name in header, f"{name!r} broken in {header!r}"
    text = "\n".join(lines)
    assert "ingest gateway 1: accepted 2,900/s" in text, "the details, under the table"
    assert "kafka (tansu): connection refused at 127.0.0.1:9092" in text
    wide = Console(width=160, record=True, color_system=None)
    wide.print(render(report, wide.width))
    assert "details" in next(line for line in wide.export_text().splitlines() if "service" in line)


def _registry(metrics: type[GatewayMetrics] | type[StreamMetrics] | type[WriterMetrics]) -> CollectorRegistry:
    registry = CollectorRegistry()
    metrics.create(registry)
    return registry


@pytest.mark.integration
async def test_the_real_brokers(mqtt_url: str, kafka_bootstrap: str, influx_service: Launch) -> None:
    """Mosquitto and Tansu take a TCP connection; InfluxDB 1.6 has no /healthz and answers /ping with 204."""
    targets = parse_targets([f"mqtt={mqtt_url}", f"kafka={kafka_bootstrap}", f"influxdb={influx_service.url}"])
    reports = rounds(targets, 0.05, 1.0)
    report = await anext(reports)
    await reports.aclose()
    assert [(s.role, s.health) for s in report.services] == [
        ("mqtt broker", "ok"),
        ("kafka broker", "ok"),
        ("influxdb", "ok"),
    ]
