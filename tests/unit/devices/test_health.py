"""Online/offline from the status topic, from silence, and for devices never heard from."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.contracts import ReadingDict
from devices.health import HealthChanges, HealthTracker, Status
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


# ---------------------------------------------------------------- what the stream worker sends (HealthChanges)


def _reading(device_id: str, at: int, **values: float) -> ReadingDict:
    return {"device_id": device_id, "seq": 0, "ts": at, "received_at": at, "values": dict(values)}  # type: ignore[typeddict-item]


def test_a_device_is_sent_at_its_first_reading_then_every_half_interval() -> None:
    changes = HealthChanges()
    changes.reading(2, _reading("gas-1", T0, ch4_lel=1.0), interval_s=60)
    changes.reading(2, _reading("gas-1", T0 + 29_999, ch4_lel=2.0), interval_s=60)  # not due: half of 60 s
    assert [(p, [(e.device_id, e.last_seen, e.values) for e in b.devices]) for p, b in changes.take().items()] == [
        (2, [("gas-1", T0, {"ch4_lel": 1.0})])
    ]
    assert changes.take() == {}
    changes.reading(2, _reading("gas-1", T0 + 30_000, ch4_lel=3.0), interval_s=60)
    assert [e.last_seen for e in changes.take()[2].devices] == [T0 + 30_000]


def test_a_fast_device_is_sent_once_a_minute_and_an_alarm_at_once() -> None:
    changes = HealthChanges()
    for second in range(120):  # a reading a second for two minutes, interval 3600 s
        changes.reading(0, _reading("gas-1", T0 + second * 1000, ch4_lel=1.0), interval_s=3600)
    assert len(changes.take()[0].devices) == 1  # the newest of those due: the first, then the one at 60 s
    changes.reading(0, _reading("gas-1", T0 + 120_500, ch4_lel=30.0), interval_s=3600, force=True)
    assert [e.values for e in changes.take()[0].devices] == [{"ch4_lel": 30.0}]


def test_an_older_reading_never_replaces_a_newer_one() -> None:
    changes = HealthChanges()
    changes.reading(1, _reading("gas-1", T0 + 5_000, ch4_lel=1.0), interval_s=60)
    changes.reading(1, _reading("gas-1", T0, ch4_lel=9.0), interval_s=60, force=True)  # late, redelivered
    assert [e.last_seen for e in changes.take()[1].devices] == [T0 + 5_000]


def test_entries_of_partitions_moved_away_are_dropped() -> None:
    changes = HealthChanges()
    changes.reading(1, _reading("gas-1", T0), interval_s=60)
    changes.reading(3, _reading("gas-3", T0), interval_s=60)
    changes.forget_partitions({1})
    assert list(changes.take()) == [3]


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=90_000), min_size=1, max_size=60),
    interval_s=st.sampled_from([10, 60, 300, 3600]),
)
def test_the_api_never_sees_a_reporting_device_offline(gaps: list[int], interval_s: int) -> None:
    """Whatever the spacing of readings within the device's interval, the last seen the API holds (the newest entry
    sent and taken) never makes a device offline while it keeps to its interval."""
    changes, tracker, device_ = HealthChanges(), HealthTracker(), device("gas-1", interval_s=interval_s)
    at = T0
    for gap in gaps:
        at += min(gap, interval_s * 1000)  # keeps reporting within its interval
        changes.reading(0, _reading("gas-1", at, ch4_lel=1.0), interval_s=interval_s)
        for batch in changes.take().values():
            for entry in batch.devices:
                tracker.reading(entry.device_id, entry.last_seen, entry.values)
        assert tracker.health(device_, at).status == Status.ONLINE
        # and until the device's next reading is due, it stays so
        assert tracker.health(device_, at + interval_s * 1000).status == Status.ONLINE
