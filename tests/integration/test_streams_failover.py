"""Two stream workers split the partitions; one is killed with SIGKILL mid-stream; the other takes over its partitions
with their rule state intact (an alarm raised before the kill escalates after it, it is not raised again) and no
finding is lost. The test makes sure the worker it kills held readings partitions when it died, and had evaluated
readings of them: a kill of a worker with nothing assigned would prove nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.contracts.finding import Finding
from core.kafka.admin import all_topics, ensure_topics
from core.kafka.partitioning import Partitioner
from core.process import free_port
from devices.feed import DevicePublisher
from harness.builders import device, telemetry
from ingest.settings import GatewaySettings
from smartcity.stack.services import http_ok
from streams.app import streams_topics
from streams.settings import StreamsSettings
from tests.integration.conftest import gateway_proc, streams_process
from tests.kafka_util import Tail, uncommitted
from tests.mqtt_util import publish_all, publisher
from tests.waiting import until

pytestmark = pytest.mark.integration


def _telemetry(device_ids: list[str], ch4: float) -> list[tuple[str, bytes]]:
    return [(f"devices/{d}/telemetry", telemetry({"ch4_lel": ch4})) for d in device_ids]


def _findings(tail: Tail) -> list[Finding]:
    return [Finding.model_validate_json(r.value) for r in tail.records]


def _held(port: int, topic: str) -> tuple[bool, float]:
    """From a worker's /metrics: whether it holds a partition of ``topic`` now (its consumer-lag gauge has a sample
    for every topic of its current assignment), and how many orange alarms it has raised so far."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    held = any(s.name == "smartcity_streams_consumer_lag_records" and s.labels["topic"] == topic for s in samples)
    raised = sum(
        s.value
        for s in samples
        if s.name == "smartcity_streams_findings_total"
        and (s.labels["event"], s.labels["level"]) == ("raised", "orange")
    )
    return held, raised


async def _all_committed(bootstrap: str, group: str, topic: str) -> bool:
    return not any((await uncommitted(bootstrap, group, topic)).values())


async def test_a_killed_worker_hands_its_partitions_over_with_state(
    mqtt_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    u = uuid.uuid4().hex[:8]
    topics = {"topic_readings": f"readings.{u}", "topic_rejected": f"rejected.{u}", "topic_devices": f"devices.{u}",
              "topic_findings": f"findings.{u}"}  # fmt: skip
    base = StreamsSettings(kafka_bootstrap=kafka_bootstrap, streams_app_id=f"streams-{u}", streams_tick_s=1, **topics)
    await ensure_topics(kafka_bootstrap, [*all_topics(base), *streams_topics(base)])
    device_ids = [f"gas-{u}-{i:02d}" for i in range(40)]
    partitions = Partitioner(base.readings_partitions)
    assert {partitions.partition_of(d) for d in device_ids} == set(range(base.readings_partitions))
    feed = DevicePublisher(base)
    await feed.start()
    await feed.publish([device(d, interval_s=600) for d in device_ids])
    await feed.stop()
    gateway_settings = GatewaySettings(
        mqtt_url=mqtt_url, kafka_bootstrap=kafka_bootstrap, gateway_client_id=f"gw-{u}", gateway_share_group=f"g{u}",
        gateway_http_port=0, **topics,
    )  # fmt: skip
    gateway = gateway_proc(gateway_settings, tmp_path / "gateway.log")
    workers = []
    for name in ("a", "b"):
        settings = base.model_copy(update={"streams_http_port": free_port(), "streams_data_dir": tmp_path / name})
        workers.append((streams_process(settings, tmp_path / f"{name}.log"), settings.streams_http_port))
    gateway.start()
    for worker, _ in workers:
        worker.start()
    tail = Tail(kafka_bootstrap, base.topic_findings)
    try:
        for worker, port in workers:
            health = f"http://127.0.0.1:{port}/healthz"
            await asyncio.to_thread(worker.wait_healthy, lambda h=health: http_ok(h, (200,)), 90)  # type: ignore[misc]
        await tail.start()
        group, readings = base.streams_app_id, base.topic_readings
        with publisher(mqtt_url) as pub:
            await asyncio.to_thread(publish_all, pub, _telemetry(device_ids, 30.0))
            await tail.wait_for(lambda _r: len(_findings(tail)) >= 40, 60)
            # Faust commits a partition's offsets only once the changelog records of what it processed are written:
            # every offset committed, the state of every alarm is in the changelog.
            await until(lambda: _all_committed(kafka_bootstrap, group, readings), 60, "the first readings committed")
            await asyncio.to_thread(publish_all, pub, _telemetry(device_ids[:20], 55.0))
            held = [await asyncio.to_thread(_held, port, readings) for _, port in workers]
            workers[0][0].kill()
            await asyncio.to_thread(publish_all, pub, _telemetry(device_ids[20:], 55.0))
        try:
            await tail.wait_for(lambda _r: sum(f.event.value == "escalated" for f in _findings(tail)) >= 40, 90)
        except TimeoutError:
            escalated = {f.device_id for f in _findings(tail) if f.event.value == "escalated"}
            logs = {n: (tmp_path / f"{n}.log").read_text(errors="replace")[-3000:] for n in ("a", "b")}
            raise AssertionError(
                f"no escalation after the kill for {sorted(set(device_ids) - escalated)} (partitions "
                f"{sorted({partitions.partition_of(d) for d in set(device_ids) - escalated})}); held at the kill: "
                f"{held}; worker logs: {logs}"
            ) from None
        # Every reading processed and committed by the survivor: every finding it will make is in Kafka.
        await until(lambda: _all_committed(kafka_bootstrap, group, readings), 60, "the survivor committed everything")
        await tail.caught_up()
    finally:
        await tail.stop()
        for worker, _ in workers:
            worker.stop()
        gateway.stop()
    # The kill hit a worker that held readings partitions at that moment and had raised alarms of their devices.
    (killed_held, killed_raised), survivor = held
    assert killed_held, f"the killed worker held no readings partition when it was killed; the survivor: {survivor}"
    assert killed_raised > 0, f"the killed worker had raised no alarm; the survivor had raised {survivor[1]:.0f}"
    findings = _findings(tail)
    distinct = {f.id: f for f in findings}.values()  # a replayed finding has the same id
    events = Counter((f.device_id, f.event.value, f.level.value) for f in distinct)
    for d in device_ids:
        assert events[(d, "raised", "orange")] == 1, d
        assert events[(d, "escalated", "red")] == 1, d
    assert not [f for f in distinct if f.event.value == "raised" and f.level.value == "red"], "state lost: raised again"
    assert "Traceback" not in (tmp_path / "b.log").read_text()
