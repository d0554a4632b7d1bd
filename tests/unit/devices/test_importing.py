"""Device records from CSV and YAML: bad rows reported by line and field, good rows kept, exports round-trip."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contracts.catalogue import METRICS, Department, DeviceKind, Level
from core.contracts.device import Device
from devices.importing import read_csv, read_file, read_yaml, write_csv, write_yaml

HEADER = "id,kind,site_id,site_name,lat,lon,interval_s,departments,thresholds.ch4_lel.orange,meta.model\n"


def test_good_csv_rows_become_devices() -> None:
    text = HEADER + (
        "gas-001,gas,S01,坪地化工园,22.76,114.31,60,emergency,25,GT-100\n"
        "water-07,water,R02,龙岗河 gauge,22.70,114.25,300,water;emergency,,\n"
    )
    result = read_csv(text)
    assert result.errors == []
    gas, water = result.devices
    assert gas.site_name == "坪地化工园"
    assert gas.thresholds == {"ch4_lel": {Level.ORANGE: 25.0}}
    assert gas.meta == {"model": "GT-100"}
    assert water.departments == [Department.WATER, Department.EMERGENCY]
    assert water.thresholds == {}


def test_each_bad_row_is_reported_with_line_and_field_and_the_rest_imported() -> None:
    text = HEADER + (
        "gas-001,gas,S01,Plant,22.76,114.31,60,emergency,25,\n"  # line 2: good
        "gas-002,lava,S01,Plant,22.76,114.31,60,emergency,,\n"  # line 3: unknown kind
        "gas-003,gas,S01,Plant,95,114.31,60,emergency,,\n"  # line 4: latitude out of range
        "gas-004,gas,S01,Plant,22.7,114.3,60,emergency,high,\n"  # line 5: threshold not a number
        "gas-001,gas,S01,Plant,22.76,114.31,60,emergency,,\n"  # line 6: duplicate id
        "gas-005,gas,S01,Plant,22.7,114.3,60,police,,\n"  # line 7: unknown department
        "gas-006,gas,S01,Plant,22.7,114.3,60,emergency,,\n"  # line 8: good
    )
    result = read_csv(text)
    assert [d.id for d in result.devices] == ["gas-001", "gas-006"]
    assert [(e.line, e.field) for e in result.errors] == [
        (3, "kind"),
        (4, "lat"),
        (5, "thresholds.ch4_lel.orange"),
        (6, "id"),
        (7, "departments.0"),
    ]
    assert "duplicate of line 2" in str(result.errors[3])


def test_unknown_metric_in_thresholds_is_refused() -> None:
    text = "id,kind,site_id,site_name,lat,lon,interval_s,departments,thresholds.ch4.red\n"
    text += "gas-1,gas,S,Plant,22.7,114.3,60,emergency,50\n"
    [error] = read_csv(text).errors
    assert (error.line, error.field) == (2, "thresholds")
    assert "unknown metric 'ch4'" in error.message


BASE = "id,kind,site_id,site_name,lat,lon,interval_s,departments"


@pytest.mark.parametrize(
    ("columns", "cells", "message"),
    [
        ("ch4_lel.orange,ch4_lel.red", "50,25", "ch4_lel: level red (25.0) must be above level orange (50.0)"),
        ("level_m.orange,level_m.red", "4.1,4.1", "level_m: level red (4.1) must be above level orange (4.1)"),
        # lower is worse: the same check the other way round
        ("rssi_dbm.blue,rssi_dbm.yellow", "-100,-90", "rssi_dbm: level yellow (-90.0) must be below level blue"),
        ("o2_pct.orange", "19", "o2_pct alarms both below and above (one rule each way)"),
    ],
)
def test_threshold_overrides_out_of_order_are_bad_rows(columns: str, cells: str, message: str) -> None:
    header = BASE + "".join(f",thresholds.{c}" for c in columns.split(",")) + "\n"
    text = header + f"gas-1,gas,S,Plant,22.7,114.3,60,emergency,{cells}\n" + "gas-2,gas,S,Plant,22.7,114.3,60,emergency"
    result = read_csv(text + "," * cells.count(",") + ",\n")
    [error] = result.errors
    metric = columns.split(".")[0]
    assert (error.line, error.field) == (2, f"thresholds.{metric}")
    assert message in error.message
    assert [d.id for d in result.devices] == ["gas-2"]


def test_threshold_overrides_in_order_are_taken_either_way() -> None:
    header = (
        BASE + ",thresholds.ch4_lel.orange,thresholds.ch4_lel.red,thresholds.rssi_dbm.blue,thresholds.rssi_dbm.yellow\n"
    )
    result = read_csv(header + "gas-1,gas,S,Plant,22.7,114.3,60,emergency,20,40,-90,-100\n")
    assert result.errors == []
    assert result.devices[0].thresholds == {
        "ch4_lel": {Level.ORANGE: 20.0, Level.RED: 40.0},
        "rssi_dbm": {Level.BLUE: -90.0, Level.YELLOW: -100.0},
    }


def test_yaml_overrides_are_checked_too() -> None:
    text = """- {id: w-1, kind: water, site_id: R, site_name: 河, lat: 22.7, lon: 114.2, interval_s: 60,
   departments: [water], thresholds: {level_m: {orange: 4.1, red: 3.2}}}
"""
    [error] = read_yaml(text).errors
    assert (error.line, error.field) == (1, "thresholds.level_m")
    assert error.message == "level_m: level red (3.2) must be above level orange (4.1)"


def test_header_problems_stop_the_file_with_line_one() -> None:
    result = read_csv("id,kind,colour\nx,gas,red\n")
    assert {(e.line, e.field) for e in result.errors} >= {(1, "site_id"), (1, "colour")}
    assert result.devices == []


def test_yaml_rows_have_line_numbers() -> None:
    text = """devices:
  - id: fire-01
    kind: fire
    site_id: B7
    site_name: 龙城广场大厦
    lat: 22.72
    lon: 114.24
    interval_s: 30
    departments: [fire]
  - id: fire-02
    kind: fire
    site_id: B7
    site_name: 龙城广场大厦
    lat: 22.72
    lon: 514.24
    interval_s: 30
    departments: [fire]
"""
    result = read_yaml(text)
    assert [d.id for d in result.devices] == ["fire-01"]
    assert [(e.line, e.field) for e in result.errors] == [(10, "lon")]


def test_broken_yaml_is_one_error_not_a_crash() -> None:
    result = read_yaml("devices: [\n  - id: x\n")
    assert result.devices == []
    assert result.errors[0].field == "(file)"


def test_ten_thousand_rows_in_one_read() -> None:
    rows = [f"d-{i},gas,S{i % 50},Site {i % 50},22.7,114.3,60,emergency,25,\n" for i in range(10_000)]
    result = read_csv(HEADER + "".join(rows))
    assert result.errors == []
    assert len(result.devices) == 10_000


# overrides as the registry takes them: metrics whose alarms go one way, levels in order that way
one_way_metrics = sorted(name for name, m in METRICS.items() if not m.boolean and len(m.directions) == 1)


@st.composite
def overrides(draw: st.DrawFn) -> dict[str, dict[Level, float]]:
    thresholds: dict[str, dict[Level, float]] = {}
    for metric in draw(st.lists(st.sampled_from(one_way_metrics), max_size=3, unique=True)):
        levels = sorted(draw(st.sets(st.sampled_from(Level), min_size=1)), key=list(Level).index)
        values = sorted(
            draw(st.sets(st.floats(-1e6, 1e6, allow_nan=False), min_size=len(levels), max_size=len(levels)))
        )
        if METRICS[metric].directions == ("below",):
            values.reverse()
        thresholds[metric] = dict(zip(levels, values, strict=True))
    return thresholds


devices = st.builds(
    Device,
    id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True),
    kind=st.sampled_from(DeviceKind),
    site_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,10}", fullmatch=True),
    site_name=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=20
    ),
    lat=st.floats(-90, 90, allow_nan=False),
    lon=st.floats(-180, 180, allow_nan=False),
    interval_s=st.integers(1, 86_400),
    departments=st.lists(st.sampled_from(Department), min_size=1, max_size=3, unique=True),
    thresholds=overrides(),
    meta=st.dictionaries(
        st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.text("abc xyz-_19", min_size=1, max_size=8), max_size=2
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(devices, max_size=5, unique_by=lambda d: d.id))
def test_export_then_import_gives_the_same_devices(records: list[Device]) -> None:
    from_csv = read_csv(write_csv(records))
    from_yaml = read_yaml(write_yaml(records))
    assert from_csv.errors == []
    assert from_yaml.errors == []
    assert from_csv.devices == records
    assert from_yaml.devices == records


# ---------------------------------------------------------------- files as spreadsheets write and read them

ROWS = BASE + ",meta.model\ngas-1,gas,S,坪地化工园 1号储罐区,22.7,114.3,60,emergency,GT-100\n"


@pytest.mark.parametrize("encoded", [ROWS.encode("utf-8"), b"\xef\xbb\xbf" + ROWS.encode("utf-8")])
def test_utf8_with_or_without_a_byte_order_mark(encoded: bytes) -> None:
    result = read_file(encoded, yaml=False)
    assert (result.errors, result.encoding) == ([], "utf-8")
    assert result.devices[0].site_name == "坪地化工园 1号储罐区"


@pytest.mark.parametrize("codec", ["gbk", "gb18030"])
def test_what_excel_saves_on_a_chinese_desktop_is_read_as_gb18030(codec: str) -> None:
    result = read_file(ROWS.encode(codec), yaml=False)
    assert (result.errors, result.encoding) == ([], "gb18030")
    assert result.devices[0].site_name == "坪地化工园 1号储罐区"
    yaml_text = "- {id: w-1, kind: water, site_id: R, site_name: 龙岗河水位站, lat: 22.7, lon: 114.2, interval_s: 60, "
    from_yaml = read_file((yaml_text + "departments: [water]}\n").encode(codec), yaml=True)
    assert (from_yaml.errors, from_yaml.devices[0].site_name) == ([], "龙岗河水位站")


def test_a_file_in_neither_encoding_is_one_error_naming_line_and_byte() -> None:
    data = ROWS.encode("utf-8") + b"gas-2,gas,S,Plant \x80\xff,22.7,114.3,60,emergency,\n"
    result = read_file(data, yaml=False)
    assert result.devices == []
    [error] = result.errors
    assert (error.line, error.field) == (3, "(file)")
    assert error.message.startswith(f"neither UTF-8 (invalid start byte at byte {len(ROWS.encode()) + 18}) nor GB18030")
    assert "save it as UTF-8" in error.message


def test_a_column_twice_in_the_header_is_refused_naming_both_places() -> None:
    text = BASE + ",thresholds.ch4_lel.orange,meta.model,thresholds.ch4_lel.orange\n"
    result = read_csv(text + "gas-1,gas,S,Plant,22.7,114.3,60,emergency,25,GT-100,40\n")
    assert result.devices == []
    [error] = result.errors
    assert (error.line, error.field) == (1, "thresholds.ch4_lel.orange")
    assert error.message == "column appears more than once (columns 9 and 11): keep one"
    assert [(e.line, e.field) for e in read_csv(BASE + ",id\n").errors] == [(1, "id")]


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x","y")', "+1", "-1层车库", "@SUM(A1)", "'quoted", "''=x"])
def test_export_neutralises_cells_a_spreadsheet_would_run_and_import_restores_them(name: str) -> None:
    device = Device.model_validate({
        "id": "gas-1", "kind": "gas", "site_id": "S", "site_name": name, "lat": 22.7, "lon": 114.3, "interval_s": 60,
        "departments": ["emergency"], "meta": {"note": "\t=cmd|' /C calc'!A0", "model": name},
    })  # fmt: skip
    written = write_csv([device])
    [row] = list(csv.DictReader(io.StringIO(written)))
    assert row["site_name"] == "'" + name  # shown as text by Excel, LibreOffice and Google Sheets
    assert row["meta.note"] == "'\t=cmd|' /C calc'!A0"
    assert row["meta.model"] == "'" + name
    assert read_csv(written).devices == [device]  # what was exported is imported as it was


def test_cells_that_no_spreadsheet_runs_are_exported_as_they_are() -> None:
    device = Device.model_validate({
        "id": "gas-1", "kind": "gas", "site_id": "S", "site_name": "坪地 = 化工园", "lat": -22.7, "lon": -114.3,
        "interval_s": 60, "departments": ["emergency"], "thresholds": {"rssi_dbm": {"blue": -90, "yellow": -100}},
    })  # fmt: skip
    [row] = list(csv.DictReader(io.StringIO(write_csv([device]))))
    assert (row["site_name"], row["lat"], row["thresholds.rssi_dbm.blue"]) == ("坪地 = 化工园", "-22.7", "-90.0")
    # a quote a person typed before other text stays (only one before = + - @ tab CR or another quote is ours)
    assert read_csv(BASE + "\ngas-1,gas,S,'t Hooft,22.7,114.3,60,emergency\n").devices[0].site_name == "'t Hooft"
