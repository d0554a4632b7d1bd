"""The ``smartcity`` command: one word per job (up, gateway, topics, bench)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import typer
from pydantic import ValidationError

from core.errors import SmartCityError
from simulators.cli import simulate_app
from smartcity.devices_cli import devices_app
from smartcity.stack.supervisor import StackSettings

S = TypeVar("S")

app = typer.Typer(no_args_is_help=True, add_completion=False, help="SmartCity hazard-alerting backend.")


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.callback()
def _root(log_level: Annotated[str, typer.Option(envvar="SMARTCITY_LOG_LEVEL")] = "INFO") -> None:
    from core.logs import configure

    configure(log_level)


@app.command()
def up(
    data_dir: Annotated[Path | None, typer.Option(help="where the brokers keep their data and logs")] = None,
) -> None:
    """Run the whole system on this machine until Ctrl-C."""
    from smartcity.stack.supervisor import run_stack

    try:
        settings = StackSettings() if data_dir is None else StackSettings(data_dir=data_dir)
        sys.exit(run_stack(settings))
    except (SmartCityError, ValidationError) as exc:
        _fail(exc)


@app.command()
def demo(
    scenario: Annotated[str, typer.Option(help="the drill to play (a bundled scenario or a YAML file)")] = "gas-leak",
    devices: Annotated[int, typer.Option(min=10, help="devices of the background fleet")] = 300,
    reports: Annotated[Path, typer.Option(help="where the drill report goes")] = Path("drill-reports"),
    data_dir: Annotated[Path | None, typer.Option(help="where the brokers keep their data and logs")] = None,
) -> None:
    """The main job: the whole system on this machine, a live Longgang fleet, and a drill; Ctrl-C stops it."""
    from smartcity.demo import run_demo

    try:
        settings = StackSettings() if data_dir is None else StackSettings(data_dir=data_dir)
        sys.exit(run_demo(settings, scenario, devices, reports))
    except (SmartCityError, ValidationError) as exc:
        _fail(exc)


def _settings(model: Callable[[], S]) -> S:
    """Settings from the environment, built once at the entry point; a bad value exits with pydantic's message."""
    try:
        return model()
    except ValidationError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


@app.command()
def gateway() -> None:
    """Run one ingest gateway (MQTT telemetry -> Kafka readings) until SIGTERM."""
    from ingest.main import run_gateway
    from ingest.settings import GatewaySettings

    asyncio.run(run_gateway(_settings(GatewaySettings)))


@app.command()
def streams() -> None:
    """Run one stream worker (readings -> rules -> findings) until SIGTERM; several split the partitions."""
    from streams.main import run_streams
    from streams.settings import StreamsSettings

    try:
        run_streams(_settings(StreamsSettings))
    except SmartCityError as exc:
        _fail(exc)


@app.command()
def writer() -> None:
    """Run one InfluxDB writer (Kafka readings -> InfluxDB, offsets committed after each write) until SIGTERM."""
    from storage.main import run_writer
    from storage.settings import WriterSettings

    asyncio.run(run_writer(_settings(WriterSettings)))


@app.command()
def api() -> None:
    """Run the HTTP API (the registry, the alerts service, the readings query and the console) until SIGTERM."""
    from smartcity.api import ApiSettings, run_api

    asyncio.run(run_api(_settings(ApiSettings)))


@app.command("kafka-store", hidden=True)
def kafka_store(
    directory: Annotated[Path, typer.Option("--dir", help="where the objects are kept")],
    port: Annotated[int, typer.Option(min=1, max=65535)],
    host: str = "127.0.0.1",
    bucket: str = "tansu",
    access_key: str = "smartcity",
    sync: Annotated[
        Literal["write", "interval", "off"],
        typer.Option(help="write: fsync each write; interval: syncfs every second; off"),
    ] = "interval",
    trim_consumed: Annotated[str, typer.Option(help="topics (comma-separated) trimmed once consumed")] = "",
    keep_every_s: Annotated[float, typer.Option(min=0, help="seconds between retention passes (0: none)")] = 10.0,
    grace_s: Annotated[float, typer.Option(min=0, help="how long consumed batches of trimmed topics stay")] = 60.0,
    merge_after_s: Annotated[
        float, typer.Option(min=0, help="age from which small batches of kept topics are merged")
    ] = 60.0,
) -> None:
    """Run the one-machine Kafka's object store (smartcity.stack.store) until SIGTERM; ``smartcity up`` starts it."""
    from smartcity.stack.store import serve

    trimmed = frozenset(t.strip() for t in trim_consumed.split(",") if t.strip())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(directory, host, port, bucket, access_key, sync, trimmed, keep_every_s, grace_s, merge_after_s)
        )


@app.command("mqtt-accounts")
def mqtt_accounts() -> None:
    """Create or update the MQTT service accounts (gateway, API, departments) in Mosquitto's dynamic security."""
    from smartcity.accounts_cli import AccountsSettings, run_mqtt_accounts

    try:
        run_mqtt_accounts(_settings(AccountsSettings))
    except SmartCityError as exc:
        _fail(exc)


@app.command()
def topics() -> None:
    """Create the flow's Kafka topics if they are missing (idempotent)."""
    from core.kafka.admin import ensure_topics, flow_topics
    from core.settings import KafkaConnection

    kafka = KafkaConnection()
    try:
        created = asyncio.run(ensure_topics(kafka.kafka_bootstrap, flow_topics(kafka)))
    except SmartCityError as exc:
        _fail(exc)
        return
    typer.echo(f"created: {', '.join(created) or 'none (all exist)'}")


@app.command()
def status(
    target: Annotated[
        list[str] | None, typer.Option(help="NAME=URL to check, repeatable (else SMARTCITY_STATUS_TARGETS, stack.json)")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="where stack.json is (SMARTCITY_DATA_DIR, .smartcity)")] = None,
    interval: Annotated[float, typer.Option(min=0.05, help="seconds between the two scrapes rates come from")] = 2.0,
    watch: Annotated[bool, typer.Option(help="refresh every interval until Ctrl-C")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON (JSON Lines with --watch)")] = False,
) -> None:
    """Every service on one screen: health, consumer lag, rates. Exit 1 if any is down or unhealthy."""
    from smartcity.status import run_status

    try:
        sys.exit(run_status(target or [], data_dir, interval, watch=watch, as_json=as_json))
    except (SmartCityError, ValidationError) as exc:
        _fail(exc)


app.add_typer(devices_app, name="devices")
app.add_typer(simulate_app, name="simulate")

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks: print figures, write bench-results/*.json.")
app.add_typer(bench_app, name="bench")


@bench_app.command("ingest")
def bench_ingest(
    devices: int = 10_000,
    out: Path = Path("bench-results/ingest.json"),
    quick: Annotated[bool, typer.Option(help="a quarter of the load, for a smoke run")] = False,
) -> None:
    """MQTT -> gateway -> Kafka at controlled rates: readings/s, loss, CPU per reading."""
    from smartcity.bench.ingest import run_all

    results = run_all(devices, out, quick)
    if any(r.lost for r in results):
        typer.secho("readings were lost", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


@bench_app.command("rules")
def bench_rules(
    out: Path = Path("bench-results/rules.json"),
    quick: Annotated[bool, typer.Option(help="fewer readings, for a smoke run")] = False,
) -> None:
    """Readings/s through rule evaluation (pure, and one Faust worker on Tansu) and state bytes per device."""
    from smartcity.bench.rules import run_all

    run_all(out, quick)


@bench_app.command("incidents")
def bench_incidents(out: Path = Path("bench-results/incidents.json")) -> None:
    """What grouping alerts into incidents costs the alerts service, per finding and per tick (pure, no brokers)."""
    from smartcity.bench.incidents import run

    run(out)


@bench_app.command("registry")
def bench_registry(
    devices: int = 100_000, accounts: int = 2_000, out: Path = Path("bench-results/registry.json")
) -> None:
    """Registration rate (store, MQTT accounts) and the gateway directory's memory per 100,000 devices."""
    from smartcity.bench.registry import run

    typer.echo(json.dumps(run(devices, accounts, out), indent=2))


@bench_app.command("alerts")
def bench_alerts(
    rate: Annotated[
        list[int] | None,
        typer.Option(
            help="background readings/s, one run each (default 1,000 and 10,000); 0 = as fast as the publisher can"
        ),
    ] = None,
    samples: Annotated[int, typer.Option(help="probe alerts per background rate")] = 200,
    interval_ms: Annotated[float, typer.Option(help="time between probes")] = 150,
    devices: Annotated[int, typer.Option(help="background fleet")] = 10_000,
    out: Path = Path("bench-results/alerts.json"),
    quick: Annotated[bool, typer.Option(help="50 probes per rate, for a smoke run")] = False,
    per_message: Annotated[int, typer.Option(help="background readings per MQTT message (concentrators batch)")] = 1,
) -> None:
    """Reading to officer over the whole stack: MQTT publish -> alerts/{department}, p50/p99 under background load."""
    from smartcity.bench.alerts import run_all

    results = run_all(rate or [1_000, 10_000], 50 if quick else samples, interval_ms / 1000, devices, out, per_message)
    if any(r.lost for r in results):
        typer.secho("alerts were lost (none within 5 s)", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


@bench_app.command("storage")
def bench_storage(
    readings: Annotated[int, typer.Option(help="readings put on Kafka before the writer starts")] = 1_000_000,
    devices: Annotated[int, typer.Option(help="registered devices the readings come from")] = 10_000,
    samples: Annotated[int, typer.Option(help="readings timed from MQTT publish to queryable")] = 50,
    out: Path = Path("bench-results/storage.json"),
) -> None:
    """InfluxDB writer throughput (readings/s into influxd 1.6) and the lag from MQTT publish to queryable."""
    from smartcity.bench.storage import run_all

    run_all(readings, devices, samples, out)


@bench_app.command("influx")
def bench_influx(
    minutes: Annotated[float, typer.Option(min=0.5, help="how long the steady load is held")] = 10,
    rate: Annotated[int, typer.Option(min=1, help="readings/s")] = 3_000,
    devices: Annotated[
        int, typer.Option(min=1, help="devices the readings come from (series: about 2 per device)")
    ] = 10_000,
    batch_points: Annotated[int, typer.Option(min=1, help="points per write")] = 5_000,
    prefill_minutes: Annotated[
        float, typer.Option(min=0, help="history written first, as fast as influxd takes it")
    ] = 10,
    legacy: Annotated[
        bool,
        typer.Option(
            help="before issue 19: a health point per reading, a continuous query RESAMPLE FOR 10m, influxd's defaults"
        ),
    ] = False,
    compacted: Annotated[
        bool,
        typer.Option(
            help="then stop writing, let influxd compact its shards fully and measure the bytes a reading keeps on disk"
        ),
    ] = False,
    backfill: Annotated[
        bool,
        typer.Option(
            help="then time the writer's backfill of every device over the history's last hour: one statement, then "
            "in parts as the writer runs it (needs --prefill-minutes 120 or more)"
        ),
    ] = False,
    out: Annotated[Path | None, typer.Option(help="default bench-results/influx.json (influx-legacy.json)")] = None,
) -> None:
    """influxd 1.6 alone under a steady load of readings and the writer's aggregates: its CPU and memory over time."""
    from smartcity.bench.influx import run

    if backfill and prefill_minutes < 120:
        raise typer.BadParameter("--backfill times an hour of the history: give --prefill-minutes 120 or more")
    default = Path("bench-results/influx-legacy.json" if legacy else "bench-results/influx.json")
    run(minutes, rate, devices, batch_points, prefill_minutes, legacy, out or default, compacted, backfill)


@bench_app.command("e2e")
def bench_e2e(
    quick: Annotated[bool, typer.Option(help="smaller fleets and shorter steps: a smoke run")] = False,
    out: Path = Path("bench-results/e2e.json"),
) -> None:
    """End to end (W1, W2, alert latency at half of W1's peak) through the whole one-machine stack."""
    from smartcity.bench.e2e import run_all

    run_all(out, quick)


@bench_app.command("mosquitto")
def bench_mosquitto(
    seconds: Annotated[float, typer.Option(min=5, help="length of each measured window")] = 30,
    out: Path = Path("bench-results/mosquitto.json"),
) -> None:
    """Mosquitto's autosave: CPU and stall of one save of the district's state, and the interval that costs 1 %."""
    from smartcity.bench.mosquitto import run

    run(seconds, out)


@bench_app.command("soak")
def bench_soak(
    minutes: Annotated[float, typer.Option(min=1, help="how long the load is held")] = 30,
    rate: Annotated[
        int | None,
        typer.Option(
            min=100,
            help="readings/s; default half of W1's recorded peak: 5,983/s in docs/benchmarks.md (End to end), so 2,900",
        ),
    ] = None,
    devices: Annotated[
        int, typer.Option(min=100, help="the load fleet; 60,000 at 1,000/s is each device once a minute")
    ] = 10_000,
    out: Path = Path("bench-results/soak.json"),
    judge: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="judge this saved report again instead of running a soak"),
    ] = None,
) -> None:
    """The whole stack at a steady rate for a long while: memory, lag and alert latency over time must stay flat.
    Exit 1 if one is not (or the rate did not hold, a process restarted, the flow did not drain). Not in CI."""
    from smartcity.bench.soak import DEFAULT_RATE, rejudge, run

    if judge is not None:
        if not rejudge(judge):
            raise typer.Exit(1)
        return
    if not run(minutes, rate or DEFAULT_RATE, out, devices)["ok"]:
        typer.secho("the soak failed: see the verdicts above", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


def main() -> None:
    app()
