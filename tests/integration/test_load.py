"""Load mode on the real one-machine stack: a tiny ramp in batches, every reading found in Kafka and InfluxDB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.load import run_load

pytestmark = pytest.mark.integration


def test_a_small_ramp_is_accounted_for_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    # Batches of 10: the readings of one message need distinct timestamps, or InfluxDB keeps one point of them.
    report = run_load(200, 10, [200, 400], step_s=5, hold_s=6, out=out, probe_interval_s=0.5, name="smoke")

    a = report.accounting
    assert a.sent_readings > 1_000
    assert a.acked_readings == a.sent_readings
    assert a.accepted_readings == a.acked_readings
    assert (a.in_kafka, a.in_influx) == (a.acked_readings, a.acked_readings)
    assert (a.lost, a.refused, a.disconnects) == (0, 0, 0)

    saved = json.loads(out.read_text())
    assert saved["lost"] == 0
    assert [(s["phase"], s["target_readings_per_s"]) for s in saved["steps"]] == [("ramp", 200), ("hold", 400)]
    for step in saved["steps"]:
        assert step["accepted_readings_per_s"] > 0
        assert step["latency"]["probes"] >= 3
        assert step["latency"]["lost"] == 0
        assert 0 < step["latency"]["p50_ms"] <= step["latency"]["p95_ms"] <= step["latency"]["p99_ms"]
        assert step["platform_cpu_us_per_reading"] > 0
        assert set(step["cpu_us_per_reading"]) >= {"ingest gateway", "stream worker", "influx writer", "mosquitto"}
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
