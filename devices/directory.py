"""The read side of the device registry: how every flow asks who is registered.

Two questions, two protocols. The gateway asks one per message, whether an id is registered
(``DeviceDirectory.is_registered``); the stream workers and the InfluxDB writer need a device's record
(``RecordDirectory.get``). ``KafkaDirectory`` answers both from the registry's compacted ``devices`` topic (the
default); ``OpenDirectory`` accepts every well-formed id (benchmarks, deployments without a registry); tests also
use ``StaticDirectory``. The write side is ``devices.feed.DevicePublisher``.

``KafkaDirectory`` follows the topic from the beginning, without a consumer group (every reader needs every
device), and answers from memory, so a change reaches every service within its fetch wait, without a restart.

Read-your-writes. ``PUT /api/devices/{id}`` answers only after Kafka acknowledged the record, and a device may
publish the moment it has its answer, before our fetch has brought the record here. So a reader that meets a
device it does not know calls ``catch_up``: it asks Kafka for the topic's end offsets *now* and waits until
everything before them is applied. The record of any registration that had answered before the reading arrived is
below those offsets, so after ``catch_up`` an unknown device really is unknown. Concurrent calls share one round
(one ListOffsets request at a time), and a call never joins a round that started before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from core.contracts.device import Device
from core.kafka.admin import devices_topic, ensure_topics
from core.kafka.consumer import follow_topic
from core.kafka.reading import read_to_end
from core.settings import KafkaConnection

logger = logging.getLogger(__name__)


class DeviceDirectory(Protocol):
    """Answers whether a device id is registered. ``is_registered`` must be cheap: it is called for every MQTT
    message. ``catch_up`` is called before a device is refused as unknown: it returns once every registration that
    had answered before the call is known here (``False`` if that could not be confirmed in time)."""

    def is_registered(self, device_id: str) -> bool: ...

    async def catch_up(self, timeout_s: float = 10.0) -> bool: ...


class RecordDirectory(Protocol):
    """Gives a registered device's record (the InfluxDB writer's line schema and the stream workers' rules need
    its kind, site and thresholds). ``catch_up`` as in ``DeviceDirectory``: called before a device is taken for
    unregistered."""

    def get(self, device_id: str) -> Device | None: ...

    async def catch_up(self, timeout_s: float = 10.0) -> bool: ...


class OpenDirectory:
    """Treats every well-formed device id as registered (the stack's mode until the registry exists)."""

    def is_registered(self, device_id: str) -> bool:
        return True

    async def catch_up(self, timeout_s: float = 10.0) -> bool:
        return True


class StaticDirectory:
    """A fixed set of device ids, for tests and for small fixed deployments."""

    def __init__(self, device_ids: Iterable[str]) -> None:
        self._ids = frozenset(device_ids)

    def is_registered(self, device_id: str) -> bool:
        return device_id in self._ids

    async def catch_up(self, timeout_s: float = 10.0) -> bool:
        return True


class KafkaDirectory:
    """The registered devices, kept current from the devices topic. ``ready`` once caught up.

    The gateway needs only the ids; the stream workers ask for ``keep_records`` and get every ``Device`` record in
    memory (about 12 MB per 100,000 devices, docs/benchmarks.md): the registry as a table that every worker holds
    whole, like a Kafka Streams GlobalKTable, so a rebalance never has to move it. ``on_change(device_id, record)``
    (``None`` for a deletion) is called for each change after the first catch-up.
    """

    def __init__(
        self,
        conn: KafkaConnection,
        *,
        fetch_wait_ms: int = 100,
        keep_records: bool = False,
        on_change: Callable[[str, Device | None], None] | None = None,
    ) -> None:
        self._conn = conn
        self._fetch_wait_ms = fetch_wait_ms
        self._keep_records = keep_records
        self._on_change = on_change
        self._ids: set[str] = set()
        self._records: dict[str, Device] = {}
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        # read-your-writes (``catch_up``): the live consumer, whether its records are the ones served, progress
        self._consumer: tuple[AIOKafkaConsumer, list[TopicPartition]] | None = None
        self._live = False
        self._moved = asyncio.Event()
        self._next_round: asyncio.Future[None] | None = None
        self._rounds: asyncio.Task[None] | None = None

    def is_registered(self, device_id: str) -> bool:
        return device_id in self._ids

    def get(self, device_id: str) -> Device | None:
        """The device's record (only with ``keep_records``)."""
        return self._records.get(device_id)

    def records(self) -> dict[str, Device]:
        return self._records

    def __len__(self) -> int:
        return len(self._ids)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        for task in (self._rounds, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def catch_up(self, timeout_s: float = 10.0) -> bool:
        """Wait until every record written to the devices topic before this call is applied here (see the module
        docstring). ``False`` if that could not be confirmed within ``timeout_s`` (Kafka unavailable)."""
        if self._next_round is None:
            self._next_round = asyncio.get_running_loop().create_future()
            if self._rounds is None or self._rounds.done():
                self._rounds = asyncio.get_running_loop().create_task(self._run_rounds())
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(self._next_round)
        except TimeoutError:
            logger.warning("device directory: could not catch up with the registry within %.1f s", timeout_s)
            return False
        return True

    async def _run_rounds(self) -> None:
        while (round_ := self._next_round) is not None:
            self._next_round = None  # callers from here on join the next round
            while True:
                try:
                    await self._one_round()
                    break
                except asyncio.CancelledError:
                    round_.cancel()
                    raise
                except (KafkaError, OSError) as exc:  # the consumer failed under us: measure again on its successor
                    logger.debug("device directory: catch-up round failed (%r); again", exc)
                    await asyncio.sleep(0.2)
            round_.set_result(None)

    async def _one_round(self) -> None:
        while True:
            await self.ready.wait()
            live = self._consumer
            while live is None:
                await self._moved.wait()
                live = self._consumer
            consumer, tps = live
            ends = await consumer.end_offsets(tps)
            while self._consumer is live:
                if self._live and all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                    return
                await self._moved.wait()
            # the consumer was replaced (Kafka failed): ask its successor

    def _progress(self) -> None:
        self._moved.set()
        self._moved = asyncio.Event()

    def _apply(self, m: Any, ids: set[str], records: dict[str, Device]) -> tuple[str, Device | None] | None:
        """Apply one record of the topic to ``ids`` and ``records``: the change, or None for an unreadable one."""
        key = m.key.decode() if m.key else ""
        record = None
        if m.value is not None and self._keep_records:
            try:
                record = Device.model_validate_json(m.value)
            except ValidationError as exc:
                logger.warning("device directory: unreadable record for %r: %s", key, exc)
                return None
        if m.value is None:
            ids.discard(key)
            records.pop(key, None)
        else:
            ids.add(key)
            if record is not None:
                records[key] = record
        return key, record

    async def _follow(self) -> None:
        async def run(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
            self._consumer, self._live = (consumer, tps), False
            self._progress()
            try:
                await follow(consumer, tps)
            finally:
                self._consumer, self._live = None, False
                self._progress()

        async def follow(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
            # Everything up to the end offsets as of now first, into fresh sets (until then the old ones serve).
            ids: set[str] = set()
            records: dict[str, Device] = {}
            await read_to_end(consumer, tps, lambda m: self._apply(m, ids, records))
            self._ids, self._records = ids, records  # from here on updated in place
            self._live = True
            self.ready.set()
            logger.info("device directory: %d devices registered", len(ids))
            self._progress()
            while True:
                for msgs in (await consumer.getmany(timeout_ms=500)).values():
                    for m in msgs:
                        change = self._apply(m, ids, records)
                        if change is not None and self._on_change is not None:
                            self._on_change(*change)
                self._progress()

        async def prepare() -> None:
            await ensure_topics(self._conn.kafka_bootstrap, [devices_topic(self._conn)])

        await follow_topic(
            self._conn.kafka_bootstrap, self._conn.topic_devices, "device directory", run, prepare, self._fetch_wait_ms
        )
