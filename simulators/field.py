"""The simulated fleet in the field: registered through the HTTP API, each device its own MQTT client.

``register`` puts the fleet's records with ``POST /api/devices/import`` (5,000 a request) and keeps the MQTT
credentials the registry issues for new devices; a device that already existed keeps its old password, which the
registry never shows again, so it is deleted and created afresh (a simulated device owns nothing worth keeping).

``FieldDevices`` connects one MQTT 5 client per device with its own username and password, the way firmware does
(docs/firmware.md): a retained ``offline`` will on ``devices/{id}/status``, ``online`` published retained on
connect, readings at QoS 1. They all run on one asyncio loop (``core.mqtt.AsyncMqttClient``), no thread per
device. ``go_offline`` drops a device the way a lost link does: the broker publishes its will.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial

import httpx
from pydantic import SecretStr

from core.contracts import STATUS_TOPIC, TELEMETRY_TOPIC
from core.mqtt import AsyncMqttClient
from core.settings import MqttConnection
from simulators.fleet import Fleet

logger = logging.getLogger(__name__)

_CHUNK = 5000


@dataclass(frozen=True)
class Target:
    """Where the platform is, and the operator's keys to it."""

    api_url: str
    api_token: str
    mqtt_url: str
    admin_password: str
    admin_username: str = "admin"

    def http(self, timeout: float = 60) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.api_token}"}
        return httpx.AsyncClient(base_url=self.api_url, headers=headers, timeout=timeout)

    def mqtt(self, username: str, password: str) -> MqttConnection:
        return MqttConnection(mqtt_url=self.mqtt_url, mqtt_username=username, mqtt_password=SecretStr(password))


async def register(http: httpx.AsyncClient, fleet: Fleet) -> dict[str, str]:
    """Register the fleet; the MQTT password of every device, by id."""
    records = [r.model_dump(mode="json") for r in fleet.records()]
    passwords: dict[str, str] = {}
    for start in range(0, len(records), _CHUNK):
        chunk = records[start : start + _CHUNK]
        answer = await http.post("/api/devices/import", json=chunk)
        answer.raise_for_status()
        stale = []
        for saved in answer.json():
            if saved.get("credentials"):
                passwords[saved["device"]["id"]] = saved["credentials"]["password"]
            else:
                stale.append(saved["device"]["id"])
        if stale:  # registered by an earlier run: its password is gone, so issue a new one
            for device_id in stale:
                (await http.delete(f"/api/devices/{device_id}")).raise_for_status()
            again = await http.post("/api/devices/import", json=[r for r in chunk if r["id"] in set(stale)])
            again.raise_for_status()
            passwords |= {s["device"]["id"]: s["credentials"]["password"] for s in again.json()}
    return passwords


async def unregister(http: httpx.AsyncClient, fleet: Fleet) -> None:
    for device in fleet.devices:
        answer = await http.delete(f"/api/devices/{device.id}")
        if answer.status_code not in (204, 404):
            answer.raise_for_status()


class FieldDevices:
    def __init__(self, target: Target, passwords: dict[str, str]) -> None:
        self.clients = {
            device_id: AsyncMqttClient(
                target.mqtt(device_id, password),
                f"sim-{device_id}",
                clean_start=True,
                will=(STATUS_TOPIC.format(device_id=device_id), b"offline"),
                on_connected=partial(self._online, device_id),
            )
            for device_id, password in passwords.items()
        }
        self.offline: set[str] = set()

    def _online(self, device_id: str, _session_present: bool) -> None:
        self.clients[device_id].publish(STATUS_TOPIC.format(device_id=device_id), b"online", retain=True)

    async def connect(self, timeout: float = 30) -> None:
        for client in self.clients.values():
            await client.start()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(c.connected.wait() for c in self.clients.values()))
        except TimeoutError:
            missing = [d for d, c in self.clients.items() if not c.connected.is_set()]
            raise TimeoutError(f"{len(missing)} simulated devices could not connect, e.g. {missing[:3]}") from None

    def send(self, device_id: str, payload: bytes) -> None:
        self.clients[device_id].publish(TELEMETRY_TOPIC.format(device_id=device_id), payload)

    async def go_offline(self, device_id: str) -> None:
        self.offline.add(device_id)
        await self.clients[device_id].close(with_will=True)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for d, c in self.clients.items() if d not in self.offline))
