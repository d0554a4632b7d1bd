"""Mosquitto's autosave: what one save of its persistence file costs, so that ``autosave_interval`` is chosen on it.

Mosquitto keeps messages in memory and writes all it holds (retained messages, sessions, queued messages) to
``mosquitto.db`` every ``autosave_interval`` seconds, in its one thread: while it writes, no client is served. What a
kill loses is what it acknowledged since the last save (docs/reliability.md), so the interval is a trade: shorter
loses less and costs more.

One broker state at a time (``SCENARIOS``): the district's retained statuses (``devices/{id}/status``, every device
sets one as its last will), and optionally a queue held for an offline gateway session (readings while the gateway
is down). For each, the same persisted state is served twice, by a broker that does not save during the window and
by one that saves every ``SAVE_EVERY_S``; a probe client publishes at QoS 1 every 5 ms to both. A save shows as

- **CPU**: the broker's CPU seconds over the window (``/proc``), minus the non-saving broker's, per save (the saves
  counted by the file's modification time);
- **stall**: the probe's slowest acknowledgement, against the non-saving broker's.

``interval_for`` then gives the interval at which saving costs at most ``BUDGET`` (1 %) of the broker's time in the
district state: the interval ``smartcity up`` sets (``smartcity.stack.services.AUTOSAVE_S``).
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from rich.console import Console
from rich.table import Table

from core.process import free_port
from harness.measure import cpu_seconds, quantile
from smartcity.stack.services import mosquitto

SAVE_EVERY_S = 2  # during the measured window
NEVER_S = 86_400  # a broker that does not save during the window
BUDGET = 0.01  # the share of the broker's time saving may take
PROBE_EVERY_S = 0.005
T = TypeVar("T")
PAYLOAD = b'{"ts":1765000000000,"seq":1,"values":{"ch4_lel":2.4,"battery_pct":88,"rssi_dbm":-71}}'


@dataclass(frozen=True)
class Scenario:
    name: str
    devices: int  # retained statuses
    queued: int  # readings queued for an offline gateway session


SCENARIOS = (
    Scenario("district: 60,000 devices' retained statuses", 60_000, 0),
    Scenario("the same, and 100,000 readings queued for a gateway that is down", 60_000, 100_000),
)


@dataclass(frozen=True)
class Window:
    cpu_s: float
    saves: int
    probes: int
    probe_p99_ms: float
    probe_max_ms: float


@dataclass(frozen=True)
class Result:
    scenario: str
    db_mib: float
    load_s: float  # from the start of a broker on this state until it accepts connections
    quiet: Window
    saving: Window
    cpu_ms_per_save: float
    stall_ms: float  # the saving broker's slowest acknowledgement beyond the quiet one's


def interval_for(cpu_s_per_save: float, budget: float = BUDGET) -> int:
    """The shortest whole number of seconds between saves at which saving takes at most ``budget`` of the time."""
    return max(1, math.ceil(cpu_s_per_save / budget))


def _client(port: int, name: str, clean: bool = True) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(1000)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 0 if clean else 86_400
    client.connect("127.0.0.1", port, clean_start=clean, properties=properties)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not client.is_connected():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: no CONNACK from the broker on port {port} in 10 s")
        time.sleep(0.01)
    return client


def _fill(port: int, scenario: Scenario) -> None:
    """Retained statuses, then (for a queue) a persistent session subscribed and gone, and the readings for it."""
    if scenario.queued:
        gateway = _client(port, "bench-gateway", clean=False)
        gateway.subscribe("devices/+/telemetry", qos=1)[1]
        time.sleep(0.5)
        gateway.disconnect()
        gateway.loop_stop()
    publisher = _client(port, "bench-fill")
    messages = [(f"devices/bench-{i:06d}/status", b"online", True) for i in range(scenario.devices)]
    messages += [(f"devices/bench-{i % 1000:06d}/telemetry", PAYLOAD, False) for i in range(scenario.queued)]
    for start in range(0, len(messages), 5_000):  # in chunks: paho's queue is bounded
        infos = [publisher.publish(t, body, qos=1, retain=keep) for t, body, keep in messages[start : start + 5_000]]
        for info in infos:
            info.wait_for_publish(120)
    publisher.disconnect()
    publisher.loop_stop()


def _window(port: int, pid: int, db: Path, seconds: float) -> Window:
    """Probes at QoS 1 every ``PROBE_EVERY_S`` for ``seconds``; the broker's CPU and the saves meanwhile."""
    probe, latencies, saves = _client(port, "bench-probe"), list[float](), 0
    halt = threading.Event()

    def watch() -> None:
        nonlocal saves
        last = db.stat().st_mtime_ns if db.exists() else 0
        while not halt.wait(0.02):
            now = db.stat().st_mtime_ns if db.exists() else 0
            saves, last = saves + (now != last), now

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    cpu, started = cpu_seconds(pid), time.monotonic()
    while time.monotonic() < started + seconds:
        sent = time.monotonic()
        probe.publish("bench/probe", b"x", qos=1).wait_for_publish(30)
        latencies.append((time.monotonic() - sent) * 1000)
        time.sleep(max(0.0, sent + PROBE_EVERY_S - time.monotonic()))
    used = cpu_seconds(pid) - cpu
    halt.set()
    watcher.join()
    probe.disconnect()
    probe.loop_stop()
    return Window(round(used, 3), saves, len(latencies), quantile(latencies, 0.99), round(max(latencies), 1))


def _served(work: Path, autosave_s: int, use: Callable[[int, int], T]) -> tuple[T, float]:
    """A broker on ``work``'s state, saving every ``autosave_s``; ``use(port, pid)``'s result and how long the broker
    took to start (to load the state). The broker is stopped after, which saves its state."""
    port, started = free_port(), time.monotonic()
    broker = mosquitto(work, "127.0.0.1", port, autosave_s=autosave_s)
    broker.start()
    load_s = time.monotonic() - started
    try:
        return use(port, broker.process.pid), load_s
    finally:
        broker.process.stop()


def measure(work: Path, scenario: Scenario, seconds: float) -> Result:
    db = work / "data" / "mosquitto.db"
    _served(work, NEVER_S, lambda port, _pid: _fill(port, scenario))  # the state both windows start from
    quiet, _ = _served(work, NEVER_S, lambda port, pid: _window(port, pid, db, seconds))
    saving, load_s = _served(work, SAVE_EVERY_S, lambda port, pid: _window(port, pid, db, seconds))
    per_save = (saving.cpu_s - quiet.cpu_s) / max(saving.saves, 1)
    return Result(scenario.name, round(db.stat().st_size / 2**20, 1), round(load_s, 2), quiet, saving,
                  round(per_save * 1000, 1), round(max(0.0, saving.probe_max_ms - quiet.probe_max_ms), 1))  # fmt: skip


def run(seconds: float, out: Path, scenarios: tuple[Scenario, ...] = SCENARIOS) -> dict[str, Any]:
    console = Console()
    results = []
    for scenario in scenarios:
        with tempfile.TemporaryDirectory(prefix="smartcity-bench-mosquitto-") as tmp:
            results.append(measure(Path(tmp), scenario, seconds))
        console.print(f"measured: {scenario.name}")
    table = Table(title=f"Mosquitto autosave, a save every {SAVE_EVERY_S} s against none, {seconds:g} s windows")
    for name in ("state", "db MiB", "load s", "saves", "CPU ms/save", "probe p99 ms (none/saving)", "stall ms"):
        table.add_column(name, justify="left" if name == "state" else "right")
    for r in results:
        table.add_row(r.scenario, f"{r.db_mib:g}", f"{r.load_s:g}", str(r.saving.saves), f"{r.cpu_ms_per_save:g}",
                      f"{r.quiet.probe_p99_ms:g} / {r.saving.probe_p99_ms:g}", f"{r.stall_ms:g}")  # fmt: skip
    console.print(table)
    chosen = interval_for(max(0.0, results[0].cpu_ms_per_save / 1000))
    console.print(f"interval at which saving the district state takes at most {BUDGET:.0%} of the broker: {chosen} s")
    report = {"save_every_s": SAVE_EVERY_S, "window_s": seconds, "budget": BUDGET, "interval_s": chosen,
              "results": [asdict(r) for r in results]}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return report
