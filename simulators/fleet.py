"""A district fleet generated from a seed: sites on Longgang geography, the devices at each, their registry records.

Sites come in the kinds a district watches (chemical parks, gas stations and pipeline valve chambers; river and
underpass gauges; high-rise buildings; bridges, deep excavations and old buildings). The first sites cycle through
every type, so even a small fleet has one of each for the scenarios; the rest are drawn with weights that give
about 35 % gas, 30 % fire, 15 % water and 20 % structural devices. A site sits near a subdistrict centre (a gauge
on a river); its devices are spread a few metres to a few tens of metres around it, which is what lets a gas leak
reach neighbouring detectors with the wind.

Per-device thresholds are what a department would set for its own structures and rivers. The numbers are
illustrative and ours: a river gauge's warning level (警戒水位) 1.2–2.0 m above its usual level and the guaranteed
level (保证水位) 0.5–1.0 m above that; an underpass closes at about 27 cm of water, as many cities' rules have it;
structures' tilt, crack and displacement limits of the order GB 50292 and GB 50497 give.

The same seed and arguments give the same fleet, device for device.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

from core.contracts.catalogue import Department, DeviceKind, Level
from core.contracts.device import Device
from simulators.baseline import Baseline
from simulators.geography import RIVERS, SUBDISTRICTS, clamp, offset


class SiteType(StrEnum):
    CHEMICAL_PARK = "chemical_park"
    GAS_STATION = "gas_station"
    GAS_VALVE = "gas_valve"
    RIVER_GAUGE = "river_gauge"
    UNDERPASS = "underpass"
    HIGH_RISE = "high_rise"
    BRIDGE = "bridge"
    EXCAVATION = "excavation"
    OLD_BUILDING = "old_building"


@dataclass(frozen=True, slots=True)
class _Spec:
    kind: DeviceKind
    zh: str
    en: str
    devices: tuple[int, int]
    metrics: tuple[str, ...]
    spread_m: float
    weight: float
    department: Department


_SPECS: dict[SiteType, _Spec] = {
    SiteType.CHEMICAL_PARK: _Spec(DeviceKind.GAS, "化工园区储罐区", "chemical park tank farm", (4, 8),
                                  ("ch4_lel", "co_ppm", "h2s_ppm", "o2_pct"), 40, 0.07, Department.EMERGENCY),
    SiteType.GAS_STATION: _Spec(DeviceKind.GAS, "加油加气站", "filling station", (2, 4), ("ch4_lel", "co_ppm"), 20,
                                0.07, Department.EMERGENCY),
    SiteType.GAS_VALVE: _Spec(DeviceKind.GAS, "燃气管线阀室", "gas pipeline valve chamber", (2, 3), ("ch4_lel",), 8,
                              0.08, Department.EMERGENCY),
    SiteType.RIVER_GAUGE: _Spec(DeviceKind.WATER, "水位站", "river gauge station", (1, 2), ("level_m", "rain_mm_h"),
                                30, 0.14, Department.WATER),
    SiteType.UNDERPASS: _Spec(DeviceKind.WATER, "下穿通道积水监测", "underpass flood gauge", (1, 2), ("level_m",), 30,
                              0.10, Department.WATER),
    SiteType.HIGH_RISE: _Spec(DeviceKind.FIRE, "高层建筑", "high-rise building", (3, 8), ("temp_c", "smoke"), 15,
                              0.12, Department.FIRE),
    SiteType.BRIDGE: _Spec(DeviceKind.STRUCTURAL, "桥梁", "bridge", (2, 4),
                           ("tilt_deg", "displacement_mm", "vibration_mm_s", "strain_ue"), 60, 0.06,
                           Department.HOUSING),
    SiteType.EXCAVATION: _Spec(DeviceKind.STRUCTURAL, "深基坑", "deep excavation", (2, 4),
                               ("displacement_mm", "tilt_deg"), 40, 0.06, Department.HOUSING),
    SiteType.OLD_BUILDING: _Spec(DeviceKind.STRUCTURAL, "老旧房屋", "old building", (1, 3),
                                 ("tilt_deg", "crack_mm"), 10, 0.06, Department.HOUSING),
}  # fmt: skip

#: Per-structure limits (orange, red), ours and illustrative: see the module docstring.
_STRUCTURE_LIMITS: dict[SiteType, dict[str, tuple[float, float]]] = {
    SiteType.BRIDGE: {"tilt_deg": (0.15, 0.25), "displacement_mm": (20.0, 30.0)},
    SiteType.EXCAVATION: {"displacement_mm": (24.0, 30.0), "tilt_deg": (0.2, 0.3)},
    SiteType.OLD_BUILDING: {"tilt_deg": (0.3, 0.4), "crack_mm": (1.0, 2.0)},
}
UNDERPASS_LIMITS = (0.15, 0.27)  # metres of water: orange, red (closed)


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    type: SiteType
    name: str
    lat: float
    lon: float
    device_ids: tuple[str, ...]

    @property
    def kind(self) -> DeviceKind:
        return _SPECS[self.type].kind


@dataclass(frozen=True, slots=True)
class SimDevice:
    """A registry record and what the simulator knows besides: its site, place on it, and healthy behaviour."""

    record: Device
    site: Site
    east_m: float  # from the site's centre
    north_m: float
    baseline: Baseline

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def kind(self) -> DeviceKind:
        return self.record.kind


@dataclass(frozen=True)
class Fleet:
    seed: int
    prefix: str
    interval_s: int
    sites: tuple[Site, ...]
    devices: tuple[SimDevice, ...]

    @cached_property
    def by_id(self) -> dict[str, SimDevice]:
        return {d.id: d for d in self.devices}

    def records(self) -> list[Device]:
        return [d.record for d in self.devices]

    def of_kind(self, kind: DeviceKind) -> list[SimDevice]:
        return [d for d in self.devices if d.kind is kind]

    def sites_of(self, site_type: SiteType) -> list[Site]:
        return [s for s in self.sites if s.type is site_type]


def generate_fleet(devices: int, seed: int = 1, *, interval_s: int = 60, prefix: str = "sim") -> Fleet:
    """``devices`` devices (the last site may be cut short to hit the number exactly)."""
    if devices < 1:
        raise ValueError("a fleet needs at least one device")
    rng = random.Random(f"{seed}:fleet")
    types, weights = list(_SPECS), [s.weight for s in _SPECS.values()]
    sites: list[Site] = []
    out: list[SimDevice] = []
    while len(out) < devices:
        n = len(sites)
        site_type = types[n] if n < len(types) else rng.choices(types, weights)[0]
        spec = _SPECS[site_type]
        site_id = f"{prefix}-{site_type.value.replace('_', '-')}-{n:04d}"
        lat, lon, place = _place(rng, site_type)
        count = min(rng.randint(*spec.devices), devices - len(out))
        name = f"{place}{spec.zh}{n + 1}号 ({spec.en} {n + 1})"
        ids = tuple(f"{prefix}-{spec.kind.value}-{n:04d}-{k:02d}" for k in range(count))
        site = Site(site_id, site_type, name, lat, lon, ids)
        sites.append(site)
        for device_id in ids:
            baseline = Baseline(device_id, spec.metrics, seed, dry=site_type is SiteType.UNDERPASS)
            east, north = (rng.uniform(-spec.spread_m, spec.spread_m) for _ in range(2))
            d_lat, d_lon = clamp(*offset(lat, lon, east, north))
            record = Device(
                id=device_id,
                kind=spec.kind,
                site_id=site_id,
                site_name=name,
                lat=round(d_lat, 6),
                lon=round(d_lon, 6),
                interval_s=interval_s,
                departments=[spec.department],
                thresholds=_thresholds(rng, site_type, baseline),
                meta={"site_type": site_type.value, "model": _model(spec.kind), "simulated": "true"}
                | ({"floor": str(rng.randint(1, 40))} if site_type is SiteType.HIGH_RISE else {}),
            )
            out.append(SimDevice(record, site, east, north, baseline))
    return Fleet(seed, prefix, interval_s, tuple(sites), tuple(out))


def _place(rng: random.Random, site_type: SiteType) -> tuple[float, float, str]:
    if site_type is SiteType.RIVER_GAUGE:
        (zh, _en), course = rng.choice(sorted(RIVERS.items()))
        i = rng.randrange(len(course) - 1)
        f = rng.random()
        lat = course[i][0] + f * (course[i + 1][0] - course[i][0])
        lon = course[i][1] + f * (course[i + 1][1] - course[i][1])
        return round(lat, 6), round(lon, 6), zh
    centre = rng.choice(SUBDISTRICTS)
    lat, lon = clamp(*offset(centre.lat, centre.lon, rng.gauss(0, 1500), rng.gauss(0, 1500)))
    return round(lat, 6), round(lon, 6), centre.zh


def _thresholds(rng: random.Random, site_type: SiteType, baseline: Baseline) -> dict[str, dict[Level, float]]:
    if site_type is SiteType.RIVER_GAUGE:
        warning = round(baseline.base["level_m"] + rng.uniform(1.2, 2.0), 2)
        return {"level_m": {Level.ORANGE: warning, Level.RED: round(warning + rng.uniform(0.5, 1.0), 2)}}
    if site_type is SiteType.UNDERPASS:
        return {"level_m": {Level.ORANGE: UNDERPASS_LIMITS[0], Level.RED: UNDERPASS_LIMITS[1]}}
    limits = _STRUCTURE_LIMITS.get(site_type, {})
    return {m: {Level.ORANGE: o, Level.RED: r} for m, (o, r) in limits.items()}


def _model(kind: DeviceKind) -> str:
    return {
        DeviceKind.GAS: "SIM-GD200 catalytic/electrochemical",
        DeviceKind.WATER: "SIM-WL10 radar level gauge",
        DeviceKind.FIRE: "SIM-FD5 smoke/heat detector",
        DeviceKind.STRUCTURAL: "SIM-ST3 inclinometer/displacement",
    }[kind]
