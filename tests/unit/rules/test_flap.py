"""Flap detection: a condition that toggles too often is one alarm marked flapping, not a storm."""

from __future__ import annotations

from rules.engine import Engine
from rules.state import DeviceState
from tests.unit.rules.helpers import pack_of, reading, run

FLAPPY = Engine(
    pack_of(
        {
            "id": "t.f",
            "kind": "threshold",
            "metric": "ch4_lel",
            "levels": {"orange": 25, "red": 50},
            "clear": {"orange": 20, "red": 20},
        },
        flap={"changes": 4, "window_s": 300, "calm_s": 120},
    )
)


def test_toggling_is_held_as_one_flapping_alarm_until_calm() -> None:
    state = DeviceState()
    toggles = [reading({"ch4_lel": 30.0 if i % 2 == 0 else 10.0}, i * 10) for i in range(20)]
    findings = run(FLAPPY, toggles, None, state)
    # raised, cleared, raised, then flapping: one update, then silence however long it toggles.
    assert [(f.event.value, f.flapping) for f in findings] == [
        ("raised", False),
        ("cleared", False),
        ("raised", False),
        ("updated", True),
    ]
    # A red spike during flapping still escalates (never hide a worse level).
    [worse] = run(FLAPPY, [reading({"ch4_lel": 60.0}, 200)], None, state)
    assert (worse.event.value, worse.level.value, worse.flapping) == ("escalated", "red", True)
    # Calm: clean air for longer than calm_s; the next reading publishes the real state.
    calm = run(FLAPPY, [reading({"ch4_lel": 5.0}, 210), reading({"ch4_lel": 5.0}, 400)], None, state)
    assert [(f.event.value, f.flapping) for f in calm] == [("cleared", False)]


def test_flapping_can_be_turned_off_per_rule() -> None:
    engine = Engine(
        pack_of(
            {
                "id": "t.f",
                "kind": "threshold",
                "metric": "ch4_lel",
                "levels": {"orange": 25},
                "clear": {"orange": 20},
                "flap": False,
            },
            flap={"changes": 2, "window_s": 300, "calm_s": 120},
        )
    )
    toggles = [reading({"ch4_lel": 30.0 if i % 2 == 0 else 10.0}, i * 10) for i in range(6)]
    assert len(run(engine, toggles, None)) == 6


def test_slow_toggling_is_not_flapping() -> None:
    toggles = [reading({"ch4_lel": 30.0 if i % 2 == 0 else 10.0}, i * 200) for i in range(8)]
    assert not any(f.flapping for f in run(FLAPPY, toggles, None))
