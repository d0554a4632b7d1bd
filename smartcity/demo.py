"""``smartcity demo``: the whole system on this machine, a live district fleet, and a drill, in one command.

It runs ``smartcity up`` as a child (its output passed through), and once the stack is up: registers a generated
Longgang fleet that keeps reporting healthy readings (the background a console shows), plays a drill scenario on it
(alerts reach ``alerts/{department}`` and the alerts API within seconds; the report is written to
``drill-reports/``), then keeps everything running until Ctrl-C or SIGTERM, which stop the fleet (it is removed
from the registry, so its silence raises no offline alerts on the next start) and then the stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
from pathlib import Path

from rich.console import Console

from core.errors import StackError
from core.logs import quiet
from core.process import READY_LINE, die_with_parent, reachable
from core.secrets import saved_secrets
from simulators.cli import FIELD_LOGGERS
from simulators.drill import run_drill
from simulators.field import Target
from simulators.fleet import generate_fleet
from simulators.live import run_fleet
from simulators.render import text, write
from simulators.scenario import load_scenario
from smartcity.stack.supervisor import StackSettings

console = Console()


def _start_stack(settings: StackSettings) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "smartcity", "up", "--data-dir", str(settings.data_dir)]
    # Its own session, so Ctrl-C reaches the demo alone: the fleet must leave the registry while the API is still
    # there, and only then the stack stops. It still dies with us (PDEATHSIG) if we are killed.
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        if READY_LINE in line:
            threading.Thread(target=_echo, args=(proc,), daemon=True).start()
            return proc
    raise StackError(f"smartcity up stopped (exit status {proc.wait()}) before it was up; see its output above")


def _echo(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)


def _target(settings: StackSettings) -> Target:
    secrets = saved_secrets(settings.data_dir)
    return Target(
        f"http://{reachable(settings.host)}:{settings.http_port}",
        secrets["api_token"],
        settings.mqtt_url or f"mqtt://{reachable(settings.host)}:{settings.mqtt_port}",
        secrets["admin_password"],
    )


async def _demo(target: Target, scenario_name: str, devices: int, reports: Path) -> None:
    scenario = load_scenario(Path(scenario_name))
    fleet = generate_fleet(devices, 2026, interval_s=30, prefix="demo")
    background = asyncio.create_task(run_fleet(fleet, target))
    console.print(f"[bold]fleet 设备群[/]: {len(fleet.devices)} devices at {len(fleet.sites)} sites in Longgang")
    console.print(f"[bold]drill 演练[/]: {scenario.name} · {scenario.title.zh} / {scenario.title.en}")
    report = await run_drill(scenario, target, prefix="drill", keep_fleet=False)
    print(text(report))
    for path in write(report, reports / f"demo-{scenario.name}"):
        console.print(f"report: {path}")
    for incident in report.incidents:
        console.print(
            f"incident 事件: {incident.title.zh} · {incident.alerts} alerts · report 事故分析 {incident.report_url}"
        )
    console.print(
        f"\nAlerts: {target.api_url}/api/alerts, incidents {target.api_url}/api/incidents (token in "
        f".smartcity/secrets.json) · console {target.api_url}/ · the fleet keeps reporting; Ctrl-C stops everything."
    )
    await background


def run_demo(settings: StackSettings, scenario: str, devices: int, reports: Path) -> int:
    quiet(*FIELD_LOGGERS)
    stack = _start_stack(settings)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops the demo as Ctrl-C does
    try:
        asyncio.run(_demo(_target(settings), scenario, devices, reports))
    except KeyboardInterrupt:
        console.print("stopping 停止...")
    finally:
        with contextlib.suppress(ProcessLookupError):
            stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(60)
        except subprocess.TimeoutExpired:
            stack.kill()
    return stack.wait()
