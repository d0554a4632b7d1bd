"""The ground floor's Kafka pieces against the real broker: ``read_to_end`` reads exactly what lies below the end
offsets, and ``consume_forever`` keeps consuming across a broker restart, stops every consumer it built, and ends
when told."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from core.backoff import Backoff
from core.errors import KafkaUnavailable
from core.kafka.admin import TopicSpec, ensure_topics
from core.kafka.consumer import consume_forever
from core.kafka.reading import exact_end_offsets, read_table, read_to_end
from core.process import free_port
from smartcity.stack.services import tansu
from tests.kafka_util import group_members, read_all
from tests.waiting import eventually, until

pytestmark = pytest.mark.integration


async def _produce(bootstrap: str, topic: str, values: list[tuple[bytes, bytes | None]], partitions: int) -> None:
    """``values`` as (key, value), spread over the partitions in turn; acknowledged by the broker."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, partition=i % partitions)
            for i, (key, value) in enumerate(values)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _values(prefix: str, count: int) -> list[tuple[bytes, bytes | None]]:
    return [(f"{prefix}{i}".encode(), f"{prefix}{i}".encode()) for i in range(count)]


async def test_read_to_end_hands_over_exactly_the_records_below_the_end_offsets(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"floor.{unique}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 3)])
    await _produce(kafka_bootstrap, topic, _values("a", 30), 3)
    tps = [TopicPartition(topic, p) for p in range(3)]

    # to the broker's end offsets: all 30, each once, in offset order per partition, although Tansu's end offset of
    # each partition is 1 here (the first offset of its last batch of 10, plus one)
    seen: list[Any] = []
    assert await read_to_end(kafka_bootstrap, topic, seen.append, timeout_s=20) == {}
    assert sorted(r.value for r in seen) == sorted(v for _, v in _values("a", 30))
    for tp in tps:
        offsets = [r.offset for r in seen if r.partition == tp.partition]
        assert offsets == list(range(10))

    # given end offsets (the first 30), with 20 more records after them: the 20 are not handed over
    ends = {tp: 10 for tp in tps}
    await _produce(kafka_bootstrap, topic, _values("b", 20), 3)
    seen.clear()
    assert await read_to_end(kafka_bootstrap, list(tps), seen.append, ends=ends, timeout_s=20) == {}
    assert sorted(r.value for r in seen) == sorted(v for _, v in _values("a", 30))

    # from given start offsets
    seen.clear()
    start = {tp: 8 for tp in tps}
    assert await read_to_end(kafka_bootstrap, list(tps), seen.append, start=start, ends=ends, timeout_s=20) == {}
    assert sorted(r.offset for r in seen) == [8, 8, 8, 9, 9, 9]

    assert len(await read_all(kafka_bootstrap, topic)) == 50
    assert [r.partition for r in await read_all(kafka_bootstrap, topic, partitions=[1])] == [1] * 17  # 10 + 7 of the 20


async def test_a_callers_consumer_goes_on_right_after_the_end(kafka_bootstrap: str, unique: str) -> None:
    """Records a fetch brought past the end are not lost to a caller that keeps consuming (the device directory)."""
    topic = f"floor.{unique}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
    await _produce(kafka_bootstrap, topic, _values("a", 50), 1)
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()
    try:
        consumer.assign([tp])
        seen: list[Any] = []
        assert await read_to_end(consumer, [tp], seen.append, ends={tp: 20}, timeout_s=20) == {}
        assert [r.offset for r in seen] == list(range(20))
        assert await consumer.position(tp) == 20
        after: list[int] = []
        while len(after) < 30:
            after += [r.offset for r in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])]
        assert after == list(range(20, 50))
    finally:
        await consumer.stop()


async def test_read_to_end_says_what_it_did_not_read_by_the_deadline(kafka_bootstrap: str, unique: str) -> None:
    topic = f"floor.{unique}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 2)])
    await _produce(kafka_bootstrap, topic, _values("a", 4), 2)
    never = {TopicPartition(topic, 0): 2, TopicPartition(topic, 1): 9}  # partition 1 holds only 2 records
    seen: list[Any] = []
    left = await read_to_end(kafka_bootstrap, list(never), seen.append, ends=never, timeout_s=2)
    assert left == {TopicPartition(topic, 1): 9}
    assert len(seen) == 4


async def test_read_to_end_of_a_missing_topic_reads_nothing_and_creates_nothing(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"floor.missing.{unique}"
    seen: list[Any] = []
    assert await read_to_end(kafka_bootstrap, topic, seen.append, timeout_s=20) == {}
    assert seen == []
    assert await read_to_end(kafka_bootstrap, topic, seen.append, timeout_s=20) == {}  # still missing


async def test_read_table_keeps_each_keys_latest_value(kafka_bootstrap: str, unique: str) -> None:
    topic = f"floor.table.{unique}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1, compacted=True)])
    await _produce(kafka_bootstrap, topic, [(b"k1", b"1"), (b"k2", b"2"), (b"k1", b"3"), (b"k2", None)], 1)
    assert await read_table(kafka_bootstrap, topic) == {"k1": b"3", "k2": None}


async def test_exact_end_offsets_are_where_a_partition_ends_not_where_its_last_batch_starts(
    kafka_bootstrap: str, unique: str
) -> None:
    """Tansu answers ListOffsets with the last batch's first offset + 1; a fetch tells the real end (Faust's table
    recovery reads to it, streams/transport.py)."""
    topic = f"ends-{unique}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 2)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=50)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, b"x", partition=0) for _ in range(10)])  # one batch of 10
    finally:
        await producer.stop()
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        floors = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    assert floors[tps[0]] < 10, "the broker's quirk this works around is gone: recheck exact_end_offsets' callers"
    assert await exact_end_offsets(kafka_bootstrap, tps) == {tps[0]: 10, tps[1]: 0}


async def test_read_to_end_from_no_broker_is_kafka_unavailable() -> None:
    with pytest.raises(KafkaUnavailable):
        await read_to_end(f"127.0.0.1:{free_port()}", "readings", lambda _r: None, timeout_s=5)


async def test_the_consumer_loop_reconnects_after_the_broker_restarts(
    tmp_path: Path, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The memory broker forgets everything when it stops; the loop must come back to the new one by itself."""
    port = free_port()
    broker = tansu("127.0.0.1", port, tmp_path / "tansu.log")
    await asyncio.to_thread(broker.start)
    bootstrap = broker.url
    topic = f"floor.{unique}"
    tp = TopicPartition(topic, 0)
    await ensure_topics(bootstrap, [TopicSpec(topic, 1)])
    await _produce(bootstrap, topic, [(b"k", b"before")], 1)

    built: list[AIOKafkaConsumer] = []
    values: list[bytes] = []
    stop = asyncio.Event()
    backoff = Backoff(0.2, 1.0)

    def build() -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50, request_timeout_ms=2000
        )
        built.append(consumer)
        return consumer

    async def run(consumer: AIOKafkaConsumer) -> None:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=200)).values():
                values.extend(r.value for r in records)
            await consumer.end_offsets([tp])  # raises once the broker is gone

    async def prepare() -> None:
        await ensure_topics(bootstrap, [TopicSpec(topic, 1)])

    caplog.set_level(logging.WARNING, logger="core.kafka.consumer")
    loop = asyncio.create_task(
        consume_forever(build, run, label="floor test", stop=stop, prepare=prepare, backoff=backoff)
    )
    try:
        assert await eventually(lambda: b"before" in values, 20), "nothing consumed before the restart"
        await asyncio.to_thread(broker.process.stop)
        assert await eventually(lambda: len(built) >= 3, 30), "the loop did not retry while the broker was away"
        assert backoff.current > backoff.initial
        broker = tansu("127.0.0.1", port, tmp_path / "tansu-2.log")
        await asyncio.to_thread(broker.start)
        # a consumer started (its ``prepare`` recreated the topic): only now produce, so that our producer's
        # metadata request never takes part in recreating the topic
        assert await eventually(lambda: backoff.current == backoff.initial, 30), "the loop did not reconnect"

        async def delivered() -> bool:
            try:
                await _produce(bootstrap, topic, [(b"k", b"after")], 1)
            except KafkaError:
                return False
            return True

        await until(delivered, 30, "the restarted broker did not take a record")
        assert await eventually(lambda: b"after" in values, 30), "nothing consumed after the restart"
        stop.set()
        await asyncio.wait_for(loop, 10)
    finally:
        stop.set()
        if not loop.done():
            loop.cancel()
        await asyncio.to_thread(broker.process.stop)
    assert all(c._closed is True for c in built), "a consumer was left running"
    assert any("floor test: Kafka failed" in r.getMessage() for r in caplog.records)


async def test_stopping_leaves_the_group_and_ends_the_loop(kafka_bootstrap: str, unique: str) -> None:
    """A loop told to stop leaves its group at once, not after the 30 s session timeout. Two members, because Tansu
    starts a group at generation 0 and aiokafka sends no LeaveGroup for generation 0: only a member that joined in a
    rebalance shows its leave. (Each rebalance takes Tansu about 15 s.)"""
    topic, group = f"floor.{unique}", f"floor-{unique}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 2)])

    def build() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
            session_timeout_ms=30_000,
            heartbeat_interval_ms=500,
        )

    def member(stop: asyncio.Event) -> asyncio.Task[None]:
        async def run(consumer: AIOKafkaConsumer) -> None:
            while not stop.is_set():
                await consumer.getmany(timeout_ms=100)

        return asyncio.create_task(consume_forever(build, run, label="floor test", stop=stop))

    def members(count: int, state: str | None = "Stable") -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            now = await group_members(kafka_bootstrap, group)
            return now[1] == count and state in (None, now[0])

        return check

    stops = [asyncio.Event(), asyncio.Event()]
    loops = [member(stops[0])]
    try:
        await until(members(1), 30, "the first member did not join")
        loops.append(member(stops[1]))
        await until(members(2), 30, "the second member did not join")
        stops[1].set()
        await asyncio.wait_for(loops[1], 10)
        await until(members(1, None), 10, "the second member did not leave its group")  # (then a rebalance)
    finally:
        for stop in stops:
            stop.set()
        for loop in loops:
            loop.cancel()


async def test_a_bug_ends_the_loop_unless_asked_to_reconnect(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    built: list[AIOKafkaConsumer] = []
    stop = asyncio.Event()

    def build() -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        built.append(consumer)
        return consumer

    async def buggy(_consumer: AIOKafkaConsumer) -> None:
        if len(built) >= 4:
            stop.set()
            return
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        await consume_forever(build, buggy, label="floor test", stop=stop)
    assert len(built) == 1

    caplog.set_level(logging.ERROR, logger="core.kafka.consumer")
    await consume_forever(
        build, buggy, label="floor test", stop=stop, backoff=Backoff(0.05, 0.1), reconnect_on_bug=True
    )
    assert len(built) == 4
    assert all(c._closed is True for c in built)
    crashes = [r for r in caplog.records if "consumer crashed" in r.getMessage()]
    assert len(crashes) == 2
    assert all(r.exc_info is not None for r in crashes)


async def test_stop_cuts_the_backoff_short() -> None:
    """No broker at all: the loop waits its (long) backoff, and ``stop`` ends that wait at once."""
    stop = asyncio.Event()
    nowhere = f"127.0.0.1:{free_port()}"

    async def run(_consumer: AIOKafkaConsumer) -> None:
        raise AssertionError("no consumer can start without a broker")

    loop = asyncio.create_task(
        consume_forever(
            lambda: AIOKafkaConsumer(bootstrap_servers=nowhere),
            run,
            label="floor test",
            stop=stop,
            backoff=Backoff(60, 60),
        )
    )
    await asyncio.sleep(1)
    assert not loop.done()
    stop.set()
    await asyncio.wait_for(loop, 5)
