"""Line protocol built by ``point_line`` (escaping is influxdb-client's), and the mapping of InfluxDB's answers to our
errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from core.influx.client import InfluxConnection, InfluxRefused, InfluxUnavailable, point_line, status_error

TS = 1_763_900_000_123


def test_plain_point_ms_timestamp() -> None:
    line = point_line("readings", {"device_id": "gas-1"}, {"ch4_lel": 12.5}, TS)
    assert line == f"readings,device_id=gas-1 ch4_lel=12.5 {TS}"


def test_tags_escape_spaces_commas_equals_and_keep_unicode() -> None:
    line = point_line("m", {"site name": "坪地 化工园,A=1", "site_id": "S1"}, {"v": 1.0}, TS)
    assert line == f"m,site\\ name=坪地\\ 化工园\\,A\\=1,site_id=S1 v=1 {TS}"


def test_measurement_escapes_space_and_comma() -> None:
    assert point_line("alert events,x", {}, {"v": 2.5}, TS) == f"alert\\ events\\,x v=2.5 {TS}"


def test_tags_are_sorted_and_empty_values_left_out() -> None:
    line = point_line("m", {"z": "1", "a": "2", "empty": ""}, {"v": 1.5}, TS)
    assert line == f"m,a=2,z=1 v=1.5 {TS}"


def test_field_types_bool_int_float_str() -> None:
    line = point_line("m", {}, {"b": True, "f": False, "i": 42, "x": 0.25, "s": 'he said "hi" \\ ok', "k=y z": 3.0}, TS)
    assert line == f'm b=true,f=false,i=42i,k\\=y\\ z=3,s="he said \\"hi\\" \\\\ ok",x=0.25 {TS}'


def test_newlines_in_strings_never_split_the_line() -> None:
    line = point_line("m", {"t": "a\nb"}, {"note": "first\r\nsecond\rthird\nfourth"}, TS)
    assert "\n" not in line
    assert "\r" not in line
    assert 'note="first\\\\nsecond\\\\nthird\\\\nfourth"' in line


@given(
    tags=st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=12), max_size=4),
    text=st.text(max_size=40),
    number=st.floats(allow_nan=False, allow_infinity=False),
)
def test_any_text_gives_one_line(tags: dict[str, str], text: str, number: float) -> None:
    line = point_line("m", tags, {"s": text, "n": number}, TS)
    assert "\n" not in line
    assert "\r" not in line
    assert line.endswith(f" {TS}")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        point_line("m", {}, {"v": bad}, TS)


def test_point_without_fields_or_with_bad_measurement_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one field"):
        point_line("m", {"a": "b"}, {}, TS)
    with pytest.raises(ValueError, match="comment"):
        point_line("#m", {}, {"v": 1}, TS)


@pytest.mark.parametrize(
    ("status", "header", "kind", "retry"),
    [
        (500, None, InfluxUnavailable, 1.0),
        (502, None, InfluxUnavailable, 1.0),
        (503, "7", InfluxUnavailable, 7.0),
        (429, "2.5", InfluxUnavailable, 2.5),
        (429, "100000", InfluxUnavailable, 300.0),
        (429, "Wed, 21 Oct 2015 07:28:00 GMT", InfluxUnavailable, 0.0),
        (400, None, InfluxRefused, None),
        (401, None, InfluxRefused, None),
        (403, None, InfluxRefused, None),
        (404, None, InfluxRefused, None),
        (413, None, InfluxRefused, None),
    ],
)
def test_status_mapping(status: int, header: str | None, kind: type[Exception], retry: float | None) -> None:
    error = status_error(status, "field type conflict", header, "db 'x'")
    assert isinstance(error, kind)
    assert "field type conflict" in str(error)
    if isinstance(error, InfluxUnavailable):
        assert error.retry_after == retry
    if isinstance(error, InfluxRefused):
        assert error.status == status
    if status in (401, 403):
        assert "credentials" in str(error)


def test_connection_settings() -> None:
    conn = InfluxConnection(influx_url="http://127.0.0.1:8086/", influx_api="v2", influx_token="s3cr3t")
    assert conn.influx_url == "http://127.0.0.1:8086"
    assert "s3cr3t" not in repr(conn)
    assert conn.influx_target == "bucket 'smartcity' (org 'smartcity') at http://127.0.0.1:8086"
    with pytest.raises(ValidationError):
        InfluxConnection(influx_url="tcp://x:1")
    with pytest.raises(ValidationError):
        InfluxConnection(influx_api="v3")
