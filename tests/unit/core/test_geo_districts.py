"""Shenzhen's districts: a point's district and GB/T 2260 code, and the boundaries in the datum devices report."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from core.geo.districts import DATA_FILE, LONGGANG, district, district_at, districts

LUOHU, FUTIAN = "440303", "440304"


def test_the_centre_of_longgang_is_longgang() -> None:
    found = district_at(22.72, 114.25)
    assert found is not None
    assert (found.code, found.name_zh, found.name_en) == (LONGGANG, "龙岗区", "Longgang District")
    assert district_at(*found.label) == found  # the label point lies inside


def test_a_point_in_futian_is_futian() -> None:
    found = district_at(22.540, 114.055)  # Futian's central business district
    assert found is not None
    assert (found.code, found.name_zh, found.name_en) == (FUTIAN, "福田区", "Futian District")


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (22.35, 114.55),  # the South China Sea, south of Dapeng's waters
        (22.45, 113.60),  # the Pearl River estuary, west of Shenzhen's waters
        (22.40, 114.15),  # Hong Kong, Sha Tin
        (22.90, 113.80),  # Dongguan
    ],
)
def test_outside_shenzhen_is_none(lat: float, lon: float) -> None:
    assert district_at(lat, lon) is None


# The datum. Devices report WGS-84; the source's shapes are AMap's, in GCJ-02, which puts a place here about 520 m
# east and 300 m south of where WGS-84 has it (GCJ-02 minus WGS-84 at the Shenzhen River: +0.0051° lon, -0.0027° lat,
# from the published forward formula). The Shenzhen River is the border with Hong Kong, and Hong Kong's own district
# boundaries (Census and Statistics Department, HK 1980 Grid converted to WGS-84) put it independently of any Chinese
# source. Each pair below stands 0.002° (about 220 m) north and south of where Hong Kong's boundary crosses that
# longitude: the north point is in Shenzhen, the south one in Hong Kong. A file left in GCJ-02 reads every point as
# if it stood 0.0051° west and 0.0027° north of where it does (the shapes are shifted south-east), which puts the
# Hong Kong points in Shenzhen, and at 114.18 the Luohu point outside it; a file converted twice, or the wrong way,
# shifts the shapes as far again and fails the other way. Only a boundary within the 440 m band passes every pair.
GCJ_MINUS_WGS = (-0.0027, 0.0051)  # (lat, lon)
RIVER = [
    # (longitude, lat of the point in Shenzhen, lat of the point in Hong Kong, the Shenzhen district)
    (114.07, 22.5188, 22.5148, FUTIAN),
    (114.13, 22.5442, 22.5402, LUOHU),
    (114.17, 22.5622, 22.5582, LUOHU),
    (114.18, 22.5567, 22.5527, LUOHU),
]


@pytest.mark.parametrize(("lon", "north", "south", "code"), RIVER)
def test_the_boundary_is_in_wgs84_at_the_shenzhen_river(lon: float, north: float, south: float, code: str) -> None:
    in_shenzhen = district_at(north, lon)
    assert in_shenzhen is not None
    assert in_shenzhen.code == code
    assert district_at(south, lon) is None


def test_the_river_check_would_catch_a_file_left_in_gcj02() -> None:
    """What the file answered before its conversion, as this file answers the points' GCJ-02 shift undone: each pair
    gets at least one answer wrong, so the test above cannot pass by chance of the margins."""
    d_lat, d_lon = GCJ_MINUS_WGS

    def as_if_gcj(lat: float, lon: float) -> str | None:
        found = district_at(lat - d_lat, lon - d_lon)
        return found.code if found else None

    for lon, north, south, code in RIVER:
        assert (as_if_gcj(north, lon), as_if_gcj(south, lon)) != (code, None), lon


def test_every_district_has_a_gbt2260_code_and_both_names() -> None:
    listed = districts()
    assert [d.code for d in listed] == ["440303", "440304", "440305", "440306", "440307", "440308", "440309", "440310"]
    for d in listed:
        assert d.code.startswith("4403")
        assert d.name_zh.endswith("区")
        assert d.name_en.endswith(" District")
    assert district(LONGGANG) == district_at(22.72, 114.25)
    assert district("440311") is None  # Guangming: no shape in the source (docstring)


def test_the_data_file_is_package_data_with_its_sources() -> None:
    text = resources.files("core.geo").joinpath(DATA_FILE).read_text(encoding="utf-8")
    header = json.loads(text)
    assert header["datum"].startswith("WGS-84")
    assert "AMap" in header["source"]
    assert "GB/T 2260" in header["source"]
