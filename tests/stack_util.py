"""Helpers for tests on a whole `smartcity up` stack (``smartcity.bench.alerts.StackRun``)."""

from __future__ import annotations

import json
import time

import httpx
import paho.mqtt.client as mqtt

from smartcity.bench.alerts import StackRun


def api(stack: StackRun) -> httpx.Client:
    """The stack's HTTP API with its admin token."""
    return httpx.Client(base_url=stack.api, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30)


def until_online(stack: StackRun, client: mqtt.Client, devices: list[str], ts: int) -> None:
    """One health reading per device (``device_health``, not a hazard measurement: counts of readings stay exact)
    until the API has seen every device: the gateways then know them all from the registry topic."""
    pending = set(devices)
    deadline = time.monotonic() + 60
    with api(stack) as http:
        while pending:
            assert time.monotonic() < deadline, f"{len(pending)} devices never became known"
            for device_id in pending:
                body = json.dumps({"ts": ts, "values": {"battery_pct": 90.0}})
                client.publish(f"devices/{device_id}/telemetry", body, qos=1)
            time.sleep(1.5)
            pending = {d for d in pending if http.get(f"/api/devices/{d}/health").json().get("last_seen") is None}
