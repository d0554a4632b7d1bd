"""The alerts service's memory, in Kafka: it rebuilds everything from there on start.

- ``alerts.state`` (compacted, key = alert id): the latest ``AlertRecord`` of every open or recently closed alert;
  a tombstone once a closed alert has been kept long enough. Incidents too, under ``incident:{id}``
  (``IncidentRecord``), saved in the same write as the alert changes that changed them.
- ``alerts.control`` (compacted, key = ``silence:{id}`` / ``drill:{id}``): silences and drill windows; a tombstone
  once a window has ended long enough (``forget_windows``).
- ``alerts`` (key = alert key): every alert message, the contract's Kafka output.
- ``alerts.undelivered``: what a channel could not deliver after every retry, with the reason.

``save`` returns only when Kafka acknowledged every record, so the service commits a change to its book, answers
an officer, or commits the findings' offsets only after the change is durable.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from pydantic import ValidationError

from alerts.incidents import STATE_PREFIX, IncidentRecord
from alerts.lifecycle import AlertRecord
from alerts.silences import DrillWindow, Silence
from core.contracts.alert import Alert
from core.kafka.admin import TopicSpec, flow_topics
from core.kafka.producer import FlushProducer, Record
from core.kafka.reading import read_table
from core.settings import KafkaConnection

logger = logging.getLogger(__name__)


@dataclass
class Loaded:
    records: list[AlertRecord] = field(default_factory=list)
    incidents: list[IncidentRecord] = field(default_factory=list)
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
        """Every alert record and window, from ``alerts.state`` and ``alerts.control`` read to their end as of now
        (``core.kafka.reading.read_table``); ``KafkaUnavailable`` if they cannot be read whole."""
        loaded = Loaded()
        for key, value in (await read_table(self._conn.kafka_bootstrap, self._conn.topic_alert_state)).items():
            if value is None:
                continue
            try:
                if key.startswith(STATE_PREFIX):
                    loaded.incidents.append(IncidentRecord.model_validate_json(value))
                else:
                    loaded.records.append(AlertRecord.model_validate_json(value))
            except ValidationError as exc:
                logger.error("alerts.state: unreadable record %s, skipped: %s", key, exc)
        for key, value in (await read_table(self._conn.kafka_bootstrap, self._conn.topic_alert_control)).items():
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

    async def save(
        self, records: list[AlertRecord], messages: list[Alert], incidents: list[IncidentRecord] | None = None
    ) -> None:
        topic = self._conn.topic_alert_state
        state = [Record(topic, r.model_dump_json().encode(), r.alert.id.encode()) for r in records]
        state += [Record(topic, r.model_dump_json().encode(), _incident_key(r.incident.id)) for r in incidents or []]
        out = [Record(self._conn.topic_alerts, a.model_dump_json().encode(), a.key.encode()) for a in messages]
        await self._deliver([*state, *out])

    async def forget(self, alert_ids: list[str], incident_ids: list[str] | None = None) -> None:
        topic = self._conn.topic_alert_state
        tombstones = [Record(topic, None, i.encode()) for i in alert_ids]
        tombstones += [Record(topic, None, _incident_key(i)) for i in incident_ids or []]
        await self._deliver(tombstones)

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
        await self._producer.deliver_or_replace(records)


def _incident_key(incident_id: str) -> bytes:
    return f"{STATE_PREFIX}{incident_id}".encode()


def _window_key(window: Silence | DrillWindow) -> bytes:
    return f"{'silence' if isinstance(window, Silence) else 'drill'}:{window.id}".encode()
