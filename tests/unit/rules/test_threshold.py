"""Threshold rules: several levels with their own clear values (hysteresis), hold time, repeat count, overrides."""

from __future__ import annotations

import pytest

from rules.engine import Engine
from rules.state import DeviceState
from tests.unit.rules.helpers import DEFAULT, device, pack_of, reading, run

KAPACITOR = pack_of(
    {
        "id": "t.temp",
        "kind": "threshold",
        "metric": "temp_c",
        # Kapacitor's alert-node example: info > 50 (reset < 50), warn > 70 (reset < 60), crit > 80 (reset < 70),
        # in our levels info = yellow, warn = orange, crit = red.
        "levels": {"yellow": 50.001, "orange": 70.001, "red": 80.001},
        "clear": {"yellow": 50, "orange": 60, "red": 70},
    }
)


def level_after_each(engine: Engine, values: list[float]) -> list[str]:
    state, levels = DeviceState(), []
    for i, v in enumerate(values):
        engine.evaluate(reading({"temp_c": v}, i), None, state, 0)
        alarm = state.alarms.get("t.temp")
        published = alarm.published if alarm else -1
        levels.append(["OK", "blue", "yellow", "orange", "red"][published + 1])
    return levels


def test_kapacitors_hysteresis_example_in_our_levels() -> None:
    # Kapacitor docs: 61 73 64 85 62 56 47 -> INFO WARN WARN CRIT INFO INFO OK
    assert level_after_each(Engine(KAPACITOR), [61, 73, 64, 85, 62, 56, 47]) == [
        "yellow", "orange", "orange", "red", "yellow", "yellow", "OK",
    ]  # fmt: skip


def test_the_example_publishes_only_changes() -> None:
    findings = run(
        Engine(KAPACITOR), [reading({"temp_c": v}, i) for i, v in enumerate([61, 73, 64, 85, 62, 56, 47])], None
    )
    assert [(f.event.value, f.level.value, f.previous_level) for f in findings] == [
        ("raised", "yellow", None),
        ("escalated", "orange", "yellow"),
        ("escalated", "red", "orange"),
        ("deescalated", "yellow", "red"),
        ("cleared", "yellow", "yellow"),
    ]
    raised = findings[0]
    assert (raised.metric, raised.value, raised.threshold, raised.active) == ("temp_c", 61, 50.001, True)
    cleared = findings[-1]
    assert (cleared.active, cleared.value, cleared.threshold) == (False, 47, 50)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([10, 25], [("raised", "orange")]),  # inclusive: GB/T 50493 says "<= 25 %LEL" for the set point
        ([10, 24.99], []),
        ([30, 21, 30], [("raised", "orange")]),  # 21 is above the clear level: no clear, no second raise
        ([30, 19.9], [("raised", "orange"), ("cleared", "orange")]),
        ([30, 55, 30], [("raised", "orange"), ("escalated", "red")]),  # red holds until below 20 (one clear level)
        ([55, 10], [("raised", "red"), ("cleared", "red")]),
    ],
)
def test_default_methane_rule(values: list[float], expected: list[tuple[str, str]]) -> None:
    findings = run(Engine(DEFAULT), [reading({"ch4_lel": v}, i) for i, v in enumerate(values)], device())
    assert [(f.event.value, f.level.value) for f in findings if f.rule == "gas.ch4"] == expected


def test_below_direction_oxygen_deficiency() -> None:
    values = [20.9, 19.5, 19.7, 19.9]
    findings = run(Engine(DEFAULT), [reading({"o2_pct": v}, i) for i, v in enumerate(values)], device())
    assert [(f.rule, f.event.value, f.ts) for f in findings] == [
        ("gas.o2_low", "raised", reading({}, 1)["ts"]),
        ("gas.o2_low", "cleared", reading({}, 3)["ts"]),
    ]


def test_hold_time_must_pass_in_event_time_before_raising() -> None:
    engine = Engine(
        pack_of({"id": "t.h", "kind": "threshold", "metric": "ch4_lel", "levels": {"orange": 25}, "hold_s": 30})
    )
    # Above for 20 s, dips, then above for 30 s: only the second stretch raises, at its 30th second.
    values = [(0, 30), (10, 30), (20, 30), (25, 10), (40, 30), (55, 30), (70, 30)]
    findings = run(engine, [reading({"ch4_lel": v}, t) for t, v in values], None)
    assert [(f.event.value, f.ts) for f in findings] == [("raised", reading({}, 70)["ts"])]


def test_repeat_count_needs_consecutive_readings() -> None:
    engine = Engine(
        pack_of({"id": "t.r", "kind": "threshold", "metric": "ch4_lel", "levels": {"orange": 25}, "repeat": 3})
    )
    values = [30, 30, 10, 30, 30, 30]
    findings = run(engine, [reading({"ch4_lel": v}, i) for i, v in enumerate(values)], None)
    assert [(f.event.value, f.ts) for f in findings] == [("raised", reading({}, 5)["ts"])]


def test_per_device_overrides_replace_levels_and_keep_a_margin() -> None:
    gauge = device("wl-1", kind="water", thresholds={"level_m": {"orange": 3.2, "red": 4.0}})
    values = [2.0, 3.25, 3.17, 3.14, 4.1]
    findings = run(Engine(DEFAULT), [reading({"level_m": v}, i * 600, "wl-1") for i, v in enumerate(values)], gauge)
    assert [(f.rule, f.event.value, f.level.value, f.threshold) for f in findings if f.rule == "water.level"] == [
        ("water.level", "raised", "orange", 3.2),
        ("water.level", "cleared", "orange", pytest.approx(3.15)),  # 5 cm clear margin
        ("water.level", "raised", "red", 4.0),
    ]


def test_a_gauge_without_registered_levels_raises_nothing_on_level() -> None:
    findings = run(Engine(DEFAULT), [reading({"level_m": 99.0}, 0, "wl-2")], device("wl-2", kind="water"))
    assert findings == []


def test_a_changed_registry_record_takes_effect_at_once() -> None:
    engine, state = Engine(DEFAULT), DeviceState()
    low = device("wl-3", kind="water", thresholds={"level_m": {"orange": 5.0}})
    high = device("wl-3", kind="water", thresholds={"level_m": {"orange": 2.0}})
    assert engine.evaluate(reading({"level_m": 3.0}, 0, "wl-3"), low, state, 0) == []
    [raised] = engine.evaluate(reading({"level_m": 3.0}, 60, "wl-3"), high, state, 0)
    assert (raised.rule, raised.threshold) == ("water.level", 2.0)


def test_findings_carry_the_registry_context() -> None:
    [f] = run(Engine(DEFAULT), [reading({"ch4_lel": 60}, 0)], device())
    assert (f.key, f.site_id, f.lat, f.lon, [d.value for d in f.departments]) == (
        "gas-001:gas.ch4", "site-a", 22.75, 114.3, ["emergency"],
    )  # fmt: skip
    assert f.title.zh == "可燃气体浓度超限"
    assert not f.exercise


def test_rules_of_other_device_kinds_do_not_apply() -> None:
    assert run(Engine(DEFAULT), [reading({"ch4_lel": 80}, 0, "fire-1")], device("fire-1", kind="fire")) == []


def test_unknown_devices_are_judged_by_the_metrics_they_report() -> None:
    [f] = run(Engine(DEFAULT), [reading({"ch4_lel": 80}, 0, "stranger")], None)
    assert (f.rule, f.level.value, f.site_id, f.departments) == ("gas.ch4", "red", None, [])


def test_a_late_reading_does_not_move_a_threshold_alarm() -> None:
    engine = Engine(DEFAULT)
    state = DeviceState()
    run(engine, [reading({"ch4_lel": 30}, 100)], device(), state)
    # A reading taken earlier (buffered), showing clean air, arrives after: the alarm stands.
    assert run(engine, [reading({"ch4_lel": 0}, 50)], device(), state) == []
    assert state.alarms["gas.ch4"].published == 2


def test_a_reading_with_the_same_event_time_as_the_newest_is_in_order() -> None:
    """The readings of a batch sent without ``ts`` all carry the gateway's receive time: each one counts
    (docs/rules.md; docs/reliability.md once said such a reading was late)."""
    engine = Engine(DEFAULT)
    state = DeviceState()
    run(engine, [reading({"ch4_lel": 30}, 100)], device(), state)
    [cleared] = run(engine, [reading({"ch4_lel": 0}, 100)], device(), state)
    assert cleared.event.value == "cleared"


def test_drill_readings_have_their_own_state_and_are_marked_exercise() -> None:
    engine, state = Engine(DEFAULT), DeviceState()
    [drill] = run(engine, [reading({"ch4_lel": 60}, 0, drill=True)], device(), state)
    assert (drill.exercise, drill.key) == (True, "drill:gas-001:gas.ch4")
    # A real clean-air reading neither clears the drill alarm nor raises anything real.
    assert run(engine, [reading({"ch4_lel": 0}, 1)], device(), state) == []
    [real] = run(engine, [reading({"ch4_lel": 60}, 2)], device(), state)
    assert (real.exercise, real.key) == (False, "gas-001:gas.ch4")
