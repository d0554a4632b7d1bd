"""Device health: last seen, last values, battery, signal, and online/offline. Pure: no I/O.

A device is **offline** when its own status topic says so (its last will), or when it has been silent for three
reporting intervals, or when it was registered and never heard from; otherwise **online**. The same rule drives
the offline alerts of the rules engine (issue 4).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel

from core.contracts.device import Device

SILENT_INTERVALS = 3


class Status(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Health(BaseModel):
    """What the API shows for a device."""

    device_id: str
    status: Status
    reason: str
    last_seen: int | None = None
    last_values: dict[str, float | bool] = {}
    battery_pct: float | None = None
    rssi_dbm: float | None = None
    status_topic: str | None = None


@dataclass
class _Seen:
    last_seen: int | None = None
    last_values: dict[str, float | bool] = field(default_factory=dict)
    status_topic: str | None = None


class HealthTracker:
    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}

    def reading(self, device_id: str, received_at: int, values: dict[str, float | bool]) -> None:
        seen = self._seen.setdefault(device_id, _Seen())
        if seen.last_seen is None or received_at >= seen.last_seen:
            seen.last_seen = received_at
            seen.last_values = {**seen.last_values, **values}

    def status(self, device_id: str, text: str) -> None:
        self._seen.setdefault(device_id, _Seen()).status_topic = text.strip().lower() or None

    def forget(self, device_id: str) -> None:
        self._seen.pop(device_id, None)

    @staticmethod
    def _status(interval_s: float, seen: _Seen, now_ms: int) -> tuple[Status, str]:
        if seen.status_topic == "offline":
            return Status.OFFLINE, "the device's status topic says offline (last will)"
        if seen.last_seen is None:
            return Status.OFFLINE, "registered, never heard from"
        if now_ms - seen.last_seen > SILENT_INTERVALS * interval_s * 1000:
            return Status.OFFLINE, f"silent for more than {SILENT_INTERVALS} x {interval_s:g} s"
        return Status.ONLINE, "reporting"

    def counts(self, intervals: Iterable[tuple[str, float]], now_ms: int) -> dict[Status, int]:
        """Devices by status from (id, reporting interval) pairs, without building a ``Health`` for each: a
        metrics scrape counts the whole registry."""
        counted = dict.fromkeys(Status, 0)
        unseen = _Seen()
        for device_id, interval_s in intervals:
            counted[self._status(interval_s, self._seen.get(device_id, unseen), now_ms)[0]] += 1
        return counted

    def health(self, device: Device, now_ms: int) -> Health:
        seen = self._seen.get(device.id, _Seen())
        values = seen.last_values
        status, reason = self._status(device.interval_s, seen, now_ms)
        battery, rssi = values.get("battery_pct"), values.get("rssi_dbm")
        return Health(
            device_id=device.id,
            status=status,
            reason=reason,
            last_seen=seen.last_seen,
            last_values=values,
            battery_pct=float(battery) if isinstance(battery, (int, float)) else None,
            rssi_dbm=float(rssi) if isinstance(rssi, (int, float)) else None,
            status_topic=seen.status_topic,
        )
