"""Offline (deadman) from the registered interval, including devices never heard from; low battery."""

from __future__ import annotations

from rules.engine import Engine
from rules.state import DeviceState
from tests.unit.rules.helpers import DEFAULT, T0, device, reading, run, summary

GAUGE = device("wl-9", kind="water", interval_s=60)


def test_silent_for_three_intervals_is_offline_once_and_a_reading_clears_it() -> None:
    engine, state = Engine(DEFAULT), DeviceState()
    run(engine, [reading({"level_m": 1.0}, 0, "wl-9")], GAUGE, state)
    assert engine.check_silence(GAUGE, state, T0 + 180_000) == []  # exactly 3 x 60 s: not yet
    [offline] = engine.check_silence(GAUGE, state, T0 + 181_000)
    assert (offline.rule, offline.event.value, offline.level.value, offline.hazard.value) == (
        "device.offline", "raised", "blue", "device",
    )  # fmt: skip
    assert (offline.value, offline.threshold, offline.key) == (181.0, 180.0, "wl-9:device.offline")
    assert engine.check_silence(GAUGE, state, T0 + 500_000) == []  # once, not at every tick
    [back] = run(engine, [reading({"level_m": 1.0}, 600, "wl-9")], GAUGE, state)
    assert (back.rule, back.event.value, back.active) == ("device.offline", "cleared", False)


def test_offline_fires_on_time_not_a_multiple_late() -> None:
    # Kapacitor's deadman fires on its own period; ours is checked every tick against each device's own interval.
    engine, state = Engine(DEFAULT), DeviceState()
    fast = device("gas-fast", interval_s=5)
    run(engine, [reading({"ch4_lel": 0.0}, 0, "gas-fast")], fast, state)
    fired = [t for t in range(0, 60_000, 1000) if engine.check_silence(fast, state, T0 + t)]
    assert fired == [16_000]


def test_a_device_registered_and_never_heard_from_goes_offline() -> None:
    engine, state = Engine(DEFAULT), DeviceState()
    assert engine.check_silence(GAUGE, state, T0) == []  # the engine learns of it now
    [offline] = engine.check_silence(GAUGE, state, T0 + 181_000)
    assert offline.event.value == "raised"
    assert offline.site_name == GAUGE.site_name


def test_silence_is_measured_on_arrival_not_on_device_clock() -> None:
    # A device whose clock is an hour behind still reports: it is not offline.
    engine, state = Engine(DEFAULT), DeviceState()
    late_clock = reading({"level_m": 1.0}, -3600, "wl-9", received_at=T0)
    run(engine, [late_clock], GAUGE, state)
    assert engine.check_silence(GAUGE, state, T0 + 60_000) == []


def test_state_round_trips_through_its_compact_form() -> None:
    engine, state = Engine(DEFAULT), DeviceState()
    run(engine, [reading({"level_m": 1.0, "battery_pct": 10.0}, 0, "wl-9")], GAUGE, state)
    engine.check_silence(GAUGE, state, T0 + 500_000)
    import json

    again = DeviceState.load(json.loads(json.dumps(state.dump())))
    assert again.dump() == state.dump()
    [back] = run(engine, [reading({"level_m": 1.0}, 600, "wl-9")], GAUGE, again)
    assert back.event.value == "cleared"


def test_low_battery_is_blue_and_clears_above_25() -> None:
    values = [50.0, 19.0, 22.0, 26.0]
    findings = run(Engine(DEFAULT), [reading({"battery_pct": v}, i, "wl-9") for i, v in enumerate(values)], GAUGE)
    assert summary(findings) == [("device.battery", "raised", "blue"), ("device.battery", "cleared", "blue")]
    assert findings[0].hazard.value == "device"
