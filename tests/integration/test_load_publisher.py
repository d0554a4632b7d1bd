"""The load publisher's own MQTT path against a real Mosquitto: what a subscriber receives is what was sent, once,
and the broker's acknowledgements are what the publisher counts."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from core.contracts import TelemetryItem
from simulators import mqtt_wire
from simulators.load_publisher import LoadPublisher, template
from smartcity.stack.services import Launch
from tests.mqtt_util import Collector

pytestmark = pytest.mark.integration


def _all_once(collector: Collector, count: int, timeout: float = 20) -> list[tuple[str, bytes]]:
    """What arrived once ``count`` messages did, and a moment more: a double would arrive then."""
    collector.wait_for(count, timeout)
    time.sleep(0.3)
    return collector.wait_for(0)


def test_packets_arrive_whole_in_order_and_are_acknowledged(mqtt_url: str, unique: str) -> None:
    collector = Collector(mqtt_url, f"wire/{unique}/#")
    parts = urlsplit(mqtt_url)
    sock, accepted = mqtt_wire.open_connection(parts.hostname or "127.0.0.1", parts.port or 1883, None, None)
    try:
        assert accepted.receive_maximum >= 20
        sizes = [0, 1, 127, 128, 300, 16_383, 16_384, 70_000]  # each remaining-length size and its bounds
        sent = [(f"wire/{unique}/{'t' * (i % 3 + 1)}/{i}", bytes([65 + i]) * size) for i, size in enumerate(sizes)]
        # packet ids wrap from 65,535 to 1; all of them in one write, as the publisher sends them
        ids = [65_533 + i for i in range(3)] + list(range(1, len(sizes) - 2))
        sock.sendall(
            b"".join(
                mqtt_wire.publish_qos1(mqtt_wire.topic_prefix(t), pid, p) for (t, p), pid in zip(sent, ids, strict=True)
            )
        )
        acked: list[int] = []
        buffer = bytearray()
        sock.settimeout(10)
        while len(acked) < len(sent):
            buffer += sock.recv(4096)
            for packet in mqtt_wire.packets(buffer):
                assert packet.kind == mqtt_wire.PUBACK
                assert mqtt_wire.puback_reason(packet.body) < 0x80
                acked.append(int.from_bytes(packet.body[:2], "big"))
        assert sorted(acked) == sorted(ids)
        assert _all_once(collector, len(sent)) == sent
    finally:
        sock.close()
        collector.close()


def test_a_refused_login_says_why(secured: tuple[Launch, Path]) -> None:
    launch, _ = secured
    parts = urlsplit(launch.url)
    with pytest.raises(mqtt_wire.MqttError, match=r"refused the connection: reason 0x8[67]"):
        mqtt_wire.open_connection(parts.hostname or "127.0.0.1", parts.port or 1883, "nobody", "wrong")


def test_the_load_publisher_sends_each_reading_once_and_counts_the_acknowledgements(
    mqtt_url: str, unique: str, tmp_path: Path
) -> None:
    ids = [f"{unique}-{i}" for i in range(7)]
    pool = {"ids": ids, "templates": [[template({"ch4_lel": float(i)}), template({"ch4_lel": 0.5})] for i in range(7)]}
    (tmp_path / "pool.json").write_text(json.dumps(pool))
    collector = Collector(mqtt_url, "devices/+/telemetry")
    publisher = LoadPublisher(mqtt_url, tmp_path / "pool.json", 3, {})
    try:
        publisher.rate(3_000)  # readings/s: 1,000 messages of three readings a second
        time.sleep(1.5)
        publisher.rate(0)
        time.sleep(0.3)
        sent, _ = publisher.stat()
        final = publisher.stop()
    finally:
        publisher.kill()
    assert sent > 300
    assert final == {"sent": final["sent"], "acked": final["sent"], "refused": 0, "disconnects": 0}
    ours = [(t, p) for t, p in _all_once(collector, final["sent"]) if t.split("/")[1] in ids]
    collector.close()
    assert len(ours) == final["sent"]
    seqs: dict[str, list[int]] = {d: [] for d in ids}
    for topic, payload in ours:
        device = topic.split("/")[1]
        items = json.loads(payload)
        for item in items:
            TelemetryItem.model_validate(item)  # the wire contract
        assert len(items) == 3
        assert all(a["ts"] < b["ts"] for a, b in itertools.pairwise(items))
        seqs[device] += [int(i["seq"]) for i in items]
    for device, got in seqs.items():
        assert got == list(range(len(got))), f"{device}: seqs doubled, missing or out of order"
