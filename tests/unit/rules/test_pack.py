"""Rule packs: the default pack loads and documents its sources; bad packs name the file, rule and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rules.kinds import RULE_KINDS
from rules.pack import DEFAULT_PACK, RulePackError, load_pack, parse_pack
from rules.threshold import Threshold
from tests.unit.rules.helpers import DEFAULT


def test_the_default_pack_covers_the_design_brief() -> None:
    ids = {r.id for r in DEFAULT.rules}
    assert {"gas.ch4", "gas.ch4_rise", "gas.site", "water.level", "water.rise", "fire.smoke", "fire.heat",
            "fire.heat_rise", "fire.confirmed", "structural.tilt", "structural.settlement_rate", "device.offline",
            "device.battery"} <= ids  # fmt: skip
    assert {r.kind for r in DEFAULT.rules} == set(RULE_KINDS)
    assert all(len(r.source) > 10 for r in DEFAULT.rules)
    ch4 = next(r for r in DEFAULT.rules if r.id == "gas.ch4")
    assert isinstance(ch4, Threshold)
    assert "GB/T 50493-2019" in ch4.source


def rule(**fields: Any) -> dict[str, Any]:
    base = {"id": "gas.x", "kind": "threshold", "hazard": "gas", "metric": "ch4_lel", "levels": {"orange": 25},
            "title": {"zh": "x", "en": "x"}, "source": "test"}  # fmt: skip
    return {**base, **fields}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            rule(levels={"orange": "lots"}),
            "pack.yaml: rule 'gas.x' (rules[0]) field 'levels.orange': Input should be a valid number",
        ),
        (rule(metric="ch4_percent"), "pack.yaml: rule 'gas.x' (rules[0]) Value error, unknown metric 'ch4_percent'"),
        (rule(levels={"orange": 50, "red": 25}), "level red (25.0) must be above level orange (50.0)"),
        (rule(direction="below", levels={"orange": 50, "red": 60}), "level red (60.0) must be below level orange"),
        # devices' overrides of ch4_lel are checked as going above: a rule going below must not take them
        (rule(direction="below"), "a rule going below would take them the wrong way round: set overridable: false"),
        (rule(clear={"orange": 30}), "clear value of orange (30.0) is past its raise value (25.0)"),
        (rule(clear={"red": 30}), "clear given for levels without a raise value: red"),
        (rule(kind="nonsense"), "rules[0]) field 'kind': Input tag 'nonsense' found using 'kind' does not match"),
        (rule(hazard="meteor"), "field 'hazard': Input should be 'gas', 'water', 'fire', 'structural' or 'device'"),
        (rule(metric="smoke"), "smoke is a boolean metric: use a 'condition' rule"),
        (rule(levles={"orange": 1}), "field 'levles': Extra inputs are not permitted"),
        ({k: v for k, v in rule().items() if k != "source"}, "field 'source': Field required"),
    ],
)
def test_a_bad_rule_names_file_rule_and_field(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(RulePackError) as caught:
        parse_pack({"version": 1, "name": "t", "rules": [bad]}, "pack.yaml")
    assert any(message in p for p in caught.value.problems), caught.value.problems


def test_a_rule_against_the_catalogued_direction_is_fine_when_devices_cannot_override_it() -> None:
    pack = parse_pack({"version": 1, "name": "t", "rules": [rule(direction="below", overridable=False)]}, "p.yaml")
    assert pack.rules[0].id == "gas.x"


def test_references_to_unknown_or_repeated_rules_are_refused() -> None:
    site = {"id": "gas.site", "kind": "site", "hazard": "gas", "rules": ["gas.nope"], "title": {"zh": "x", "en": "x"},
            "source": "t"}  # fmt: skip
    with pytest.raises(RulePackError, match=r"refers to unknown device rules: gas\.nope"):
        parse_pack({"version": 1, "name": "t", "rules": [rule(), site]}, "p.yaml")
    with pytest.raises(RulePackError, match=r"repeated: gas\.x"):
        parse_pack({"version": 1, "name": "t", "rules": [rule(), rule()]}, "p.yaml")


def test_yaml_errors_and_missing_files_are_reported_with_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [unclosed\n")
    with pytest.raises(RulePackError, match=r"broken.yaml: not YAML"):
        load_pack(broken)
    with pytest.raises(RulePackError, match=r"missing.yaml: cannot read"):
        load_pack(tmp_path / "missing.yaml")


def test_the_packaged_default_is_the_file_in_the_repository() -> None:
    assert DEFAULT_PACK.name == "default.yaml"
    assert load_pack(DEFAULT_PACK) == DEFAULT
