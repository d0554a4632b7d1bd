"""A load publisher: many device ids over one MQTT connection, at a controlled rate, QoS 1.

It is the load half of the benchmarks and is run as its own process (``python -m simulators.publisher``), so the
publisher's CPU is never counted as the gateway's. Payloads are built with the wire contract's model. It prints one
JSON line: what it sent, what the broker acknowledged, and the rate reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.contracts import TELEMETRY_TOPIC, TelemetryItem

_MAX_OUTSTANDING = 20_000


def payloads(
    devices: int, per_message: int, count: int, seq_base: int, ts_base: int, value: float | None = None
) -> list[tuple[str, bytes]]:
    """``count`` messages round-robin over ``devices`` ids, ``per_message`` readings each, seq unique per device.
    ``ch4_lel`` cycles through 0..19 unless ``value`` fixes it (quiet background load that raises no alert)."""
    out: list[tuple[str, bytes]] = []
    for i in range(count):
        device = f"bench-{i % devices:06d}"
        first = seq_base + (i // devices) * per_message
        items = [
            TelemetryItem.model_construct(
                ts=ts_base + i // 10,
                seq=first + k,
                values={"ch4_lel": float((i + k) % 20) if value is None else value, "battery_pct": 87.0},
            ).model_dump_json(exclude_none=True)
            for k in range(per_message)
        ]
        body = items[0] if per_message == 1 else "[" + ",".join(items) + "]"
        out.append((TELEMETRY_TOPIC.format(device_id=device), body.encode()))
    return out


def run(
    url: str, messages: list[tuple[str, bytes]], rate: float, username: str | None = None, password: str | None = None
) -> dict[str, float | int]:
    parts = urlsplit(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=MQTTProtocolVersion.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)
    # Stay under the broker's receive maximum (Mosquitto: max_inflight_messages, 1000 in our configuration): a
    # client with more QoS 1 messages in flight is disconnected, and its in-flight messages go with it.
    client.max_inflight_messages_set(500)
    client.max_queued_messages_set(0)
    acked = 0
    lock = threading.Lock()

    def on_publish(*_args: object) -> None:
        nonlocal acked
        with lock:
            acked += 1

    client.on_publish = on_publish
    disconnects = 0
    closing = False

    def on_disconnect(*_args: object) -> None:
        nonlocal disconnects
        if not closing:
            disconnects += 1

    client.on_disconnect = on_disconnect
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    started = time.monotonic()
    for i, (topic, payload) in enumerate(messages):
        if i % 50 == 0:
            if rate:
                ahead = started + i / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            # paho keys outgoing messages by packet id (1..65535): more outstanding than that overwrite each other.
            while i - acked > _MAX_OUTSTANDING:
                time.sleep(0.001)
        client.publish(topic, payload, qos=1)
    sent_at = time.monotonic()
    deadline = sent_at + 120
    while acked < len(messages) and time.monotonic() < deadline:
        time.sleep(0.01)
    done = time.monotonic()
    closing = True
    client.disconnect()
    client.loop_stop()
    return {
        "sent": len(messages),
        "acked": acked,
        "publish_seconds": sent_at - started,
        "seconds": done - started,
        "rate_reached": len(messages) / (sent_at - started),
        "disconnects": disconnects,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--per-message", type=int, default=1)
    parser.add_argument("--count", type=int, required=True, help="messages to publish")
    parser.add_argument("--rate", type=float, default=0, help="messages/s; 0 = as fast as possible")
    parser.add_argument("--seq-base", type=int, default=0)
    parser.add_argument("--value", type=float, default=None, help="a constant ch4_lel (default: cycling 0..19)")
    parser.add_argument("--username", default=None, help="MQTT account; its password from $SMARTCITY_MQTT_PASSWORD")
    args = parser.parse_args(argv)
    ts_base = int(time.time() * 1000) - 60_000
    messages = payloads(args.devices, args.per_message, args.count, args.seq_base, ts_base, args.value)
    password = os.environ.get("SMARTCITY_MQTT_PASSWORD")
    print(json.dumps(run(args.url, messages, args.rate, args.username, password)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
