"""The one-machine Kafka on disk: Tansu's S3 engine over our store (``smartcity.stack.store``), killed and started
again, trimmed and compacted by the store's keeper. Real Tansu, real store processes, real aiokafka clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from core.kafka.admin import TopicSpec, ensure_topics
from core.process import free_port
from harness.measure import sample_sum
from smartcity.stack.services import Launch, kafka_store, tansu

TRIMMED = "store-readings"


@dataclass
class DiskKafka:
    store: Launch
    broker: Launch
    directory: Path

    @property
    def bootstrap(self) -> str:
        return self.broker.url

    def kill_and_start(self) -> None:
        """What a power cut does to processes: both SIGKILLed at once, then started on the same directory."""
        self.broker.process.kill()
        self.store.process.kill()
        self.store.start()
        self.broker.start()

    def batch_objects(self, topic: str) -> list[str]:
        root = self.directory / "tansu" / "clusters" / "tansu_cluster" / "topics" / topic
        return sorted(p.name for p in root.glob("partitions/*/records/*.batch"))


def _started(tmp_path: Path, **store_options: Any) -> Iterator[DiskKafka]:
    """The store (with ``store_options``) and Tansu over it, started; stopped after."""
    store = kafka_store(tmp_path / "store", "127.0.0.1", free_port(), tmp_path / "store.log", **store_options)
    broker = tansu("127.0.0.1", free_port(), tmp_path / "tansu.log", store.url)
    store.start()
    broker.start()
    try:
        yield DiskKafka(store, broker, tmp_path / "store")
    finally:
        broker.process.stop()
        store.process.stop()


@pytest.fixture
def disk_kafka(tmp_path: Path) -> Iterator[DiskKafka]:
    yield from _started(tmp_path, trim_consumed=(TRIMMED,), keep_every_s=0.5, grace_s=0.5)


async def _read_all(bootstrap: str, topic: str, partitions: int, idle_s: float = 3.0) -> list[tuple[int, int, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        out, quiet_since = [], time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            got = await consumer.getmany(timeout_ms=300)
            for tp, records in got.items():
                out += [(tp.partition, r.offset, r.value or b"") for r in records]
                quiet_since = time.monotonic()
        return out
    finally:
        await consumer.stop()


async def test_what_kafka_acknowledged_and_committed_survives_a_kill_of_broker_and_store(disk_kafka: DiskKafka) -> None:
    await ensure_topics(disk_kafka.bootstrap, [TopicSpec("durable", 2)])
    producer = AIOKafkaProducer(bootstrap_servers=disk_kafka.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send("durable", f"bulk-{i}".encode(), partition=i % 2) for i in range(3000)]
        await asyncio.gather(*sent)
        for i in range(50):
            await producer.send_and_wait("durable", f"one-{i}".encode(), partition=i % 2)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=disk_kafka.bootstrap, group_id="keeper", enable_auto_commit=False)
    await consumer.start()
    consumer.assign([TopicPartition("durable", 0), TopicPartition("durable", 1)])
    await consumer.commit({TopicPartition("durable", 0): 1000, TopicPartition("durable", 1): 7})
    await consumer.stop()

    disk_kafka.kill_and_start()

    records = await _read_all(disk_kafka.bootstrap, "durable", 2)
    values = sorted(v for _, _, v in records)
    expected = sorted([f"bulk-{i}".encode() for i in range(3000)] + [f"one-{i}".encode() for i in range(50)])
    assert values == expected, "every acknowledged record, once"
    assert len({(p, o) for p, o, _ in records}) == len(records)
    again = AIOKafkaConsumer(bootstrap_servers=disk_kafka.bootstrap, group_id="keeper")
    await again.start()
    try:
        committed = [await again.committed(TopicPartition("durable", p)) for p in (0, 1)]
    finally:
        await again.stop()
    assert committed == [1000, 7]
    producer = AIOKafkaProducer(bootstrap_servers=disk_kafka.bootstrap, acks="all")
    await producer.start()
    try:
        after = await producer.send_and_wait("durable", b"after", partition=0)
    finally:
        await producer.stop()
    assert after.offset == max(o for p, o, _ in records if p == 0) + 1, "offsets go on where they were"


async def test_consumed_batches_of_a_trimmed_topic_go_and_a_compacted_topic_keeps_each_keys_latest(
    disk_kafka: DiskKafka,
) -> None:
    await ensure_topics(
        disk_kafka.bootstrap, [TopicSpec(TRIMMED, 1), TopicSpec("kept", 1), TopicSpec("state", 1, compacted=True)]
    )
    producer = AIOKafkaProducer(bootstrap_servers=disk_kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(TRIMMED, f"r{i}".encode())
            await producer.send_and_wait("kept", f"k{i}".encode())
        for key, value in [("a", "1"), ("b", "1"), ("a", "2"), ("c", "1"), ("a", "3"), ("b", None)]:
            await producer.send_and_wait("state", None if value is None else value.encode(), key=key.encode())
    finally:
        await producer.stop()
    assert len(disk_kafka.batch_objects(TRIMMED)) == 20

    consumer = AIOKafkaConsumer(
        TRIMMED, bootstrap_servers=disk_kafka.bootstrap, group_id="writer", auto_offset_reset="earliest",
        enable_auto_commit=False, session_timeout_ms=10_000,
    )  # fmt: skip
    await consumer.start()
    try:
        seen: list[bytes] = []
        while len(seen) < 15:
            seen += [r.value or b"" for rs in (await consumer.getmany(timeout_ms=500)).values() for r in rs]
        await consumer.commit({TopicPartition(TRIMMED, 0): 15})
        deadline = time.monotonic() + 20
        while len(disk_kafka.batch_objects(TRIMMED)) > 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        assert len(disk_kafka.batch_objects(TRIMMED)) == 5, "the 15 batches the only group passed are gone"
        while len(seen) < 20:  # the consumer goes on past the trimmed prefix
            seen += [r.value or b"" for rs in (await consumer.getmany(timeout_ms=500)).values() for r in rs]
    finally:
        await consumer.stop()
    assert seen[:20] == [f"r{i}".encode() for i in range(20)]
    assert len(disk_kafka.batch_objects("kept")) == 20, "nobody consumes it: its retention (7 days) applies"

    deadline = time.monotonic() + 20
    while len(disk_kafka.batch_objects("state")) > 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
    state = [(o, v) for _, o, v in await _read_all(disk_kafka.bootstrap, "state", 1)]
    assert state == [(3, b"1"), (4, b"3"), (5, b"")], "c, the latest a, and b's fresh tombstone"
    fresh = [v for _, _, v in await _read_all(disk_kafka.bootstrap, TRIMMED, 1)]
    assert fresh == [f"r{i}".encode() for i in range(15, 20)], "a new reader starts at the oldest batch kept"


@pytest.fixture
def merging_kafka(tmp_path: Path) -> Iterator[DiskKafka]:
    """A store that merges small batches of kept topics once they are a second old."""
    yield from _started(tmp_path, keep_every_s=0.5, merge_after_s=1.0)


async def _records(
    bootstrap: str, topic: str, partition: int, start: int
) -> list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]]:
    """(offset, key, value, headers) of one partition from ``start`` to its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, start)
        out: list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]] = []
        deadline = time.monotonic() + 30
        while (not out or out[-1][0] < end - 1) and time.monotonic() < deadline:
            for r in (await consumer.getmany(timeout_ms=300)).get(tp, []):
                out.append((r.offset, r.key, r.value or b"", list(r.headers)))
        return out
    finally:
        await consumer.stop()


async def _batch_puts(kafka: DiskKafka) -> float:
    url = kafka.store.url if kafka.store.url.startswith("http") else f"http://{kafka.store.url}"
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}/metrics")).text
    return sample_sum(text, 'smartcity_kafka_store_requests_total{kind="batch",method="PUT"}')


async def test_small_batches_of_a_kept_topic_are_merged_and_read_back_as_they_were(merging_kafka: DiskKafka) -> None:
    """300 single-record batches (an alert each, say) of a topic kept for days become a few objects; a reader from
    the beginning, one from the middle, and one after a kill of broker and store get every record once, at its
    offset, with its key, value and headers; the partition goes on from where it was."""
    await ensure_topics(merging_kafka.bootstrap, [TopicSpec("kept", 2)])
    producer = AIOKafkaProducer(bootstrap_servers=merging_kafka.bootstrap, acks="all")
    sent: dict[int, list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]]] = {0: [], 1: []}
    await producer.start()
    try:
        for i in range(300):
            key, value, headers = f"alert-{i % 7}".encode(), f"v{i}".encode() * (1 + i % 5), [("n", str(i).encode())]
            meta = await producer.send_and_wait("kept", value, key=key, partition=i % 2, headers=headers)
            sent[meta.partition].append((meta.offset, key, value, headers))
    finally:
        await producer.stop()
    # each send its own batch object, by the store's own count (the merger may already have taken the first ones:
    # they are a second old while the last are sent, so the files alone cannot show the 300)
    assert await _batch_puts(merging_kafka) == 300

    deadline = time.monotonic() + 30
    while len(merging_kafka.batch_objects("kept")) > 12 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert len(merging_kafka.batch_objects("kept")) <= 12, "150 batches a partition merged into a few objects"

    for partition in (0, 1):
        assert await _records(merging_kafka.bootstrap, "kept", partition, 0) == sent[partition]
    assert await _records(merging_kafka.bootstrap, "kept", 0, 77) == sent[0][77:], "from the middle of a merged batch"

    merging_kafka.kill_and_start()
    assert await _records(merging_kafka.bootstrap, "kept", 1, 0) == sent[1]
    producer = AIOKafkaProducer(bootstrap_servers=merging_kafka.bootstrap, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait("kept", b"after", partition=0)
    finally:
        await producer.stop()
    assert meta.offset == 150, "the partition goes on after the merged batches"
    assert (await _records(merging_kafka.bootstrap, "kept", 0, 149))[-1][:3] == (150, None, b"after")
