"""Alert quality: the labelled scenario suite, several seeds each, plus a quiet district day, through the replay.

Two questions, with the issue's targets: are hazards ever missed (target: never), and how many alerts does a
healthy fleet raise (target: at most 1 per 10,000 device-hours)? A *missed hazard* is an expectation that never
arrived; a *false alert* is an alert the judge calls unexpected (on a device no hazard touched). Each scenario is
replayed with its own fleet grown to ``devices`` and its seed varied, so hazards land on different sites and the
noise differs; the quiet day runs ``quiet_devices`` healthy devices for ``quiet_hours``. Time to alert is each met
expectation's delay after its hazard began (replay time: the rules' own delay, transport excluded; the drills and
the end-to-end benchmark measure transport).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.contracts.finding import Text
from harness.measure import quantile
from simulators.fleet import generate_fleet
from simulators.plan import Plan, scenario_fleet
from simulators.replay import replay, replay_report
from simulators.scenario import Scenario, bundled, load_scenario

FALSE_ALERTS_TARGET = 1.0  # per 10,000 device-hours


@dataclass
class Run:
    scenario: str
    seed: int
    devices: int
    device_hours: float
    expected: int
    missed: list[str]
    late: list[str]
    false_alerts: list[str]
    times_to_alert_s: list[float]


@dataclass
class Quality:
    runs: list[Run] = field(default_factory=list)
    device_hours: float = 0.0
    missed: int = 0
    late: int = 0
    false_alerts: int = 0
    false_per_10k_device_hours: float = 0.0
    time_to_alert_s: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.missed == 0 and self.false_per_10k_device_hours <= FALSE_ALERTS_TARGET

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"passed": self.passed, "false_alerts_target": FALSE_ALERTS_TARGET}


def _scenario_run(scenario: Scenario, seed: int, devices: int, t0_ms: int) -> Run:
    varied = scenario.model_copy(
        update={"seed": seed, "fleet": scenario.fleet.model_copy(update={"devices": devices, "seed": seed})}
    )
    report = replay_report(Plan(varied, scenario_fleet(varied), t0_ms))
    hours = devices * scenario.duration_s / 3600
    met = [e for e in report.expectations if e.arrived]
    return Run(
        scenario=scenario.name,
        seed=seed,
        devices=devices,
        device_hours=round(hours, 2),
        expected=len(report.expectations),
        missed=[e.name for e in report.expectations if not e.arrived],
        late=[f"{e.name}: {e.problem}" for e in met if not e.ok],
        false_alerts=[f"{a.rule} {a.level} @ {a.device_id or a.site_id}" for a in report.unexpected],
        times_to_alert_s=[e.late_s for e in met if e.late_s is not None],
    )


def _quiet_run(devices: int, hours: float, interval_s: int, seed: int, t0_ms: int) -> Run:
    quiet = Scenario(
        version=1, name="quiet-day", title=Text(zh="平静的一天", en="a quiet day"), duration_s=hours * 3600
    )
    done = replay(Plan(quiet, generate_fleet(devices, seed, interval_s=interval_s, prefix="quiet"), t0_ms))
    raised = [f"{f.rule} {f.level} @ {f.device_id or f.site_id}" for f in done.findings if f.event == "raised"]
    return Run("quiet-day", seed, devices, devices * hours, 0, [], [], raised, [])


def measure(
    *,
    scenarios: list[Path] | None = None,
    seeds: int = 3,
    devices: int = 200,
    quiet_devices: int = 1000,
    quiet_hours: float = 24.0,
    quiet_interval_s: int = 60,
) -> Quality:
    started = time.monotonic()
    t0_ms = int(time.time() * 1000) - 2 * 86_400_000
    out = Quality()
    for path in scenarios or bundled():
        scenario = load_scenario(path)
        for k in range(seeds):
            out.runs.append(
                _scenario_run(scenario, scenario.seed + 1000 * k, max(devices, scenario.fleet.devices), t0_ms)
            )
    if quiet_devices:
        out.runs.append(_quiet_run(quiet_devices, quiet_hours, quiet_interval_s, 7, t0_ms))
    out.device_hours = round(sum(r.device_hours for r in out.runs), 1)
    out.missed = sum(len(r.missed) for r in out.runs)
    out.late = sum(len(r.late) for r in out.runs)
    out.false_alerts = sum(len(r.false_alerts) for r in out.runs)
    out.false_per_10k_device_hours = round(out.false_alerts / out.device_hours * 10_000, 3) if out.device_hours else 0
    times = sorted(t for r in out.runs for t in r.times_to_alert_s)
    if times:
        out.time_to_alert_s = {
            "p50": round(statistics.median(times), 1),
            "p95": quantile(times, 0.95),
            "max": round(times[-1], 1),
        }
    out.seconds = round(time.monotonic() - started, 1)
    return out
