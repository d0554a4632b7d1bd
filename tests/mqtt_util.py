"""Real MQTT clients for tests: a QoS 1 publisher and a collecting subscriber (paho, v2 callback API)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

#: The operator account of the session's dynamic-security Mosquitto (tests/integration/conftest.py ``secured``).
CONTROL_USER, CONTROL_PASSWORD = "smartcity-control", "control-" + uuid.uuid4().hex


def _client(url: str, name: str) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{name}-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    parts = urlsplit(url)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    if not connected.wait(10):
        raise TimeoutError(f"could not connect to {url}")
    return client


@contextmanager
def publisher(url: str) -> Iterator[mqtt.Client]:
    client = _client(url, "test-pub")
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish_all(client: mqtt.Client, messages: list[tuple[str, bytes]], qos: int = 1, timeout: float = 60) -> None:
    """Publish and wait until the broker acknowledged every message."""
    infos = [client.publish(topic, payload, qos=qos) for topic, payload in messages]
    deadline = time.monotonic() + timeout
    for info in infos:
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        if not info.is_published():
            raise TimeoutError("the broker did not acknowledge a publish")


class Collector:
    """Subscribes to a topic filter and keeps (topic, payload) of everything that arrives."""

    def __init__(self, url: str, topic_filter: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self._client = _client(url, "test-sub")
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_a: subscribed.set()
        self._client.subscribe(topic_filter, qos=1)
        if not subscribed.wait(10):
            raise TimeoutError("subscription not granted")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload))

    def wait_for(self, count: int, timeout: float = 10) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class Client:
    """A real MQTT 5 client with credentials; records what it receives and how its publishes were answered."""

    def __init__(
        self,
        url: str,
        username: str | None,
        password: str | None,
        will: tuple[str, bytes] | None = None,
        tls_ca: str | None = None,
    ) -> None:
        """``tls_ca``: connect over TLS, trusting only the CA(s) in that PEM file."""
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}", protocol=MQTTProtocolVersion.MQTTv5
        )
        if tls_ca is not None:
            self.client.tls_set(ca_certs=tls_ca)
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.connect_rc: mqtt.ReasonCode | None = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.received: list[tuple[str, bytes]] = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.disconnected.set()
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        parts = urlsplit(url)
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()
        self.connected.wait(5)

    def _on_connect(self, _c: object, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object) -> None:
        self.connect_rc = rc
        self.connected.set()

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        return info

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self) -> None:
        """Go away as a crashed device does: the broker publishes our last will."""
        self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"))
        self.client.loop_stop()
