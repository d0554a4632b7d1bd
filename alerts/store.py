"""The alerts service's memory, in Kafka: it rebuilds everything from there on start.

- ``alerts.state`` (compacted, key = alert id): the latest ``AlertRecord`` of every open or recently closed alert;
  a tombstone once a closed alert has been kept long enough.
- ``alerts.control`` (compacted, key = ``silence:{id}`` / ``drill:{id}``): silences and drill windows; a tombstone
  once a window has ended long enough (``forget_windows``).
- ``alerts`` (key = alert key): every alert message, the contract's Kafka output.
- ``alerts.undelivered``: what a channel could not deliver after every retry, with the reason.

``save`` returns only when Kafka acknowledged every record, so the service commits a change to its book, answers
an officer, or commits the findings' offsets only after the change is durable.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from alerts.lifecycle import AlertRecord
from alerts.silences import DrillWindow, Silence
from core.contracts.alert import Alert
from core.errors import KafkaUnavailable
from core.kafka.admin import TopicSpec, flow_topics
from core.kafka.producer import FlushProducer, Record
from core.settings import KafkaConnection

logger = logging.getLogger(__name__)


@dataclass
class Loaded:
    records: list[AlertRecord] = field(default_factory=list)
    silences: list[Silence] = field(default_factory=list)
    drills: list[DrillWindow] = field(default_factory=list)


def alert_topics(conn: KafkaConnection) -> list[TopicSpec]:
    names = {conn.topic_findings, conn.topic_alerts, conn.topic_alert_state, conn.topic_alert_control}
    return [t for t in flow_topics(conn) if t.name in names | {conn.topic_undelivered}]


class AlertStore:
    def __init__(self, conn: KafkaConnection) -> None:
        self._conn = conn
        self._producer = FlushProducer(conn, alert_topics(conn))

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def load(self) -> Loaded:
        loaded = Loaded()
        for key, value in (await read_to_end(self._conn, self._conn.topic_alert_state)).items():
            if value is None:
                continue
            try:
                loaded.records.append(AlertRecord.model_validate_json(value))
            except ValidationError as exc:
                logger.error("alerts.state: unreadable record for alert %s, skipped: %s", key, exc)
        for key, value in (await read_to_end(self._conn, self._conn.topic_alert_control)).items():
            if value is None:
                continue
            try:
                if key.startswith("silence:"):
                    loaded.silences.append(Silence.model_validate_json(value))
                elif key.startswith("drill:"):
                    loaded.drills.append(DrillWindow.model_validate_json(value))
            except ValidationError as exc:
                logger.error("alerts.control: unreadable %s, skipped: %s", key, exc)
        return loaded

    async def save(self, records: list[AlertRecord], messages: list[Alert]) -> None:
        state = [
            Record(self._conn.topic_alert_state, r.model_dump_json().encode(), r.alert.id.encode()) for r in records
        ]
        out = [Record(self._conn.topic_alerts, a.model_dump_json().encode(), a.key.encode()) for a in messages]
        await self._deliver([*state, *out])

    async def forget(self, alert_ids: list[str]) -> None:
        await self._deliver([Record(self._conn.topic_alert_state, None, i.encode()) for i in alert_ids])

    async def save_window(self, window: Silence | DrillWindow) -> None:
        value = window.model_dump_json().encode()
        await self._deliver([Record(self._conn.topic_alert_control, value, _window_key(window))])

    async def forget_windows(self, windows: list[Silence | DrillWindow]) -> None:
        """Tombstones: a restarted service no longer loads these windows (and compaction drops them)."""
        await self._deliver([Record(self._conn.topic_alert_control, None, _window_key(w)) for w in windows])

    async def undelivered(self, entry: dict[str, object]) -> None:
        value = json.dumps(entry, ensure_ascii=False).encode()
        await self._deliver([Record(self._conn.topic_undelivered, value, str(entry.get("alert_id", "")).encode())])

    async def _deliver(self, records: list[Record]) -> None:
        generation = self._producer.generation
        try:
            await self._producer.deliver(records)
        except KafkaUnavailable:
            asyncio.get_running_loop().create_task(self._producer.reset(generation))
            raise


def _window_key(window: Silence | DrillWindow) -> bytes:
    return f"{'silence' if isinstance(window, Silence) else 'drill'}:{window.id}".encode()


async def read_to_end(conn: KafkaConnection, topic: str, *, timeout_s: float = 30.0) -> dict[str, bytes | None]:
    """Every key's latest value on ``topic`` (None: deleted), read from the beginning to the end as of now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=conn.kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20)
    latest: dict[str, bytes | None] = {}
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            await consumer.topics()
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not tps:
                return latest
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while not all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                for msgs in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                    for m in msgs:
                        latest[m.key.decode() if m.key else ""] = m.value
    except (KafkaError, TimeoutError, OSError) as exc:
        raise KafkaUnavailable(f"cannot read {topic!r} from Kafka {conn.kafka_bootstrap}: {exc!r}") from exc
    finally:
        await consumer.stop()
    return latest
