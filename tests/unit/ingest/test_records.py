"""Kafka records stay under the broker's size limit, however large the readings of one partition are."""

from __future__ import annotations

from core.contracts import ReadingBatch, ReadingDict
from harness.builders import reading
from ingest.gateway import _MAX_RECORD_BYTES, _sized


def _reading(i: int, metrics: int) -> ReadingDict:
    values: dict[str, float | bool] = {f"m{k:04d}": float(k) for k in range(metrics)}
    return reading(f"d-{i}", values, ts=1, seq=i)


def test_a_large_group_is_split_into_records_under_the_limit_keeping_every_reading_in_order() -> None:
    readings = [_reading(i, 2_000) for i in range(60)]  # ~40 KB each, ~2.4 MB together
    records = _sized("readings", 3, readings)
    assert len(records) > 1
    assert all(len(r.value) <= _MAX_RECORD_BYTES for r in records)
    assert all(r.partition == 3 for r in records)
    carried = [x.seq for r in records for x in ReadingBatch.model_validate_json(r.value).readings]
    assert carried == list(range(60))
    assert all(r.key == ReadingBatch.model_validate_json(r.value).readings[0].device_id.encode() for r in records)


def test_a_small_group_is_one_record() -> None:
    assert len(_sized("readings", 0, [_reading(i, 2) for i in range(500)])) == 1
