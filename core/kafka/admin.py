"""Creating the flow's Kafka topics, idempotently.

Used by ``smartcity up`` and every service at start (before they produce), by ``smartcity topics``, and by the
tests. Never while a producer is alive: see ``core.kafka.producer`` for why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from core.errors import KafkaUnavailable
from core.settings import KafkaConnection

logger = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS
#: How long each kind of topic keeps records (``retention.ms``; docs/reliability.md, "Bounded"). Readings are stored
#: within seconds: six hours covers an InfluxDB or writer outage of an evening. Refused readings, findings, alerts
#: and undelivered notices are for people to look at: a week. Compacted topics keep the latest record per key.
READINGS_RETENTION_MS: Final = 6 * HOUR_MS
RECORDS_RETENTION_MS: Final = 7 * DAY_MS
#: How long a forgotten alert's tombstone stays in ``alerts.state``. Its one reader, the alerts service, reads the
#: topic whole in seconds at its start, so an hour is ample; with Kafka's default (a day) the alerts service,
#: forgetting a closed alert every few seconds under a steady drill, kept tens of thousands of tombstones, each an
#: object in the one-machine Kafka store (docs/reliability.md, "Bounded").
ALERT_STATE_TOMBSTONES_MS: Final = HOUR_MS


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int = 1
    compacted: bool = False
    retention_ms: int | None = None  # for topics that are not compacted; None: the broker's default
    delete_retention_ms: int | None = None  # compacted topics: how long a tombstone stays; None: the broker's (a day)

    def configs(self) -> dict[str, str]:
        if self.compacted:
            out = {"cleanup.policy": "compact"}
            if self.delete_retention_ms is not None:
                out["delete.retention.ms"] = str(self.delete_retention_ms)
            return out
        return {} if self.retention_ms is None else {"retention.ms": str(self.retention_ms)}


def flow_topics(kafka: KafkaConnection) -> list[TopicSpec]:
    """The topics the parts built so far need, sized from settings."""
    return [
        TopicSpec(
            kafka.topic_readings, kafka.readings_partitions, kafka.kafka_replication, retention_ms=READINGS_RETENTION_MS
        ),
        TopicSpec(
            kafka.topic_rejected, kafka.rejected_partitions, kafka.kafka_replication, retention_ms=RECORDS_RETENTION_MS
        ),
        TopicSpec(
            kafka.topic_findings, kafka.findings_partitions, kafka.kafka_replication, retention_ms=RECORDS_RETENTION_MS
        ),
        TopicSpec(
            kafka.topic_alerts, kafka.findings_partitions, kafka.kafka_replication, retention_ms=RECORDS_RETENTION_MS
        ),
        TopicSpec(
            kafka.topic_alert_state,
            1,
            kafka.kafka_replication,
            compacted=True,
            delete_retention_ms=ALERT_STATE_TOMBSTONES_MS,
        ),
        TopicSpec(kafka.topic_alert_control, 1, kafka.kafka_replication, compacted=True),
        TopicSpec(kafka.topic_undelivered, 1, kafka.kafka_replication, retention_ms=RECORDS_RETENTION_MS),
        TopicSpec(kafka.topic_health, kafka.readings_partitions, kafka.kafka_replication, retention_ms=HOUR_MS),
    ]


def all_topics(kafka: KafkaConnection) -> list[TopicSpec]:
    """Every topic of the flow: created once, before any service starts (see ``core.kafka.producer`` for why)."""
    return [*flow_topics(kafka), devices_topic(kafka)]


def devices_topic(kafka: KafkaConnection) -> TopicSpec:
    """Compacted, partitioned like the readings so that device-keyed state is co-partitioned with them."""
    return TopicSpec(kafka.topic_devices, kafka.readings_partitions, kafka.kafka_replication, compacted=True)


async def ensure_topics(bootstrap: str, specs: list[TopicSpec], *, timeout_ms: int = 5000) -> list[str]:
    """Create every topic in ``specs`` that does not exist yet; returns the names created.

    Raises ``KafkaUnavailable`` when the broker cannot be reached or refuses for another reason than "exists".
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        new = [
            NewTopic(
                s.name,
                s.partitions,
                s.replication,
                topic_configs=s.configs(),
            )
            for s in missing
        ]
        response = await admin.create_topics(new)
        created = []
        for name, code, message in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != _TOPIC_ALREADY_EXISTS:
                raise KafkaUnavailable(f"creating topic {name!r} failed: error {code}: {message}")
        if created:
            logger.info("created Kafka topics %s", ", ".join(created))
        return created
    except KafkaError as exc:
        raise KafkaUnavailable(f"Kafka at {bootstrap} is unavailable: {exc!r}") from exc
    finally:
        await admin.close()
