"""Drills on the real one-machine stack (``smartcity up``): every bundled scenario passes its report, and a
routing that sends gas alerts to the wrong department makes the drill fail, with a non-zero exit status."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from alerts.routing import DEFAULT_ROUTING
from harness.stack import StackRun
from simulators.drill import run_drill
from simulators.field import Target
from simulators.render import html
from simulators.report import DrillReport
from simulators.scenario import bundled, load_scenario

pytestmark = pytest.mark.integration


def _target(stack: StackRun) -> Target:
    return Target(stack.api, stack.token, stack.mqtt_url, stack.admin_password)


@pytest.fixture(scope="module")
def drill_run() -> Iterator[tuple[StackRun, dict[str, DrillReport]]]:
    """Every bundled scenario, at once, each with its own fleet, on one stack (about a minute in all)."""
    with tempfile.TemporaryDirectory() as data, StackRun(Path(data)) as stack:
        scenarios = [load_scenario(p) for p in bundled()]

        async def all_of_them() -> list[DrillReport]:
            target = _target(stack)
            return await asyncio.gather(*(run_drill(s, target, prefix=f"t{i}") for i, s in enumerate(scenarios)))

        reports = asyncio.run(all_of_them())
        yield stack, {r.scenario: r for r in reports}


@pytest.fixture(scope="module")
def drills(drill_run: tuple[StackRun, dict[str, DrillReport]]) -> dict[str, DrillReport]:
    return drill_run[1]


@pytest.mark.parametrize("name", [p.stem for p in bundled()])
def test_a_drill_of_each_bundled_scenario_passes_its_report(drills: dict[str, DrillReport], name: str) -> None:
    report = drills[name]
    failed = [(e.name, e.problem) for e in report.expectations if not e.ok]
    assert report.passed, (failed, [(a.rule, a.device_id, a.problem) for a in report.unexpected],
                           report.unexpected_refusals)  # fmt: skip
    assert report.mode == "drill"
    assert report.expectations
    assert all(e.arrived and e.late_s is not None and e.late_s >= 0 for e in report.expectations)
    assert report.messages_sent > 100
    assert "通过 PASS" in html(report)


@pytest.mark.parametrize("name", [p.stem for p in bundled()])
def test_each_hazard_event_of_a_drill_is_one_incident(drills: dict[str, DrillReport], name: str) -> None:
    report = drills[name]
    assert len(report.incidents) == report.hazard_events, [(i.title.en, i.alerts) for i in report.incidents]
    assert all(i.exercise for i in report.incidents)
    assert all(i.alerts >= 1 for i in report.incidents)


def test_a_gas_leak_tells_each_department_at_most_three_times_and_its_report_has_the_readings(
    drill_run: tuple[StackRun, dict[str, DrillReport]],
) -> None:
    stack, reports = drill_run
    [incident] = reports["gas-leak"].incidents
    assert incident.alerts >= 2
    assert incident.messages
    assert max(incident.messages.values()) <= 3, incident.messages
    assert incident.report_url is not None
    assert incident.report_url.endswith(f"#/incidents/{incident.id}/report")
    headers = {"Authorization": f"Bearer {stack.token}"}
    report = httpx.get(f"{stack.api}/api/incidents/{incident.id}/report", headers=headers, timeout=30)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["detail"]["incident"]["exercise"] is True
    assert len(body["detail"]["alerts"]) == incident.alerts
    assert body["events"]
    with_points = [s for s in body["readings"] if s["points"]]
    assert with_points, body["readings"]
    assert all(s["error"] is None for s in body["readings"])
    page = httpx.get(f"{stack.api}/api/incidents/{incident.id}/report.html", headers=headers, timeout=30)
    assert page.status_code == 200
    assert "事故分析报告" in page.text
    assert "<polyline" in page.text  # the readings drawn


def test_the_device_faults_drill_hears_each_refusal_and_offline_alert(drills: dict[str, DrillReport]) -> None:
    report = drills["device-faults"]
    assert {"invalid_json", "non_finite", "bad_value_type", "no_values", "unknown_field", "ts_in_future"} <= set(
        report.refusals
    )
    offline = [e for e in report.expectations if e.rule == "device.offline"]
    assert len(offline) == 2
    assert all(e.ok for e in offline)


GAS_DRILL = {
    "version": 1,
    "name": "short-leak",
    "title": {"zh": "短时泄漏", "en": "a short leak"},
    "seed": 21,
    "fleet": {"devices": 20, "interval_s": 2},
    "duration_s": 30,
    "speed": 1,
    "settle_s": 5,
    "hazards": [
        {
            "type": "gas_leak",
            "at_s": 5,
            "ramp_s": 6,
            "expect": [
                {"rule": "gas.ch4", "level": "red", "where": "source", "departments": ["emergency"], "within_s": 20}
            ],
        }
    ],
}


def test_a_broken_routing_fails_the_drill_with_the_reason(tmp_path: Path) -> None:
    routing = yaml.safe_load(DEFAULT_ROUTING.read_text())
    for route in routing["routes"]:
        if route.get("hazard") == "gas":
            route["departments"] = ["water"]  # the mistake a drill is for
    broken = tmp_path / "routing.yaml"
    broken.write_text(yaml.safe_dump(routing))
    scenario = tmp_path / "short-leak.yaml"
    scenario.write_text(yaml.safe_dump(GAS_DRILL, allow_unicode=True))
    with tempfile.TemporaryDirectory() as data:
        stack = StackRun(Path(data))
        stack.env["SMARTCITY_ALERTS_ROUTING_FILE"] = str(broken)
        with stack:
            secrets = {"SMARTCITY_API_TOKEN": stack.token, "SMARTCITY_MQTT_ADMIN_PASSWORD": stack.admin_password}
            env = {**stack.env, **secrets, "COLUMNS": "200"}
            argv = [sys.executable, "-m", "smartcity", "simulate", "--api", stack.api, "--mqtt", stack.mqtt_url,
                    "drill", str(scenario), "--out", str(tmp_path / "reports")]  # fmt: skip
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "went to water; expected emergency" in done.stdout
    assert "未通过 FAIL" in done.stdout
    written = sorted(p.suffix for p in (tmp_path / "reports").iterdir())
    assert written == [".html", ".json", ".txt"]
    report = json.loads(next((tmp_path / "reports").glob("*.json")).read_text())
    assert report["passed"] is False
    assert report["expectations"][0]["got_departments"] == ["water"]
