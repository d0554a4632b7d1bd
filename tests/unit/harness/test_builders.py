"""The test data builders keep to the wire contracts: what they build is what the contracts' models accept."""

from __future__ import annotations

import json

from core.contracts.device import Device
from core.contracts.telemetry import Reading, TelemetryItem
from harness.builders import device, device_record, reading, telemetry, telemetry_batch, telemetry_item


def test_a_default_record_is_a_valid_device_alone_on_its_site() -> None:
    record = device_record("gas-1")
    assert "thresholds" not in record, "a client that sets no override sends none"
    gas = Device.model_validate(record)
    assert (gas.kind, gas.site_id, gas.interval_s, gas.departments) == ("gas", "site-gas-1", 3600, ["emergency"])


def test_every_field_is_a_knob_and_extra_fields_override() -> None:
    water = device(
        "wl-1", "water", site="R02", interval_s=300, departments=["water", "emergency"],
        thresholds={"level_m": {"orange": 3.2, "red": 4.1}}, meta={"model": "WL-2"},
    )  # fmt: skip
    assert (water.site_id, water.interval_s, water.meta) == ("R02", 300, {"model": "WL-2"})
    assert water.thresholds == {"level_m": {"orange": 3.2, "red": 4.1}}
    assert device_record("gas-1", site_id="S9")["site_id"] == "S9"


def test_telemetry_leaves_out_what_a_device_without_clock_or_counter_does_not_send() -> None:
    assert telemetry({"ch4_lel": 30.0}) == b'{"values": {"ch4_lel": 30.0}}'
    item = TelemetryItem.model_validate_json(telemetry({"ch4_lel": 1.0, "smoke": True}, ts=1_763_900_000_000, seq=3))
    assert (item.ts, item.seq, item.values, item.drill) == (
        1_763_900_000_000,
        3,
        {"ch4_lel": 1.0, "smoke": True},
        False,
    )
    assert TelemetryItem.model_validate_json(telemetry({"ch4_lel": 1.0}, drill=True)).drill is True


def test_a_batch_is_an_array_of_items() -> None:
    items = json.loads(telemetry_batch(telemetry_item({"ch4_lel": float(s)}, seq=s) for s in (1, 2)))
    assert [TelemetryItem.model_validate(i).seq for i in items] == [1, 2]


def test_a_reading_is_a_valid_reading_received_when_stamped_unless_told() -> None:
    r = reading("gas-1", {"ch4_lel": 2.0}, ts=1000)
    assert Reading.model_validate(r).received_at == 1000
    assert reading("gas-1", {"ch4_lel": 2.0}, ts=1000, seq=7, drill=True, received_at=5)["received_at"] == 5
