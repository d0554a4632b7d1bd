"""A device speaks the moment its registration answers, as a real one does (issue 17, item 0).

A detector installed in a room that already holds gas must alert on its first reading. The test acts as the
installer and the device would: ``PUT /api/devices/{id}``, and the moment it answers, the device logs in with the
credentials it was given and publishes the hazard (QoS 1), with no wait for any service to learn of the device.
Fifty new devices, then ten of them removed and registered again (a replacement), each alerting on its first
reading, with its own record (site, departments) in the alert, and stored in InfluxDB under its kind.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.contracts.alert import Alert
from harness.builders import device_record, telemetry
from harness.stack import StackRun
from tests.influx_util import influx_rows, wait_gas_count
from tests.mqtt_util import Client

pytestmark = pytest.mark.integration

ROUNDS = 50
REPLACED = 10
DEPARTMENT = "emergency"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackRun]:
    with StackRun(tmp_path_factory.mktemp("first-reading")) as run:
        yield run


class Officer:
    """The department's duty officer on MQTT ``alerts/emergency``: every alert message, in arrival order."""

    def __init__(self, stack: StackRun) -> None:
        self.alerts: list[Alert] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(f"dept-{DEPARTMENT}", stack.dept_password)
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._on_message
        port = int(stack.mqtt_url.rsplit(":", 1)[1])
        self.client.on_connect = lambda c, *_a: c.subscribe(f"alerts/{DEPARTMENT}", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "the officer's subscription was not granted"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.alerts.append(Alert.model_validate_json(msg.payload))

    def wait_for(self, wanted: set[tuple[str, str]], timeout: float = 90) -> dict[tuple[str, str], Alert]:
        """(device id, level) -> the first alert message of that device at that level."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = {(a.device_id or "", a.level.value): a for a in reversed(self.alerts)}
            if wanted <= seen.keys() or time.monotonic() > deadline:
                return seen
            time.sleep(0.1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _speak(stack: StackRun, credentials: dict[str, str], device_id: str, seq: int, ch4: float) -> None:
    """The device: logs in with what the registration answered and publishes at once."""
    device = Client(stack.mqtt_url, credentials["username"], credentials["password"])
    try:
        assert device.connect_rc is not None, f"{device_id} could not reach the broker"
        assert not device.connect_rc.is_failure, f"{device_id} refused right after its registration"
        info = device.publish(f"devices/{device_id}/telemetry", telemetry({"ch4_lel": ch4}, seq=seq))
        assert info.is_published(), f"{device_id}'s reading was not acknowledged"
    finally:
        device.close()


def _register_and_speak(stack: StackRun, http: httpx.Client, i: int, ch4: float) -> None:
    """``PUT`` device ``first-{i}``, and the moment it answers, the device's first reading."""
    device_id = f"first-{i}"
    answer = http.put(f"/api/devices/{device_id}", json=device_record(device_id, site=f"FR-{i}"))
    assert answer.status_code == 201, answer.text
    _speak(stack, answer.json()["credentials"], device_id, 1, ch4)


def _alerted(officer: Officer, count: int, level: str) -> dict[tuple[str, str], Alert]:
    devices = [f"first-{i}" for i in range(count)]
    got = officer.wait_for({(d, level) for d in devices})
    missed = [d for d in devices if (d, level) not in got]
    assert not missed, f"{len(missed)} of {count} first readings raised no {level} alert: {missed}"
    return got


def test_a_hazard_sent_the_moment_registration_answers_is_alerted(stack: StackRun) -> None:
    since = int(time.time() * 1000) - 1000
    officer = Officer(stack)
    try:
        with stack.api_client() as http:
            for i in range(ROUNDS):
                _register_and_speak(stack, http, i, 30.0)
            got = _alerted(officer, ROUNDS, "orange")
            for i in range(ROUNDS):
                alert = got[(f"first-{i}", "orange")]
                assert alert.event.value == "raised"
                assert alert.rule == "gas.ch4"
                assert alert.site_id == f"FR-{i}", "evaluated without the device's own record"

            # A replacement: removed, registered again, and its first reading (now red) alerts at once.
            for i in range(REPLACED):
                assert http.delete(f"/api/devices/first-{i}").status_code == 204
                _register_and_speak(stack, http, i, 60.0)
            _alerted(officer, REPLACED, "red")
        # Stored under the device's kind, like every later reading, never as an unregistered device's.
        stored = wait_gas_count(stack.influx, "first-", since, ROUNDS + REPLACED, timeout=60)
        query = f'SELECT count("ch4_lel") FROM "unregistered" WHERE "device_id" =~ /^first-/ AND time >= {since}ms'
        astray = asyncio.run(influx_rows(stack.influx, "smartcity", query))
        assert (stored, astray) == (ROUNDS + REPLACED, []), "first readings stored without their device's record"
    finally:
        officer.close()
