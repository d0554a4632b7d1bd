"""Device records from CSV and YAML: bad rows reported by line and field, good rows kept, exports round-trip."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.importing import read_csv, read_yaml, write_csv, write_yaml
from smartcity.contracts.catalogue import METRICS, Department, DeviceKind, Level
from smartcity.contracts.device import Device

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


numeric_metrics = sorted(name for name, m in METRICS.items() if not m.boolean)
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
    thresholds=st.dictionaries(
        st.sampled_from(numeric_metrics),
        st.dictionaries(st.sampled_from(Level), st.floats(-1e6, 1e6, allow_nan=False), min_size=1),
        max_size=3,
    ),
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
