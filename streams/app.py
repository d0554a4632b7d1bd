"""The Faust app: topics, tables, agents. Thin: decode, call ``streams.processor`` (which calls ``rules``), send.

::

    readings (ReadingBatch records, partitioned by device)
       `-> agent evaluate ----> findings (key = alert key)      <- read by the alerts service
              |  table rule-state (bucket -> device states), changelog-backed, co-partitioned with readings
              `-> site-findings (key = site key) -> agent correlate -> findings
                                                       table site-state (site key -> SiteState)
    timer (every streams_tick_s) -> ticks (one per owned readings partition) -> agent tick -> findings
    timer (every streams_health_flush_s) -> devices.health (HealthBatch per readings partition) <- read by the API

The registry is a ``devices.directory.KafkaDirectory`` holding every record in memory (a global table). A record with
a reading of a device it does not hold waits for it to catch up with the registry's topic first
(``KafkaDirectory.catch_up``): the gateway accepted the reading, so the device was registered before it arrived, and
its first reading, sent the moment ``PUT`` answered, is evaluated under its own record, not under no rules at all.

Order of effects per record: findings are sent and acknowledged by Kafka *before* the rule states that produced
them are written to the changelog, and before the record's offset may be committed (its acknowledgement to Faust);
the next records are evaluated meanwhile, and no checkpoint of the partition is written while a finding is
pending. A worker killed in between leaves the old state, the record is replayed by the next owner (its offset was
not committed), and the same finding is sent again with the same content-derived id; the reverse order would leave
a saved state that already holds the alarm and a finding that never left.

Table writes need the current event's partition (Faust writes the changelog to the source partition), which is
why offline checks run as an agent on a ``ticks`` topic with the readings' partition count, fed by a timer, rather
than in the timer itself. Internal topics are created before Faust starts (``streams_topics``), never by Faust:
Tansu's memory store breaks when a topic is created while clients are asking for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import faust
from faust.types import TP, EventT, StreamT

from core.clock import now_ms
from core.contracts.device import Device
from core.contracts.finding import Finding
from core.contracts.telemetry import decode_batch
from core.kafka.admin import DAY_MS, HOUR_MS, TopicSpec
from core.kafka.partitioning import Partitioner
from devices.directory import KafkaDirectory, RecordDirectory
from devices.health import HealthChanges
from rules.engine import Engine
from rules.pack import load_pack
from streams import transport
from streams.metrics import StreamMetrics
from streams.processor import RuleProcessor, SiteProcessor
from streams.settings import StreamsSettings

logger = logging.getLogger(__name__)

RULE_STATE, SITE_STATE = "rule-state", "site-state"


def streams_topics(settings: StreamsSettings) -> list[TopicSpec]:
    """Every topic the workers use besides the flow's (created by ``smartcity up`` or ``smartcity topics``)."""
    app_id, p, r = settings.streams_app_id, settings.readings_partitions, settings.kafka_replication
    return [
        TopicSpec(f"{app_id}-ticks", p, r, retention_ms=HOUR_MS),
        TopicSpec(f"{app_id}-site-findings", settings.findings_partitions, r, retention_ms=DAY_MS),
        TopicSpec(f"{app_id}-{RULE_STATE}-changelog", p, r, compacted=True),
        TopicSpec(f"{app_id}-{SITE_STATE}-changelog", settings.findings_partitions, r, compacted=True),
        TopicSpec(f"{app_id}-__assignor-__leader", 1, r),
    ]


class WorkerDirectory(RecordDirectory, Protocol):
    """The registry as the workers read it: ``devices.directory.KafkaDirectory`` with ``keep_records``, or a fixed
    one (tests)."""

    ready: asyncio.Event

    async def start(self) -> None: ...

    async def catch_up(self, timeout_s: float = 10.0) -> bool: ...

    def get(self, device_id: str) -> Device | None: ...

    def records(self) -> dict[str, Device]: ...


@dataclass
class Streams:
    app: faust.App
    processor: RuleProcessor
    sites: SiteProcessor
    directory: WorkerDirectory
    metrics: StreamMetrics
    agents: dict[str, faust.types.AgentT[Any]]


#: Where findings go instead of Kafka (tests): returns a future done once "delivered", or None for at once.
Sink = Callable[[list[Finding]], Awaitable["asyncio.Future[Any] | None"]]


@dataclass
class _Pending:
    delivered: list[asyncio.Future[Any]] = field(default_factory=list)
    devices: set[str] = field(default_factory=set)
    events: list[EventT[bytes]] = field(default_factory=list)


def build(
    settings: StreamsSettings,
    metrics: StreamMetrics,
    directory: WorkerDirectory | None = None,
    *,
    sink: Sink | None = None,
    clock: Callable[[], int] = now_ms,
) -> Streams:
    """The app and its parts. ``directory``, ``sink`` (where findings go) and ``clock`` are replaceable for tests with
    Faust's test context, which runs agents without a broker."""
    transport.install(
        settings.streams_fetch_wait_ms,
        frozenset({settings.topic_readings, f"{settings.streams_app_id}-site-findings"}),
        metrics.consumer,
        bootstrap=settings.kafka_bootstrap,
    )
    engine = Engine(load_pack(settings.streams_rule_pack))
    partitioner = Partitioner(settings.readings_partitions)

    def device_changed(device_id: str, record: Device | None) -> None:
        if record is None:  # called only once the registry is followed, after ``processor`` exists
            processor.forget_device(device_id)
            health.forget_device(device_id)

    directory = directory or KafkaDirectory(settings, keep_records=True, on_change=device_changed)
    processor = RuleProcessor(
        engine,
        directory.get,
        partitioner,
        checkpoint_s=settings.streams_checkpoint_s,
        buckets_per_partition=settings.streams_state_buckets,
    )
    sites = SiteProcessor(engine)
    health = HealthChanges()

    session = settings.streams_session_timeout_s
    app = faust.App(
        settings.streams_app_id,
        broker=";".join(f"{transport.SCHEME}://{host.strip()}" for host in settings.kafka_bootstrap.split(",")),
        store="memory://",
        datadir=str(settings.streams_data_dir),
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=False,
        topic_partitions=settings.readings_partitions,
        topic_replication_factor=settings.kafka_replication,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=session,
        broker_heartbeat_interval=max(0.5, session / 5),
        broker_request_timeout=max(30.0, session * 2),
        broker_rebalance_timeout=max(10.0, session * 2),
        broker_commit_interval=settings.streams_commit_interval_s,
        producer_linger_ms=1,
        # a checkpoint sends one record per rule-state bucket (1,024 on four partitions), about 18 KiB each at
        # 60,000 devices: in 16 KiB batches (the default) each was a batch of its own, so an object of its own in
        # the one-machine Kafka's store: 1,024 writes in a burst every 30 s
        producer_max_batch_size=512 * 1024,
        stream_wait_empty=False,
        logging_config=None,
    )

    def raw_topic(name: str, key_type: type[str] | type[bytes] = bytes, partitions: int | None = None) -> faust.TopicT:
        return app.topic(
            name,
            key_type=key_type,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
        )

    readings_topic = raw_topic(settings.topic_readings)
    ticks_topic = raw_topic(f"{settings.streams_app_id}-ticks")
    site_topic = raw_topic(f"{settings.streams_app_id}-site-findings", str, settings.findings_partitions)
    findings_topic = raw_topic(settings.topic_findings, str)
    health_topic = raw_topic(settings.topic_health)
    rule_state = app.Table(RULE_STATE, key_type=str, partitions=settings.readings_partitions)
    site_state = app.Table(SITE_STATE, key_type=str, partitions=settings.findings_partitions)

    async def to_kafka(findings: list[Finding]) -> asyncio.Future[Any]:
        """Send findings and their copies for site correlation; the future is done once Kafka has them all."""
        futures = []
        for f in findings:
            body = f.model_dump_json().encode()
            futures.append(await findings_topic.send(key=f.key, value=body))
            for site_key in sites.routes(f):
                futures.append(await site_topic.send(key=site_key, value=body))
        return asyncio.gather(*futures)

    async def to_sink(findings: list[Finding]) -> asyncio.Future[Any]:
        assert sink is not None
        delivered = await sink(findings)
        if delivered is None:
            delivered = asyncio.get_running_loop().create_future()
            delivered.set_result(None)
        return delivered

    send_findings = to_kafka if sink is None else to_sink

    async def emit_now(findings: list[Finding]) -> asyncio.Future[Any]:
        """Send ``findings``; the future is done once Kafka acknowledged them (raises if it refused)."""
        delivered = await send_findings(findings)
        for f in findings:
            metrics.findings.labels(f.hazard.value, f.level.value, f.event.value).inc()
        return delivered

    async def emit(findings: list[Finding]) -> None:
        await (await emit_now(findings))

    #: By readings partition: findings sent but not yet acknowledged by Kafka, the devices whose alarm states wait
    #: for them, and the records whose offsets wait for both (see ``settled``).
    pending: dict[int, _Pending] = {}

    def settled(partition: int) -> bool:
        """Whether nothing of ``partition`` waits for Kafka. Once every pending finding is acknowledged, the states
        they came from are saved (in the current event's partition: the same) and their records acknowledged to
        Faust, so their offsets may be committed; a refused send raises here, as an awaited one did."""
        waiting = pending.get(partition)
        if waiting is None:
            return True
        if not all(f.done() for f in waiting.delivered):
            return False
        for f in waiting.delivered:
            f.result()
        del pending[partition]
        save(waiting.devices, "alarm")
        for event in waiting.events:
            event.ack()
        return True

    async def settle(partition: int) -> None:
        """Wait until ``settled``: before another agent saves states of ``partition`` (the offline ticks)."""
        while (waiting := pending.get(partition)) is not None and not settled(partition):
            await asyncio.gather(*waiting.delivered)

    def save(device_ids: set[str], cause: str) -> None:
        if not device_ids:
            return
        writes = processor.bucket_writes(device_ids, rule_state)
        for key, bucket in writes.items():
            rule_state[key] = bucket
        metrics.states_saved.labels(cause).inc(len(device_ids))
        metrics.bucket_writes.inc(len(writes))

    watched = {settings.topic_readings, site_topic.get_topic_name()}
    metrics.consumer.lag.bind(
        lambda: [tp for tp in app.consumer.assignment() if tp.topic in watched],
        lambda tp: app.consumer.highwater(TP(tp.topic, tp.partition)),
    )

    @app.agent(readings_topic)
    async def evaluate(stream: StreamT[bytes]) -> AsyncIterator[None]:
        """Records are acknowledged to Faust by hand (``noack``): a record whose findings are still on their way to
        Kafka is acknowledged, and its alarm states saved, once they arrived (``settled``), while the next records
        are evaluated. Awaiting each finding before the next record cost a produce round trip per alarm: with a
        probe alarm every 150 ms on a busy machine the worker fell to 2,400 readings/s behind 2,900 accepted
        (docs/benchmarks.md, "Issue 20")."""
        await directory.ready.wait()
        event: EventT[bytes]
        async for event in stream.noack().events():  # type: ignore[attr-defined]  # faust.Stream has it, StreamT not
            partition = event.message.partition
            metrics.consumer.lag.read(event.message.topic, partition, event.message.offset)
            settled(partition)
            try:
                batch = decode_batch(event.value)
            except ValueError as exc:
                metrics.undecodable.inc()
                logger.warning(
                    "skipped an unreadable readings record at %s:%d: %s", partition, event.message.offset, exc
                )
                event.ack()
                yield None  # one result per record: Faust's test context waits for it
                continue
            get = directory.get
            if any(get(r["device_id"]) is None for r in batch):
                # Registered a moment ago, perhaps (the gateway knew it): evaluate it under its record.
                caught_up = await directory.catch_up(settings.streams_registry_wait_s)
                metrics.registry_waits.labels("caught_up" if caught_up else "timeout").inc()
            started, now = time.perf_counter(), clock()
            if event.message.timestamp:
                processor.advance(partition, int(event.message.timestamp * 1000))
            repeats = processor.duplicates
            findings, states = processor.readings(batch, partition, now, rule_state)
            health.readings(partition, batch, get, {f.device_id for f in findings if f.device_id})
            metrics.evaluation_seconds.observe(time.perf_counter() - started)
            metrics.duplicates.inc(processor.duplicates - repeats)
            if findings:  # a saved state must never be ahead of the findings Kafka has (see module doc)
                waiting = pending.setdefault(partition, _Pending())
                waiting.delivered.append(await emit_now(findings))
                waiting.devices |= states
                waiting.events.append(event)
            else:
                event.ack()
            if settled(partition):  # no checkpoint while an alarm state waits: it would save that state early
                save(processor.checkpoint_due(partition, now), "checkpoint")
            metrics.records.inc()
            metrics.readings.inc(len(batch) - (processor.duplicates - repeats))
            if batch:
                metrics.lag_seconds.set(max(0.0, (now - batch[-1]["received_at"]) / 1000))
            yield None

    @app.agent(ticks_topic)
    async def tick(stream: StreamT[bytes]) -> AsyncIterator[None]:
        await directory.ready.wait()
        event: EventT[bytes]
        async for event in stream.events():
            partition = event.message.partition
            await settle(partition)
            now = clock()
            findings, states = processor.tick(partition, directory.records(), now, rule_state)
            if findings:
                await emit(findings)
            save(states, "alarm")
            save(processor.checkpoint_due(partition, now), "checkpoint")
            metrics.devices_in_memory.set(len(processor))
            yield None

    @app.agent(site_topic)
    async def correlate(stream: StreamT[bytes]) -> AsyncIterator[None]:
        event: EventT[bytes]
        async for event in stream.events():
            metrics.consumer.lag.read(event.message.topic, event.message.partition, event.message.offset)
            key = event.key if isinstance(event.key, str) else (event.key or b"").decode()
            finding = Finding.model_validate_json(event.value)
            found, dump = sites.correlate(key, finding, clock(), site_state.get)
            if found is not None:
                await emit([found])
            if dump is not None:
                site_state[key] = dump
            elif key in site_state:
                del site_state[key]
            yield None

    async def send_ticks() -> None:
        for tp in app.consumer.assignment():  # a source topic's assigned partitions are the active ones
            if tp.topic == settings.topic_readings:
                await ticks_topic.send(value=b"tick", partition=tp.partition)

    async def send_health() -> None:
        """Due device-health entries, a record per readings partition, for the API (``devices.feed.follow_health``).
        Not awaited until Kafka has them: a lost entry is replaced by the device's next one."""
        for partition, entries in health.take().items():
            await health_topic.send(value=entries.model_dump_json().encode(), partition=partition)
            metrics.health_entries.inc(len(entries.devices))

    async def follow_registry() -> None:
        await directory.start()

    async def moved(_sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        """Partitions revoked or assigned: cached states of those partitions may be stale; reload from tables."""
        tps: set[TP] = args[0] if args else set()
        moved_partitions = {tp.partition for tp in tps if tp.topic == settings.topic_readings}
        for partition in moved_partitions:  # its records were not acknowledged: the next owner evaluates them again
            pending.pop(partition, None)
        processor.forget_partitions(moved_partitions)
        health.forget_partitions(moved_partitions)
        sites.forget()

    app.timer(settings.streams_tick_s)(send_ticks)
    app.timer(settings.streams_health_flush_s)(send_health)
    app.task(follow_registry)
    app.on_partitions_revoked.connect(moved)
    app.on_partitions_assigned.connect(moved)

    agents = {"evaluate": evaluate, "tick": tick, "correlate": correlate}
    return Streams(app, processor, sites, directory, metrics, agents)
