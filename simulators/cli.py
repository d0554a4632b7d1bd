"""``smartcity simulate``: scenarios, drills, replays, a live fleet, alert quality and load runs.

Where the platform is comes from the options or the environment (``SMARTCITY_API_URL``, ``SMARTCITY_API_TOKEN``,
``SMARTCITY_MQTT_URL``, ``SMARTCITY_MQTT_ADMIN_PASSWORD``), and on the stack's own machine from its secrets file.
Exit status: 0 passed, 1 a drill or quality run failed its ground truth, 2 the input or the platform was unusable.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from pathlib import Path
from typing import Annotated, NoReturn

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.clock import local_now, now_ms
from core.logs import quiet
from core.secrets import SECRETS_FILE, saved_secrets
from simulators.field import Target
from simulators.scenario import Scenario, ScenarioError, bundled, load_scenario

simulate_app = typer.Typer(no_args_is_help=True, help="Simulators: drills, replays, a live fleet, quality, load.")
console = Console(stderr=True)

_DATA_DIR = Path(".smartcity")


@simulate_app.callback()
def _connection(
    ctx: typer.Context,
    api: Annotated[str, typer.Option(envvar="SMARTCITY_API_URL", help="the API's base URL")] = "http://127.0.0.1:8080",
    token: Annotated[str | None, typer.Option(envvar="SMARTCITY_API_TOKEN", help="bearer token")] = None,
    mqtt: Annotated[str, typer.Option(envvar="SMARTCITY_MQTT_URL", help="the MQTT broker")] = "mqtt://127.0.0.1:1883",
    admin_password: Annotated[
        str | None, typer.Option(envvar="SMARTCITY_MQTT_ADMIN_PASSWORD", help="password of the MQTT account admin")
    ] = None,
    data_dir: Annotated[Path, typer.Option(envvar="SMARTCITY_DATA_DIR", help="where secrets.json is")] = _DATA_DIR,
) -> None:
    ctx.obj = (api, token, mqtt, admin_password, data_dir)
    quiet(*FIELD_LOGGERS)


#: Hundreds of simulated devices each connecting, and a drill polling the API, are not news.
FIELD_LOGGERS = ("core.mqtt", "httpx")


def _target(ctx: typer.Context) -> Target:
    api, token, mqtt, admin_password, data_dir = ctx.obj
    saved = saved_secrets(data_dir)
    token = token or saved.get("api_token")
    admin_password = admin_password or saved.get("admin_password")
    if not token or not admin_password:
        _fail(
            "no API token or MQTT admin password: pass --token and --admin-password (or SMARTCITY_API_TOKEN and "
            f"SMARTCITY_MQTT_ADMIN_PASSWORD), or run where the stack's {data_dir / SECRETS_FILE} is"
        )
    return Target(api, token, mqtt, admin_password)


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def _scenario(name: str) -> Scenario:
    from rules.pack import load_pack

    try:
        return load_scenario(Path(name), {r.id for r in load_pack().rules})
    except ScenarioError as exc:
        _fail(str(exc))


def _unreachable(target: Target, exc: Exception) -> NoReturn:
    _fail(
        f"the platform did not answer ({exc}); is `smartcity up` running? API {target.api_url}, MQTT {target.mqtt_url}"
    )


@simulate_app.command("scenarios")
def list_scenarios() -> None:
    """The bundled scenarios."""
    table = Table("name", "title", "hazards", "s", "speed")
    for path in bundled():
        s = load_scenario(path)
        hazards = ", ".join(dict.fromkeys(h.type for h in s.hazards)) or "-"
        table.add_row(s.name, s.title.zh, hazards, f"{s.duration_s:g}", f"x{s.speed:g}")
    Console().print(table)


@simulate_app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="scenario files")]) -> None:
    """Check scenario files; every problem is reported with its file and field."""
    bad = 0
    for path in files:
        try:
            _check(path)
            console.print(f"[green]ok[/] {path}")
        except ScenarioError as exc:
            bad += 1
            console.print(f"[red]invalid[/] {exc}", highlight=False)
    raise typer.Exit(2 if bad else 0)


def _check(path: Path) -> None:
    from rules.pack import load_pack
    from simulators.plan import Plan, scenario_fleet

    scenario = load_scenario(path, {r.id for r in load_pack().rules})
    Plan(scenario, scenario_fleet(scenario), 0)  # places every hazard on the fleet: a site it lacks is an error


def _report_out(out: Path, name: str) -> Path:
    return out / f"{name}-{local_now().strftime('%Y%m%dT%H%M%S%z')}"  # Shenzhen time: 20261125T100000+0800


@simulate_app.command()
def replay(
    scenario: Annotated[str, typer.Argument(help="a bundled scenario's name or a YAML file")],
    out: Annotated[Path, typer.Option(help="where the reports go")] = Path("drill-reports"),
) -> None:
    """Run a scenario through the platform's parser, rules and routing without brokers, in seconds."""
    from simulators.plan import Plan, scenario_fleet
    from simulators.render import text, write
    from simulators.replay import replay_report

    s = _scenario(scenario)
    try:
        fleet = scenario_fleet(s)
        report = replay_report(Plan(s, fleet, now_ms() - int(s.duration_s * 1000)))
    except ScenarioError as exc:
        _fail(str(exc))
    print(text(report))
    for path in write(report, _report_out(out, f"{s.name}-replay")):
        console.print(f"report: {path}")
    raise typer.Exit(0 if report.passed else 1)


@simulate_app.command()
def drill(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Argument(help="a bundled scenario's name or a YAML file")],
    prefix: Annotated[str, typer.Option(help="device and site ids begin with this")] = "sim",
    keep_fleet: Annotated[bool, typer.Option(help="leave the fleet registered afterwards")] = False,
    batch: Annotated[int, typer.Option(min=1, max=500, help="readings per message")] = 1,
    out: Annotated[Path, typer.Option(help="where the reports go")] = Path("drill-reports"),
) -> None:
    """Play a scenario on the running platform as a drill; report text, JSON and HTML; exit 1 if it failed."""
    from simulators.drill import run_drill
    from simulators.render import text, write

    s = _scenario(scenario)
    target = _target(ctx)
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
        console=console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"演练 drill {s.name}", total=s.duration_s, status="registering the fleet")

        def show(at_s: float, sent: int, heard: int) -> None:
            bar.update(task, completed=at_s, status=f"{at_s:.0f}/{s.duration_s:g} s · {sent} sent · {heard} alerts")

        try:
            run = run_drill(s, target, prefix=prefix, keep_fleet=keep_fleet, batch=batch, progress=show)
            report = asyncio.run(run)
        except ScenarioError as exc:
            _fail(str(exc))
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            _unreachable(target, exc)
    print(text(report))
    for path in write(report, _report_out(out, s.name)):
        console.print(f"report: {path}")
    raise typer.Exit(0 if report.passed else 1)


@simulate_app.command()
def fleet(
    ctx: typer.Context,
    devices: Annotated[int, typer.Option(min=1, help="how many devices")] = 200,
    seed: int = 1,
    interval_s: Annotated[int, typer.Option(min=1, help="seconds between a device's readings")] = 10,
    prefix: Annotated[str, typer.Option(help="device and site ids begin with this")] = "sim",
    batch: Annotated[int, typer.Option(min=1, max=500, help="readings per message")] = 1,
    duration_s: Annotated[float | None, typer.Option(help="stop after this long (default: Ctrl-C)")] = None,
    drill_flag: Annotated[bool, typer.Option("--drill/--no-drill", help="flag the readings as drill data")] = True,
    keep: Annotated[bool, typer.Option(help="leave the fleet registered when stopping")] = False,
) -> None:
    """Register a generated Longgang fleet and keep it reporting healthy readings."""
    from simulators.fleet import generate_fleet
    from simulators.live import run_fleet

    target = _target(ctx)
    the_fleet = generate_fleet(devices, seed, interval_s=interval_s, prefix=prefix)
    console.print(f"fleet: {len(the_fleet.devices)} devices at {len(the_fleet.sites)} sites, every {interval_s} s")
    try:
        sent = asyncio.run(
            run_fleet(the_fleet, target, duration_s=duration_s, batch=batch, drill=drill_flag, keep=keep)
        )
    except KeyboardInterrupt:
        console.print("stopped")
        return
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        _unreachable(target, exc)
    console.print(f"sent {sent} messages")


@simulate_app.command()
def quality(
    seeds: Annotated[int, typer.Option(min=1, help="runs of each scenario, each with another seed")] = 3,
    devices: Annotated[int, typer.Option(min=9, help="fleet size of each scenario run")] = 200,
    quiet_devices: Annotated[int, typer.Option(min=0, help="devices of the quiet day (0: none)")] = 1000,
    quiet_hours: Annotated[float, typer.Option(min=0.1, help="length of the quiet day")] = 24.0,
    scenario: Annotated[list[str] | None, typer.Option(help="only these scenarios (default: all bundled)")] = None,
    out: Annotated[Path, typer.Option(help="the JSON report")] = Path("bench-results/quality.json"),
) -> None:
    """Missed hazards, false alerts per 10,000 device-hours and time to alert over the labelled suite."""
    from simulators.quality import FALSE_ALERTS_TARGET, measure

    paths = None if not scenario else [Path(s) for s in scenario]
    with console.status("replaying the scenario suite and a quiet day through the rules..."):
        try:
            result = measure(
                scenarios=paths, seeds=seeds, devices=devices, quiet_devices=quiet_devices, quiet_hours=quiet_hours
            )
        except ScenarioError as exc:
            _fail(str(exc))
    table = Table("run", "seed", "devices", "device-h", "expected", "missed", "late", "false alerts", "time to alert")
    for r in result.runs:
        tta = f"{statistics.median(r.times_to_alert_s):.1f} s" if r.times_to_alert_s else "-"
        table.add_row(r.scenario, str(r.seed), str(r.devices), f"{r.device_hours:,.0f}", str(r.expected),
                      str(len(r.missed)), str(len(r.late)), str(len(r.false_alerts)), tta)  # fmt: skip
    Console().print(table)
    Console().print(
        f"missed hazards {result.missed} (target 0) · false alerts {result.false_alerts} in "
        f"{result.device_hours:,.0f} device-hours = {result.false_per_10k_device_hours} per 10,000 "
        f"(target <= {FALSE_ALERTS_TARGET:g}) · time to alert {result.time_to_alert_s} · {result.seconds} s"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    console.print(f"report: {out}")
    raise typer.Exit(0 if result.passed else 1)


@simulate_app.command()
def load(
    preset: Annotated[str | None, typer.Option(help="w1, w2 or latency (the end-to-end benchmark's workloads)")] = None,
    quick: Annotated[bool, typer.Option(help="the preset's smoke-run size")] = False,
    latency_rate: Annotated[
        int, typer.Option(min=1, help="the latency preset's steady rate: about half of W1's measured peak here")
    ] = 3_000,
    devices: Annotated[int, typer.Option(min=1, help="fleet size")] = 2_000,
    per_message: Annotated[int, typer.Option(min=1, max=500, help="readings per MQTT message")] = 1,
    rates: Annotated[
        str, typer.Option(help="readings/s of each step, comma-separated; the last is held")
    ] = "2000,4000",
    step_s: Annotated[float, typer.Option(min=0, help="seconds of each ramp step")] = 10,
    hold_s: Annotated[float, typer.Option(min=1, help="seconds the last rate is held")] = 30,
    probes: Annotated[bool, typer.Option(help="probe alerts for latency percentiles")] = True,
    seed: int = 1,
    out: Annotated[Path, typer.Option(help="the JSON report (the plot goes beside it)")] = Path(
        "bench-results/load.json"
    ),
) -> None:
    """Load mode: a one-machine stack of its own, a generated fleet ramped and held; throughput, loss in Kafka and
    InfluxDB, alert latency, CPU per service; JSON report and plot. Exit 1 if any reading was lost."""
    from simulators.load import LoadPlan, latency, run_load, w1, w2

    if preset is not None:
        presets = {"w1": lambda: w1(quick), "w2": lambda: w2(quick), "latency": lambda: latency(latency_rate, quick)}
        if preset not in presets:
            _fail(f"unknown preset {preset!r}; known: {', '.join(presets)}")
        plan: LoadPlan = presets[preset]()
        report = plan.run(out)
    else:
        try:
            steps = tuple(int(r) for r in rates.split(","))
        except ValueError:
            _fail(f"--rates must be comma-separated integers, got {rates!r}")
        try:
            report = run_load(devices, per_message, steps, step_s=step_s, hold_s=hold_s, out=out, probes=probes,
                              seed=seed)  # fmt: skip
        except ValueError as exc:
            _fail(str(exc))
    raise typer.Exit(1 if report.accounting.lost else 0)
