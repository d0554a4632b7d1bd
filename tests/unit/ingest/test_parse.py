"""The telemetry parser: every refusal reason, timestamp forms, batches, and no input that crashes it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pydantic_core
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from core.contracts import (
    MAX_FUTURE_MS,
    Reading,
    ReadingBatch,
    Refusal,
    RefusalReason,
    TelemetryItem,
    TelemetryItemDict,
)
from devices.directory import OpenDirectory, StaticDirectory
from ingest.parse import Parsed, parse_message

NOW = 1_795_000_000_000  # 2026-11-18T...Z, the gateway's receive time in these tests
TOPIC = "devices/gas-001/telemetry"


def parse(payload: bytes | str | Any, topic: str = TOPIC, directory: Any = None) -> Parsed:
    if not isinstance(payload, (bytes, str)):
        payload = json.dumps(payload)
    raw = payload.encode() if isinstance(payload, str) else payload
    return parse_message(topic, raw, NOW, directory or OpenDirectory())


def reasons(parsed: Parsed) -> list[str]:
    assert parsed.refusal is not None, "expected a refusal"
    return [e.reason.value for e in parsed.refusal.errors]


def test_the_contract_example_is_accepted() -> None:
    parsed = parse('{"ts": 1763900000000, "seq": 42, "values": {"ch4_lel": 12.5}, "drill": false}')
    assert parsed.refusal is None
    [r] = parsed.readings
    assert Reading.model_validate(r) == Reading(
        device_id="gas-001", ts=1763900000000, seq=42, values={"ch4_lel": 12.5}, drill=False, received_at=NOW
    )


def test_booleans_and_integers_are_values() -> None:
    [r] = parse({"values": {"smoke": True, "flame": False, "temp_c": 31}}).readings
    assert r["values"] == {"smoke": True, "flame": False, "temp_c": 31.0}
    assert isinstance(r["values"]["smoke"], bool)


def test_missing_ts_means_receive_time() -> None:
    [r] = parse({"values": {"level_m": 1.2}}).readings
    assert r["ts"] == NOW


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-18T08:00:00Z", int(datetime(2026, 11, 18, 8, tzinfo=UTC).timestamp() * 1000)),
        ("2026-11-18T16:00:00+08:00", int(datetime(2026, 11, 18, 8, tzinfo=UTC).timestamp() * 1000)),
        ("2026-11-18T08:00:00.250Z", int(datetime(2026, 11, 18, 8, tzinfo=UTC).timestamp() * 1000) + 250),
        (1763900000123, 1763900000123),
        (946_684_800_000, 946_684_800_000),  # old readings from a device that was offline are accepted
        (NOW + MAX_FUTURE_MS, NOW + MAX_FUTURE_MS),  # exactly at the limit
    ],
)
def test_timestamp_forms(ts: Any, expected: int) -> None:
    parsed = parse({"ts": ts, "values": {"co_ppm": 3}})
    assert parsed.refusal is None
    assert parsed.readings[0]["ts"] == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_json"),
        (b"", "invalid_json"),
        (b"[" * 10_000, "invalid_json"),
        (b"42", "bad_structure"),
        (b'"values"', "bad_structure"),
        (b"null", "bad_structure"),
        (b"[]", "empty_batch"),
        ({"ts": 1}, "no_values"),
        ({"values": {}}, "no_values"),
        ({"values": [1, 2]}, "no_values"),
        ({"values": {"CH4": 1}}, "bad_metric_name"),
        ({"values": {"ch4 lel": 1}}, "bad_metric_name"),
        ({"values": {"x" * 65: 1}}, "bad_metric_name"),
        ({"values": {"ch4_lel": "12.5"}}, "bad_value_type"),
        ({"values": {"ch4_lel": None}}, "bad_value_type"),
        ({"values": {"ch4_lel": {"v": 1}}}, "bad_value_type"),
        ({"values": {"ch4_lel": [1]}}, "bad_value_type"),
        (b'{"values": {"ch4_lel": NaN}}', "non_finite"),
        (b'{"values": {"ch4_lel": Infinity}}', "non_finite"),
        (b'{"values": {"ch4_lel": -Infinity}}', "non_finite"),
        (b'{"values": {"ch4_lel": 1e999}}', "non_finite"),
        ({"ts": NOW + MAX_FUTURE_MS + 1, "values": {"a": 1}}, "ts_in_future"),
        ({"ts": "2099-01-01T00:00:00Z", "values": {"a": 1}}, "ts_in_future"),
        ({"ts": 1763900000, "values": {"a": 1}}, "bad_timestamp"),  # seconds, not milliseconds
        ({"ts": "2026-11-18T08:00:00", "values": {"a": 1}}, "bad_timestamp"),  # no zone
        ({"ts": "yesterday", "values": {"a": 1}}, "bad_timestamp"),
        ({"ts": 1.7639e12, "values": {"a": 1}}, "bad_timestamp"),
        ({"ts": True, "values": {"a": 1}}, "bad_timestamp"),
        ({"seq": -1, "values": {"a": 1}}, "bad_seq"),
        ({"seq": "7", "values": {"a": 1}}, "bad_seq"),
        ({"seq": 1.5, "values": {"a": 1}}, "bad_seq"),
        ({"drill": "yes", "values": {"a": 1}}, "bad_drill"),
        ({"drill": 1, "values": {"a": 1}}, "bad_drill"),
        ({"valeus": {"a": 1}, "values": {"a": 1}}, "unknown_field"),
    ],
)
def test_every_refusal_reason(payload: Any, reason: str) -> None:
    parsed = parse(payload)
    assert parsed.readings == []
    assert reasons(parsed) == [reason]
    assert parsed.refusal is not None
    assert parsed.refusal.errors[0].detail


def test_too_large() -> None:
    big = json.dumps({"values": {"a": 1}, "pad": "x" * 70_000})
    assert reasons(parse(big)) == ["too_large"]


@pytest.mark.parametrize(
    "topic",
    [
        "devices/-bad/telemetry",
        "devices/" + "x" * 65 + "/telemetry",
        "devices/ümlaut/telemetry",
        "devices//telemetry",
        "devices/a/b/telemetry",
        "other/a/telemetry",
    ],
)
def test_bad_topic(topic: str) -> None:
    assert reasons(parse({"values": {"a": 1}}, topic=topic)) == ["bad_topic"]


def test_unknown_device() -> None:
    parsed = parse({"values": {"a": 1}}, directory=StaticDirectory(["gas-002"]))
    assert reasons(parsed) == ["unknown_device"]


def test_device_id_forms_from_the_contract() -> None:
    for device in ["a", "A1", "gas-001", "gauge_12.b", "x" * 64]:
        assert parse({"values": {"a": 1}}, topic=f"devices/{device}/telemetry").refusal is None


def test_batch_of_500_is_accepted_in_order() -> None:
    batch = [{"ts": 1763900000000 + i, "seq": i, "values": {"level_m": i / 10}} for i in range(500)]
    parsed = parse(batch)
    assert parsed.refusal is None
    assert [r["seq"] for r in parsed.readings] == list(range(500))


def test_batch_of_501_is_refused_whole() -> None:
    batch = [{"values": {"level_m": 1}}] * 501
    parsed = parse(batch)
    assert reasons(parsed) == ["too_many_readings"]
    assert parsed.readings == []


def test_bad_items_of_a_batch_are_refused_by_index_and_the_rest_kept() -> None:
    batch = [
        {"seq": 0, "values": {"a": 1}},
        {"seq": 1, "values": {"a": "x"}},
        7,
        {"seq": 3, "values": {"a": 3}, "ts": 1},
        {"seq": 4, "values": {"a": 4}},
    ]
    parsed = parse(batch)
    assert [r["seq"] for r in parsed.readings] == [0, 4]
    refusal = parsed.refusal
    assert refusal is not None
    assert refusal.accepted == 2
    assert [(e.index, e.seq, e.reason.value) for e in refusal.errors] == [
        (1, 1, "bad_value_type"),
        (2, None, "bad_structure"),
        (3, 3, "bad_timestamp"),
    ]
    assert refusal.reason == RefusalReason.BAD_VALUE_TYPE


def test_refusal_round_trips_through_json() -> None:
    refusal = parse(b"nope").refusal
    assert refusal is not None
    assert Refusal.model_validate_json(refusal.model_dump_json()) == refusal


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2048))
def test_no_byte_string_crashes_the_parser(payload: bytes) -> None:
    parsed = parse_message(TOPIC, payload, NOW, OpenDirectory())
    assert parsed.readings or parsed.refusal is not None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(json_values | st.lists(st.dictionaries(st.sampled_from(["ts", "seq", "values", "drill", "x"]), json_values)))
def test_no_json_document_crashes_the_parser(document: Any) -> None:
    payload = json.dumps(document, allow_nan=True).encode()
    parsed = parse_message(TOPIC, payload, NOW, OpenDirectory())
    accepted = len(parsed.readings)
    refused = len(parsed.refusal.errors) if parsed.refusal else 0
    assert accepted + refused >= 1
    if parsed.refusal is not None:
        assert parsed.refusal.accepted == accepted


metric_names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64) | st.booleans()
items = st.fixed_dictionaries(
    {"values": st.dictionaries(metric_names, finite, min_size=1, max_size=5)},
    optional={
        "ts": st.integers(min_value=946_684_800_000, max_value=NOW + MAX_FUTURE_MS),
        "seq": st.integers(min_value=0, max_value=2**53),
        "drill": st.booleans(),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(items, st.lists(items, min_size=1, max_size=50)))
def test_every_valid_message_is_accepted_unchanged(document: Any) -> None:
    parsed = parse_message(TOPIC, json.dumps(document).encode(), NOW, OpenDirectory())
    assert parsed.refusal is None
    docs = document if isinstance(document, list) else [document]
    assert len(parsed.readings) == len(docs)
    batch = ReadingBatch.model_validate_json(pydantic_core.to_json({"v": 1, "readings": parsed.readings}))
    unstamped = sum("ts" not in doc for doc in docs)
    for doc, reading in zip(docs, batch.readings, strict=True):
        assert reading.values == doc["values"]
        if "ts" in doc:
            assert reading.ts == doc["ts"]
        else:  # the receive time, a millisecond apart in order, the last at the receive time
            unstamped -= 1
            assert reading.ts == NOW - unstamped
        assert reading.seq == doc.get("seq")
        assert reading.drill == doc.get("drill", False)
        assert reading.device_id == "gas-001"


@settings(max_examples=500, deadline=None)
@given(json_values | st.dictionaries(st.sampled_from(["ts", "seq", "values", "drill", "x"]), json_values))
def test_the_fast_path_schema_and_the_contract_model_agree(document: Any) -> None:
    payload = json.dumps(document, allow_nan=True).encode()
    try:
        TelemetryItem.model_validate_json(payload)
        model_ok = True
    except ValidationError:
        model_ok = False
    try:
        TypeAdapter(TelemetryItemDict).validate_json(payload)
        dict_ok = True
    except ValidationError:
        dict_ok = False
    assert model_ok == dict_ok


def test_a_batch_without_ts_is_never_collapsed_into_one_time() -> None:
    """InfluxDB keeps one point per series and time: items stamped on arrival must not share one."""
    document = [{"seq": i, "values": {"ch4_lel": float(i)}} for i in range(5)]
    document.insert(2, {"ts": NOW - 60_000, "seq": 99, "values": {"ch4_lel": 1.0}})
    parsed = parse_message(TOPIC, json.dumps(document).encode(), NOW, OpenDirectory())
    assert parsed.refusal is None
    stamped = [r["ts"] for r in parsed.readings if r["seq"] != 99]
    assert stamped == [NOW - 4, NOW - 3, NOW - 2, NOW - 1, NOW]
    assert [r["seq"] for r in parsed.stamped] == [0, 1, 2, 3, 4]
