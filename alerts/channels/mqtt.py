"""MQTT ``alerts/{department}``, QoS 1: the contract's channel. A send completes when the broker's PUBACK arrives.

The alert JSON is the message (``Alert``, the whole state), so a department's subscriber needs nothing else; the
``(id, seq)`` pair lets it drop a repeat after a redelivery.
"""

from __future__ import annotations

import asyncio

from alerts.channels.base import Delivery, DeliveryError
from smartcity.contracts.alert import ALERTS_MQTT_TOPIC, Alert
from smartcity.errors import MqttUnavailable
from smartcity.mqtt import AsyncMqttClient


class MqttChannel:
    name = "mqtt"

    def __init__(self, client: AsyncMqttClient, *, timeout_s: float = 10.0) -> None:
        self._client = client
        self._timeout_s = timeout_s

    async def start(self) -> None:
        await self._client.start()

    def targets(self, alert: Alert, department: str) -> list[str]:
        return [ALERTS_MQTT_TOPIC.format(department=department)]

    async def send(self, delivery: Delivery) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._client.publish_acked(delivery.target, delivery.alert.model_dump_json().encode())
        except MqttUnavailable as exc:
            raise DeliveryError(str(exc), permanent="not authori" in str(exc).lower()) from exc
        except TimeoutError as exc:
            raise DeliveryError(f"no PUBACK for {delivery.target} within {self._timeout_s:.0f} s") from exc

    async def close(self) -> None:
        await self._client.close()
