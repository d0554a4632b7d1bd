"""The ingest gateway: MQTT telemetry in, Kafka readings out, nothing acknowledged before Kafka has it.

The guarantee: a QoS 1 message's PUBACK goes out only after Kafka acknowledged every record carrying its readings
(and, for a refused message, the record on the refused topic). A gateway killed at any point therefore loses
nothing: the broker redelivers what we had not acknowledged, to us when we return (persistent session) or to another
gateway of the shared-subscription group. The price is duplicates after a crash, dropped downstream by (device, seq).

Flow of one message: ``parse_message`` (pure) -> readings into the current ``_Flush`` -> the flush goes out after
``linger``, at ``max_batch`` readings or at ``max_flush_bytes`` (or, while ``max_flushes`` deliveries are out, when
one of them ends), grouped by the partition of each device under the topic's actual partition count -> Kafka
acknowledges -> the message is marked done in the ``AckTracker``, which releases PUBACKs in arrival order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from functools import partial

import paho.mqtt.client as mqtt
import pydantic_core
from paho.mqtt.enums import MQTTProtocolVersion

from core.backoff import Backoff
from core.contracts import (
    ERRORS_TOPIC,
    SCHEMA_VERSION,
    ReadingDict,
    Refusal,
    RefusalItem,
    RefusalReason,
    RefusedMessage,
)
from core.errors import KafkaUnavailable
from core.kafka.admin import flow_topics
from core.kafka.partitioning import Partitioner, group_by_partition
from core.kafka.producer import FlushProducer, Record
from core.mqtt import KEEPALIVE_S, AsyncMqttClient
from devices.directory import DeviceDirectory
from ingest.acks import AckTracker
from ingest.limits import DeviceRateLimit
from ingest.metrics import GatewayMetrics
from ingest.parse import Parsed, device_id_of, parse_message
from ingest.settings import GatewaySettings

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Flush:
    readings: list[ReadingDict] = field(default_factory=list)
    refused: list[Record] = field(default_factory=list)
    entries: list[list[int]] = field(default_factory=list)
    messages: int = 0
    bytes: int = 0  # MQTT payload bytes


class Gateway:
    """One gateway process's worth of work. ``run`` until ``stop`` is set; then it drains and disconnects."""

    def __init__(self, settings: GatewaySettings, directory: DeviceDirectory, metrics: GatewayMetrics) -> None:
        self.settings = settings
        self._directory = directory
        self.metrics = metrics
        self._partitioner = Partitioner(settings.readings_partitions)
        self._tracker = AckTracker()
        self._limit = DeviceRateLimit(settings.gateway_device_rate, settings.gateway_device_burst)
        self._producer = FlushProducer(settings, flow_topics(settings), timeout_s=settings.gateway_kafka_timeout_s)
        self._flush = _Flush()
        self._timer: asyncio.TimerHandle | None = None
        self._in_flight: set[asyncio.Task[None]] = set()  # deliveries, at most ``gateway_max_flushes``
        # messages of devices not (yet) in the directory, waiting for it to catch up, with their PUBACK handles
        self._waiting: dict[asyncio.Task[Parsed], list[int] | None] = {}
        self._stamps: dict[str, int] = {}  # device id -> the newest time stamped on one of its readings (``_apart``)
        self._kafka_ok = False
        self._connections = 0
        # Back-pressure: reading from MQTT stops while this many messages await Kafka, and starts again at half.
        # The broker should stop at our receive maximum by itself; Mosquitto 2.0.11 does not always (it sent a
        # gateway waiting for a slow Kafka 120,000 messages past a receive maximum of 2,000: eclipse-mosquitto#2301),
        # and everything held here costs memory and garbage-collector time on every message after it.
        self._resume_timer: asyncio.TimerHandle | None = None
        self._draining = False
        group = settings.gateway_share_group
        self._subscription = f"$share/{group}/{TELEMETRY}" if group else TELEMETRY
        self._other = TELEMETRY if group else f"$share/ingest/{TELEMETRY}"  # the default group's
        self.mqtt = AsyncMqttClient(
            settings,
            settings.gateway_client_id,
            clean_start=False,
            session_expiry_s=settings.gateway_session_expiry_s,
            receive_maximum=settings.gateway_receive_maximum,
            manual_ack=True,
            protocol=MQTTProtocolVersion.MQTTv5
            if settings.gateway_mqtt_protocol == "5"
            else MQTTProtocolVersion.MQTTv311,
            subscriptions=[(self._subscription, 1)],
            on_message=self._on_message,
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
        )
        metrics.mqtt_protocol.labels(settings.gateway_mqtt_protocol).set(1)
        metrics.unacked.set_function(lambda: len(self._tracker))
        metrics.reading_paused.set_function(lambda: 1 if self.mqtt.reading_paused and not self._draining else 0)

    def health(self) -> dict[str, bool]:
        return {"mqtt": self.mqtt.subscribed.is_set(), "kafka": self._kafka_ok}

    async def run(self, stop: asyncio.Event) -> None:
        await self._producer.start()
        self._set_kafka_ok(True)
        await self.mqtt.start()
        beat = asyncio.create_task(self._heartbeat()) if self.settings.gateway_heartbeat_s else None
        await stop.wait()
        if beat is not None:
            beat.cancel()
        await self.drain()

    async def _heartbeat(self) -> None:
        """While subscribed to MQTT, an empty reading batch on every readings partition every few seconds.

        It tells the stream workers that the pipeline into each partition is alive and how far it has got (the
        record's timestamp), so they measure device silence on that time, not on their own clock: a stalled gateway
        or Kafka then raises no storm of offline alarms, and a worker catching up a backlog judges silence as of the
        readings it is at (docs/rules.md).
        """
        empty = pydantic_core.to_json({"v": SCHEMA_VERSION, "readings": []})
        topic = self.settings.topic_readings
        while True:
            await asyncio.sleep(self.settings.gateway_heartbeat_s)
            if not self.mqtt.subscribed.is_set():
                continue
            records = [Record(topic, empty, key=b"", partition=p) for p in range(self._partitioner.partitions)]
            try:
                await self._producer.deliver(records)
            except KafkaUnavailable as exc:
                logger.debug("heartbeat not delivered: %s", exc)

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Stop taking messages, deliver what we hold, send the acknowledgements we owe, disconnect.

        If Kafka does not take the held readings within ``timeout_s`` we disconnect anyway: nothing unacknowledged
        is lost, the broker redelivers it to whichever gateway of the group is there.
        """
        self._draining = True
        self._cancel_resume()
        self.mqtt.pause_reading()
        if self._waiting:  # give a registration just made its chance, then take them into the last flush
            await asyncio.wait(set(self._waiting), timeout=min(timeout_s / 2, self.settings.gateway_registry_wait_s))
            for waiting in list(self._waiting):
                waiting.cancel()
        self._flush_now()
        deadline = time.monotonic() + timeout_s
        while self._in_flight:  # a finished delivery starts the one gathered behind it: wait for that one too
            _, pending = await asyncio.wait(set(self._in_flight), timeout=max(0.0, deadline - time.monotonic()))
            if pending and time.monotonic() >= deadline:
                for task in pending:
                    task.cancel()
                logger.warning(
                    "Kafka did not take %d flushes before shutdown; the broker will redeliver them", len(pending)
                )
                break
        await self.mqtt.close()
        await self._producer.stop()
        logger.info("gateway drained and disconnected")

    # -- MQTT side (runs on the loop, called by paho from loop_read) ------------------------------------------

    def _on_disconnected(self) -> None:
        self.metrics.mqtt_connected.set(0)
        self._tracker.reconnected()  # no acknowledgement of the old connection may leak onto the next one

    def _on_connected(self, session_present: bool) -> None:
        self.metrics.mqtt_connected.set(1)
        self._tracker.reconnected()
        if not session_present and self._connections:
            logger.warning("the MQTT broker lost our session: messages queued for us while away may be gone")
        if session_present:  # a session kept from the other mode would get every reading twice
            self.mqtt.client.unsubscribe(self._other)
        self._connections += 1

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        received_at = int(time.time() * 1000)
        payload = bytes(msg.payload)
        device_id, now = device_id_of(msg.topic), time.monotonic()
        tell = True
        if self._limit.allow(device_id, now):  # before parsing: a flood costs a dict lookup a message
            parsed = parse_message(msg.topic, payload, received_at, self._directory)
            if _unknown(parsed) and len(self._waiting) < _MAX_WAITING:
                # Registered a moment ago, perhaps: ask the registry's topic before refusing (DeviceDirectory).
                entry = self._tracker.arrived(msg.mid) if msg.qos else None
                task = asyncio.get_running_loop().create_task(self._after_catch_up(msg.topic, payload, received_at))
                self._waiting[task] = entry
                task.add_done_callback(partial(self._caught_up, msg.topic, payload))
                return
        else:
            parsed = Parsed(device_id)
            s = self.settings
            limit = f"more than {s.gateway_device_rate:g} messages/s (bursts of {s.gateway_device_burst:g})"
            item = RefusalItem(reason=RefusalReason.RATE_LIMITED, detail=f"device {device_id[:80]!r} sent {limit}")
            parsed.refusal = Refusal.of(device_id, msg.topic, received_at, 0, [item])
            tell = self._limit.tell(device_id, now)
        self._take(msg.topic, payload, parsed, tell, self._tracker.arrived(msg.mid) if msg.qos else None)

    async def _after_catch_up(self, topic: str, payload: bytes, received_at: int) -> Parsed:
        await self._directory.catch_up(self.settings.gateway_registry_wait_s)
        return parse_message(topic, payload, received_at, self._directory)

    def _caught_up(self, topic: str, payload: bytes, task: asyncio.Task[Parsed]) -> None:
        entry = self._waiting.pop(task)
        if task.cancelled():  # draining: never acknowledged, so the broker redelivers it
            return
        parsed = task.result()
        self.metrics.registry_waits.labels("unknown" if _unknown(parsed) else "found").inc()
        self._take(topic, payload, parsed, True, entry)

    def _take(self, topic: str, payload: bytes, parsed: Parsed, tell: bool, entry: list[int] | None) -> None:
        """Into the current flush: the message's readings, its refusal (told to the device unless ``tell`` is
        false), and its acknowledgement handle (``None`` for QoS 0)."""
        flush = self._flush
        flush.messages += 1
        flush.bytes += len(payload)
        if parsed.stamped:
            self._apart(parsed)
        if parsed.readings:
            flush.readings.extend(parsed.readings)
        refusal = parsed.refusal
        self.metrics.readings_received.inc(len(parsed.readings) + (len(refusal.errors) if refusal else 0))
        if refusal is not None:
            for item in refusal.errors:
                self.metrics.refusals.labels(item.reason.value).inc()
            if tell:
                body = refusal.model_dump_json().encode()
                self.mqtt.publish(ERRORS_TOPIC.format(device_id=parsed.device_id), body, qos=1)
            flush.refused.append(
                Record(
                    self.settings.topic_rejected,
                    RefusedMessage.of(refusal, payload).model_dump_json().encode(),
                    key=parsed.device_id.encode(),
                )
            )
        if entry is not None:
            flush.entries.append(entry)
        s = self.settings
        if len(flush.readings) >= s.gateway_max_batch or flush.bytes >= s.gateway_max_flush_bytes:
            self._flush_now()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(s.gateway_linger_ms / 1000, self._flush_now)
        if not self.mqtt.reading_paused and self._held_too_much():
            self._pause()

    def _apart(self, parsed: Parsed) -> None:
        """Readings stamped on arrival get times after the same device's previous ones here: two messages of a
        device in one millisecond would otherwise be one InfluxDB point (a device that flushes its outbox does
        that). Readings stamped by two gateways of a group are kept apart only by their arrival times."""
        stamped, stamps = parsed.stamped, self._stamps
        last = stamps.get(parsed.device_id)
        if last is not None and stamped[0]["ts"] <= last:
            shift = last + 1 - stamped[0]["ts"]
            for reading in stamped:
                reading["ts"] += shift
        if len(stamps) >= _MAX_STAMPS:
            stamps.clear()  # forgetting costs only the guarantee above for a millisecond
        stamps[parsed.device_id] = stamped[-1]["ts"]

    # -- Kafka side -------------------------------------------------------------------------------------------

    def _flush_now(self) -> None:
        """Send what was gathered, unless every delivery slot is busy: then keep gathering, and the next delivery
        to finish sends it all as one flush. So a slow Kafka gets fewer, larger flushes (its cost is per request),
        not a queue of small ones each waiting its turn: on a Tansu slowed by the data it held, a queue of 5 ms
        flushes held readings for 6-8 s before Kafka had them, with 1,500 readings/s arriving."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        flush = self._flush
        if not flush.messages or len(self._in_flight) >= self.settings.gateway_max_flushes:
            return
        self._flush = _Flush()
        task = asyncio.get_running_loop().create_task(self._deliver(flush))
        self._in_flight.add(task)
        task.add_done_callback(self._delivered)

    async def _records(self, flush: _Flush) -> list[Record]:
        """Kafka records for a flush, grouped under the readings topic's partition count as Kafka reports it."""
        topic = self.settings.topic_readings
        partitions = await self._producer.partition_count(topic)
        if partitions != self._partitioner.partitions:
            if partitions != self.settings.readings_partitions:
                logger.error(
                    "topic %s has %d partitions; settings say %d",
                    topic,
                    partitions,
                    self.settings.readings_partitions,
                )
            self._partitioner = Partitioner(partitions)
        records: list[Record] = []
        for p, readings in group_by_partition(flush.readings, self._partitioner, self.settings.gateway_max_per_record):
            records.extend(_sized(topic, p, readings))
        records.extend(flush.refused)
        return records

    async def _deliver(self, flush: _Flush) -> None:
        started = time.perf_counter()

        def failed(exc: KafkaUnavailable, wait: float) -> None:
            self.metrics.produce_errors.inc()
            self._set_kafka_ok(False)
            logger.warning("%s; retrying in %.1f s", exc, wait)

        records = await self._producer.deliver_retrying(lambda: self._records(flush), Backoff(0.2, 5.0), failed)
        self._set_kafka_ok(True)
        self.metrics.flush_seconds.observe(time.perf_counter() - started)
        m = self.metrics
        m.messages.inc(flush.messages)
        m.readings_accepted.inc(len(flush.readings))
        m.flush_readings.observe(len(flush.readings))
        m.flush_bytes.observe(flush.bytes)
        m.records_produced.labels("readings").inc(len(records) - len(flush.refused))
        if flush.refused:
            m.records_produced.labels("rejected").inc(len(flush.refused))
        done = AckTracker.done
        for entry in flush.entries:
            done(entry)
        for mid in self._tracker.release():
            self.mqtt.ack(mid)
        if self.mqtt.reading_paused and len(self._tracker) <= self.settings.gateway_max_unacked // 2:
            self._resume()  # a flush gathered to its byte limit goes out next, in ``_delivered``

    # -- back-pressure ----------------------------------------------------------------------------------------

    def _held_too_much(self) -> bool:
        """Too many messages await Kafka, or every delivery slot is busy and the next flush is full."""
        s = self.settings
        return len(self._tracker) >= s.gateway_max_unacked or self._flush.bytes >= s.gateway_max_flush_bytes

    def _pause(self) -> None:
        self.mqtt.pause_reading()
        self.metrics.reading_pauses.inc()
        # Read again within a keepalive even if Kafka is still slow: the broker's PINGRESP must be read, or paho
        # drops the connection. A broker that keeps to our receive maximum sends nothing more meanwhile; one that
        # does not is paused again at the next message.
        self._resume_timer = asyncio.get_running_loop().call_later(KEEPALIVE_S / 3, self._resume)

    def _resume(self) -> None:
        self._cancel_resume()
        if not self._draining:
            self.mqtt.resume_reading()

    def _cancel_resume(self) -> None:
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._flush.messages and not task.cancelled():
            self._flush_now()  # what gathered while every slot was busy
        if not task.cancelled() and task.exception() is not None:
            # A bug, not an outage: its messages will never be acknowledged (the broker redelivers them after a
            # reconnect). Say so loudly and show unhealthy, so that an operator restarts us.
            logger.error("a Kafka delivery failed unexpectedly", exc_info=task.exception())
            self._set_kafka_ok(False)

    def _set_kafka_ok(self, ok: bool) -> None:
        if ok != self._kafka_ok:
            self._kafka_ok = ok
            self.metrics.kafka_ok.set(1 if ok else 0)


TELEMETRY = "devices/+/telemetry"
_MAX_STAMPS = 200_000  # devices whose newest stamped time is remembered
_MAX_WAITING = 1000  # messages of unknown devices waiting for the registry at once; past that, refused at once


def _unknown(parsed: Parsed) -> bool:
    refusal = parsed.refusal
    return refusal is not None and refusal.errors[0].reason is RefusalReason.UNKNOWN_DEVICE


_MAX_RECORD_BYTES = 900_000  # under Kafka's default message.max.bytes (1 MB)


def _sized(topic: str, partition: int, readings: list[ReadingDict]) -> list[Record]:
    """One record for the readings, or several if one would be too large for the broker (halving until each fits;
    a single reading is at most a 64 KiB payload, so this ends)."""
    value = pydantic_core.to_json({"v": SCHEMA_VERSION, "readings": readings})
    if len(value) > _MAX_RECORD_BYTES and len(readings) > 1:
        half = len(readings) // 2
        return _sized(topic, partition, readings[:half]) + _sized(topic, partition, readings[half:])
    return [Record(topic, value, key=readings[0]["device_id"].encode(), partition=partition)]
