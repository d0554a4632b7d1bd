"""The registry service: one place that changes devices, keeping the store, the Kafka feed and the MQTT accounts
in step.

Order matters for safety. Creating: the MQTT account first (if the broker refuses, nothing is stored), then the
store, then the feed. Deleting: the account first, so the device is cut off at once even if the rest fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.contracts.catalogue import Department, DeviceKind
from core.contracts.device import Device
from devices.feed import DevicePublisher
from devices.health import Health, HealthTracker, Status
from devices.mqtt_accounts import AccountBackend, AccountError, Credentials
from devices.store import DeviceStore, Page, Sort

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Saved:
    device: Device
    created: bool
    credentials: Credentials | None


class Registry:
    def __init__(
        self,
        store: DeviceStore,
        feed: DevicePublisher,
        accounts: AccountBackend | None,
        health: HealthTracker | None = None,
    ) -> None:
        self._store = store
        self._feed = feed
        self._accounts = accounts
        self.health = health or HealthTracker()
        # One change at a time: two PUTs of the same new id must not both issue an account.
        self._changing = asyncio.Lock()

    async def republish(self) -> int:
        """Publish every stored record (the one-machine broker forgot them when it stopped)."""
        devices = self._store.all()
        if devices:
            await self._feed.publish(devices)
        logger.info("registry: published %d devices", len(devices))
        return len(devices)

    async def put(self, device: Device) -> Saved:
        return (await self.put_many([device]))[0]

    async def put_many(self, devices: list[Device]) -> list[Saved]:
        """Create or replace; new devices get MQTT credentials, returned here once."""
        async with self._changing:
            new = [d.id for d in devices if self._store.get(d.id) is None]
            issued: dict[str, Credentials] = {}
            accounts = self._accounts
            if new and accounts is not None:
                issued = {c.username: c for c in await accounts.create_devices(new)}
            try:
                self._store.put_many(devices)
            except Exception:
                # Their one-time passwords would be lost with this error: take the accounts back, so that the same
                # request can simply be repeated.
                if accounts is not None:
                    for device_id in issued:
                        with contextlib.suppress(AccountError):
                            await accounts.delete_device(device_id)
                raise
        fresh = set(new)
        await self._feed.publish(devices)
        return [Saved(d, d.id in fresh, issued.get(d.id)) for d in devices]

    async def delete(self, device_id: str) -> bool:
        async with self._changing:
            if self._store.get(device_id) is None:
                return False
            if self._accounts is not None:
                await self._accounts.delete_device(device_id)
            self._store.delete(device_id)
        await self._feed.remove(device_id)
        self.health.forget(device_id)
        return True

    def get(self, device_id: str) -> Device | None:
        return self._store.get(device_id)

    def query(
        self,
        *,
        kind: DeviceKind | None = None,
        site_id: str | None = None,
        department: Department | None = None,
        status: Status | None = None,
        text: str | None = None,
        sort: Sort = Sort.ID,
        offset: int = 0,
        limit: int = 100,
    ) -> Page:
        """The store's ``query``; ``status`` (health is held here, not in the store) becomes the ids of the
        devices that have it now, found from (id, interval) pairs without reading a record."""
        ids = None
        if status is not None:
            now = int(time.time() * 1000)
            ids = {i for i, s in self.health.statuses(self._store.intervals(), now) if s == status}
        return self._store.query(
            kind=kind, site_id=site_id, department=department, ids=ids, text=text, sort=sort, offset=offset, limit=limit
        )

    def health_counts(self) -> dict[Status, int]:
        return self.health.counts(self._store.intervals(), int(time.time() * 1000))

    def health_of(self, device_id: str) -> Health | None:
        device = self._store.get(device_id)
        return None if device is None else self.health.health(device, int(time.time() * 1000))


class DeviceCounts(Collector):
    """``smartcity_devices{status}``: registered devices online and offline, counted when Prometheus scrapes, at
    most every ``every_s`` (counting a 100,000-device registry reads the store once, ~0.1 s, on the API's loop)."""

    name = "smartcity_devices"
    documentation = "Registered devices by health status (online, offline)"

    def __init__(self, registry: Registry, prometheus: CollectorRegistry, *, every_s: float = 5.0) -> None:
        self._registry = registry
        self._every_s = every_s
        self._cached: tuple[float, dict[Status, int]] | None = None
        prometheus.register(self)

    def counts(self) -> dict[Status, int]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] >= self._every_s:
            self._cached = (now, self._registry.health_counts())
        return self._cached[1]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=["status"])
        for status, count in self.counts().items():
            family.add_metric([status.value], count)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation, labels=["status"])
