"""A redelivered message is stored once and evaluated once, with or without ``ts`` (issue 17, item 1).

A redelivery is the same MQTT message again: the same bytes. The device here sends each of its messages twice, as
the broker does after a PUBACK lost in a gateway crash, so both copies reach Kafka as two records; the test first
confirms that (the readings topic holds every reading twice), then looks where a double would show:

- InfluxDB: a copy without ``ts`` is stamped with a later receive time, so a stored double is a second point;
- the stream worker's and the writer's own counts of what they evaluated, wrote, and dropped as repeats.

A batch without ``ts`` keeps every item as its own point (they used to share the receive time: one point).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.builders import device_record, telemetry, telemetry_batch, telemetry_item
from harness.measure import EVALUATED, STORED, metric
from harness.stack import StackRun
from tests.influx_util import wait_gas_count
from tests.kafka_util import consume, readings_of
from tests.mqtt_util import Client

pytestmark = pytest.mark.integration

DEVICE = "dup-gas-1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackRun]:
    with StackRun(tmp_path_factory.mktemp("duplicates")) as run:
        yield run


def _until(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.25)


def test_a_redelivered_message_is_stored_once_and_evaluated_once(stack: StackRun) -> None:
    with stack.api_client() as http:
        answer = http.put(f"/api/devices/{DEVICE}", json=device_record(DEVICE, site="DUP-1"))
    assert answer.status_code == 201, answer.text
    credentials = answer.json()["credentials"]
    since = int(time.time() * 1000) - 1000
    messages = [
        telemetry_batch(telemetry_item({"ch4_lel": float(seq)}, seq=seq) for seq in (1, 2, 3)),
        telemetry({"ch4_lel": 4.0}, seq=4),
        telemetry({"ch4_lel": 5.0}, ts=since + 500, seq=5),
        telemetry({"ch4_lel": 30.0}, seq=6),
    ]
    distinct = 6
    device = Client(stack.mqtt_url, credentials["username"], credentials["password"])
    try:
        for payload in messages:
            for _ in range(2):  # the original and its redelivery
                assert device.publish(f"devices/{DEVICE}/telemetry", payload).is_published()
    finally:
        device.close()

    # The fault happened: Kafka holds every reading twice.
    records = asyncio.run(
        consume(
            stack.kafka,
            "readings",
            lambda rs: sum(r.device_id == DEVICE for _, _, b in readings_of(rs) for r in b.readings) >= 2 * distinct,
            timeout=60,
        )
    )
    seqs = sorted(r.seq or 0 for _, _, b in readings_of(records) for r in b.readings if r.device_id == DEVICE)
    assert seqs == sorted(2 * list(range(1, distinct + 1)))

    # Each service read all twelve (the writer landed its batches), and took six.
    writer, streams = stack.writer_metrics, stack.streams_metrics
    repeats, dropped = "smartcity_writer_duplicate_readings_total", "smartcity_streams_duplicate_readings_total"
    _until(lambda: metric(writer, STORED) + metric(writer, repeats) >= 2 * distinct)
    _until(lambda: metric(streams, EVALUATED) + metric(streams, dropped) >= 2 * distinct)
    stored = wait_gas_count(stack.influx, DEVICE, since, distinct, timeout=30)
    assert stored == distinct, f"InfluxDB holds {stored} points of {DEVICE}'s {distinct} readings"
    assert (metric(writer, STORED), metric(writer, repeats)) == (distinct, distinct)
    assert (metric(streams, EVALUATED), metric(streams, dropped)) == (distinct, distinct)
    with stack.api_client() as http:
        alerts = [a for a in http.get("/api/alerts").json() if a["device_id"] == DEVICE]
    assert [(a["rule"], a["level"]) for a in alerts] == [("gas.ch4", "orange")]
