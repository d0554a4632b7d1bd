"""The fleet and the messages it sends: reproducible from the seed, on Longgang, on the contract, quiet when healthy."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contracts import TELEMETRY_TOPIC, TelemetryItem
from core.contracts.catalogue import DeviceKind, Level
from core.contracts.finding import Text
from devices.directory import StaticDirectory
from ingest.parse import parse_message
from simulators.fleet import SiteType, generate_fleet
from simulators.geography import BBOX
from simulators.hazards import MALFORMED
from simulators.plan import Plan, batched, scenario_fleet
from simulators.replay import replay
from simulators.scenario import Scenario, load_scenario

T0 = 1_764_000_000_000


def _digest(plan: Plan) -> str:
    h = hashlib.sha256()
    for m in plan.messages():
        h.update(f"{m.at_s:.6f}|{m.device_id}|{m.offline}|".encode() + m.payload)
    return h.hexdigest()


def test_the_same_seed_gives_the_same_fleet_and_the_same_readings() -> None:
    scenario = load_scenario(Path("device-faults"))
    one = Plan(scenario, scenario_fleet(scenario), T0)
    two = Plan(scenario, scenario_fleet(scenario), T0)
    assert one.fleet.records() == two.fleet.records()
    assert _digest(one) == _digest(two)
    other = scenario.model_copy(update={"seed": scenario.seed + 1})
    assert _digest(Plan(other, scenario_fleet(other), T0)) != _digest(one)


@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=9, max_value=400))
@settings(max_examples=25, deadline=None)
def test_any_fleet_lies_in_longgang_with_consistent_records(seed: int, devices: int) -> None:
    fleet = generate_fleet(devices, seed, interval_s=30, prefix="p")
    assert len(fleet.devices) == devices == len({d.id for d in fleet.devices})
    south, north, west, east = BBOX
    for d in fleet.devices:
        assert south <= d.record.lat <= north
        assert west <= d.record.lon <= east
        assert d.record.site_id == d.site.id
        assert d.id in d.site.device_ids
        for limits in d.record.thresholds.values():
            assert limits[Level.ORANGE] < limits[Level.RED]
        if d.site.type is SiteType.RIVER_GAUGE:  # the warning level sits well above the river's usual level
            assert d.record.thresholds["level_m"][Level.ORANGE] > d.baseline.base["level_m"] + 1
    assert {s.type for s in fleet.sites} == set(SiteType) or devices < 40


def test_a_large_fleet_has_the_district_mix_of_kinds() -> None:
    kinds = Counter(d.kind for d in generate_fleet(5000, 3).devices)
    share = {k: kinds[k] / 5000 for k in DeviceKind}
    assert 0.25 < share[DeviceKind.GAS] < 0.45
    assert 0.2 < share[DeviceKind.FIRE] < 0.4
    assert 0.08 < share[DeviceKind.WATER] < 0.25
    assert 0.1 < share[DeviceKind.STRUCTURAL] < 0.3


def test_every_reading_follows_the_contract_and_malformed_messages_get_their_labelled_reasons() -> None:
    scenario = load_scenario(Path("device-faults"))
    plan = Plan(scenario, scenario_fleet(scenario), T0)
    directory = StaticDirectory(d.id for d in plan.fleet.devices)
    expected = dict((raw, reason) for raw, reason in MALFORMED)
    last_seq: dict[str, int] = {}
    kinds: Counter[str] = Counter()
    for m in plan.messages():
        if m.offline:
            kinds["offline"] += 1
            continue
        if m.values is None:
            kinds["malformed"] += 1
            parsed = parse_message(TELEMETRY_TOPIC.format(device_id=m.device_id), m.payload, T0 + 60_000, directory)
            assert parsed.refusal is not None
            assert parsed.refusal.reason == expected[m.payload]
            continue
        item = TelemetryItem.model_validate_json(m.payload)
        assert item.drill
        assert item.seq is not None
        assert item.seq > last_seq.get(m.device_id, -1)
        last_seq[m.device_id] = item.seq
        kinds["reading"] += 1
    assert kinds["offline"] == 1
    assert kinds["malformed"] >= len(MALFORMED)
    assert kinds["reading"] > 500


def test_batches_carry_every_reading_once_in_arrays() -> None:
    scenario = load_scenario(Path("high-rise-fire"))
    plan = Plan(scenario, scenario_fleet(scenario), T0)
    single = [m.payload for m in plan.messages()]
    arrays = [m for m in batched(plan.messages(), 5)]
    unpacked = [json.dumps(i, separators=(",", ":")) for m in arrays for i in json.loads(m.payload)]
    assert sorted(unpacked) == sorted(json.dumps(json.loads(p), separators=(",", ":")) for p in single)
    assert len(arrays) < len(single) / 4


def test_a_healthy_fleet_raises_no_alert_over_a_day() -> None:
    """The baselines' noise, daily cycles, drift and battery drain stay inside every default rule."""
    quiet = Scenario(version=1, name="quiet", title=Text(zh="平静", en="quiet"), duration_s=86_400, seed=5)
    fleet = generate_fleet(300, 5, interval_s=300)
    done = replay(Plan(quiet, fleet, T0))
    assert done.readings == pytest.approx(300 * 86_400 / 300, rel=0.01)
    assert [f.key for f in done.findings] == []
