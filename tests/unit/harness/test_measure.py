"""The harness's figures: a Prometheus sample summed over its labels, CPU seconds, nearest-rank quantiles."""

from __future__ import annotations

import math
import os

from harness.measure import cpu_seconds, quantile, sample_sum

TEXT = """# HELP smartcity_ingest_refusals_total Refusals
# TYPE smartcity_ingest_refusals_total counter
smartcity_ingest_refusals_total{reason="invalid_json"} 2.0
smartcity_ingest_refusals_total{reason="unknown_device"} 3.0
smartcity_ingest_refusals_total_created{reason="invalid_json"} 1.7639e+09
smartcity_ingest_readings_accepted_total 1.2345e+06
smartcity_streams_evaluation_seconds_sum 1.5e-05
"""


def test_a_sample_is_summed_over_its_labels_and_one_series_can_be_picked() -> None:
    assert sample_sum(TEXT, "smartcity_ingest_refusals_total") == 5.0
    assert sample_sum(TEXT, 'smartcity_ingest_refusals_total{reason="unknown_device"}') == 3.0
    assert sample_sum(TEXT, "smartcity_ingest_readings_accepted_total") == 1_234_500.0
    assert sample_sum(TEXT, "smartcity_streams_evaluation_seconds_sum") == 1.5e-05


def test_an_absent_sample_is_zero() -> None:
    assert sample_sum(TEXT, "smartcity_writer_readings_total") == 0.0
    assert sample_sum(TEXT, "smartcity_ingest_refusals") == 0.0, "a prefix is not the name"


def test_quantiles_are_nearest_rank_and_nan_when_empty() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (quantile(values, 0.5), quantile(values, 0.99), quantile(values, 1.0)) == (50.0, 99.0, 100.0)
    assert quantile([3.14159], 0.5) == 3.1
    assert math.isnan(quantile([], 0.5))


def test_cpu_seconds_of_a_running_process_grow() -> None:
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert cpu_seconds(os.getpid()) > before >= 0
