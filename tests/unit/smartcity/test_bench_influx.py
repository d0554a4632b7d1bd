"""bench influx's own parts: the fleet's points per reading (the writer's rule, or the legacy one), the
continuous-query runs read back from influxd's log, and ``--compacted``'s reading of influxd's files."""

from __future__ import annotations

from pathlib import Path

from smartcity.bench.influx import Fleet, _cq_runs, disk_parts, fully_compacted
from storage.lines import LineBuilder

T0 = 1_795_564_800_000
LOG = (
    'ts=2026-12-06T15:56:07.400070Z lvl=info msg="Executing continuous query" log_id=16~0xsQW000 '
    "service=continuous_querier name=agg_1m db_instance=smartcity start=2026-12-06T15:55:00.000000Z\n"
    'ts=2026-12-06T15:56:10.804363Z lvl=info msg="Finished continuous query" log_id=16~0xsQW000 '
    "service=continuous_querier trace_id=16~0xwQ0000 op_name=continuous_querier_execute name=agg_1m "
    "db_instance=smartcity written=20000 start=2026-12-06T15:55:00.000000Z end=2026-12-06T15:56:00.000000Z "
    "duration=3404.5ms\n"
)


def _points(health_every_ms: int, minutes: int = 3) -> tuple[int, int]:
    """Readings and points of 100 devices at 10 readings/s for ``minutes``."""
    fleet = Fleet(100)
    builder = LineBuilder(fleet.lookup().get, health_every_ms=health_every_ms)
    readings = minutes * 60 * 10
    points = sum(len(builder.lines(fleet.reading(T0 + n * 100))) for n in range(readings))
    return readings, points


def test_the_fleet_writes_health_as_the_writer_does_and_legacy_with_every_reading() -> None:
    readings, points = _points(60_000)
    health = points - readings
    assert 300 <= health <= 600, "about one health point per device and minute (and a few dead-band crossings)"
    readings, points = _points(0)
    assert points == 2 * readings


def test_continuous_query_runs_are_read_from_the_log(tmp_path: Path) -> None:
    log = tmp_path / "influxdb.log"
    log.write_text("before\n" + LOG)
    assert _cq_runs(log, 0) == [(20000, 3404.5)]
    assert _cq_runs(log, log.stat().st_size) == []


def _file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_the_database_files_are_measured_by_part(tmp_path: Path) -> None:
    data, wal = tmp_path / "data" / "smartcity", tmp_path / "wal" / "smartcity"
    _file(data / "raw" / "3" / "000000002-000000003.tsm", 3 * 2**20)
    _file(data / "raw" / "3" / "index" / "0" / "L0-00000001.tsl", 2**20)
    _file(data / "_series" / "00" / "0000", 2**19)
    _file(data / "agg_1h" / "4" / "000000001-000000001.tsm", 2**18)
    _file(wal / "raw" / "3" / "_00001.wal", 2**20)
    assert disk_parts(data, wal) == {
        "raw tsm": 3.0, "raw index": 1.0, "series file": 0.5, "aggregates": 0.25, "wal": 1.0,
    }  # fmt: skip


def test_a_shard_is_fully_compacted_when_one_generation_is_left_and_nothing_is_being_written(tmp_path: Path) -> None:
    shard = tmp_path / "smartcity" / "raw" / "3"
    assert not fully_compacted(tmp_path), "no TSM file yet: the cache is not written out"
    _file(shard / "000000004-000000002.tsm", 10)
    _file(shard / "000000007-000000001.tsm", 10)
    assert not fully_compacted(tmp_path), "two generations: levels not merged yet"
    for name in ("000000004-000000002.tsm", "000000007-000000001.tsm"):
        (shard / name).unlink()
    _file(shard / "000000005-000000004.tsm", 10)
    _file(shard / "000000005-000000005.tsm", 10)
    assert fully_compacted(tmp_path), "one generation, split over files: what a full compaction of a large shard leaves"
    _file(shard / "000000008-000000005.tsm.tmp", 10)
    assert not fully_compacted(tmp_path), "a compaction is writing"
