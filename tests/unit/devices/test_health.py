"""Online/offline from the status topic, from silence, and for devices never heard from."""

from __future__ import annotations

from devices.health import HealthTracker, Status
from harness.builders import device

T0 = 1_795_000_000_000


GAS = device("gas-1", interval_s=60)  # offline after 180 s of silence


def test_never_heard_from_is_offline() -> None:
    health = HealthTracker().health(GAS, T0)
    assert health.status == Status.OFFLINE
    assert "never" in health.reason


def test_reporting_is_online_with_last_values_battery_and_signal() -> None:
    tracker = HealthTracker()
    tracker.reading("gas-1", T0, {"ch4_lel": 3.0, "battery_pct": 81.0})
    tracker.reading("gas-1", T0 + 1000, {"rssi_dbm": -71.0})
    health = tracker.health(GAS, T0 + 2000)
    assert health.status == Status.ONLINE
    assert health.last_seen == T0 + 1000
    assert health.last_values == {"ch4_lel": 3.0, "battery_pct": 81.0, "rssi_dbm": -71.0}
    assert (health.battery_pct, health.rssi_dbm) == (81.0, -71.0)


def test_silence_of_three_intervals_is_offline() -> None:
    tracker = HealthTracker()
    tracker.reading("gas-1", T0, {"ch4_lel": 3.0})
    assert tracker.health(GAS, T0 + 180_000).status == Status.ONLINE
    assert tracker.health(GAS, T0 + 180_001).status == Status.OFFLINE


def test_last_will_is_offline_until_the_device_says_online() -> None:
    tracker = HealthTracker()
    tracker.reading("gas-1", T0, {"ch4_lel": 3.0})
    tracker.status("gas-1", "offline")
    assert tracker.health(GAS, T0).status == Status.OFFLINE
    tracker.status("gas-1", "online")
    assert tracker.health(GAS, T0).status == Status.ONLINE


def test_a_late_reading_does_not_move_last_seen_back() -> None:
    tracker = HealthTracker()
    tracker.reading("gas-1", T0 + 5000, {"ch4_lel": 4.0})
    tracker.reading("gas-1", T0, {"ch4_lel": 1.0})
    health = tracker.health(GAS, T0 + 6000)
    assert health.last_seen == T0 + 5000
    assert health.last_values == {"ch4_lel": 4.0}
