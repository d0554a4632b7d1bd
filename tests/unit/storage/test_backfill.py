"""Late readings: which intervals of agg_1h are computed again, coalesced and bounded, every device in parts, and
the statements' text. Most tests use one-minute intervals (the classes take any); the writer's are an hour."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.backfill import Backfill, BatchIntervals, LateIntervals, devices_of, devices_statement

MIN = 60_000
T0 = 1_795_564_800_000  # a minute boundary (2026-11-25T00:00:00Z)
NOW = T0 + 600 * MIN


def batch(late: LateIntervals, readings: list[tuple[str, int]]) -> BatchIntervals:
    minutes = late.batch()
    for device_id, ts in readings:
        minutes.add(device_id, ts)
    return minutes


def drain(late: LateIntervals) -> list[Backfill]:
    out = []
    while (backfill := late.take()) is not None:
        out.append(backfill)
    return out


def test_a_minute_is_late_once_the_writer_closed_it() -> None:
    """The writer closes the minute [s, s+1m) at s + 90 s (storage.aggregate.CLOSE_MS): a reading acknowledged
    from then on is not in the aggregate it wrote."""
    late = LateIntervals(every_ms=MIN)
    ts = T0 + 59_999
    assert not late.late(ts, T0 + 90_000 - 1)
    assert late.late(ts, T0 + 90_000)
    assert late.late(T0, T0 + 5 * MIN)
    assert not late.late(T0 + 3 * MIN, T0)  # stamped ahead of the clock: its minute is still open


def test_on_time_readings_backfill_nothing() -> None:
    late = LateIntervals(every_ms=MIN)
    readings = [(f"d{i}", NOW - 60_000 + i * 500) for i in range(100)]
    assert late.note(batch(late, readings), NOW + 1_500) == 0
    assert late.pending == 0
    assert late.take() is None


def test_late_minutes_of_few_devices_are_coalesced_with_a_device_filter() -> None:
    late = LateIntervals(every_ms=MIN)
    readings = [(d, T0 + m * MIN + s * 10_000) for d in ("gas-1", "gas-2") for m in range(3) for s in range(6)]
    late.note(batch(late, readings), T0 + 5 * MIN)  # five minutes late
    late.note(batch(late, [("gas-3", T0 + 200 * MIN)]), T0 + 200 * MIN + 500)  # on time
    assert drain(late) == [Backfill(T0, T0 + 3 * MIN, frozenset({"gas-1", "gas-2"}), (T0, T0 + MIN, T0 + 2 * MIN), MIN)]


def test_many_late_devices_backfill_the_whole_range() -> None:
    late = LateIntervals(every_ms=MIN, max_devices=3)
    late.note(batch(late, [(f"d{i}", T0 + 30_000) for i in range(4)]), NOW)
    late.note(batch(late, [("x", T0 + MIN)]), NOW)
    [backfill] = drain(late)
    assert backfill == Backfill(T0, T0 + 2 * MIN, None, (T0, T0 + MIN), MIN)


def test_a_statement_covers_at_most_max_intervals() -> None:
    """A device that buffered for 150 minutes: three statements, oldest first, gaps left as they are."""
    late = LateIntervals(every_ms=MIN, max_intervals=60)
    minutes = [T0 + m * MIN for m in range(150) if m != 70]
    late.note(batch(late, [("buffered", m + 1_000) for m in minutes]), NOW)
    backfills = drain(late)
    assert [(b.start_ms, b.end_ms, len(b.intervals)) for b in backfills] == [
        (T0, T0 + 60 * MIN, 60),
        (T0 + 60 * MIN, T0 + 120 * MIN, 59),
        (T0 + 120 * MIN, T0 + 150 * MIN, 30),
    ]
    assert all(b.devices == frozenset({"buffered"}) for b in backfills)


def test_a_backfill_put_back_runs_again() -> None:
    late = LateIntervals(every_ms=MIN)
    late.note(batch(late, [("a", T0), ("b", T0 + MIN)]), NOW)
    backfill = late.take()
    assert backfill is not None
    assert late.pending == 0
    late.put_back(backfill)
    assert late.take() == backfill


def test_whole_minutes_are_every_devices_and_absorb_late_devices() -> None:
    """Minutes a previous writer left open, or whose aggregates InfluxDB did not take: every device, once."""
    late = LateIntervals(every_ms=MIN)
    late.note(batch(late, [("a", T0 + MIN)]), NOW)
    assert late.late_device_intervals == 1
    late.add_all([T0 + MIN, T0 + 2 * MIN, T0 + 2 * MIN], NOW)
    late.add_all([NOW - 91 * 86_400_000], NOW)  # beyond the raw retention: nothing to aggregate
    assert drain(late) == [Backfill(T0 + MIN, T0 + 3 * MIN, None, (T0 + MIN, T0 + 2 * MIN), MIN)]


def test_minutes_beyond_the_raw_retention_are_left_out() -> None:
    """InfluxDB refused those points ("beyond retention policy"): nothing to aggregate."""
    late = LateIntervals(every_ms=MIN, raw_days=1)
    day = 86_400_000
    written = NOW + 20_000  # the retention's edge is 20 s into a minute, which is kept: it holds stored points
    late.note(batch(late, [("a", NOW - day - 2 * MIN), ("a", NOW - day + 40_000), ("b", NOW - 10 * MIN)]), written)
    assert [m for b in drain(late) for m in b.intervals] == [NOW - day, NOW - 10 * MIN]


def test_pending_minutes_are_bounded_oldest_dropped() -> None:
    late = LateIntervals(every_ms=MIN, max_pending=10)
    assert late.note(batch(late, [("a", T0 + m * MIN) for m in range(25)]), NOW) == 15
    assert late.pending == 10
    assert min(m for b in drain(late) for m in b.intervals) == T0 + 15 * MIN


def test_statement_text() -> None:
    backfill = Backfill(T0, T0 + 2 * MIN, frozenset({"gas-2", "it's \\odd"}), (T0, T0 + MIN), MIN)
    assert backfill.statement('smart"city') == (
        'SELECT mean(*), min(*), max(*) INTO "smart\\"city"."agg_1h".:MEASUREMENT '
        'FROM "smart\\"city"."raw"./^(gas|water|fire|structural|device_health|unregistered)$/ '
        f"WHERE time >= {T0}ms AND time < {T0 + 2 * MIN}ms "
        """AND ("device_id" = 'gas-2' OR "device_id" = 'it\\'s \\\\odd') """
        "GROUP BY time(60s), *"
    )
    whole = Backfill(T0, T0 + MIN, None, (T0,), MIN).statement("smartcity")
    assert f"WHERE time >= {T0}ms AND time < {T0 + MIN}ms GROUP BY time(60s), *" in whole


@pytest.mark.parametrize("changes", [{"close_ms": 30_000}, {"every_ms": 0}, {"max_intervals": 0}, {"max_pending": 0}])
def test_refuses_settings_that_cannot_work(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"close_ms|max_intervals"):
        LateIntervals(**changes)  # type: ignore[arg-type]


# --- properties ---

readings_strategy = st.lists(
    st.tuples(
        st.sampled_from([f"d{i}" for i in range(8)]),
        st.integers(min_value=0, max_value=300 * MIN),  # offset of ts from T0
        st.integers(min_value=0, max_value=30 * MIN),  # how long after ts the batch was acknowledged
    ),
    max_size=60,
)


@given(
    readings_strategy,
    st.integers(min_value=1, max_value=90),
    st.integers(min_value=1, max_value=6),
)
def test_every_late_reading_is_covered_and_nothing_else_is_taken(
    readings: list[tuple[str, int, int]], max_intervals: int, max_devices: int
) -> None:
    late = LateIntervals(every_ms=MIN, max_intervals=max_intervals, max_devices=max_devices)
    for device_id, offset, delay in readings:  # each reading its own batch, acknowledged ``delay`` after its time
        late.note(batch(late, [(device_id, T0 + offset)]), T0 + offset + delay)
    missed = {(d, T0 + o - (T0 + o) % MIN) for d, o, delay in readings if late.late(T0 + o, T0 + o + delay)}
    backfills = drain(late)

    for device_id, minute in missed:
        assert any(
            b.start_ms <= minute < b.end_ms and (b.devices is None or device_id in b.devices) for b in backfills
        ), (device_id, minute)
    taken = [m for b in backfills for m in b.intervals]
    assert sorted(taken) == sorted({m for _, m in missed}), "each late minute once, and only late ones"
    for b in backfills:
        assert b.end_ms - b.start_ms <= max_intervals * MIN
        assert b.start_ms % MIN == 0
        assert b.end_ms % MIN == 0
        assert b.devices is None or 0 < len(b.devices) <= max_devices
    assert [b.start_ms for b in backfills] == sorted(b.start_ms for b in backfills)


@given(readings_strategy)
def test_noting_a_batch_again_changes_nothing(readings: list[tuple[str, int, int]]) -> None:
    """A batch written again (a retry, a rebalance) is the same late minutes, not more work."""
    once, twice = LateIntervals(every_ms=MIN), LateIntervals(every_ms=MIN)
    minutes = batch(once, [(d, T0 + o) for d, o, _ in readings])
    written = T0 + 400 * MIN
    once.note(minutes, written)
    twice.note(minutes, written)
    twice.note(minutes, written)
    assert drain(once) == drain(twice)


@given(st.sets(st.text(min_size=1, max_size=12), min_size=1, max_size=5))
def test_device_ids_read_back_from_the_statement(devices: set[str]) -> None:
    """Whatever a device id holds (quotes, backslashes, newlines), the statement's literals decode to it."""
    text = Backfill(T0, T0 + MIN, frozenset(devices), (T0,), MIN).statement("smartcity")
    found = re.findall(r"\"device_id\" = '((?:[^'\\]|\\.)*)'", text)
    decoded = [re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), f) for f in found]
    assert decoded == sorted(devices)


def test_an_every_device_backfill_runs_in_parts_of_at_most_the_part_size() -> None:
    """One statement over every device took influxd's heap to 2.4-3.9 GiB at the district's fleet: never one."""
    whole = Backfill(T0, T0 + 2 * MIN, None, (T0, T0 + MIN), MIN)
    devices = [f"gas-{i:05d}" for i in range(4_500)] + ["gas-00001"]  # a device listed twice counts once
    parts = whole.parts(devices, size=2_000)
    assert [len(p.devices or ()) for p in parts] == [2_000, 2_000, 500]
    assert set().union(*(p.devices or () for p in parts)) == set(devices)
    assert all(
        (p.start_ms, p.end_ms, p.intervals, p.every_ms) == (T0, T0 + 2 * MIN, (T0, T0 + MIN), MIN) for p in parts
    )
    assert whole.parts([]) == []  # raw holds no device: nothing to aggregate
    named = Backfill(T0, T0 + MIN, frozenset({"a"}), (T0,), MIN)
    assert named.parts(devices) == [named]


def test_the_devices_raw_holds_are_listed_from_the_index() -> None:
    assert devices_statement('smart"city') == (
        'SHOW TAG VALUES ON "smart\\"city" FROM "raw"./^(gas|water|fire|structural|device_health|unregistered)$/ '
        'WITH KEY = "device_id"'
    )
    result = {
        "series": [
            {"name": "gas", "columns": ["key", "value"], "values": [["device_id", "gas-1"], ["device_id", "gas-2"]]},
            {"name": "device_health", "columns": ["key", "value"], "values": [["device_id", "gas-1"]]},
        ]
    }
    assert devices_of(result) == {"gas-1", "gas-2"}
    assert devices_of({}) == set()


def test_by_default_intervals_are_hours_closed_30_s_after_they_end() -> None:
    late = LateIntervals()
    hour = T0 - T0 % 3_600_000
    assert not late.late(hour + 59 * MIN, hour + 60 * MIN + 29_999)
    assert late.late(hour + 59 * MIN, hour + 60 * MIN + 30_000)
    late.note(batch(late, [("a", hour + 5 * MIN), ("a", hour + 65 * MIN)]), hour + 3 * 3_600_000)
    [backfill] = drain(late)
    assert (backfill.start_ms, backfill.end_ms, backfill.intervals) == (
        hour,
        hour + 7_200_000,
        (hour, hour + 3_600_000),
    )
    assert "GROUP BY time(3600s), *" in backfill.statement("smartcity")
