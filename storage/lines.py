"""The one line-protocol schema for readings, on InfluxDB 1.x and 2.x/3.x alike.

- measurement: the device's kind (``gas``, ``water``, ``fire``, ``structural``); health metrics (``battery_pct``,
  ``rssi_dbm``) go to their own measurement ``device_health``, so a kind's measurement holds only hazard values;
- health is sampled: a device's ``device_health`` point is written when a health value changed by more than its
  dead band (``HEALTH_DEADBAND``: 1 % battery, 6 dB RSSI) since the last one written, when a health metric appeared
  or went, or once ``health_every_ms`` (a minute) after the last one. A reading is one point, not two; battery
  history keeps every whole percent and at least a point a minute. The memory is one entry per device, dropped with
  the series cache; after a restart or a rebalance a device's next reading writes its health again;
- tags: ``device_id``, ``site_id``, ``kind``, ``drill`` (``true``/``false``): bounded per device;
- fields: one per metric, floats as floats and booleans as booleans (``smoke``, ``flame``);
- timestamp: the reading's event time in epoch **milliseconds** (write precision ``ms``).

A record read twice writes the same points (same series, same timestamp) again: storage is idempotent. Two
readings of one device with the same millisecond are one point (the later wins): the gateway keeps the times it
stamps on readings sent without ``ts`` apart, and the writer drops a reading delivered twice as two records
(``rules.dedup``), whose copy may carry another receive time.

Speed: the series part of a line (measurement and tags) is escaped once per device by influxdb-client's ``Point``
and cached; metric names are checked by the telemetry contract (``[a-z][a-z0-9_]*``) and need no escaping, so a
reading costs one f-string.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

from influxdb_client.client.write.point import Point

from core.contracts.catalogue import DeviceKind
from core.contracts.device import Device
from core.contracts.telemetry import ReadingDict

HEALTH_MEASUREMENT: Final = "device_health"
HEALTH_METRICS: Final = frozenset({"battery_pct", "rssi_dbm"})
#: A health value that moved less than this since the last point written is not written again (until a minute has
#: passed). Ours: battery gauges report whole or tenth percents and their noise is below 1 %; RSSI jitters by a few
#: dB between readings of a device that has not moved (the simulator's baseline: sigma 2 dB), 6 dB is a real change.
HEALTH_DEADBAND: Final = {"battery_pct": 1.0, "rssi_dbm": 6.0}
HEALTH_EVERY_MS: Final = 60_000
UNKNOWN_KIND: Final = "unregistered"  # a reading of a device the registry no longer knows (deleted meanwhile)
MEASUREMENTS: Final = (*[k.value for k in DeviceKind], HEALTH_MEASUREMENT, UNKNOWN_KIND)

_Point: Any = Point  # influxdb-client is unannotated
#: Where ``LineBuilder.lines`` hands each point: (series, fields, ts in ms).
Fold = Callable[[str, dict[str, float | bool], int], None]


def series(measurement: str, device_id: str, site_id: str, kind: str, drill: bool) -> str:
    """``measurement,tag=value,...`` escaped by influxdb-client (the library's own escaping, not ours)."""
    tags = {"device_id": device_id, "site_id": site_id or "-", "kind": kind, "drill": "true" if drill else "false"}
    point = _Point(measurement)
    for key, value in tags.items():
        point.tag(key, value)
    line: str = point.field("_", 0).to_line_protocol()
    return line[: line.rindex(" _=")]


def _finite(value: float | bool) -> bool:
    """Booleans, and numbers InfluxDB takes (the gateway refuses NaN and infinities: never a line it would reject)."""
    return isinstance(value, bool) or math.isfinite(value)


def _field(name: str, value: float | bool) -> str:
    if isinstance(value, bool):
        return f"{name}={'true' if value else 'false'}"
    return f"{name}={float(value)!r}"


class LineBuilder:
    """Readings to lines, with the series of each (device, drill) cached. ``lookup`` gives a device's record."""

    def __init__(
        self,
        lookup: Callable[[str], Device | None],
        cache_limit: int = 200_000,
        health_every_ms: int = HEALTH_EVERY_MS,
    ) -> None:
        self._lookup = lookup
        self._cache: dict[tuple[str, bool], tuple[str, str]] = {}
        self._cache_limit = cache_limit
        self._health_every_ms = health_every_ms
        #: (device, drill) -> (health values, event time) of the last health point written
        self._health: dict[tuple[str, bool], tuple[dict[str, float | bool], int]] = {}

    def forget(self, device_id: str) -> None:
        """The device record changed (its site, say): build its series again."""
        for drill in (False, True):
            self._cache.pop((device_id, drill), None)
            self._health.pop((device_id, drill), None)

    def lines(self, reading: ReadingDict, fold: Fold | None = None) -> list[str]:
        """The reading's lines; each point is also given to ``fold`` (series, its fields, ``ts``) when there is
        one (the writer's hourly aggregates, ``storage.aggregate``)."""
        key = (reading["device_id"], bool(reading.get("drill", False)))
        prefixes = self._cache.get(key)
        if prefixes is None:
            prefixes = self._prefixes(*key)
        hazard, health = prefixes
        ts = reading["ts"]
        values = reading["values"]
        main = {name: v for name, v in values.items() if name not in HEALTH_METRICS and _finite(v)}
        out = []
        if main:
            out.append(f"{hazard} {','.join(_field(name, v) for name, v in main.items())} {ts}")
            if fold is not None:
                fold(hazard, main, ts)
        side = {name: v for name, v in values.items() if name in HEALTH_METRICS}
        if side and self._health_due(key, side, ts):
            kept = {name: v for name, v in side.items() if _finite(v)}
            if kept:
                out.append(f"{health} {','.join(_field(name, v) for name, v in kept.items())} {ts}")
                if fold is not None:
                    fold(health, kept, ts)
        return out

    def _health_due(self, key: tuple[str, bool], values: dict[str, float | bool], ts: int) -> bool:
        """Whether this reading's health values are written (module docstring); remembers them if so."""
        last = self._health.get(key)
        if last is not None and abs(ts - last[1]) < self._health_every_ms and last[0].keys() == values.keys():
            written = last[0]
            if all(abs(float(v) - float(written[n])) < HEALTH_DEADBAND.get(n, 0.0) for n, v in values.items()):
                return False
        if len(self._health) >= self._cache_limit:
            self._health.clear()
        self._health[key] = (values, ts)
        return True

    def _prefixes(self, device_id: str, drill: bool) -> tuple[str, str]:
        device = self._lookup(device_id)
        kind = device.kind.value if device is not None else UNKNOWN_KIND
        site = device.site_id if device is not None else ""
        prefixes = (
            series(kind, device_id, site, kind, drill),
            series(HEALTH_MEASUREMENT, device_id, site, kind, drill),
        )
        if device is not None:  # an unknown device may be registered a moment later: do not remember it
            if len(self._cache) >= self._cache_limit:
                self._cache.clear()
            self._cache[(device_id, drill)] = prefixes
        return prefixes
