"""Hostile input at a running gateway (issue 10): 10,000 malformed messages are all refused with a reason, nothing
crashes, the gateway's memory stays flat; a chatty device is rate-limited without starving the others, and what it
sent over its limit is kept on the refused topic."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.settings import GatewaySettings
from smartcity.stack.process import ManagedProcess, free_port
from tests.integration.conftest import GatewayFactory, gateway_proc
from tests.kafka_util import consume, count_readings, readings_of, refused_of
from tests.mqtt_util import Collector, publish_all, publisher

pytestmark = pytest.mark.integration

MALFORMED = 10_000


def _garbage(rng: random.Random, i: int) -> tuple[str, bytes]:
    """One hostile message: each kind in turn, on 500 device ids (within each id's burst: every one must be
    refused for what it is, not for its rate)."""
    n = i % 500
    device = f"hostile-{n}"
    topic = f"devices/{device}/telemetry"
    kinds: list[tuple[str, bytes]] = [
        (topic, rng.randbytes(rng.randint(1, 300))),  # binary garbage
        (topic, b"[" * 5_000 + b"]" * 5_000),  # deep nesting
        (topic, json.dumps([{"values": {"x": 1}}] * 600).encode()),  # a huge array
        (topic, b'{"values": {"ch4_lel": NaN}}'),
        (topic, b'{"values": {"ch4_lel": Infinity}}'),
        (topic, b'{"values": {"ch4_lel": 1e999}}'),
        (topic, json.dumps({"values": {"ch4_lel": "12.5"}}).encode()),  # wrong type
        (topic, json.dumps({"values": {"ch4_lel": None}}).encode()),
        (topic, json.dumps({"values": {"CH4; DROP": 1}}).encode()),  # a hostile metric name
        (topic, json.dumps({"values": {}}).encode()),
        (topic, json.dumps({"ts": "yesterday", "values": {"x": 1}}).encode()),
        (topic, json.dumps({"ts": 1, "values": {"x": 1}}).encode()),
        (topic, json.dumps({"ts": 99_999_999_999_999, "values": {"x": 1}}).encode()),  # far in the future
        (topic, json.dumps({"seq": -1, "values": {"x": 1}}).encode()),
        (topic, json.dumps({"values": {"x": 1}, "admin": True}).encode()),
        (topic, b"\xef\xbb\xbf" + "{\u202e}".encode()),  # BOM and a right-to-left override
        (topic, b'"just a string"'),
        (topic, b"[]"),
        (topic, b"x" * 70_000),  # over 64 KiB
        (f"devices/{'a' * 100}{n}/telemetry", b'{"values": {"x": 1}}'),  # an overlong id
        (f"devices/caf\u00e9\u0301{n}/telemetry", b'{"values": {"x": 1}}'),  # combining marks
        (f"devices/\u202eevil{n}/telemetry", b'{"values": {"x": 1}}'),  # bidi override in the id
        (f"devices/..%2Falerts{n}/telemetry", b'{"values": {"x": 1}}'),  # path tricks in the id
        (f"devices/ａｄｍｉｎ{n}/telemetry", b'{"values": {"x": 1}}'),  # full-width letters
    ]
    return kinds[i % len(kinds)]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_ten_thousand_malformed_messages_are_refused_and_memory_stays_flat(
    gateway_settings: GatewaySettings, tmp_path: Path, mqtt_url: str, kafka_bootstrap: str
) -> None:
    settings = gateway_settings.model_copy(update={"gateway_http_port": free_port()})
    process: ManagedProcess = gateway_proc(settings, tmp_path / "gateway.log")
    process.start()
    health = f"http://127.0.0.1:{settings.gateway_http_port}/healthz"
    try:
        process.wait_healthy(lambda: _ok(health), 30)
        rng = random.Random(20261125)
        messages = [_garbage(rng, i) for i in range(MALFORMED)]
        rss: list[int] = []  # after each third: the first third warms up, the next two must not grow it
        with publisher(mqtt_url) as client:
            for third in range(3):
                part = messages[third * MALFORMED // 3 : (third + 1) * MALFORMED // 3]
                await asyncio.to_thread(publish_all, client, part, 1, 300)
                done = (third + 1) * MALFORMED // 3
                records = await consume(
                    kafka_bootstrap, settings.topic_rejected, lambda r, done=done: len(r) >= done, 120
                )
                rss.append(_rss_kib(process.pid))
            good = json.dumps({"seq": 1, "values": {"ch4_lel": 3.5}}).encode()
            await asyncio.to_thread(publish_all, client, [("devices/hostile-ok/telemetry", good)])
        readings = await consume(kafka_bootstrap, settings.topic_readings, lambda r: count_readings(r) >= 1, 30)
        assert process.alive(), f"the gateway died:\n{process.log_tail()}"
        assert _ok(health)
    finally:
        process.stop()
    refused = refused_of(records)
    assert len(refused) == MALFORMED, "every malformed message is kept on the refused topic"
    reasons = {m.refusal.errors[0].reason.value for m in refused}
    assert "rate_limited" not in reasons
    assert {"invalid_json", "too_large", "too_many_readings", "non_finite", "bad_value_type", "bad_metric_name"} <= (
        reasons
    )
    assert {"no_values", "bad_timestamp", "ts_in_future", "bad_seq", "unknown_field", "bad_topic"} <= reasons
    assert all(m.refusal.errors[0].detail for m in refused), "every refusal says what was wrong"
    accepted = [r.device_id for _, _, b in readings_of(readings) for r in b.readings]
    assert accepted == ["hostile-ok"], "only the well-formed reading got through"
    print(f"gateway RSS after each third of the hostile messages: {rss} KiB")
    assert rss[2] - rss[1] < 4 * 1024, f"the gateway keeps growing under hostile input: {rss} KiB"


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def test_a_chatty_device_is_rate_limited_without_starving_others(
    gateway_settings: GatewaySettings, run_gateway: GatewayFactory, mqtt_url: str, kafka_bootstrap: str, unique: str
) -> None:
    settings = gateway_settings.model_copy(update={"gateway_device_rate": 10.0, "gateway_device_burst": 20.0})
    chatty, quiet = f"chatty-{unique}", f"quiet-{unique}"

    def reading(seq: int) -> bytes:
        return json.dumps({"seq": seq, "values": {"ch4_lel": 2.0}}).encode()

    flood = [(f"devices/{chatty}/telemetry", reading(i)) for i in range(1_000)]
    errors = Collector(mqtt_url, f"devices/{chatty}/errors")
    try:
        async with run_gateway(settings):
            started = time.monotonic()
            with publisher(mqtt_url) as loud, publisher(mqtt_url) as calm:
                flooding = asyncio.create_task(asyncio.to_thread(publish_all, loud, flood, 1, 120))
                for i in range(20):  # the quiet device, every 50 ms, during the flood
                    await asyncio.to_thread(publish_all, calm, [(f"devices/{quiet}/telemetry", reading(i))])
                    await asyncio.sleep(0.05)
                await flooding
            elapsed = time.monotonic() - started
            deadline = time.monotonic() + 60
            while True:  # until every message is accounted for: accepted into readings, or refused
                records = await consume(kafka_bootstrap, settings.topic_readings, lambda r: False, 2)
                refused = await consume(kafka_bootstrap, settings.topic_rejected, lambda r: False, 2)
                done = _count(records, chatty) + len(refused) >= 1_000 and _count(records, quiet) >= 20
                if done or time.monotonic() > deadline:
                    break
    finally:
        told = errors.wait_for(10_000, timeout=1)
        errors.close()
    assert _count(records, quiet) == 20, "the quiet device lost nothing to the flood"
    accepted = _count(records, chatty)
    limited = [m for m in refused_of(refused) if m.refusal.device_id == chatty]
    assert accepted + len(limited) == 1_000, "what the chatty device sent over its limit is kept, not dropped"
    assert all(m.refusal.errors[0].reason == "rate_limited" for m in limited)
    assert accepted <= 20 + 10 * elapsed + 5
    assert limited, "the flood was limited"
    assert 1 <= len(told) <= elapsed + 3, "the device is told of its limit about once a second, not per message"


def _count(records: Any, device_id: str) -> int:
    return sum(1 for _, _, b in readings_of(records) for r in b.readings if r.device_id == device_id)
