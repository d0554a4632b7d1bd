"""Distances and areas on the district's scale: flat-earth metres around a point, fine over tens of kilometres.

An incident's area is a circle around its members (centre: their mean; radius: the farthest member plus a margin)
and, when three or more distinct points span an area, their convex hull (Andrew's monotone chain), as CAP 1.2 wants
them: a circle "lat,lon radius_km" and a closed polygon of "lat,lon" pairs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

from core.contracts.incident import Area

EARTH_M: Final = 6_371_000.0
M_PER_DEG: Final = math.pi * EARTH_M / 180
#: the margin around the farthest member, and the smallest radius an area gets
MARGIN_M: Final = 50.0
MIN_RADIUS_M: Final = 100.0


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Equirectangular distance between two (lat, lon) points in metres."""
    mean = math.radians((a[0] + b[0]) / 2)
    dy = (a[0] - b[0]) * M_PER_DEG
    dx = (a[1] - b[1]) * M_PER_DEG * math.cos(mean)
    return math.hypot(dx, dy)


def cell(lat: float, lon: float, size_m: float) -> tuple[int, int]:
    """The grid cell of ``size_m`` metres holding the point: points within ``size_m`` of each other are in the same
    or adjacent cells."""
    size = max(size_m, 1.0)
    return (math.floor(lat * M_PER_DEG / size), math.floor(lon * M_PER_DEG * math.cos(math.radians(lat)) / size))


def hull(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The convex hull of (lat, lon) points, counter-clockwise, not closed; fewer than three points: the points."""
    pts = sorted(set(points), key=lambda p: (p[1], p[0]))
    if len(pts) < 3:
        return pts

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[1] - o[1]) * (b[0] - o[0]) - (a[0] - o[0]) * (b[1] - o[1])

    lower: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[float, float]] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def area_of(points: list[tuple[float, float]]) -> Area | None:
    """The circle around ``points`` and, when they span an area, their hull closed (first point repeated last)."""
    if not points:
        return None
    lat = sum(p[0] for p in points) / len(points)
    lon = sum(p[1] for p in points) / len(points)
    radius = max(MIN_RADIUS_M, max(distance_m((lat, lon), p) for p in points) + MARGIN_M)
    ring = hull(points)
    polygon = [*ring, ring[0]] if len(ring) >= 3 else []
    return Area(lat=round(lat, 6), lon=round(lon, 6), radius_m=round(radius, 1), polygon=polygon)
