"""The writer's aggregates: what they hold equals mean/min/max of what was folded, intervals close once and on time,
and a partition that changes hands is recomputed from raw where memory cannot know. Most tests use one-minute
intervals (the class takes any); the writer's are an hour."""

from __future__ import annotations

import random
from collections import defaultdict
from statistics import fmean
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.aggregate import CLOSE_AFTER_MS, EVERY_MS, Aggregates

MIN = 60_000
CLOSE_MS = MIN + CLOSE_AFTER_MS
T0 = 1_795_564_800_000  # a minute boundary (2026-11-25T00:00:00Z)
SERIES = ("gas,device_id=g1,drill=false,kind=gas,site_id=S1", "fire,device_id=f1,drill=false,kind=fire,site_id=S1")
METRICS: dict[str, Any] = {"ch4_lel": st.floats(-1e6, 1e6), "temp_c": st.integers(-50, 500), "smoke": st.booleans()}


def parse(lines: list[str]) -> dict[tuple[str, int], dict[str, Any]]:
    """(series, minute) -> fields, from line protocol; each (series, minute) at most once."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for line in lines:
        series, fields, ts = line.split(" ")
        assert (series, int(ts)) not in out, f"a minute handed over twice: {line}"
        values: dict[str, Any] = {}
        for field in fields.split(","):
            name, _, text = field.partition("=")
            values[name] = {"true": True, "false": False}.get(text)
            if values[name] is None:
                values[name] = float(text)
        out[(series, int(ts))] = values
    return out


def expected(points: list[tuple[str, dict[str, Any], int]]) -> dict[tuple[str, int], dict[str, Any]]:
    buckets: dict[tuple[str, int], dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for series, values, ts in points:
        for name, v in values.items():
            buckets[(series, ts - ts % MIN)][name].append(v)
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for key, fields in buckets.items():
        row: dict[str, Any] = {}
        for name, vs in fields.items():
            if not isinstance(vs[0], bool):
                row[f"mean_{name}"] = pytest.approx(fmean(vs), rel=1e-9, abs=1e-9)
            row[f"min_{name}"], row[f"max_{name}"] = min(vs), max(vs)
        out[key] = row
    return out


points_strategy = st.lists(
    st.tuples(
        st.sampled_from(SERIES),
        st.fixed_dictionaries({}, optional=METRICS),
        st.integers(min_value=0, max_value=5 * MIN - 1),
    ).filter(lambda p: bool(p[1])),
    max_size=80,
)


@given(points_strategy, st.randoms(use_true_random=False))
def test_a_closed_minute_holds_mean_min_and_max_of_what_was_folded_in_any_order(
    points: list[tuple[str, dict[str, Any], int]], rng: random.Random
) -> None:
    stamped = [(s, v, T0 + offset) for s, v, offset in points]
    aggregates = Aggregates(MIN)
    aggregates.assign(0, T0)
    rng.shuffle(stamped)
    for series, values, ts in stamped:
        aggregates.fold(0, series, values, ts)
    closed = aggregates.close(T0 + 10 * MIN)
    assert parse(closed.lines) == expected(stamped)
    assert closed.intervals == sorted({ts - ts % MIN for _, _, ts in stamped})
    assert aggregates.series == 0
    assert aggregates.close(T0 + 20 * MIN).lines == []


def test_a_minute_closes_30_s_after_it_ends_and_later_readings_are_left_to_the_backfill() -> None:
    aggregates = Aggregates(MIN)
    aggregates.assign(0, T0)
    aggregates.fold(0, SERIES[0], {"ch4_lel": 1.0}, T0 + 10_000)
    aggregates.fold(0, SERIES[0], {"ch4_lel": 3.0}, T0 + MIN + 10_000)
    assert aggregates.close(T0 + CLOSE_MS - 1).lines == []
    closed = aggregates.close(T0 + CLOSE_MS)
    assert closed.lines == [f"{SERIES[0]} mean_ch4_lel=1.0,min_ch4_lel=1.0,max_ch4_lel=1.0 {T0}"]
    assert closed.intervals == [T0]
    aggregates.fold(0, SERIES[0], {"ch4_lel": 9.0}, T0 + 20_000)  # late: its minute is closed
    assert aggregates.close(T0 + MIN + CLOSE_MS).lines == [
        f"{SERIES[0]} mean_ch4_lel=3.0,min_ch4_lel=3.0,max_ch4_lel=3.0 {T0 + MIN}"
    ]


def test_booleans_have_min_and_max_only_and_new_fields_join_later() -> None:
    aggregates = Aggregates(MIN)
    aggregates.assign(0, T0)
    aggregates.fold(0, SERIES[1], {"smoke": False}, T0 + 1_000)
    aggregates.fold(0, SERIES[1], {"smoke": True, "temp_c": 30.0}, T0 + 2_000)
    aggregates.fold(0, SERIES[1], {"smoke": False, "temp_c": 20.0}, T0 + 3_000)
    [line] = aggregates.close(T0 + 5 * MIN).lines
    assert line == (f"{SERIES[1]} min_smoke=false,max_smoke=true,mean_temp_c=25.0,min_temp_c=20.0,max_temp_c=30.0 {T0}")


def test_a_partition_taken_over_is_recomputed_from_raw_until_the_first_minute_it_holds_whole() -> None:
    """Assigned at T0 + 20 s; its previous writer last wrote at T0 + 15 s, readings stamped up to T0 + 70 s (a
    device clock ahead): memory is flushed from T0 + 2m; from T0 + 15 s - 90 s - 60 s (T0 - 3m) to T0 + 2m, every
    device's minutes are recomputed from raw, each once it is closed."""
    aggregates = Aggregates(MIN)
    aggregates.assign(7, T0 + 20_000, since_ms=T0 + 15_000, latest_ms=T0 + 70_000)
    for offset in (-30_000, 30_000, MIN + 30_000, 2 * MIN + 30_000):
        aggregates.fold(7, SERIES[0], {"ch4_lel": 1.0}, T0 + offset)
    aggregates.fold(8, SERIES[0], {"ch4_lel": 1.0}, T0 + 2 * MIN + 30_000)  # not assigned here: not held
    first = aggregates.close(T0 + 20_000)
    assert first.lines == []
    assert first.backfill == [T0 - 3 * MIN, T0 - 2 * MIN]  # closed already
    later = aggregates.close(T0 + 5 * MIN)
    assert later.backfill == [T0 - MIN, T0, T0 + MIN]
    assert parse(later.lines) == {(SERIES[0], T0 + 2 * MIN): {"mean_ch4_lel": 1.0, "min_ch4_lel": 1.0,
                                                              "max_ch4_lel": 1.0}}  # fmt: skip
    assert aggregates.close(T0 + 10 * MIN).backfill == []


def test_a_revoked_partition_is_forgotten() -> None:
    aggregates = Aggregates(MIN)
    aggregates.assign(1, T0)
    aggregates.assign(2, T0)
    aggregates.fold(1, SERIES[0], {"ch4_lel": 1.0}, T0 + 1_000)
    aggregates.fold(2, SERIES[1], {"temp_c": 1.0}, T0 + 1_000)
    assert aggregates.series == 2
    aggregates.revoke(1)
    aggregates.fold(1, SERIES[0], {"ch4_lel": 5.0}, T0 + 2_000)
    assert [line.split(",")[0] for line in aggregates.close(T0 + 5 * MIN).lines] == ["fire"]


def test_refuses_a_close_before_the_minute_ends() -> None:
    with pytest.raises(ValueError, match="close_ms"):
        Aggregates(MIN, close_ms=30_000)


def test_a_partition_no_writer_wrote_before_is_folded_whole_and_recomputes_nothing() -> None:
    """A fresh stack (no committed offset): the writer reads the partition from its first record, so the minute it
    was assigned in is whole in memory, and nothing is left to the backfill."""
    aggregates = Aggregates(MIN)
    aggregates.assign(3, T0 + 20_000, fresh=True)
    aggregates.fold(3, SERIES[0], {"ch4_lel": 2.0}, T0 + 5_000)  # read from the start: before the assignment
    aggregates.fold(3, SERIES[0], {"ch4_lel": 4.0}, T0 + 40_000)
    closed = aggregates.close(T0 + 5 * MIN)
    assert closed.backfill == []
    assert closed.lines == [f"{SERIES[0]} mean_ch4_lel=3.0,min_ch4_lel=2.0,max_ch4_lel=4.0 {T0}"]
    taken_over = Aggregates(MIN)
    taken_over.assign(3, T0 + 20_000)
    taken_over.fold(3, SERIES[0], {"ch4_lel": 2.0}, T0 + 5_000)
    assert taken_over.close(T0 + 5 * MIN).backfill, "a writer that does not know is recomputed from raw"


def test_by_default_an_hour_closes_30_s_after_it_ends_and_a_device_reporting_each_minute_makes_one_point() -> None:
    hour = T0 - T0 % EVERY_MS
    aggregates = Aggregates()
    aggregates.assign(0, hour, fresh=True)
    for minute in range(60):
        aggregates.fold(0, SERIES[0], {"ch4_lel": float(minute)}, hour + minute * MIN + 7_000)
        aggregates.fold(0, SERIES[1], {"smoke": minute == 42, "temp_c": 20.0}, hour + minute * MIN + 9_000)
    assert aggregates.series == 2
    assert aggregates.close(hour + EVERY_MS + CLOSE_AFTER_MS - 1).lines == []
    closed = aggregates.close(hour + EVERY_MS + CLOSE_AFTER_MS)
    assert closed.intervals == [hour]
    assert sorted(closed.lines) == [
        f"{SERIES[1]} min_smoke=false,max_smoke=true,mean_temp_c=20.0,min_temp_c=20.0,max_temp_c=20.0 {hour}",
        f"{SERIES[0]} mean_ch4_lel=29.5,min_ch4_lel=0.0,max_ch4_lel=59.0 {hour}",
    ]
    assert aggregates.series == 0


def test_series_with_the_same_fields_share_one_schema() -> None:
    """The accumulators' field lists are shared, not one per series: what keeps 120,000 of them near 30 MiB."""
    aggregates = Aggregates(MIN)
    aggregates.assign(0, T0, fresh=True)
    for n in range(100):
        for ts in (T0 + 1_000, T0 + 2_000):
            aggregates.fold(0, f"gas,device_id=g{n}", {"ch4_lel": 1.0, "battery_pct": 90.0}, ts)
    aggregates.fold(0, "gas,device_id=g0", {"co_ppm": 3.0}, T0 + 3_000)  # a field joins one series later
    assert len(aggregates._schemas) == 2
    lines = {line.split(" ")[0]: line.split(" ")[1] for line in aggregates.close(T0 + 5 * MIN).lines}
    assert lines["gas,device_id=g0"].endswith("mean_co_ppm=3.0,min_co_ppm=3.0,max_co_ppm=3.0")
    assert "co_ppm" not in lines["gas,device_id=g1"]
