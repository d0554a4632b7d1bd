"""Condition rules on one device: smoke alone, smoke with heat, flame."""

from __future__ import annotations

from rules.engine import Engine
from rules.state import DeviceState
from tests.unit.rules.helpers import DEFAULT, device, reading, run, summary

FIRE = device("fire-1", kind="fire", departments=["fire"])


def fire(values: dict[str, float | bool], at_s: float) -> object:
    return reading(values, at_s, "fire-1")


def test_smoke_alone_is_yellow_unconfirmed() -> None:
    findings = run(Engine(DEFAULT), [fire({"smoke": True, "temp_c": 24.0}, 0)], FIRE)  # type: ignore[list-item]
    assert summary(findings) == [("fire.smoke", "raised", "yellow")]
    assert not findings[0].confirmed


def test_smoke_then_heat_within_a_minute_is_a_confirmed_fire() -> None:
    readings = [fire({"smoke": True}, 0), fire({"temp_c": 40.0}, 20), fire({"temp_c": 60.0}, 40)]
    findings = run(Engine(DEFAULT), readings, FIRE)  # type: ignore[arg-type]
    assert summary(findings) == [
        ("fire.smoke", "raised", "yellow"),
        ("fire.heat", "raised", "orange"),
        ("fire.confirmed", "raised", "red"),
    ]
    assert findings[-1].confirmed


def test_smoke_long_ago_does_not_confirm_heat_now() -> None:
    readings = [fire({"smoke": True}, 0), fire({"temp_c": 60.0}, 300)]
    assert "fire.confirmed" not in {r for r, _, _ in summary(run(Engine(DEFAULT), readings, FIRE))}  # type: ignore[arg-type]


def test_flame_alone_is_red_and_clears_when_flame_is_gone() -> None:
    engine, state = Engine(DEFAULT), DeviceState()
    raised = run(engine, [fire({"flame": True}, 0)], FIRE, state)  # type: ignore[list-item]
    assert summary(raised) == [("fire.confirmed", "raised", "red")]
    cleared = run(engine, [fire({"flame": False}, 10)], FIRE, state)  # type: ignore[list-item]
    assert summary(cleared) == [("fire.confirmed", "cleared", "red")]


def test_smoke_with_a_fast_rise_is_a_confirmed_fire_below_the_fixed_limit() -> None:
    readings = [fire({"smoke": True, "temp_c": 25.0 + t * 0.25}, t) for t in range(0, 130, 10)]
    rules = [r for r, e, _ in summary(run(Engine(DEFAULT), readings, FIRE)) if e == "raised"]  # type: ignore[arg-type]
    assert rules == ["fire.smoke", "fire.heat_rise", "fire.confirmed"]
