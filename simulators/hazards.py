"""What each hazard does to the fleet's readings, and the ground truth it must produce.

``resolve`` places a scenario's hazard on a concrete fleet (which site, which detectors) and returns an ``Effect``:
it changes the values of the devices it touches at scenario second ``s``, may silence a device, add malformed
messages or push its clock ahead, and carries the hazard's ``Truth``: what happened, where, from when, and which
alerts and refusals officers and devices must get.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

from core.contracts.catalogue import Department, DeviceKind, Level
from core.contracts.refusal import RefusalReason
from simulators.fleet import Fleet, SimDevice, Site, SiteType
from simulators.scenario import (
    DeviceFault,
    ExpectRefusal,
    GasLeak,
    Hazard,
    HighRiseFire,
    ScenarioError,
    StructureTilt,
    TyphoonRain,
)

#: What a misbehaving firmware sends, in turn (each refused with the reason beside it).
MALFORMED: tuple[tuple[bytes, RefusalReason], ...] = (
    (b'{"values": {"ch4_lel": 3.1}', RefusalReason.INVALID_JSON),  # truncated in transit
    (b'{"values": {"ch4_lel": NaN}}', RefusalReason.NON_FINITE),  # a failed sensor read, printed as NaN
    (b'{"values": {"ch4_lel": "3.1"}}', RefusalReason.BAD_VALUE_TYPE),  # a number sent as text
    (b'{"values": {}}', RefusalReason.NO_VALUES),
    (b'{"value": {"ch4_lel": 3.1}}', RefusalReason.UNKNOWN_FIELD),  # a typo in the field name
)


@dataclass(frozen=True, slots=True)
class Expected:
    """One resolved expectation: an alert of ``rule`` on one of ``devices`` (or on ``site``), or a refusal."""

    hazard: str  # the hazard's label
    within_s: float
    rule: str | None = None
    level: Level | None = None
    departments: frozenset[Department] = frozenset()
    devices: tuple[str, ...] = ()
    site: str | None = None
    refusal: RefusalReason | None = None

    @property
    def name(self) -> str:
        what = self.refusal.value if self.refusal else f"{self.rule} {self.level}"
        return f"{what} @ {self.site or ','.join(self.devices)}"


@dataclass(frozen=True)
class Truth:
    label: str
    type: str
    at_s: float
    sites: tuple[str, ...]
    devices: tuple[str, ...]  # every device the hazard touches: alerts there are related, not false
    expected: tuple[Expected, ...]


@dataclass
class Effect:
    truth: Truth
    at_s: float

    def apply(self, device: SimDevice, s: float, values: dict[str, float | bool]) -> None:
        """Change the reading of ``device`` at scenario second ``s`` in place."""

    def silent(self, device_id: str, s: float) -> bool:
        return False

    def skew_ms(self, device_id: str, s: float) -> int:
        return 0

    def malformed(self, device_id: str, s: float, last_s: float) -> list[bytes]:
        """Malformed messages to send between the device's previous reading (``last_s``) and this one."""
        return []


def _ramp(x: float) -> float:
    return min(1.0, max(0.0, x))


@dataclass
class _GasLeak(Effect):
    hazard: GasLeak = field(kw_only=True)
    source: SimDevice = field(kw_only=True)

    def apply(self, device: SimDevice, s: float, values: dict[str, float | bool]) -> None:
        if device.site.id != self.source.site.id:
            return
        h = self.hazard
        share, r = plume_share(h, self.source, device)
        started = self.at_s + r / h.wind.speed_m_s
        level = _ramp((s - started) / h.ramp_s)
        if h.lasts_s is not None:
            level = min(level, _ramp(1 - (s - started - h.lasts_s) / h.ramp_s))
        ppm = h.peak_lel * share * level
        if "ch4_lel" in values and ppm > float(values["ch4_lel"]):
            values["ch4_lel"] = round(ppm, 2)


def plume_share(leak: GasLeak, source: SimDevice, device: SimDevice) -> tuple[float, float]:
    """The share of the leak's peak that reaches ``device`` (halving every ``spread_m``, mostly downwind), and
    its distance from the source in metres."""
    de, dn = device.east_m - source.east_m, device.north_m - source.north_m
    r = math.hypot(de, dn)
    downwind = math.radians((leak.wind.from_deg + 180) % 360)  # the direction the wind blows to
    cos = (de * math.sin(downwind) + dn * math.cos(downwind)) / r if r else 1.0
    return 0.5 ** (r / leak.spread_m) * (0.3 + 0.7 * max(0.0, cos)), r


def _leak_source(leak: GasLeak, site: Site, fleet: Fleet, label: str) -> SimDevice:
    """The named detector, or the one whose plume reaches a neighbour best (a leak worth a drill)."""
    detectors = [fleet.by_id[d] for d in site.device_ids]
    if leak.source is not None:
        return fleet.by_id[_device_at(site, leak.source, "detectors", label)]

    def best_neighbour(source: SimDevice) -> float:
        return max((plume_share(leak, source, d)[0] for d in detectors if d is not source), default=0.0)

    return max(detectors, key=best_neighbour)


@dataclass
class _Typhoon(Effect):
    hazard: TyphoonRain = field(kw_only=True)
    targets: dict[str, float] = field(kw_only=True)  # device id -> level to reach

    def apply(self, device: SimDevice, s: float, values: dict[str, float | bool]) -> None:
        progress = _ramp((s - self.at_s) / self.hazard.rise_s)
        if "rain_mm_h" in values:
            values["rain_mm_h"] = round(float(values["rain_mm_h"]) + self.hazard.peak_rain_mm_h * progress, 1)
        if "level_m" not in values:
            return
        base = device.baseline.base["level_m"]
        target = self.targets.get(device.id)
        if target is None:  # every other gauge rises too, but stays well below its warning level
            warning = device.record.thresholds.get("level_m", {}).get(Level.ORANGE, base + 1.0)
            target = base + 0.3 * (warning - base)
        values["level_m"] = round(float(values["level_m"]) + (target - base) * progress, 3)


@dataclass
class _Fire(Effect):
    hazard: HighRiseFire = field(kw_only=True)
    detector: str = field(kw_only=True)

    def apply(self, device: SimDevice, s: float, values: dict[str, float | bool]) -> None:
        if device.id != self.detector or s < self.at_s:
            return
        values["smoke"] = True
        heating = s - self.at_s - self.hazard.heat_after_s
        if heating > 0:
            rise = self.hazard.heat_rise_c_per_min * heating / 60
            values["temp_c"] = round(min(self.hazard.peak_c, float(values["temp_c"]) + rise), 2)


@dataclass
class _Tilt(Effect):
    hazard: StructureTilt = field(kw_only=True)
    device_id: str = field(kw_only=True)

    def apply(self, device: SimDevice, s: float, values: dict[str, float | bool]) -> None:
        if device.id == self.device_id and s > self.at_s and "tilt_deg" in values:
            extra = min(self.hazard.peak_deg, self.hazard.rate_deg_per_h * (s - self.at_s) / 3600)
            values["tilt_deg"] = round(float(values["tilt_deg"]) + extra, 4)


@dataclass
class _Fault(Effect):
    hazard: DeviceFault = field(kw_only=True)
    device_id: str = field(kw_only=True)
    stuck_at: dict[str, float | bool] | None = None

    def _on(self, device_id: str, s: float) -> bool:
        return device_id == self.device_id and s >= self.at_s

    def apply(self, device: SimDevice, s: float, values: dict[str, float | bool]) -> None:
        if not self._on(device.id, s):
            return
        fault = self.hazard.fault
        if fault == "flat_battery":
            # a cell past its knee: the voltage collapses within seconds
            fallen = float(values["battery_pct"]) - 10 * (s - self.at_s)
            values["battery_pct"] = round(max(self.hazard.battery_pct, fallen), 1)
        elif fault == "stuck":
            if self.stuck_at is None:
                self.stuck_at = {k: v for k, v in values.items() if k not in ("battery_pct", "rssi_dbm")}
            values.update(self.stuck_at)
        elif fault == "spikes" and _crossed(self.at_s, self.hazard.every_s, s - device.record.interval_s, s):
            values.update(self.hazard.spike)

    def silent(self, device_id: str, s: float) -> bool:
        return self.hazard.fault == "offline" and self._on(device_id, s)

    def skew_ms(self, device_id: str, s: float) -> int:
        return int(self.hazard.skew_s * 1000) if self.hazard.fault == "clock_skew" and self._on(device_id, s) else 0

    def malformed(self, device_id: str, s: float, last_s: float) -> list[bytes]:
        if self.hazard.fault != "malformed" or not self._on(device_id, s):
            return []
        first = math.ceil(max(0.0, last_s - self.at_s) / self.hazard.every_s)
        count = int((s - self.at_s) // self.hazard.every_s) + 1
        return [
            MALFORMED[n % len(MALFORMED)][0]
            for n in range(first, count)
            if self.at_s + n * self.hazard.every_s > last_s
        ]


def _crossed(at_s: float, every_s: float, after: float, upto: float) -> bool:
    """Whether a tick ``at_s + n * every_s`` lies in (after, upto]."""
    if upto < at_s:
        return False
    n = math.floor((upto - at_s) / every_s)
    return at_s + n * every_s > after


def _pick(items: list[Site], index: int, what: str, label: str) -> Site:
    if index >= len(items):
        raise ScenarioError(f"{label}: the fleet has {len(items)} {what} site(s); there is no number {index}")
    return items[index]


def _device_at(site: Site, index: int, what: str, label: str) -> str:
    if index >= len(site.device_ids):
        raise ScenarioError(f"{label}: {site.id} has {len(site.device_ids)} {what}; there is no number {index}")
    return site.device_ids[index]


def _expected(
    label: str, hazard: Hazard, source: str, site: str | None, touched: tuple[str, ...]
) -> tuple[Expected, ...]:
    out: list[Expected] = []
    for e in hazard.expect:
        if isinstance(e, ExpectRefusal):
            out.append(Expected(label, e.within_s, devices=(source,), refusal=e.refusal))
            continue
        alert = partial(Expected, label, e.within_s, rule=e.rule, level=e.level, departments=frozenset(e.departments))
        if e.where == "site":
            out.append(alert(site=site))
        elif e.where == "source":
            out.append(alert(devices=(source,)))
        elif e.where == "each":
            out.extend(alert(devices=(d,)) for d in touched)
        else:
            out.append(alert(devices=touched))
    return tuple(out)


def resolve(hazard: Hazard, fleet: Fleet, label: str) -> Effect:
    """Place ``hazard`` on ``fleet``; a hazard the fleet cannot hold raises ``ScenarioError``."""
    if isinstance(hazard, GasLeak):
        site = _pick(fleet.sites_of(hazard.site_type), hazard.site, hazard.site_type, label)
        source = _leak_source(hazard, site, fleet, label)
        truth = _truth(label, hazard, [site], site.device_ids, source.id, site.id)
        return _GasLeak(truth, hazard.at_s, hazard=hazard, source=source)
    if isinstance(hazard, TyphoonRain):
        targets: dict[str, float] = {}
        sites: list[Site] = []
        for t in hazard.gauges:
            site = _pick(fleet.sites_of(t.site_type), sum(s.type is t.site_type for s in sites), t.site_type, label)
            sites.append(site)
            for device_id in site.device_ids:
                limits = fleet.by_id[device_id].record.thresholds["level_m"]
                targets[device_id] = limits[Level.ORANGE if t.reach == "warning" else Level.RED] + 0.15
        gauges = tuple(d.id for d in fleet.of_kind(DeviceKind.WATER))
        truth = _truth(label, hazard, sites, gauges, next(iter(targets)), None, touched=tuple(targets))
        return _Typhoon(truth, hazard.at_s, hazard=hazard, targets=targets)
    if isinstance(hazard, HighRiseFire):
        site = _pick(fleet.sites_of(SiteType.HIGH_RISE), hazard.site, SiteType.HIGH_RISE, label)
        detector = _device_at(site, hazard.detector, "detectors", label)
        truth = _truth(label, hazard, [site], site.device_ids, detector, site.id)
        return _Fire(truth, hazard.at_s, hazard=hazard, detector=detector)
    if isinstance(hazard, StructureTilt):
        site = _pick(fleet.sites_of(hazard.site_type), hazard.site, hazard.site_type, label)
        device_id = _device_at(site, hazard.device, "sensors", label)
        if "tilt_deg" not in fleet.by_id[device_id].baseline.metrics:
            raise ScenarioError(f"{label}: {device_id} ({hazard.site_type}) has no inclinometer")
        truth = _truth(label, hazard, [site], (device_id,), device_id, site.id)
        return _Tilt(truth, hazard.at_s, hazard=hazard, device_id=device_id)
    of_kind = fleet.of_kind(hazard.kind)
    if hazard.device >= len(of_kind):
        raise ScenarioError(f"{label}: the fleet has {len(of_kind)} {hazard.kind} devices; no number {hazard.device}")
    device = of_kind[hazard.device]
    truth = _truth(label, hazard, [device.site], (device.id,), device.id, device.site.id)
    return _Fault(truth, hazard.at_s, hazard=hazard, device_id=device.id)


def _truth(
    label: str,
    hazard: Hazard,
    sites: list[Site],
    devices: tuple[str, ...],
    source: str,
    site: str | None,
    touched: tuple[str, ...] | None = None,
) -> Truth:
    expected = _expected(label, hazard, source, site, touched or devices)
    return Truth(label, hazard.type, hazard.at_s, tuple(s.id for s in sites), devices, expected)
