"""The layers' plug-in contract and the OGC parameters, without a server: a collection written as ``ListedLayer``
gets scoping, filters, bbox, time and paging; the parameters read what QGIS sends."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar

import pytest

from alerts.layer_sources import BBox, Feature, Filter, ListedLayer, Selection, envelope, point
from alerts.ogc_features import parse_bbox, parse_datetime
from core.contracts.catalogue import Department, Level

H = 3_600_000


class Zones(ListedLayer):
    """A collection in the few lines the contract promises: areas, one per department, one closed ten hours in."""

    id = "zones"
    title = "Zones"
    description = "areas"
    filters: ClassVar[Mapping[str, Filter]] = {"level": Filter.of(Level), "drill": Filter(boolean=True)}

    def features(self) -> Iterator[Feature]:
        square = [[[114.0, 22.0], [114.5, 22.0], [114.5, 22.5], [114.0, 22.0]]]
        yield Feature("a", {"type": "Polygon", "coordinates": square}, ["fire"], {"level": "red", "drill": False},
                      (0, 10 * H))  # fmt: skip
        yield Feature("b", point(116.0, 23.0), ["water", "fire"], {"level": "blue", "drill": True}, (5 * H, None))
        yield Feature("c", None, ["water"], {"level": "red", "drill": False})


def ids(selection: Selection) -> tuple[list[str], int]:
    page = Zones().page(selection)
    return [f.id for f in page.features], page.matched


def test_a_listed_layer_scopes_filters_and_pages() -> None:
    assert ids(Selection()) == (["a", "b", "c"], 3)
    assert ids(Selection(departments=frozenset({Department.WATER}))) == (["b", "c"], 2)
    assert ids(Selection(equals={"level": "red"})) == (["a", "c"], 2)
    assert ids(Selection(equals={"drill": True})) == (["b"], 1)
    assert ids(Selection(bbox=BBox(114.4, 22.4, 115, 23))) == (["a"], 1)  # the polygon's box meets it; c has none
    assert ids(Selection(interval=(11 * H, None))) == (["b"], 1)  # a ended at 10 h; b goes on; c has no time
    assert ids(Selection(interval=(None, 4 * H))) == (["a"], 1)
    assert ids(Selection(offset=1, limit=1)) == (["b"], 3)
    assert Zones().get("b") is not None
    assert Zones().extent(frozenset({Department.FIRE})) == BBox(114.0, 22.0, 116.0, 23.0)
    assert Zones().extent(frozenset({Department.HOUSING})) is None


def test_a_bbox_across_the_antimeridian_and_an_envelope() -> None:
    pacific = BBox(170, -10, -170, 10)
    assert pacific.contains(175, 0)
    assert pacific.contains(-175, 0)
    assert not pacific.contains(0, 0)
    collection = {"type": "GeometryCollection", "geometries": [point(1, 2), {"type": "LineString",
                  "coordinates": [[3, -4], [5, 6]]}]}  # fmt: skip
    assert envelope(collection) == BBox(1, -4, 5, 6)


@pytest.mark.parametrize(
    ("text", "bounds"),
    [
        ("2026-11-25T02:00:00Z", (1_795_572_000_000, 1_795_572_000_000)),
        ("2026-11-25T10:00:00+08:00", (1_795_572_000_000, 1_795_572_000_000)),
        ("2026-11-25", (1_795_564_800_000, 1_795_564_800_000 + 24 * H - 1)),
        ("2026-11-25T02:00:00Z/..", (1_795_572_000_000, None)),
        ("../2026-11-25T02:00:00Z", (None, 1_795_572_000_000)),
        ("/2026-11-25T02:00:00Z", (None, 1_795_572_000_000)),
        # how QGIS writes a filter on one side only
        ("0000-01-01T00:00:00Z/2026-11-25T02:00:00Z", (None, 1_795_572_000_000)),
        ("2026-11-25T02:00:00Z/9999-12-31T00:00:00Z", (1_795_572_000_000, 253_402_214_400_000)),
    ],
)
def test_datetime_reads_instants_dates_and_open_intervals(text: str, bounds: tuple[int | None, int | None]) -> None:
    assert parse_datetime(text) == bounds


@pytest.mark.parametrize("text", ["", "..", "../..", "a/b/c", "yesterday", "2026-11-26/2026-11-25", "10000-01-01"])
def test_datetime_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_datetime(text)


def test_bbox_reads_four_or_six_numbers_in_range() -> None:
    assert parse_bbox("114,22.5,114.5,23") == BBox(114, 22.5, 114.5, 23)
    assert parse_bbox("114,22.5,0,114.5,23,100") == BBox(114, 22.5, 114.5, 23)
    for bad in ["114,22,115", "a,b,c,d", "114,23,115,22", "181,0,182,1", "nan,0,1,1", "inf,0,1,1", ""]:
        with pytest.raises(ValueError, match=r"."):
            parse_bbox(bad)


def test_a_filter_reads_its_values() -> None:
    assert Filter.of(Level).parse("red") == "red"
    assert Filter(boolean=True).parse("false") is False
    assert Filter().parse("any text") == "any text"
    with pytest.raises(ValueError, match="one of blue, yellow, orange, red"):
        Filter.of(Level).parse("purple")
    with pytest.raises(ValueError, match="true or false"):
        Filter(boolean=True).parse("yes")
