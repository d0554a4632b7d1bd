"""Every record of a Kafka topic, from its beginning to its end at the moment of the call.

For accounting after a run (was every reading published in Kafka? when was a probe's record produced?): it reads
without a consumer group, commits nothing, and stops at the end offsets taken when it started, so it returns even
while producers keep writing. The reading itself is ``core.kafka.reading.read_to_end``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from core.kafka.reading import read_to_end


async def read_topic(bootstrap: str, topic: str, keep: Callable[[int, bytes], None]) -> None:
    """Give ``keep`` (record timestamp in epoch ms, value) for every record of every partition of ``topic`` up to its
    end offset now, in offset order within each partition (none for a topic the broker does not know)."""
    await read_to_end(bootstrap, topic, lambda record: keep(record.timestamp, record.value))


class Audit:
    """A consumer group reading ``topic`` as it comes, for as long as a run lasts (``with``), on a thread of its own;
    every record is handed to ``keep`` (on that thread) in offset order within each partition.

    For accounting on the one-machine Kafka on disk, whose store trims readings every consumer group has passed
    (``smartcity.stack.keeper``): read after a run from offset 0, the readings topic holds only its tail. An auditor
    in a group of its own that commits every second reads them as they come, and the store keeps each until the
    auditor has it too. Entered, it has joined its group and starts from the topic's first record; ``caught_up``
    waits until it has read everything the topic holds at that moment."""

    def __init__(
        self, bootstrap: str, topic: str, keep: Callable[[ConsumerRecord[bytes, bytes]], None], group: str = "audit"
    ) -> None:
        self.bootstrap, self.topic, self.group, self.keep = bootstrap, topic, group, keep
        self._joined, self._halt = threading.Event(), threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True, name=f"audit {topic}")
        self.failed: BaseException | None = None

    def __enter__(self) -> Audit:
        self._thread.start()
        if not self._joined.wait(60):
            self.__exit__()
            raise TimeoutError(f"the audit of {self.topic} did not join its group in 60 s: {self.failed!r}")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._halt.set()
        self._thread.join(30)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            auto_offset_reset="earliest",
            enable_auto_commit=True,
            auto_commit_interval_ms=1000,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            # seldom and in bulk: on one machine the auditor's fetches cost the broker CPU the run measures
            fetch_max_wait_ms=1000,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        try:
            await consumer.start()
            self._consumer = consumer
            while not self._halt.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        self.keep(record)
                if consumer.assignment():
                    self._joined.set()
        except BaseException as exc:
            self.failed = exc
            raise
        finally:
            await consumer.stop()

    def caught_up(self, timeout: float = 60) -> bool:
        """Whether the audit has read everything the topic held when this was called, within ``timeout``."""
        if self._loop is None or not self.alive:
            return False
        ends = asyncio.run_coroutine_threadsafe(self._ends(), self._loop).result(30)
        deadline = time.monotonic() + timeout
        while self.alive and time.monotonic() < deadline:
            positions = asyncio.run_coroutine_threadsafe(self._positions(list(ends)), self._loop).result(30)
            if all(positions[tp] >= end for tp, end in ends.items()):
                return True
            time.sleep(0.2)
        return False

    async def _ends(self) -> dict[TopicPartition, int]:
        assert self._consumer is not None
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(list(self._consumer.assignment()))
        return ends

    async def _positions(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        assert self._consumer is not None
        return {tp: await self._consumer.position(tp) for tp in tps}
