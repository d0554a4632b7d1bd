"""Reading back what the gateway wrote, straight from the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

import harness.kafka
from core.contracts import ReadingBatch, RefusedMessage
from core.kafka.reading import read_to_end


@dataclass(frozen=True)
class Consumed:
    partition: int
    key: bytes | None
    value: bytes


async def partitions_of(bootstrap: str, topic: str, timeout: float = 10) -> list[int]:
    """Wait until the topic exists (never creating it: a metadata request for a missing topic would)."""
    deadline = time.monotonic() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            if topic in await admin.list_topics():
                described = await admin.describe_topics([topic])
                return sorted(p["partition"] for p in described[0]["partitions"])
        except KafkaError:
            pass
        finally:
            await admin.close()
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} does not exist")
        await asyncio.sleep(0.2)


async def consume(
    bootstrap: str,
    topic: str,
    until: Callable[[list[Consumed]], bool],
    timeout: float = 30,
) -> list[Consumed]:
    """Every record of ``topic`` from the beginning, until ``until(records)`` holds or ``timeout`` passes."""
    parts = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    out: list[Consumed] = []
    try:
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while not until(out) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, msgs in batch.items():
                out.extend(Consumed(tp.partition, m.key, m.value) for m in msgs)
    finally:
        await consumer.stop()
    return out


async def read_all(
    bootstrap: str, topic: str, partitions: list[int] | None = None, timeout: float = 30
) -> list[Consumed]:
    """Every record ``topic`` (or the given partitions of it) holds now, from the beginning (``read_to_end``: with
    any that arrive meanwhile in the same fetches); ``TimeoutError`` if they were not all read within ``timeout``."""
    out: list[Consumed] = []
    tps: str | list[TopicPartition] = topic if partitions is None else [TopicPartition(topic, p) for p in partitions]

    def keep(record: Any) -> None:
        out.append(Consumed(record.partition, record.key, record.value))

    left = await read_to_end(bootstrap, tps, keep, timeout_s=timeout)
    if left:
        raise TimeoutError(f"{topic}: not read to the end in {timeout} s: {sorted(tp.partition for tp in left)} left")
    return out


async def end_offsets(bootstrap: str, topic: str, group: str | None = None) -> dict[int, tuple[int, int | None]]:
    """Per partition of ``topic``: its end offset, and the offset ``group`` has committed (None: none, or no group)."""
    parts = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in parts]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: (ends[tp], await consumer.committed(tp) if group else None) for tp in tps}
    finally:
        await consumer.stop()


async def uncommitted(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Per partition of ``topic``: records ``group`` has not committed yet (end offset minus committed offset; the
    whole partition when nothing is committed). All zero: the group has processed and committed everything."""
    return {p: end - (done or 0) for p, (end, done) in (await end_offsets(bootstrap, topic, group)).items()}


async def group_members(bootstrap: str, group: str) -> tuple[str, int]:
    """A consumer group's state (``Stable`` once a rebalance is done) and how many members it has. The broker of our
    tests (Tansu) does not return the members' assignments, only the members."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups([group])
        [(_error, _group, state, _kind, _protocol, members)] = described.groups
        return str(state), len(members)
    finally:
        await admin.close()


def readings_of(records: list[Consumed]) -> list[tuple[int, bytes | None, ReadingBatch]]:
    """The reading batches, without the gateway's heartbeats (empty batches on every partition)."""
    batches = [(r.partition, r.key, ReadingBatch.model_validate_json(r.value)) for r in records]
    return [b for b in batches if b[2].readings]


def heartbeats_of(records: list[Consumed]) -> list[int]:
    """The partitions of the gateway's heartbeats (empty reading batches)."""
    return [r.partition for r in records if not ReadingBatch.model_validate_json(r.value).readings]


def refused_of(records: list[Consumed]) -> list[RefusedMessage]:
    return [RefusedMessage.model_validate_json(r.value) for r in records]


def count_readings(records: list[Consumed]) -> int:
    return sum(len(b.readings) for _, _, b in readings_of(records))


def distinct_seqs(records: list[Consumed]) -> set[tuple[str, int | None]]:
    return {(r.device_id, r.seq) for _, _, b in readings_of(records) for r in b.readings}


class Tail:
    """Follows a topic from the beginning in the background, keeping every record; ``wait_for`` a condition."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.records: list[Consumed] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        parts = await partitions_of(self.bootstrap, self.topic, timeout=30)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
        await consumer.start()
        tps = [TopicPartition(self.topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)

        async def run() -> None:
            try:
                while True:
                    for tp, msgs in (await consumer.getmany(timeout_ms=200)).items():
                        self.records.extend(Consumed(tp.partition, m.key, m.value) for m in msgs)
            finally:
                await consumer.stop()

        self._task = asyncio.create_task(run())

    async def wait_for(self, condition: Callable[[list[Consumed]], bool], timeout: float = 30) -> list[Consumed]:
        deadline = time.monotonic() + timeout
        while not condition(self.records):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.topic}: condition not met in {timeout} s; {len(self.records)} records")
            if self._task is not None and self._task.done():
                self._task.result()
            await asyncio.sleep(0.05)
        return self.records

    async def caught_up(self, timeout: float = 30) -> list[Consumed]:
        """Wait until every record the topic holds now has been read (read from offset 0 on, so a partition's count of
        records is its end offset: no compaction and no transactions on the topics we tail)."""
        ends = {p: end for p, (end, _) in (await end_offsets(self.bootstrap, self.topic)).items()}

        def read_all(records: list[Consumed]) -> bool:
            return all(sum(r.partition == p for r in records) >= end for p, end in ends.items())

        return await self.wait_for(read_all, timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Audit(harness.kafka.Audit):
    """``harness.kafka.Audit`` keeping every record it read; ``records`` waits for a condition on them."""

    def __init__(self, bootstrap: str, topic: str, group: str = "test-audit") -> None:
        self._records: list[Consumed] = []
        self._lock = threading.Lock()

        def keep(record: Any) -> None:
            with self._lock:
                self._records.append(Consumed(record.partition, record.key, record.value))

        super().__init__(bootstrap, topic, keep, group)

    def records(self, until: Callable[[list[Consumed]], bool], timeout: float = 30) -> list[Consumed]:
        """What the audit read, once ``until`` holds for it or ``timeout`` passed (the caller asserts on it)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                now = list(self._records)
            if until(now) or time.monotonic() > deadline or not self.alive:
                return now
            time.sleep(0.2)
