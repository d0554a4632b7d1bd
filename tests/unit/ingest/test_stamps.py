"""Readings sent without ``ts`` are stamped on arrival; a device's later message never gets a time at or before its
previous one at the same gateway (two messages in one millisecond would otherwise be one InfluxDB point)."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from devices.directory import OpenDirectory
from ingest.gateway import Gateway
from ingest.metrics import GatewayMetrics
from ingest.parse import parse_message
from ingest.settings import GatewaySettings

NOW = 1_763_900_000_000
TOPIC = "devices/gas-001/telemetry"


def _stamped(gateway: Gateway, document: object, received_at: int) -> list[int]:
    parsed = parse_message(TOPIC, json.dumps(document).encode(), received_at, OpenDirectory())
    if parsed.stamped:  # as the gateway does
        gateway._apart(parsed)
    return [r["ts"] for r in parsed.readings]


def test_messages_of_one_device_in_one_millisecond_get_distinct_rising_times() -> None:
    gateway = Gateway(GatewaySettings(), OpenDirectory(), GatewayMetrics.create(CollectorRegistry()))
    first = _stamped(gateway, [{"seq": 1, "values": {"ch4_lel": 1.0}}, {"seq": 2, "values": {"ch4_lel": 2.0}}], NOW)
    second = _stamped(gateway, {"seq": 3, "values": {"ch4_lel": 3.0}}, NOW)  # the same millisecond
    third = _stamped(gateway, {"seq": 4, "values": {"ch4_lel": 4.0}}, NOW - 5)  # a clock step back
    times = [*first, *second, *third]
    assert times == sorted(set(times)), times
    assert first == [NOW - 1, NOW]
    # A device's own ts is its word, never moved.
    assert _stamped(gateway, {"ts": NOW - 60_000, "seq": 5, "values": {"ch4_lel": 5.0}}, NOW) == [NOW - 60_000]
