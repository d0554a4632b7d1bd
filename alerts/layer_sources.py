"""What the GIS layers show (``alerts.layers`` serves them as OGC API - Features collections): the contract a source
of features implements, and the sources there are: the device registry and the open alerts.

A source is a ``Layer``: an ``id`` (its collection's, a path segment), a title and a description, its ``filters``
(query parameters of its own: each keeps the features whose property equals the value, or holds it when the property
is a list), ``page(selection)`` (one page and how many matched in all) and ``get(id)``. Every layer is scoped by
department: ``Selection.departments`` is what the asking officer may see (``None``: an administrator, everything), and a
layer answers nothing outside it. A source whose features are cheap to build subclasses ``ListedLayer`` and writes
only ``features()``, every feature in a stable order (paging is by offset); scoping, filters, bbox, time and paging
are done there. Adding a collection is a class and one line in ``standard_layers``::

    class IncidentLayer(ListedLayer):
        id = "incidents"
        title = "事件 Incidents"
        description = "Open incidents: the alerts of one hazard event, as one entry"
        filters: ClassVar[Mapping[str, Filter]] = {"level": Filter.of(Level), "exercise": Filter(boolean=True)}

        def __init__(self, book: IncidentBook) -> None:
            self._book = book

        def features(self) -> Iterator[Feature]:
            for rec in sorted(self._book.open_records(), key=...):
                yield Feature(rec.id, point(lon, lat), rec.departments, {...}, (rec.opened_at, None))

The device layer pages its own way: it keeps a snapshot of the registry (read again when the number of devices
changes, or after ``fresh_s``), filters it on the records' fields, and works out health only where it must (the
page, or every candidate when asked for a status or a time): a QGIS layer of 100,000 devices reads 100 pages of
1,000, and parsing the registry for each would hold the API's event loop, which the alerts service shares, for
seconds.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple

from alerts.geometry import M_PER_DEG
from alerts.incidents import IncidentBook
from alerts.lifecycle import AlertBook
from alerts.service import AlertService
from core.clock import SHENZHEN, now_ms
from core.contracts.alert import Alert
from core.contracts.catalogue import Department, DeviceKind, Level
from core.contracts.device import Device
from core.contracts.finding import Hazard
from core.contracts.incident import Incident
from devices.health import Health, Status
from devices.registry import Registry

#: A GeoJSON geometry (RFC 7946): longitude before latitude, WGS84 (CRS84).
Geometry = dict[str, Any]
#: Epoch ms: a start and an end; an end of None is still going (an open alert).
Span = tuple[int, int | None]


class BBox(NamedTuple):
    """West, south, east, north in degrees; west > east crosses the antimeridian."""

    west: float
    south: float
    east: float
    north: float

    def intersects(self, other: BBox) -> bool:
        if other.south > self.north or other.north < self.south:
            return False
        if self.west <= self.east:
            return other.west <= self.east and other.east >= self.west
        return other.east >= self.west or other.west <= self.east

    def contains(self, lon: float, lat: float) -> bool:
        return self.intersects(BBox(lon, lat, lon, lat))


@dataclass(frozen=True, slots=True)
class Filter:
    """A query parameter of a layer: keeps the features whose ``property`` (default: the parameter's name) equals
    the value, or holds it when the property is a list. ``values``: the values allowed (none: any text)."""

    values: tuple[str, ...] = ()
    boolean: bool = False
    property: str | None = None

    @classmethod
    def of(cls, values: type[StrEnum], property: str | None = None) -> Filter:
        return cls(values=tuple(v.value for v in values), property=property)

    def parse(self, text: str) -> str | bool:
        """The value to compare, or ValueError saying what is allowed."""
        if self.boolean:
            if text not in ("true", "false"):
                raise ValueError("true or false")
            return text == "true"
        if self.values and text not in self.values:
            raise ValueError(f"one of {', '.join(self.values)}")
        return text

    def schema(self) -> dict[str, Any]:
        """Its JSON Schema, for the API documents."""
        if self.boolean:
            return {"type": "boolean"}
        return {"type": "string", "enum": list(self.values)} if self.values else {"type": "string"}


@dataclass(frozen=True, slots=True)
class Feature:
    """One item of a layer. ``departments``: who may see it. ``properties`` are JSON-ready (enums as their values,
    times as ``iso``) and hold every property a filter of the layer compares. ``time``: what ``datetime`` compares
    (none: the feature has no time, and a ``datetime`` query leaves it out)."""

    id: str
    geometry: Geometry | None
    departments: Sequence[str]
    properties: Mapping[str, Any]
    time: Span | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    """One items request, checked (``alerts.layers``). ``equals``: property -> value, from the layer's filters."""

    departments: frozenset[Department] | None = None
    equals: Mapping[str, str | bool] = field(default_factory=dict)
    bbox: BBox | None = None
    interval: tuple[int | None, int | None] | None = None
    offset: int = 0
    limit: int = 100

    def sees(self, departments: Iterable[str]) -> bool:
        return self.departments is None or not self.departments.isdisjoint(departments)

    def admits(self, feature: Feature) -> bool:
        if not self.sees(feature.departments):
            return False
        for name, wanted in self.equals.items():
            have = feature.properties.get(name)
            if not (wanted in have if isinstance(have, list | tuple) else have == wanted):
                return False
        if self.bbox is not None:
            bounds = envelope(feature.geometry) if feature.geometry is not None else None
            if bounds is None or not self.bbox.intersects(bounds):
                return False
        return self.interval is None or (feature.time is not None and overlaps(feature.time, self.interval))


@dataclass(frozen=True, slots=True)
class Page:
    features: list[Feature]
    matched: int


class Layer(ABC):
    id: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    filters: ClassVar[Mapping[str, Filter]] = {}

    @abstractmethod
    def page(self, selection: Selection) -> Page:
        """The features ``selection`` admits, its page of them, and how many it admits in all."""

    @abstractmethod
    def get(self, feature_id: str) -> Feature | None:
        """One feature, whoever may see it (the caller checks its departments)."""

    @abstractmethod
    def extent(self, departments: frozenset[Department] | None) -> BBox | None:
        """Where the features those departments may see are (none: there are none)."""


class ListedLayer(Layer):
    """A layer of a few thousand features at most, built in memory for every request."""

    @abstractmethod
    def features(self) -> Iterable[Feature]:
        """Every feature, in an order that stays put while features come and go (paging is by offset)."""

    def page(self, selection: Selection) -> Page:
        admitted = [f for f in self.features() if selection.admits(f)]
        return Page(admitted[selection.offset : selection.offset + selection.limit], len(admitted))

    def get(self, feature_id: str) -> Feature | None:
        return next((f for f in self.features() if f.id == feature_id), None)

    def extent(self, departments: frozenset[Department] | None) -> BBox | None:
        scope = Selection(departments=departments)
        return union(envelope(f.geometry) for f in self.features() if f.geometry is not None and scope.admits(f))


class DeviceLayer(Layer):
    id = "devices"
    title = "设备 Devices"
    description = "Registered devices: where they are, the departments they concern, and online or offline now"
    filters: ClassVar[Mapping[str, Filter]] = {
        "kind": Filter.of(DeviceKind),
        "site_id": Filter(),
        "status": Filter.of(Status),
    }

    def __init__(self, registry: Registry, *, fresh_s: float = 10.0) -> None:
        self._registry = registry
        self._fresh_s = fresh_s
        self._snapshot: tuple[float, list[Device]] | None = None

    def _devices(self) -> list[Device]:
        """Every device in id order; read again when the count changed or the snapshot is ``fresh_s`` old (a
        replaced record shows within that)."""
        total = self._registry.query(limit=1).total
        now = time.monotonic()
        if self._snapshot is None or len(self._snapshot[1]) != total or now - self._snapshot[0] >= self._fresh_s:
            self._snapshot = (now, self._registry.query(limit=max(total, 1)).devices)
        return self._snapshot[1]

    def page(self, selection: Selection) -> Page:
        now = now_ms()
        fields = {k: v for k, v in selection.equals.items() if k != "status"}
        chosen = [
            d
            for d in self._devices()
            if selection.sees(d.departments)
            and (selection.bbox is None or selection.bbox.contains(d.lon, d.lat))
            and all(getattr(d, k) == v for k, v in fields.items())
        ]
        health: dict[str, Health] = {}
        if "status" in selection.equals or selection.interval is not None:
            health = {d.id: self._registry.health.health(d, now) for d in chosen}
            chosen = [d for d in chosen if _health_admits(health[d.id], selection)]
        shown = chosen[selection.offset : selection.offset + selection.limit]
        features = [_device_feature(d, health.get(d.id) or self._registry.health.health(d, now)) for d in shown]
        return Page(features, len(chosen))

    def get(self, feature_id: str) -> Feature | None:
        device = self._registry.get(feature_id)
        return None if device is None else _device_feature(device, self._registry.health.health(device, now_ms()))

    def extent(self, departments: frozenset[Department] | None) -> BBox | None:
        scope = Selection(departments=departments)
        return union(BBox(d.lon, d.lat, d.lon, d.lat) for d in self._devices() if scope.sees(d.departments))


class AlertLayer(ListedLayer):
    id = "alerts"
    title = "告警 Open alerts"
    description = "Alerts not yet closed, oldest first; drills (exercise) among them, marked"
    filters: ClassVar[Mapping[str, Filter]] = {
        "level": Filter.of(Level),
        "hazard": Filter.of(Hazard),
        "exercise": Filter(boolean=True),
        "active": Filter(boolean=True),
        "acknowledged": Filter(boolean=True),
        "site_id": Filter(),
        "device_id": Filter(),
    }

    def __init__(self, book: AlertBook) -> None:
        self._book = book

    def features(self) -> Iterator[Feature]:
        alerts = sorted((r.alert for r in self._book.open_records()), key=lambda a: (a.opened_at, a.id))
        return map(_alert_feature, alerts)

    def get(self, feature_id: str) -> Feature | None:
        rec = self._book.get(feature_id)
        return None if rec is None or rec.alert.closed else _alert_feature(rec.alert)


class IncidentLayer(ListedLayer):
    id = "incidents"
    title = "事件 Open incidents"
    description = (
        "Incidents not yet closed (the alerts of one hazard event), oldest first, each as the area its members cover: "
        "their hull, or a 24-sided circle around them; drills (exercise) among them, marked"
    )
    filters: ClassVar[Mapping[str, Filter]] = {
        "level": Filter.of(Level),
        "hazard": Filter.of(Hazard),
        "exercise": Filter(boolean=True),
        "active": Filter(boolean=True),
        "acknowledged": Filter(boolean=True),
    }

    def __init__(self, book: IncidentBook) -> None:
        self._book = book

    def features(self) -> Iterator[Feature]:
        incidents = sorted((r.incident for r in self._book.open_records()), key=lambda i: (i.opened_at, i.id))
        return map(_incident_feature, incidents)

    def get(self, feature_id: str) -> Feature | None:
        rec = self._book.get(feature_id)
        return None if rec is None or rec.incident.closed else _incident_feature(rec.incident)


def standard_layers(registry: Registry, alerts: AlertService | None) -> list[Layer]:
    """The layers the API serves: the devices, and the open alerts and incidents when the alerts service runs
    beside it."""
    layers: list[Layer] = [DeviceLayer(registry)]
    if alerts is not None:
        layers += [AlertLayer(alerts.book), IncidentLayer(alerts.incidents)]
    return layers


def point(lon: float | None, lat: float | None) -> Geometry | None:
    return None if lon is None or lat is None else {"type": "Point", "coordinates": [lon, lat]}


def iso(ms: int | None) -> str | None:
    """An epoch-ms time as RFC 3339 in Shenzhen time (``2026-11-25T10:00:00.000+08:00``), as people read it."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, SHENZHEN).isoformat(timespec="milliseconds")


def envelope(geometry: Geometry) -> BBox | None:
    """The smallest box around a geometry's positions (a GeometryCollection's members too); none if it has none."""
    lons: list[float] = []
    lats: list[float] = []

    def walk(coordinates: Any) -> None:
        if coordinates and isinstance(coordinates[0], int | float):
            lons.append(coordinates[0])
            lats.append(coordinates[1])
        else:
            for part in coordinates or ():
                walk(part)

    for g in geometry.get("geometries", [geometry]):
        walk(g.get("coordinates"))
    return BBox(min(lons), min(lats), max(lons), max(lats)) if lons else None


def union(boxes: Iterable[BBox | None]) -> BBox | None:
    found = [b for b in boxes if b is not None]
    if not found:
        return None
    return BBox(min(b.west for b in found), min(b.south for b in found), max(b.east for b in found),
                max(b.north for b in found))  # fmt: skip


def overlaps(span: Span, interval: tuple[int | None, int | None]) -> bool:
    start, end = span
    low, high = interval
    return (high is None or start <= high) and (low is None or end is None or end >= low)


def _health_admits(health: Health, selection: Selection) -> bool:
    if "status" in selection.equals and health.status != selection.equals["status"]:
        return False
    if selection.interval is None:
        return True
    return health.last_seen is not None and overlaps((health.last_seen, health.last_seen), selection.interval)


def _device_feature(d: Device, health: Health) -> Feature:
    seen = health.last_seen
    return Feature(
        id=d.id,
        geometry=point(d.lon, d.lat),
        departments=d.departments,
        properties={
            "id": d.id,
            "kind": d.kind.value,
            "site_id": d.site_id,
            "site_name": d.site_name,
            "departments": [x.value for x in d.departments],
            "interval_s": d.interval_s,
            "status": health.status.value,
            "status_reason": health.reason,
            "last_seen": iso(seen),
            "battery_pct": health.battery_pct,
            "rssi_dbm": health.rssi_dbm,
        },
        time=None if seen is None else (seen, seen),
    )


def _alert_feature(a: Alert) -> Feature:
    return Feature(
        id=a.id,
        geometry=point(a.lon, a.lat),
        departments=a.departments,
        properties={
            "id": a.id,
            "key": a.key,
            "level": a.level.value,
            "hazard": a.hazard.value,
            "rule": a.rule,
            "title_zh": a.title.zh,
            "title_en": a.title.en,
            "departments": [x.value for x in a.departments],
            "active": a.active,
            "acknowledged": a.acknowledged,
            "exercise": a.exercise,
            "confirmed": a.confirmed,
            "device_id": a.device_id,
            "site_id": a.site_id,
            "site_name": a.site_name,
            "metric": a.metric,
            "value": a.value,
            "threshold": a.threshold,
            "opened_at": iso(a.opened_at),
            "updated_at": iso(a.updated_at),
        },
        time=(a.opened_at, None),
    )


def _incident_feature(i: Incident) -> Feature:
    return Feature(
        id=i.id,
        geometry=_area_polygon(i),
        departments=i.departments,
        properties={
            "id": i.id,
            "level": i.level.value,
            "hazard": i.hazard.value,
            "family": i.family,
            "title_zh": i.title.zh,
            "title_en": i.title.en,
            "departments": [x.value for x in i.departments],
            "active": i.active,
            "acknowledged": i.acknowledged,
            "exercise": i.exercise,
            "alerts": i.summary.alerts,
            "sites": i.summary.sites,
            "devices": i.summary.devices,
            "radius_m": i.area.radius_m if i.area else None,
            "opened_at": iso(i.opened_at),
            "updated_at": iso(i.updated_at),
        },
        time=(i.opened_at, None),
    )


def _area_polygon(i: Incident) -> Geometry | None:
    """The incident's area as one GeoJSON Polygon (one geometry type per layer, as QGIS wants): the members' hull,
    else a 24-sided polygon on its circle."""
    area = i.area
    if area is None:
        return None
    if len(area.polygon) >= 4:
        ring = [[lon, lat] for lat, lon in area.polygon]
    else:
        ring = []
        for k in range(24):
            north = area.radius_m * math.cos(2 * math.pi * k / 24)
            east = -area.radius_m * math.sin(2 * math.pi * k / 24)  # counter-clockwise (RFC 7946)
            lat = area.lat + north / M_PER_DEG
            lon = area.lon + east / (M_PER_DEG * math.cos(math.radians(area.lat)))
            ring.append([round(lon, 6), round(lat, 6)])
        ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}
