"""Rate-of-change rules on event time: a real rise raises; noise, spikes, gaps and late readings do not."""

from __future__ import annotations

from rules.engine import Engine
from rules.state import DeviceState
from tests.unit.rules.helpers import DEFAULT, device, pack_of, reading, run, summary

RISE = Engine(
    pack_of({"id": "t.rise", "kind": "rate", "metric": "ch4_lel", "change": 10, "window_s": 60, "level": "yellow"})
)


def series(points: list[tuple[float, float]], **extra: object) -> list:  # type: ignore[type-arg]
    return [reading({"ch4_lel": v}, t, **extra) for t, v in points]  # type: ignore[arg-type]


def test_a_steady_rise_within_the_window_raises_and_clears_when_it_levels_off() -> None:
    points = [(t, 2.0) for t in range(0, 60, 10)] + [(60 + t, 2.0 + 1.5 * t / 5) for t in range(5, 45, 5)]
    points += [(200 + t, 14.0) for t in range(0, 200, 10)]
    findings = run(RISE, series(points), None)
    assert summary(findings) == [("t.rise", "raised", "yellow"), ("t.rise", "cleared", "yellow")]
    assert findings[0].value >= 10  # type: ignore[operator]
    assert (findings[0].threshold, findings[0].window_s) == (10, 60)


def test_the_same_rise_over_a_longer_time_is_no_alarm() -> None:
    points = [(t * 20, 2.0 + t * 1.0) for t in range(30)]  # 1 %LEL per 20 s = 3 per minute
    assert run(RISE, series(points), None) == []


def test_one_spike_is_not_a_rise() -> None:
    points = [(t, 3.0) for t in range(0, 120, 5)]
    points[15] = (75, 40.0)  # one wild sample
    assert run(RISE, series(points), None) == []


def test_noise_does_not_raise() -> None:
    import random

    rng = random.Random(7)
    points = [(t, 5 + rng.uniform(-4, 4)) for t in range(0, 3600, 5)]
    assert run(RISE, series(points), None) == []


def test_a_reading_buffered_for_an_hour_and_delivered_late_does_not_fake_a_spike() -> None:
    state = DeviceState()
    run(RISE, series([(3600 + t, 12.0) for t in range(0, 60, 10)]), None, state)
    # The device's old buffered reading, taken an hour ago at clean air, arrives now: not a baseline for now.
    assert run(RISE, series([(5, 0.0)]), None, state) == []
    assert run(RISE, series([(3660 + t, 12.0) for t in range(0, 60, 10)]), None, state) == []


def test_a_device_back_from_a_long_silence_is_not_a_rise() -> None:
    points = [(t, 1.0) for t in range(0, 60, 10)] + [(4000 + t, 20.0) for t in range(0, 60, 10)]
    assert run(RISE, series(points), None) == []


def test_out_of_order_readings_inside_the_window_count_where_they_belong() -> None:
    # Arrival order differs from event time, but the readings are the same: the rise is still seen.
    in_order = [(0, 2.0), (10, 2.0), (20, 2.0), (30, 8.0), (40, 13.0), (50, 14.0), (55, 14.0)]
    shuffled = [in_order[i] for i in (0, 2, 1, 3, 4, 5, 6)]
    assert summary(run(RISE, series(shuffled), None)) == [("t.rise", "raised", "yellow")]


def test_default_early_warning_stops_at_the_alarm_level() -> None:
    # 2 -> 22 in 40 s: the early warning; past 25 the threshold rule takes over and the early warning clears.
    points = [(t, 2.0) for t in range(0, 60, 10)] + [(60, 8.0), (70, 14.0), (80, 18.0), (90, 22.0), (100, 30.0)]
    findings = run(Engine(DEFAULT), series(points), device())
    assert summary(findings) == [
        ("gas.ch4_rise", "raised", "yellow"),
        ("gas.ch4", "raised", "orange"),
        ("gas.ch4_rise", "cleared", "yellow"),
    ]


def test_fire_rate_of_rise_8_3_degrees_per_minute() -> None:
    fire = device("fire-1", kind="fire")
    slow = [reading({"temp_c": 25 + t * 0.1}, t, "fire-1") for t in range(0, 120, 10)]  # 6 degC/min
    assert run(Engine(DEFAULT), slow, fire) == []
    fast = [reading({"temp_c": 25 + t * 0.2}, t, "fire-1") for t in range(0, 120, 10)]  # 12 degC/min
    assert ("fire.heat_rise", "raised", "orange") in summary(run(Engine(DEFAULT), fast, fire))


def test_settlement_of_3_mm_per_day() -> None:
    beam = device("st-1", kind="structural")
    day = 86400
    points = [reading({"displacement_mm": 0.1 * h}, h * 3600, "st-1") for h in range(0, 49)]  # 2.4 mm/day
    assert run(Engine(DEFAULT), points, beam) == []
    points = [reading({"displacement_mm": 0.15 * h}, h * 3600, "st-1") for h in range(0, 49)]  # 3.6 mm/day
    findings = run(Engine(DEFAULT), points, beam)
    assert summary(findings)[:1] == [("structural.settlement_rate", "raised", "yellow")]
    assert findings[0].ts - points[0]["ts"] >= day * 1000 * 0.8
