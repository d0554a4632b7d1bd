"""Device health: last seen, last values, battery, signal, and online/offline. Pure: no I/O.

A device is **offline** when its own status topic says so (its last will), or when it has been silent for three
reporting intervals, or when it was registered and never heard from; otherwise **online**. The same rule drives
the offline alerts of the rules engine (issue 4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel

from core.contracts import ReadingDict
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

    def statuses(self, intervals: Iterable[tuple[str, float]], now_ms: int) -> Iterator[tuple[str, Status]]:
        """(id, status) from (id, reporting interval) pairs, without building a ``Health`` for each: a metrics
        scrape counts the whole registry, and the devices list filters it by status."""
        unseen = _Seen()
        for device_id, interval_s in intervals:
            yield device_id, self._status(interval_s, self._seen.get(device_id, unseen), now_ms)[0]

    def counts(self, intervals: Iterable[tuple[str, float]], now_ms: int) -> dict[Status, int]:
        """Devices by status from (id, reporting interval) pairs."""
        counted = dict.fromkeys(Status, 0)
        for _, status in self.statuses(intervals, now_ms):
            counted[status] += 1
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


#: The longest a device's last-seen time may lag behind its readings in the health topic.
HEALTH_EVERY_MS = 60_000


class HealthSeen(BaseModel):
    """One device's entry in a health record: its newest reading's arrival time and values."""

    device_id: str
    last_seen: int
    values: dict[str, float | bool]


class HealthBatch(BaseModel):
    """The value of one record of the ``devices.health`` topic: entries of devices that share a readings partition,
    written by the stream worker that owns it, read by the API (``devices.feed.follow_health``)."""

    v: Literal[1] = 1
    devices: list[HealthSeen]


class HealthChanges:
    """What the stream worker tells the API about device health, without sending it every reading. Pure: no I/O.

    A device's entry is due at its first reading here, when its alarm changed (``force``), and then when its last
    sent time is half its reporting interval old (at most ``HEALTH_EVERY_MS``): the API's last seen lags a reading
    by at most that, well inside the three silent intervals that make a device offline (``SILENT_INTERVALS``), and a
    device reporting every second costs one entry a minute, not sixty. Due entries wait per partition for ``take``,
    the newest reading of a device replacing an older one."""

    def __init__(self) -> None:
        self._sent: dict[str, int] = {}  # device id -> last seen it was last sent with
        self._due: dict[int, dict[str, HealthSeen]] = {}

    def reading(self, partition: int, reading: ReadingDict, interval_s: float | None, force: bool = False) -> None:
        device_id, received_at = reading["device_id"], reading["received_at"]
        sent = self._sent.get(device_id)
        every = HEALTH_EVERY_MS if interval_s is None else min(HEALTH_EVERY_MS, interval_s * 500)
        if sent is not None and (received_at < sent or (not force and received_at - sent < every)):
            return  # not due; or an older reading, redelivered or late: the newer one stands
        self._sent[device_id] = received_at
        entry = HealthSeen(device_id=device_id, last_seen=received_at, values=reading["values"])
        self._due.setdefault(partition, {})[device_id] = entry

    def readings(
        self, partition: int, batch: list[ReadingDict], device_of: Callable[[str], Device | None], alarmed: set[str]
    ) -> None:
        """``reading`` for each reading of a record; ``alarmed``: devices whose alarm changed with it."""
        for reading in batch:
            device_id = reading["device_id"]
            device = device_of(device_id)
            self.reading(partition, reading, device.interval_s if device else None, device_id in alarmed)

    def take(self) -> dict[int, HealthBatch]:
        """What is due, by partition; emptied."""
        taken = {p: HealthBatch(devices=list(due.values())) for p, due in self._due.items() if due}
        self._due.clear()
        return taken

    def forget_partitions(self, partitions: set[int]) -> None:
        """Partitions moved away: their entries are the new owner's to send (it sends each device's first reading)."""
        for p in partitions:
            self._due.pop(p, None)

    def forget_device(self, device_id: str) -> None:
        self._sent.pop(device_id, None)
