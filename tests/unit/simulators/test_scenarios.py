"""Scenario files: the bundled ones are valid and their ground truth holds; bad ones are refused, naming the field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rules.pack import load_pack
from simulators.plan import Plan, scenario_fleet
from simulators.replay import replay_report
from simulators.scenario import ScenarioError, bundled, load_scenario, parse_scenario
from smartcity.cli import app

RULES = {r.id for r in load_pack().rules}
T0 = 1_764_000_000_000

GOOD = {
    "version": 1,
    "name": "tiny",
    "title": {"zh": "小", "en": "tiny"},
    "duration_s": 60,
    "hazards": [
        {
            "type": "gas_leak",
            "at_s": 10,
            "expect": [{"rule": "gas.ch4", "level": "red", "where": "source", "departments": ["emergency"],
                        "within_s": 30}],
        }
    ],
}  # fmt: skip


def _with(**changes: object) -> dict[str, object]:
    """GOOD with top-level fields changed, or the hazard's (``hazard__field``)."""
    data: dict[str, object] = yaml.safe_load(yaml.safe_dump(GOOD))
    hazard: dict[str, object] = data["hazards"][0]  # type: ignore[index]
    for name, value in changes.items():
        if name.startswith("hazard__"):
            hazard[name.removeprefix("hazard__")] = value
        else:
            data[name] = value
    return data


@pytest.mark.parametrize("path", bundled(), ids=lambda p: p.stem)
def test_bundled_scenarios_are_valid_and_pass_their_ground_truth_through_the_rules(path: Path) -> None:
    scenario = load_scenario(path, RULES)
    assert scenario.name == path.stem
    plan = Plan(scenario, scenario_fleet(scenario), T0)
    assert plan.truths
    assert all(t.devices for t in plan.truths)
    report = replay_report(plan)
    assert report.passed, [e.problem for e in report.expectations if not e.ok] + [a.rule for a in report.unexpected]
    assert report.expectations, "a scenario without expectations proves nothing"


def test_a_bundled_scenario_is_found_by_its_name() -> None:
    assert load_scenario(Path("gas-leak")).name == "gas-leak"
    with pytest.raises(ScenarioError, match=r"no bundled scenario of that name .*gas-leak"):
        load_scenario(Path("no-such-scenario"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with(hazard__type="earthquake"), r"hazards\[0\] \(earthquake\) field 'type': Input tag 'earthquake'"),
        (_with(hazard__at_s=90), r"hazards\[0\] starts at 90.0 s, after the scenario ends \(60.0 s\)"),
        (_with(hazard__wind={"from_deg": 400, "speed_m_s": 2}), r"field 'wind.from_deg': .*less than or equal to 360"),
        (_with(hazard__peak_lel=-5), r"hazards\[0\] \(gas_leak\) field 'peak_lel': Input should be greater than 0"),
        (_with(hazard__site_type="bridge"), r"field 'site_type': Input should be"),
        (_with(hazard__expect=[{"rule": "gas.ch4", "level": "purple", "departments": ["emergency"], "within_s": 5}]),
         r"field 'expect.0.level': Input should be 'blue', 'yellow', 'orange' or 'red'"),
        (_with(hazard__expect=[{"refusal": "too_loud", "within_s": 5}]), r"field 'expect.0.refusal'"),
        (_with(hazard__sped=3), r"field 'sped': Extra inputs are not permitted"),
        (_with(speed=0.5), r"field 'speed': Input should be greater than or equal to 1"),
        (_with(name="Gas Leak!"), r"field 'name': String should match pattern"),
        (_with(fleet={"devices": 3}), r"field 'fleet.devices': Input should be greater than or equal to 9"),
        ({"version": 2, "name": "x", "title": {"zh": "x", "en": "x"}, "duration_s": 1}, r"field 'version'"),
        ({"version": 1, "name": "x", "duration_s": 1}, r"field 'title': Field required"),
        (
            _with(hazard__type="device_fault", hazard__fault="spikes", hazard__kind="gas", hazard__expect=[]),
            r"a spikes fault needs `spike`",
        ),
    ],
)  # fmt: skip
def test_bad_scenarios_are_refused_naming_file_and_field(data: object, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as caught:
        parse_scenario(data, "bad.yaml", RULES)
    assert str(caught.value).startswith("bad.yaml:")


def test_an_expected_rule_must_exist_in_the_rule_pack() -> None:
    data = _with(hazard__expect=[{"rule": "gas.ch5", "level": "red", "departments": ["emergency"], "within_s": 9}])
    with pytest.raises(ScenarioError, match=r"bad.yaml: .*field 'expect\[0\].rule': unknown rule 'gas.ch5'"):
        parse_scenario(data, "bad.yaml", RULES)


def test_a_hazard_on_a_site_the_fleet_lacks_is_refused() -> None:
    scenario = parse_scenario(_with(hazard__site=99), "big.yaml")
    with pytest.raises(
        ScenarioError, match=r"gas_leak#0: the fleet has \d+ chemical_park site\(s\); there is no number 99"
    ):
        Plan(scenario, scenario_fleet(scenario), T0)


def test_the_validate_command_reports_each_bad_file_and_exits_2(tmp_path: Path) -> None:
    good, bad, broken = tmp_path / "good.yaml", tmp_path / "bad.yaml", tmp_path / "broken.yaml"
    good.write_text(yaml.safe_dump(GOOD, allow_unicode=True))
    bad.write_text(yaml.safe_dump(_with(hazard__at_s=90)))
    broken.write_text("version: 1\nhazards: [unclosed\n")
    result = CliRunner().invoke(app, ["simulate", "validate", str(good), str(bad), str(broken)])
    assert result.exit_code == 2
    assert f"ok {good}" in result.output
    assert "bad.yaml: hazards[0] starts at 90.0 s" in result.output.replace("\n", "")
    assert "broken.yaml: not YAML" in result.output.replace("\n", "")
    assert CliRunner().invoke(app, ["simulate", "validate", str(good)]).exit_code == 0


def test_reports_give_times_in_shenzhen_time_like_the_console_and_cap(tmp_path: Path) -> None:
    """The report's start and its files' names: +08:00 whatever the machine's zone (the console and CAP use it)."""
    result = CliRunner().invoke(app, ["simulate", "replay", "device-faults", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    [report] = tmp_path.glob("*.json")
    assert re.fullmatch(r"device-faults-replay-\d{8}T\d{6}\+0800\.json", report.name), report.name
    started = json.loads(report.read_text())["started_at"]
    assert started.endswith("+08:00"), started
    assert f"started {started}" in result.output
