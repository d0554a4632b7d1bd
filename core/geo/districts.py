"""Shenzhen's districts: which one a point is in, with its GB/T 2260 code and names, from one committed file.

``shenzhen-districts.geojson`` beside this module (written by ``scripts/district-geojson``; sources, datum and
licences in ``README.md`` here) holds the districts' boundaries in WGS-84, the datum devices report, each with its
GB/T 2260 administrative code (the code CAP's ``geocode`` carries) and its Chinese and English names. The file is
read once, on first use; nothing here reaches the network or npm.

Guarantees, and their limits:

- ``district_at(lat, lon)`` is the district whose boundary holds the point, or ``None`` outside Shenzhen (Hong Kong,
  Dongguan, the open sea). The boundaries include each district's waters, as the source draws them.
- A boundary is as good as its source: its points lie on a grid of 1/1024 degree (about 100 m), simplified by less
  than half of that, so a point within about 100 m of a border may be given its neighbour.
- Guangming (440311), formed from Bao'an in 2018, has no shape of its own in the source: a point there is given
  Bao'an (440306), and ``districts()`` does not list Guangming. The Dapeng New Area is no district in GB/T 2260: its
  subdistricts are counted under Longgang (440307), and so is its shape.

Point in polygon is plain ray casting (even-odd), behind each district's bounding box: the whole city is about
2,700 points, so a look-up costs microseconds and needs no geometry library.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

DATA_FILE: Final = "shenzhen-districts.geojson"
LONGGANG: Final = "440307"

Ring = tuple[tuple[float, float], ...]  # (lon, lat) points, closed


@dataclass(frozen=True, slots=True)
class District:
    """A district of Shenzhen: its GB/T 2260 code (``440307``) and names (``龙岗区``, ``Longgang District``), and
    where its label goes (``label``: lat, lon; inside it)."""

    code: str
    name_zh: str
    name_en: str
    label: tuple[float, float]


@dataclass(frozen=True, slots=True)
class _Shape:
    district: District
    bbox: tuple[float, float, float, float]  # west, south, east, north
    polygons: tuple[tuple[Ring, ...], ...]  # each polygon: its outer ring, then its holes

    def holds(self, lon: float, lat: float) -> bool:
        west, south, east, north = self.bbox
        if not (west <= lon <= east and south <= lat <= north):
            return False
        return any(
            _inside(lon, lat, rings[0]) and not any(_inside(lon, lat, hole) for hole in rings[1:])
            for rings in self.polygons
        )


def _inside(x: float, y: float, ring: Ring) -> bool:
    """Even-odd ray casting: does the ray from (x, y) towards +x cross the ring an odd number of times?"""
    hit = False
    xj, yj = ring[-1]
    for xi, yi in ring:
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            hit = not hit
        xj, yj = xi, yi
    return hit


def _shape(feature: dict[str, Any]) -> _Shape:
    props, geometry = feature["properties"], feature["geometry"]
    raw = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    polygons = tuple(tuple(tuple((float(p[0]), float(p[1])) for p in ring) for ring in rings) for rings in raw)
    points = [p for rings in polygons for p in rings[0]]
    bbox = (min(p[0] for p in points), min(p[1] for p in points), max(p[0] for p in points), max(p[1] for p in points))
    lon, lat = props["label"]
    district = District(str(props["code"]), str(props["name_zh"]), str(props["name_en"]), (float(lat), float(lon)))
    return _Shape(district, bbox, polygons)


@cache
def _shapes() -> tuple[_Shape, ...]:
    text = resources.files("core.geo").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return tuple(_shape(f) for f in json.loads(text)["features"])


def districts() -> tuple[District, ...]:
    """Every district with a shape, by code."""
    return tuple(sorted((s.district for s in _shapes()), key=lambda d: d.code))


def district(code: str) -> District | None:
    """The district of a GB/T 2260 code, or ``None`` if it has no shape here."""
    return next((s.district for s in _shapes() if s.district.code == code), None)


def district_at(lat: float, lon: float) -> District | None:
    """The district holding the WGS-84 point (``lat``, ``lon``), or ``None`` outside Shenzhen."""
    return next((s.district for s in _shapes() if s.holds(lon, lat)), None)
