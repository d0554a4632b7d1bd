"""Longgang district geography for the simulated fleet: where its subdistricts and rivers are, in WGS84 degrees.

The district's bounding box is about 22.55–22.85 N, 114.05–114.40 E. The centres below are approximate (to a few
hundred metres, read off public maps of the eleven subdistricts); the simulator places sites around them, so a fleet
looks like the real district on a map without claiming any real installation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

#: (south, north, west, east)
BBOX: Final = (22.55, 22.85, 114.05, 114.40)

_EARTH_M: Final = 6_371_000.0


@dataclass(frozen=True, slots=True)
class Place:
    zh: str
    en: str
    lat: float
    lon: float


SUBDISTRICTS: Final[tuple[Place, ...]] = (
    Place("平湖", "Pinghu", 22.690, 114.125),
    Place("坂田", "Bantian", 22.630, 114.070),
    Place("吉华", "Jihua", 22.655, 114.105),
    Place("布吉", "Buji", 22.605, 114.120),
    Place("南湾", "Nanwan", 22.610, 114.160),
    Place("横岗", "Henggang", 22.650, 114.210),
    Place("园山", "Yuanshan", 22.665, 114.250),
    Place("龙城", "Longcheng", 22.720, 114.250),
    Place("龙岗", "Longgang", 22.730, 114.285),
    Place("宝龙", "Baolong", 22.700, 114.320),
    Place("坪地", "Pingdi", 22.775, 114.310),
)

#: Rivers of the district, each as a few points along its course (upstream first); gauges sit on them.
RIVERS: Final[dict[tuple[str, str], tuple[tuple[float, float], ...]]] = {
    ("龙岗河", "Longgang River"): ((22.640, 114.200), (22.665, 114.235), (22.700, 114.265), (22.735, 114.300),
                                   (22.760, 114.340)),
    ("丁山河", "Dingshan River"): ((22.660, 114.300), (22.690, 114.300), (22.720, 114.305)),
    ("大康河", "Dakang River"): ((22.645, 114.260), (22.660, 114.250), (22.680, 114.245)),
    ("布吉河", "Buji River"): ((22.625, 114.125), (22.605, 114.120), (22.585, 114.115)),
    ("黄沙河", "Huangsha River"): ((22.790, 114.320), (22.775, 114.310), (22.760, 114.300)),
}  # fmt: skip


def offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    """The point ``east_m`` east and ``north_m`` north of (lat, lon); flat-earth, fine over a few kilometres."""
    dlat = math.degrees(north_m / _EARTH_M)
    dlon = math.degrees(east_m / (_EARTH_M * math.cos(math.radians(lat))))
    return lat + dlat, lon + dlon


def east_north_m(origin: tuple[float, float], point: tuple[float, float]) -> tuple[float, float]:
    """Metres east and north of ``origin`` to ``point`` (the inverse of ``offset``)."""
    north = math.radians(point[0] - origin[0]) * _EARTH_M
    east = math.radians(point[1] - origin[1]) * _EARTH_M * math.cos(math.radians(origin[0]))
    return east, north


def clamp(lat: float, lon: float) -> tuple[float, float]:
    """Into the district's bounding box (sites scattered around a border subdistrict stay inside)."""
    south, north, west, east = BBOX
    return min(max(lat, south), north), min(max(lon, west), east)
