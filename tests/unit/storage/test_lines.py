"""The readings line schema: measurement per kind, health apart, tags escaped by influxdb-client, ms timestamps."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from core.contracts.device import Device
from core.contracts.telemetry import ReadingDict
from harness import builders
from storage.lines import HEALTH_DEADBAND, HEALTH_EVERY_MS, UNKNOWN_KIND, LineBuilder, series

GAS = builders.device("gas-1", site="PD-01")
TS = 1763900000123


def reading(
    values: dict[str, float | bool], *, drill: bool = False, device: str = "gas-1", ts: int = TS
) -> ReadingDict:
    return builders.reading(device, values, ts=ts, seq=1, drill=drill, received_at=1)


def health_points(builder: LineBuilder, readings: list[ReadingDict]) -> list[str]:
    return [line for r in readings for line in builder.lines(r) if line.startswith("device_health,")]


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


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True), st.floats() | st.booleans(), max_size=8))
def test_fold_is_given_exactly_the_points_written(values: dict[str, float | bool]) -> None:
    """The writer's minute aggregates see each line's series, fields and time, and nothing else."""
    folded: list[str] = []

    def fold(series: str, fields: dict[str, float | bool], ts: int) -> None:
        parts = [
            f"{k}={'true' if v else 'false'}" if isinstance(v, bool) else f"{k}={float(v)!r}" for k, v in fields.items()
        ]
        folded.append(f"{series} {','.join(parts)} {ts}")

    lines = LineBuilder(lambda _id: GAS).lines(reading(values), fold)
    assert folded == lines


def test_health_is_written_once_a_minute_while_it_holds_still() -> None:
    builder = LineBuilder(lambda _id: GAS)
    second = [reading({"ch4_lel": 1.0, "battery_pct": 87.0, "rssi_dbm": -70.0}, ts=TS + k * 1000) for k in range(181)]
    points = health_points(builder, second)
    assert [p.rsplit(" ", 1)[1] for p in points] == [str(TS), str(TS + 60_000), str(TS + 120_000), str(TS + 180_000)]
    again = LineBuilder(lambda _id: GAS)
    assert sum(len(again.lines(r)) for r in second) == 181 + 4, "one point per reading, and the four health points"


def test_health_is_written_when_it_changes_by_more_than_its_dead_band() -> None:
    builder = LineBuilder(lambda _id: GAS)
    values = [87.0, 86.6, 86.1, 85.9, 85.0]  # 86.6 and 86.1 are within 1 % of 87.0; 85.9 is not; 85.0 not of 85.9
    points = health_points(builder, [reading({"battery_pct": v}, ts=TS + k) for k, v in enumerate(values)])
    assert [p.split(" ")[1] for p in points] == ["battery_pct=87.0", "battery_pct=85.9"]
    rssi = health_points(builder, [reading({"battery_pct": 85.9, "rssi_dbm": -70.0}, ts=TS + 10)])
    assert rssi, "a metric that appears is a change"
    assert not health_points(builder, [reading({"battery_pct": 85.9, "rssi_dbm": -75.0}, ts=TS + 11)])
    assert health_points(builder, [reading({"battery_pct": 85.9, "rssi_dbm": -76.0}, ts=TS + 12)])


def test_drill_health_and_a_forgotten_device_start_again() -> None:
    builder = LineBuilder(lambda _id: GAS)
    assert health_points(builder, [reading({"battery_pct": 87.0})])
    assert health_points(builder, [reading({"battery_pct": 87.0}, drill=True)]), "drill series are their own"
    assert not health_points(builder, [reading({"battery_pct": 87.0}, ts=TS + 1)])
    builder.forget("gas-1")
    assert health_points(builder, [reading({"battery_pct": 87.0}, ts=TS + 2)])


@given(st.lists(st.tuples(st.integers(0, 90_000), st.floats(0, 100), st.floats(-120, -30)), min_size=1, max_size=60))
def test_no_health_change_and_no_minute_goes_unwritten(steps: list[tuple[int, float, float]]) -> None:
    """Whatever the sequence: the first is written, and a reading is skipped only if its values are within the dead
    band of the last written point and less than a minute from it."""
    builder = LineBuilder(lambda _id: GAS)
    last: tuple[int, float, float] | None = None
    ts = TS
    for gap, battery, rssi in steps:
        ts += gap
        written = health_points(builder, [reading({"battery_pct": battery, "rssi_dbm": rssi}, ts=ts)])
        skippable = (
            last is not None
            and ts - last[0] < HEALTH_EVERY_MS
            and abs(battery - last[1]) < HEALTH_DEADBAND["battery_pct"]
            and abs(rssi - last[2]) < HEALTH_DEADBAND["rssi_dbm"]
        )
        assert bool(written) != skippable
        if written:
            last = (ts, battery, rssi)
