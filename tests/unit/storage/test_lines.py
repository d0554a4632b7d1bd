"""The readings line schema: measurement per kind, health apart, tags escaped by influxdb-client, ms timestamps."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from core.contracts.device import Device
from core.contracts.telemetry import ReadingDict
from harness import builders
from storage.lines import UNKNOWN_KIND, LineBuilder, series

GAS = builders.device("gas-1", site="PD-01")
TS = 1763900000123


def reading(values: dict[str, float | bool], *, drill: bool = False, device: str = "gas-1") -> ReadingDict:
    return builders.reading(device, values, ts=TS, seq=1, drill=drill, received_at=1)


def test_hazard_values_and_health_values_go_to_their_own_measurements() -> None:
    lines = LineBuilder(lambda _id: GAS).lines(reading({"ch4_lel": 12.5, "smoke": True, "battery_pct": 87.0}))
    assert lines == [
        "gas,device_id=gas-1,drill=false,kind=gas,site_id=PD-01 ch4_lel=12.5,smoke=true 1763900000123",
        "device_health,device_id=gas-1,drill=false,kind=gas,site_id=PD-01 battery_pct=87.0 1763900000123",
    ]


def test_drill_readings_are_tagged_and_integers_are_written_as_floats() -> None:
    [line] = LineBuilder(lambda _id: GAS).lines(reading({"ch4_lel": 3}, drill=True))
    assert line == "gas,device_id=gas-1,drill=true,kind=gas,site_id=PD-01 ch4_lel=3.0 1763900000123"


def test_an_unregistered_device_is_stored_apart_and_not_cached() -> None:
    known: dict[str, Device] = {}
    builder = LineBuilder(known.get)
    [line] = builder.lines(reading({"ch4_lel": 1.0}))
    assert line.startswith(f"{UNKNOWN_KIND},device_id=gas-1,")
    known["gas-1"] = GAS
    [line] = builder.lines(reading({"ch4_lel": 1.0}))
    assert line.startswith("gas,device_id=gas-1,")


def test_a_changed_device_is_built_again_after_forget() -> None:
    current = {"gas-1": GAS}
    builder = LineBuilder(current.get)
    builder.lines(reading({"ch4_lel": 1.0}))
    current["gas-1"] = GAS.model_copy(update={"site_id": "PD-02"})
    assert "site_id=PD-01" in builder.lines(reading({"ch4_lel": 1.0}))[0], "cached until told"
    builder.forget("gas-1")
    assert "site_id=PD-02" in builder.lines(reading({"ch4_lel": 1.0}))[0]


def test_series_escapes_what_line_protocol_needs() -> None:
    assert series("gas", "a b", "S,1=x", "gas", False) == r"gas,device_id=a\ b,drill=false,kind=gas,site_id=S\,1\=x"


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True), st.floats() | st.booleans(), max_size=8))
def test_every_finite_value_becomes_exactly_one_field(values: dict[str, float | bool]) -> None:
    lines = LineBuilder(lambda _id: GAS).lines(reading(values))
    fields = [f for line in lines for f in line.split(" ")[1].split(",")]
    expected = [k for k, v in values.items() if isinstance(v, bool) or math.isfinite(v)]
    assert sorted(f.split("=")[0] for f in fields) == sorted(expected)
    for line in lines:
        assert line.count(" ") == 2
        assert line.endswith(" 1763900000123")
