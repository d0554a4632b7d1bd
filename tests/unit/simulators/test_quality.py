"""Alert quality over the labelled suite: nothing missed, no false alert (a small run of the bench's measure)."""

from __future__ import annotations

from simulators.quality import measure


def test_the_suite_misses_no_hazard_and_raises_no_false_alert_over_varied_seeds() -> None:
    result = measure(seeds=2, devices=120, quiet_devices=200, quiet_hours=6)
    assert result.runs[-1].scenario == "quiet-day"
    assert result.device_hours > 1200
    assert (result.missed, result.false_alerts) == (0, 0), [r.missed + r.false_alerts for r in result.runs]
    assert result.passed
    assert 0 < result.time_to_alert_s["p50"] <= result.time_to_alert_s["max"] < 60
