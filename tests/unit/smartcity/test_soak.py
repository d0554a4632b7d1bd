"""The soak's verdicts: least-squares trend over the second half, tolerances, and probe windows (pure)."""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from smartcity.bench.soak import (
    DEFAULT_RATE,
    HOLDS_DATA,
    Row,
    Tolerance,
    checks,
    disk_growth,
    disk_mib,
    envelope,
    gc_shares,
    gc_table,
    half_of_peak,
    judge,
    least_squares,
    machine_shares,
    machine_table,
    outside_table,
    probe_window,
    process_table,
    rejudge,
    tolerances,
    verdicts,
    window_memory,
    within_limit,
)
from smartcity.stack.supervisor import TANSU
from smartcity.status import Scrape

RUN_S = 1800.0
TIMES = [30.0 * k for k in range(1, 61)]  # a row every 30 s for 30 minutes


def test_least_squares_recovers_a_line_and_its_error_is_zero_on_it() -> None:
    fit = least_squares([(t, 100 + 0.5 * t) for t in (0.0, 10.0, 20.0, 30.0)])
    assert fit.slope == pytest.approx(0.5)
    assert fit.level == pytest.approx(107.5)
    assert fit.slope_se == pytest.approx(0.0, abs=1e-12)
    assert math.isinf(least_squares([(0.0, 1.0), (1.0, 2.0)]).slope_se)
    with pytest.raises(ValueError, match="two points"):
        least_squares([(5.0, 1.0), (5.0, 2.0)])


def test_memory_that_levels_off_after_warm_up_is_flat() -> None:
    rng = random.Random(1)
    rss = [(t, min(120.0, 80 + t / 20) + rng.uniform(-1, 1)) for t in TIMES]  # grows for 800 s, then noise
    verdict = judge("memory: api", "MiB", rss, RUN_S, tolerances(DEFAULT_RATE)["memory"])
    assert verdict.flat
    assert verdict.points == 31  # the second half only
    assert verdict.level == pytest.approx(120, abs=1)


def test_a_steady_leak_is_not_flat() -> None:
    rss = [(t, 100 + 0.01 * t) for t in TIMES]  # 36 MiB/h
    verdict = judge("memory: api", "MiB", rss, RUN_S, tolerances(DEFAULT_RATE)["memory"])
    assert not verdict.flat
    assert verdict.slope_per_h == pytest.approx(36)
    assert verdict.growth == pytest.approx(18)  # over the 30-minute run, allowed 5
    assert verdict.allowed == pytest.approx(5)


def test_memory_tolerance_is_relative_for_a_large_process() -> None:
    tol = Tolerance(5.0, 0.05)
    assert tol.allowed(level=100, run_s=1800) == 5  # 2.5 MiB by 5 %/h: the absolute floor
    assert tol.allowed(level=1000, run_s=1800) == pytest.approx(25)
    assert tol.allowed(level=1000, run_s=7200) == pytest.approx(100)


def test_lag_that_falls_or_jitters_is_flat_and_one_that_climbs_is_not() -> None:
    tol = tolerances(2_900)["lag"]
    assert tol.allowed(0, RUN_S) == 5_800  # two seconds of the rate
    rng = random.Random(2)
    assert judge("lag", "records", [(t, rng.uniform(0, 3_000)) for t in TIMES], RUN_S, tol).flat
    assert judge("lag", "records", [(t, 10_000 - 5 * t) for t in TIMES], RUN_S, tol).flat
    climbing = judge("lag", "records", [(t, 4.0 * t) for t in TIMES], RUN_S, tol)  # 4 readings/s not kept up with
    assert not climbing.flat
    assert climbing.growth == pytest.approx(7_200)


def test_missing_points_are_skipped_and_too_few_are_not_flat() -> None:
    points: list[tuple[float, float | None]] = [(t, None if k % 2 else 50.0) for k, t in enumerate(TIMES)]
    assert judge("p95", "ms", points, RUN_S, Tolerance(150)).points == 15
    short = judge("p95", "ms", [(1000.0, 50.0), (1500.0, 60.0), (1700.0, None)], RUN_S, Tolerance(150))
    assert not short.flat
    assert short.level is None


def test_probe_window_counts_a_late_probe_as_the_timeout() -> None:
    window = probe_window([float(ms) for ms in range(1, 20)] + [None])
    assert (window.probes, window.late) == (20, 1)
    assert (window.p50_ms, window.p95_ms, window.max_ms) == (10.0, 19.0, 5000.0)
    assert probe_window([]) == probe_window([])
    assert probe_window([]).p95_ms is None


def test_the_default_rate_is_half_of_the_recorded_peak_rounded_down() -> None:
    assert half_of_peak(5_983) == DEFAULT_RATE == 2_900
    assert half_of_peak(150) == 100


def _row(t: float, accepted: float, late: int, rss: float, restarted: list[str] | None = None) -> Row:
    latency = probe_window([None if k < late else 80.0 for k in range(60)])
    return Row(t, accepted, accepted, accepted, accepted, 100.0, {"writer readings": 10.0}, {"writer readings": 40.0},
               {"api": rss}, latency, restarted or [], mqtt_queue=50.0)  # fmt: skip


def test_checks_catch_what_a_flat_series_cannot_show() -> None:
    good = [_row(t, 2_900, 0, 120.0) for t in TIMES]
    judged = verdicts(good, 2_900, RUN_S)
    assert [v.series for v in judged] == [
        "memory: api", "lag: writer readings", "backlog: accepted - stored", "queue: MQTT broker -> gateway",
        "alert latency p95",
    ]  # fmt: skip
    assert all(v.flat for v in judged)
    assert all(c.ok for c in checks(good, judged, 2_900, RUN_S, (3.0, True)))

    pinned = [_row(t, 2_000, 60, 120.0, ["api"] if t == 900 else []) for t in TIMES]  # every probe late: p95 flat
    judged = verdicts(pinned, 2_900, RUN_S)
    assert all(v.flat for v in judged)
    refused = (3_590, ["3f2a: HTTP 409 alert 3f2a is closed"])
    failed = {c.name for c in checks(pinned, judged, 2_900, RUN_S, (180.0, False), refused) if not c.ok}
    assert failed == {"rate held", "alerts on time", "no restart", "drained", "acknowledged"}


def test_tansu_on_its_memory_engine_is_reported_and_every_store_on_disk_is_judged() -> None:
    rows = [replace(_row(t, 2_900, 0, 120.0), rss_mib={"api": 120.0, TANSU: 30.0 + t}) for t in TIMES]
    memory_engine = {v.series: v for v in verdicts(rows, 2_900, RUN_S, frozenset(HOLDS_DATA))}
    assert memory_engine[f"memory: {TANSU}"].flat is False
    assert memory_engine[f"memory: {TANSU}"].judged is False
    assert all(c.ok for c in checks(rows, list(memory_engine.values()), 2_900, RUN_S, (3.0, True)))
    on_disk = [c for c in checks(rows, verdicts(rows, 2_900, RUN_S), 2_900, RUN_S, (3.0, True)) if not c.ok]
    assert [c.name for c in on_disk] == ["every series flat"]
    assert f"memory: {TANSU}" in on_disk[0].detail
    leaking = [replace(r, rss_mib={"api": 120.0 + r.t_s, TANSU: 30.0}) for r in rows]
    failed = [c for c in checks(leaking, verdicts(leaking, 2_900, RUN_S), 2_900, RUN_S, (3.0, True)) if not c.ok]
    assert [c.name for c in failed] == ["every series flat"]
    assert "memory: api" in failed[0].detail


def test_the_anonymous_part_is_judged_not_the_mapped_files() -> None:
    """influxd maps its data files: its RSS grows with them, as the page cache would; what it holds itself must not."""
    rows = [replace(_row(t, 2_900, 0, 120.0), rss_mib={"influxdb": 300.0 + t}, anon_mib={"influxdb": 200.0})
            for t in TIMES]  # fmt: skip
    assert {v.series: v.flat for v in verdicts(rows, 2_900, RUN_S)}["memory: influxdb"] is True
    growing = [replace(r, anon_mib={"influxdb": 200.0 + r.t_s}) for r in rows]
    assert {v.series: v.flat for v in verdicts(growing, 2_900, RUN_S)}["memory: influxdb"] is False


def _disk(t: float, trimmed: float, wal: float, data: float) -> dict[str, float]:
    return {"kafka trimmed": trimmed, "kafka kept": 1.0 + t / 600, "influxdb wal": wal, "influxdb raw": data,
            "influxdb aggregates": data / 2, "influxdb alerts": 1.0 + t / 3600, "influxdb series": 14.0,
            "mosquitto": 0.1}  # fmt: skip


def test_what_is_trimmed_must_stay_flat_and_what_retention_keeps_may_grow() -> None:
    rows = [replace(_row(t, 2_900, 0, 120.0), disk_mib=_disk(t, 20.0 + (t % 90) / 10, 40.0, 100.0 + t / 10),
                    stored_total=2_900 * t) for t in TIMES]  # fmt: skip
    judged = {v.series: v for v in verdicts(rows, 2_900, RUN_S)}
    assert {s: (v.flat, v.judged) for s, v in judged.items() if s.startswith("disk")} == {
        "disk: kafka trimmed": (True, True), "disk: kafka kept": (True, False), "disk: influxdb wal": (True, True),
        "disk: influxdb raw": (False, False), "disk: influxdb aggregates": (False, False),
        "disk: influxdb alerts": (True, False), "disk: influxdb series": (True, True), "disk: mosquitto": (True, True),
    }  # fmt: skip
    assert all(c.ok for c in checks(rows, list(judged.values()), 2_900, RUN_S, (3.0, True)))
    growth = disk_growth(rows, RUN_S)
    assert growth["influxdb raw"]["mib_per_hour"] == pytest.approx(360.0)
    assert growth["influxdb raw"]["mib_per_million_readings"] == pytest.approx(1e6 / 2_900 / 10, rel=1e-3)
    assert growth["influxdb raw"]["projected_gib_at_retention"] == pytest.approx(360.0 * 24 * 90 / 1024, abs=0.1)
    aggregates = 180.0 * 24 * 1095 / 1024
    assert growth["influxdb aggregates"]["projected_gib_at_retention"] == pytest.approx(aggregates, abs=0.1)
    leaking = [replace(r, disk_mib=_disk(r.t_s, 20.0 + r.t_s / 30, 40.0, 100.0)) for r in rows]  # trimming stopped
    failed = [c for c in checks(leaking, verdicts(leaking, 2_900, RUN_S), 2_900, RUN_S, (3.0, True)) if not c.ok]
    assert "disk: kafka trimmed" in failed[0].detail


def test_the_process_table_gives_the_second_half_cpu_and_memory() -> None:
    rows = [replace(_row(t, 2_900, 0, 120.0), anon_mib={"api": 100.0}, anon_peak_mib={"api": 100.0 + t / 60},
                    cpu_percent={"api": 10.0 if t < 900 else 30.0})
            for t in TIMES]  # fmt: skip
    assert process_table(rows, RUN_S) == {
        "api": {"cpu_percent": 30.0, "rss_mib": 120.0, "anon_mib": 100.0, "anon_peak_mib": 130.0, "rss_last_mib": 120.0}
    }


def test_the_load_publisher_and_the_soak_are_reported_beside_the_stack_never_judged() -> None:
    rows = [replace(_row(t, 2_900, 0, 120.0), outside_cpu_percent={"load publisher": 8.0 if t < 900 else 7.0 + t / 1e4})
            for t in TIMES]  # fmt: skip
    second = [7.0 + t / 1e4 for t in TIMES if t >= RUN_S / 2]
    assert outside_table(rows, RUN_S) == {
        "load publisher": pytest.approx(sum(second) / len(second), abs=0.05),
        "soak itself": None,
    }
    assert "load publisher" not in process_table(rows, RUN_S)
    assert not any("load publisher" in v.series for v in verdicts(rows, 2_900, RUN_S))


def test_a_services_collector_time_is_its_share_of_a_core_between_two_reads() -> None:
    def scrape(gateway: float) -> dict[str, Scrape | None]:
        text = "".join(f'smartcity_gc_seconds_total{{generation="{g}"}} {gateway / 2}\n' for g in (0, 2))
        return {"gateway": Scrape.parse(text, 0.0), "writer": Scrape.parse("smartcity_x_total 1\n", 0.0), "api": None}

    last: dict[str, tuple[float, float]] = {}
    assert gc_shares(scrape(1.0), last, 100.0) == {"gateway": None, "writer": None, "api": None}
    assert gc_shares(scrape(1.6), last, 130.0) == {"gateway": 2.0, "writer": None, "api": None}
    rows = [replace(_row(t, 2_900, 0, 120.0), gc_percent={"gateway": 1.0 if t < 900 else 3.0}) for t in TIMES]
    assert gc_table(rows, RUN_S) == {"gateway": 3.0}


def test_the_machines_time_is_split_by_state_in_shares_of_a_core() -> None:
    before = (1000, 0, 200, 5000, 10, 0, 5, 40, 2)
    after = (1100, 0, 240, 5040, 10, 0, 5, 60, 2)  # 200 ticks over two CPUs: 1 s
    shares = machine_shares(before, after)
    assert shares == {"user": 100.0, "nice": 0.0, "system": 40.0, "idle": 40.0, "iowait": 0.0, "irq": 0.0,
                      "softirq": 0.0, "steal": 20.0}  # fmt: skip
    assert sum(shares.values()) == 200.0
    assert machine_shares(after, after) == {}
    rows = [replace(_row(t, 2_900, 0, 120.0), machine_percent={"steal": 1.0 if t < 900 else 9.0}) for t in TIMES]
    assert machine_table(rows, RUN_S)["steal"] == 9.0


def test_a_window_judges_the_floor_a_heap_returns_to_and_reports_its_peak() -> None:
    """influxd's heap swings by hundreds of MiB between garbage collections: the floor is what it holds."""
    polled = [{"influxdb": 310.0, "api": 120.0}, {"influxdb": 790.0, "api": 121.0}, {"influxdb": 280.0}]
    lowest, highest = window_memory({"influxdb": 455.0, "api": 119.0, "gone": None}, polled)
    assert lowest == {"influxdb": 280.0, "api": 119.0, "gone": None}
    assert highest == {"influxdb": 790.0, "api": 121.0, "gone": None}


def test_a_queue_growing_in_the_mqtt_broker_fails_though_every_rate_holds() -> None:
    """What the first 30-minute run showed: the gateway kept pace on average, but the queue in front of it (built
    while the machine was busiest) never drained, so every alert came later and later."""
    rows = [replace(_row(t, 2_900, 0, 120.0), mqtt_queue=20.0 * t) for t in TIMES]
    failed = [c for c in checks(rows, verdicts(rows, 2_900, RUN_S), 2_900, RUN_S, (3.0, True)) if not c.ok]
    assert [c.name for c in failed] == ["every series flat"]
    assert "queue: MQTT broker -> gateway" in failed[0].detail


def test_the_autosave_interval_is_the_shortest_that_keeps_saving_within_its_budget() -> None:
    from smartcity.bench.mosquitto import interval_for

    assert interval_for(0.0) == 1
    assert interval_for(0.005) == 1  # 5 ms a save: 0.5 % at one a second
    assert interval_for(0.1) == 10
    assert interval_for(0.101) == 11
    assert interval_for(0.3, budget=0.05) == 6


def test_the_drain_counts_readings_dropped_as_repeats_as_handled() -> None:
    """A message delivered twice is accepted twice by the gateway; the stream worker and the writer each drop the
    copy as a repeat. The flow has drained then, and not before every reading is evaluated and stored."""
    from smartcity.bench.soak import _Sampler
    from smartcity.status import Scrape

    def scrapes(evaluated: int, stored: int) -> dict[str, Scrape | None]:
        return {
            "gateway": Scrape.parse("smartcity_ingest_readings_accepted_total 102\n", 0.0),
            "streams": Scrape.parse(
                f"smartcity_streams_readings_total {evaluated}\nsmartcity_streams_duplicate_readings_total 2\n", 0.0
            ),
            "writer": Scrape.parse(
                f"smartcity_writer_readings_total {stored}\nsmartcity_writer_duplicate_readings_total 2\n", 0.0
            ),
        }

    assert _Sampler.counters(scrapes(100, 100)) == (102, 102, 102)
    assert _Sampler.counters(scrapes(99, 100)) == (102, 101, 102)


def test_the_floor_of_a_swinging_heap_is_judged_and_a_leak_under_the_swings_still_fails() -> None:
    """What the 30-minute soak of 2026-12-07 showed: influxd returned to about 300 MiB every few minutes, but the
    windows in between sat higher and higher, by chance, toward the end; a fit through the windows called that
    +100 MiB/h. The five-minute floor is flat; a leak beneath the same swings raises the floor and fails."""
    rng = random.Random(7)
    swings = [
        (t, 300.0 if k % 6 == 0 else 300.0 + rng.uniform(0, 200) + 300 * t / RUN_S) for k, t in enumerate(TIMES)
    ]  # back to the floor every 3 minutes; the windows between drifting up by chance
    rows = [
        replace(_row(t, 2_900, 0, 120.0), rss_mib={"api": 120.0, "influxdb": v}, anon_mib={"api": 120.0, "influxdb": v})
        for t, v in swings
    ]
    through_windows = judge("memory: influxdb", "MiB", swings, RUN_S, tolerances(2_900)["memory"])
    assert not through_windows.flat
    assert {v.series: v.flat for v in verdicts(rows, 2_900, RUN_S)}["memory: influxdb"] is True
    leaking = [
        replace(r, anon_mib={"api": 120.0, "influxdb": v + r.t_s / 60}) for r, (_, v) in zip(rows, swings, strict=True)
    ]
    judged = {v.series: v for v in verdicts(leaking, 2_900, RUN_S)}["memory: influxdb"]
    assert not judged.flat
    assert judged.slope_per_h == pytest.approx(60, abs=1)  # the floor rises as the leak does


def test_the_latency_judged_is_the_median_of_ten_windows_p95() -> None:
    """One slow probe in a window of 60 sets its p95; a growing queue raises every window's."""
    one_slow = [replace(_row(t, 2_900, 0, 120.0), latency=probe_window([80.0] * 57 + [900.0] * 3))
                if k % 7 == 0 or t > 1_700 else _row(t, 2_900, 0, 120.0) for k, t in enumerate(TIMES)]  # fmt: skip
    assert {v.series: v.flat for v in verdicts(one_slow, 2_900, RUN_S)}["alert latency p95"] is True
    growing = [replace(r, latency=probe_window([80.0 + r.t_s / 3] * 60)) for r in one_slow]
    assert {v.series: v.flat for v in verdicts(growing, 2_900, RUN_S)}["alert latency p95"] is False


def test_an_envelope_keeps_gaps_and_looks_back_its_span() -> None:
    points = [(0.0, 5.0), (100.0, None), (200.0, 3.0), (400.0, 9.0), (600.0, 8.0)]
    assert envelope(points, 300.0) == [(0.0, 5.0), (100.0, None), (200.0, 3.0), (400.0, 3.0), (600.0, 8.0)]
    assert envelope(points, 300.0, floor=False) == [(0.0, 5.0), (100.0, None), (200.0, 4.0), (400.0, 6.0), (600.0, 8.5)]


def test_a_saved_report_is_judged_again_with_todays_verdicts(tmp_path: Path) -> None:
    """``smartcity bench soak --judge FILE``: the samples are saved whole, so a run judged by an older rule is judged
    again by today's; the checks that do not depend on the verdicts are the run's own."""

    def saved(rows: list[Row], name: str, refused: tuple[int, list[str]] = (10, [])) -> Path:
        judged = verdicts(rows, 2_900, RUN_S)
        report = {"minutes": RUN_S / 60, "rate_readings_per_s": 2_900, "kafka_storage": "disk",
                  "samples": [asdict(r) for r in rows],
                  "checks": [asdict(c) for c in checks(rows, judged, 2_900, RUN_S, (2.0, True), refused)]}  # fmt: skip
        path = tmp_path / name
        path.write_text(json.dumps(report))
        return path

    steady = [_row(t, 2_900, 0, 120.0) for t in TIMES]
    assert rejudge(saved(steady, "steady.json"))
    assert not rejudge(saved([replace(r, anon_mib={"api": 120.0 + r.t_s / 60}) for r in steady], "leak.json"))
    assert not rejudge(saved(steady, "refused.json", (10, ["3f2a: HTTP 409"])))


def _collected(t: float, anon: float, heap: float | None) -> Row:
    return replace(_row(t, 2_900, 0, 120.0), rss_mib={"api": 120.0, "influxdb": anon + 200.0},
                   anon_mib={"api": 120.0, "influxdb": anon}, heap_mib={"influxdb": heap})  # fmt: skip


def test_a_collected_heap_is_judged_and_its_anonymous_memory_held_to_the_limit() -> None:
    """What the district's rate showed: influxd's anonymous floor climbed towards its 768 MiB soft limit (the
    collector's goal, twice what it kept, met the limit) while the heap it returned to stayed level. The heap is
    judged; the anonymous memory is reported and must stay under the limit; a leak in the heap fails."""
    climbing = [_collected(t, 400.0 + 300.0 * t / RUN_S, 260.0 + (t % 90) / 3) for t in TIMES]
    judged = {v.series: v for v in verdicts(climbing, 2_900, RUN_S)}
    assert judged["memory: influxdb"].judged is False
    assert judged["memory: influxdb"].flat is False
    assert judged["heap: influxdb"].judged is True
    assert judged["heap: influxdb"].flat is True
    assert all(c.ok for c in checks(climbing, list(judged.values()), 2_900, RUN_S, (3.0, True), heap_limit_mib=768))
    over = within_limit(climbing, RUN_S, 600)
    assert not over.ok
    assert "influxdb 655.0 MiB" in over.detail
    leaking = [_collected(r.t_s, 600.0, 260.0 + r.t_s / 30) for r in climbing]  # +120 MiB/h of live objects
    failed = [c for c in checks(leaking, verdicts(leaking, 2_900, RUN_S), 2_900, RUN_S, (3.0, True), (0, ()), 768)
              if not c.ok]  # fmt: skip
    assert [(c.name, c.detail) for c in failed] == [("every series flat", "not flat: heap: influxdb")]
    assert process_table(leaking, RUN_S)["influxdb"]["heap_mib"] == pytest.approx(260.0 + 1350.0 / 30, abs=1)


def test_without_a_heap_read_or_a_limit_the_anonymous_memory_is_judged_as_before() -> None:
    """A saved run from before the heap was read, and a stack without a soft limit, lose nothing of their judgement."""
    unread = [_collected(t, 400.0 + 300.0 * t / RUN_S, None) for t in TIMES]
    judged = {v.series: v for v in verdicts(unread, 2_900, RUN_S)}
    assert "heap: influxdb" not in judged
    assert judged["memory: influxdb"].judged is True
    assert within_limit(unread, RUN_S, 768).ok
    assert within_limit([_collected(t, 900.0, 260.0) for t in TIMES], RUN_S, 0).ok


def test_a_saved_report_is_held_to_its_own_heap_limit(tmp_path: Path) -> None:
    rows = [_collected(t, 700.0, 260.0) for t in TIMES]
    judged = verdicts(rows, 2_900, RUN_S)
    passed = checks(rows, judged, 2_900, RUN_S, (2.0, True), (10, []), 768)
    report = {"minutes": RUN_S / 60, "rate_readings_per_s": 2_900, "kafka_storage": "disk", "heap_limit_mib": 768,
              "samples": [asdict(r) for r in rows], "checks": [asdict(c) for c in passed]}  # fmt: skip
    (path := tmp_path / "run.json").write_text(json.dumps(report))
    assert rejudge(path)
    path.write_text(json.dumps({**report, "heap_limit_mib": 512}))
    assert not rejudge(path)


def test_influxdb_data_is_measured_by_retention_policy(tmp_path: Path) -> None:
    def put(relative: str, size: int) -> None:
        path = tmp_path / "influxdb" / "data" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)

    put("smartcity/raw/2/000000001-000000001.tsm", 2**20)
    put("smartcity/raw/2/index/0/L0-00000001.tsl", 2**20)
    put("smartcity/agg_1h/3/000000001-000000001.tsm", 3 * 2**20)
    put("smartcity/autogen/1/000000001-000000001.tsm", 2**19)
    put("smartcity/_series/00/0000", 2**21)
    got = disk_mib(tmp_path, frozenset())
    assert {k: v for k, v in got.items() if k.startswith("influxdb")} == {
        "influxdb wal": 0.0, "influxdb raw": 2.0, "influxdb aggregates": 3.0, "influxdb alerts": 0.5,
        "influxdb series": 2.0,
    }  # fmt: skip
