"""MQTT ``alerts/{department}`` and ``incidents/{department}``, QoS 1: the contract's channel. A send completes when
the broker's PUBACK arrives.

The alert JSON is the message (``Alert``, the whole state), so a department's subscriber needs nothing else; the
``(id, seq)`` pair lets it drop a repeat after a redelivery. An incident's messages (``Incident``, whole state too)
go to ``incidents/{department}``.
"""

from __future__ import annotations

import asyncio

from alerts.channels.base import Delivery, DeliveryError, Message
from core.contracts.alert import ALERTS_MQTT_TOPIC, Alert
from core.contracts.incident import INCIDENTS_MQTT_TOPIC
from core.errors import MqttUnavailable
from core.mqtt import AsyncMqttClient


class MqttChannel:
    name = "mqtt"

    def __init__(self, client: AsyncMqttClient, *, timeout_s: float = 10.0) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._inflight: dict[tuple[str, int, str], asyncio.Future[None]] = {}

    async def start(self) -> None:
        await self._client.start()

    def targets(self, alert: Message, department: str) -> list[str]:
        topic = ALERTS_MQTT_TOPIC if isinstance(alert, Alert) else INCIDENTS_MQTT_TOPIC
        return [topic.format(department=department)]

    async def send(self, delivery: Delivery) -> None:
        """Publish once; a retry after a timeout waits for the same publish (paho keeps a QoS 1 message and sends
        it again after a reconnect), so a broker outage does not multiply the message."""
        key = (delivery.alert.id, delivery.alert.seq, delivery.target)
        future = self._inflight.get(key)
        if future is None:
            if not self._client.connected.is_set():
                try:
                    await asyncio.wait_for(self._client.connected.wait(), self._timeout_s)
                except TimeoutError as exc:
                    raise DeliveryError(f"not connected to the MQTT broker; {delivery.target} not sent") from exc
            future = self._client.publish_acked(delivery.target, delivery.alert.model_dump_json().encode())
            self._inflight[key] = future
            future.add_done_callback(lambda _f: self._inflight.pop(key, None))
        try:
            async with asyncio.timeout(self._timeout_s):
                await asyncio.shield(future)
        except MqttUnavailable as exc:
            raise DeliveryError(str(exc), permanent="not authori" in str(exc).lower()) from exc
        except TimeoutError as exc:
            raise DeliveryError(f"no PUBACK for {delivery.target} within {self._timeout_s:.0f} s") from exc

    async def close(self) -> None:
        await self._client.close()
