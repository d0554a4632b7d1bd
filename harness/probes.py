"""Alert-latency probes: a probe reading crosses the methane alarm level and is timed to its alert on MQTT.

A probe is a gas detector of its own site (no site correlation with any other device) registered like any device
(``harness.builders.device_record``). ``Probes.send`` publishes ``ch4_lel`` 30 for it, QoS 1, without ``ts``, as the
operator account ``admin``: ``gas.ch4`` raises an orange alert for ``emergency``. A subscriber logged in as
``dept-emergency`` notes when the ``raised`` message of that key arrives. Latency is that arrival minus the moment
just before ``publish``, on one monotonic clock in one process, so no clock skew enters it; a probe whose alert takes
longer than ``TIMEOUT_S`` is lost. A caller clears each probe (``ch4_lel`` 5) ``CLEAR_AFTER`` probes later, so that
the next probe of the same device raises a fresh alert.

Wall-clock stamps ride along (``Sample``): the gateway's receive time (the alert's ``ts``) and the alerts service's
decision (its ``updated_at``), for a breakdown of where the time goes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.contracts import TELEMETRY_TOPIC
from core.contracts.alert import ALERTS_MQTT_TOPIC, Alert
from harness.builders import telemetry
from harness.stack import DEPARTMENT, StackRun

TIMEOUT_S = 5.0  # a probe whose alert takes longer is lost
CLEAR_AFTER = 5  # a probe is cleared this many probes later
PROBE_CH4, CLEAR_CH4 = 30.0, 5.0  # above the orange alarm level (25 %LEL), and well under it


@dataclass
class Sample:
    """One probe: when it was sent and, once its alert arrived, when and with which stamps (epoch ms)."""

    device: str
    sent: float  # monotonic, just before publish
    sent_wall_ms: float
    arrived: float | None = None
    arrived_wall_ms: float = 0.0
    gateway_ms: int = 0  # the alert's ts: the gateway's receive time
    decided_ms: int = 0  # the alert's updated_at: the alerts service's decision
    stamps: tuple[int, int] | None = None  # the reading's Kafka record time, the finding's detected_at
    alert_id: str = ""  # the alert it raised, once arrived: what an officer acknowledges

    def latency_ms(self) -> float | None:
        """Publish to alert in milliseconds; None for a probe lost (no alert within ``TIMEOUT_S``)."""
        if self.arrived is None or self.arrived - self.sent > TIMEOUT_S:
            return None
        return (self.arrived - self.sent) * 1000


def _client(url: str, username: str, password: str, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-alerts-{name}")
    client.username_pw_set(username, password)
    client.connect(urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 1883)
    client.loop_start()
    return client


class Probes:
    """The probe publisher (operator account) and the department's subscriber, in this process. Built only once the
    subscription is granted (``RuntimeError`` if not within 10 s), so no alert of a probe sent after can be missed."""

    def __init__(self, stack: StackRun) -> None:
        self.pending: dict[str, Sample] = {}  # alert key -> sample
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.sub = _client(stack.mqtt_url, f"dept-{DEPARTMENT}", stack.dept_password, "officer")
        self.sub.on_subscribe = lambda *_a: subscribed.set()
        self.sub.on_message = self._on_alert
        self.sub.subscribe(ALERTS_MQTT_TOPIC.format(department=DEPARTMENT), qos=1)
        self.pub = _client(stack.mqtt_url, "admin", stack.admin_password, "probe")
        if not subscribed.wait(10):
            raise RuntimeError("the department's subscriber did not get its subscription")

    def _on_alert(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        arrived, wall = time.monotonic(), time.time() * 1000
        alert = Alert.model_validate_json(msg.payload)
        with self.lock:
            sample = self.pending.get(alert.key)
            if alert.event == "raised" and sample is not None and sample.arrived is None:
                sample.arrived, sample.arrived_wall_ms = arrived, wall
                sample.gateway_ms, sample.decided_ms = alert.ts, alert.updated_at
                sample.alert_id = alert.id

    def send(self, device: str, ch4: float) -> Sample:
        """Publish ``ch4_lel`` ``ch4`` for ``device``; at or above 25 its alert is awaited (the sample fills in)."""
        body = telemetry({"ch4_lel": ch4})
        sample = Sample(device, time.monotonic(), time.time() * 1000)
        if ch4 >= 25:
            with self.lock:
                self.pending[f"{device}:gas.ch4"] = sample
        self.pub.publish(TELEMETRY_TOPIC.format(device_id=device), body, qos=1)
        return sample

    def close(self) -> None:
        for client in (self.pub, self.sub):
            client.disconnect()
            client.loop_stop()


def warm_up(probes: Probes, devices: list[str]) -> float:
    """Probe until one alert arrives: the worker has its partitions, the gateway's directory knows the probes. The
    seconds it took; ``RuntimeError`` if none of ``devices`` (3 s each) brought one."""
    started = time.monotonic()
    for device in devices:
        sample = probes.send(device, PROBE_CH4)
        while time.monotonic() < sample.sent + 3:
            if sample.arrived is not None:
                return time.monotonic() - started
            time.sleep(0.05)
    raise RuntimeError(f"no alert arrived in {time.monotonic() - started:.0f} s of warm-up probes")
