"""The alerts service: findings from Kafka and officers' actions in; alert messages out to every channel.

Order of every change, and why:

1. the lifecycle computes the changed records (pure, ``alerts.lifecycle``);
2. the store writes them to Kafka and waits for the acknowledgement (``alerts.state`` and the ``alerts`` topic);
3. only then the book takes them, the findings' offsets are committed, the officer gets an answer;
4. then the messages go to the console's live stream, to InfluxDB, and to the dispatcher (MQTT, webhook, e-mail).

A crash before 2 changes nothing (the findings are read again; an officer's request failed and says so). A crash
after 2 leaves a record whose ``notified_seq`` is behind its ``seq``; on start the service sends that alert's
latest message again, so every change reaches officers at least once (consumers drop repeats by ``id`` + ``seq``).
Findings keep being retried while Kafka refuses the state write: alerting stalls rather than forgets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from alerts.archive import AlertArchive
from alerts.channels.base import Channel, Delivery
from alerts.channels.dispatch import Dispatcher
from alerts.lifecycle import AlertBook, AlertRecord, Undo
from alerts.live import LiveHub
from alerts.metrics import AlertMetrics
from alerts.routing import RoutingTable
from alerts.settings import AlertsSettings
from alerts.silences import DrillWindow, Silence, Windows
from alerts.store import AlertStore
from core.backoff import Backoff
from core.clock import now_ms
from core.contracts.alert import Alert
from core.contracts.finding import Finding
from core.errors import KafkaUnavailable
from core.kafka.consumer import consume_forever

logger = logging.getLogger(__name__)


class AlertService:
    def __init__(
        self,
        settings: AlertsSettings,
        routing: RoutingTable,
        channels: list[Channel],
        metrics: AlertMetrics,
        *,
        archive: AlertArchive | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        self.windows = Windows()
        self.book = AlertBook(routing, self.windows)
        self.store = AlertStore(settings)
        self.live = LiveHub()
        self.metrics = metrics
        self.archive = archive
        self.clock = clock
        self.dispatcher = Dispatcher(
            channels,
            on_undelivered=self._undelivered,
            on_delivered=self._delivered,
            max_attempts=settings.alerts_max_attempts,
        )
        self.ready = asyncio.Event()
        self._lock = asyncio.Lock()
        self._outstanding: dict[tuple[str, int], int] = {}
        self._notified: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # -- running ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.start()
        loaded = await self.store.load()
        self.book.commit(loaded.records)
        self.windows.silences.update({s.id: s for s in loaded.silences})
        self.windows.drills.update({d.id: d for d in loaded.drills})
        with contextlib.suppress(KafkaUnavailable):  # not forgotten now: the first tick tries again
            await self._forget_ended_windows(self.clock())
        await self.dispatcher.start()
        if self.archive is not None:
            await self.archive.start()
            self._tasks.append(asyncio.create_task(self.archive.run(self._stop)))
        behind = [r for r in self.book.records.values() if r.notified_seq < r.alert.seq]
        for rec in behind:  # saved, but maybe never sent: send the latest state again
            self._dispatch(rec.alert)
        self._count_open()
        logger.info(
            "alerts: %d alerts loaded (%d open, %d re-sent), %d silences, %d drill windows",
            len(loaded.records),
            sum(1 for _ in self.book.open_records()),
            len(behind),
            len(loaded.silences),
            len(loaded.drills),
        )
        self._consumer = asyncio.create_task(self._consume())
        self._tasks += [self._consumer, asyncio.create_task(self._ticks())]
        self.ready.set()

    def healthy(self) -> bool:
        """The findings consumer and the tick loop are running (``/healthz`` answers 503 otherwise)."""
        return self.ready.is_set() and all(not t.done() for t in self._tasks)

    async def stop(self) -> None:
        self._stop.set()
        # The findings consumer leaves its group cleanly (a successor then joins at once, not after the session
        # timeout); the other tasks have nothing to finish.
        if self._consumer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._consumer), 5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.dispatcher.close()
        if self.archive is not None:
            await self.archive.close()  # its last flush; what it cannot write is logged
        await self.store.stop()

    # -- officers' actions (the API) --------------------------------------------------------------------------

    async def acknowledge(self, alert_id: str, by: str, note: str) -> Alert:
        async with self._lock:
            changed = self.book.acknowledge(alert_id, by, note, self.clock())
            await self._save(changed)
        return changed[0].alert

    async def close(self, alert_id: str, by: str, note: str) -> Alert:
        async with self._lock:
            changed = self.book.close(alert_id, by, note, self.clock())
            await self._save(changed)
        return changed[0].alert

    async def put_window(self, window: Silence | DrillWindow, check: Callable[[], None] | None = None) -> None:
        """Create, or end early (a copy with ``ends_at`` now), a silence or a drill window; mutes apply at once.
        ``check`` runs first under the lock (a limit on how many there may be): what it raises, nothing is saved."""
        async with self._lock:
            if check is not None:
                check()
            await self.store.save_window(window)
            target = self.windows.silences if isinstance(window, Silence) else self.windows.drills
            target[window.id] = window  # type: ignore[assignment]
            try:
                await self._save(self.book.tick(self.clock()))
            except KafkaUnavailable as exc:  # the window is saved; the next tick applies it
                logger.warning("alerts: window %s saved, its effect waits for the next tick: %s", window.id, exc)

    # -- findings ---------------------------------------------------------------------------------------------

    async def _consume(self) -> None:
        """The findings consumer, reconnecting with backoff (``core.kafka.consumer``) until ``stop``, when it leaves
        its group cleanly. A bug while handling a batch is logged and the consumer reconnects (the batch is read
        again from the committed offset): one bad batch must not end alerting for good."""
        await consume_forever(
            self._findings_consumer,
            self._take_findings,
            label="alerts: findings consumer",
            stop=self._stop,
            reconnect_on_bug=True,
        )

    def _findings_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        return AIOKafkaConsumer(
            s.topic_findings,
            bootstrap_servers=s.kafka_bootstrap,
            group_id=s.alerts_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.alerts_fetch_wait_ms,
            session_timeout_ms=s.alerts_session_timeout_ms,
            heartbeat_interval_ms=s.alerts_session_timeout_ms // 4,
            max_poll_records=1000,
        )

    async def _take_findings(self, consumer: AIOKafkaConsumer) -> None:
        """Apply and save each fetched batch, then commit its offsets: a batch is committed only once saved."""
        gaps = self.metrics.consumer.attach(consumer)
        while not self._stop.is_set():
            batches = {
                tp: kept
                for tp, msgs in (await consumer.getmany(timeout_ms=200)).items()
                if (kept := gaps.take(consumer, tp, msgs))
            }
            findings = [
                (f, (m.partition, m.offset))
                for msgs in batches.values()
                for m in msgs
                if (f := self._decode(m.value, m.offset))
            ]
            if findings:
                await self._on_findings(findings)
            if batches:
                await consumer.commit()

    def _decode(self, value: bytes | None, offset: int) -> Finding | None:
        try:
            return Finding.model_validate_json(value or b"")
        except ValidationError as exc:
            self.metrics.findings.labels("unreadable").inc()
            logger.error("alerts: unreadable finding at offset %d skipped: %s", offset, exc)
            return None

    async def _on_findings(self, findings: list[tuple[Finding, tuple[int, int]]]) -> None:
        """Apply a batch and save it; while Kafka refuses, undo and try again later, without holding the lock
        (officers' requests then get a quick 503, and the book never shows what was not saved). The waits back off
        from 0.2 s to 5 s, never shorter than the failure's ``retry_after``."""
        backoff = Backoff(0.2, 5.0)
        while True:
            async with self._lock:
                now = self.clock()
                undo: list[Undo] = []
                changed: dict[str, AlertRecord] = {}
                messages: list[Alert] = []
                for finding, position in findings:
                    records = self.book.on_finding(finding, now, position)
                    self.metrics.findings.labels("applied" if records else "unchanged").inc()
                    messages.extend(self._messages(records))
                    self.book.commit(records, undo)  # the next finding of the batch must see this one's effect
                    changed.update({r.alert.id: r for r in records})
                    if records:
                        self.metrics.finding_to_alert_seconds.observe(max(now - finding.detected_at, 0) / 1000)
                try:
                    await self.store.save(list(changed.values()), messages)
                except KafkaUnavailable as exc:
                    self.book.rollback(undo)
                    self._burn(messages)
                    self.metrics.save_retries.inc()
                    wait = backoff.next(exc.retry_after)
                    logger.warning("alerts: findings not saved (%s); again in %.1f s", exc, wait)
                else:
                    self._publish(list(changed.values()), messages)
                    return
            await asyncio.sleep(wait)

    # -- time -------------------------------------------------------------------------------------------------

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(self.settings.alerts_tick_s)
            try:
                async with self._lock:
                    now = self.clock()
                    await self._save(self.book.tick(now))
                    await self._save_notified()
                    expired = self.book.closed_to_forget(
                        now - self.settings.alerts_closed_retention_s * 1000, self.settings.alerts_closed_max
                    )
                    if expired:
                        await self.store.forget(expired)
                        self.book.forget(expired)
                    await self._forget_ended_windows(now)
            except KafkaUnavailable as exc:
                logger.warning("alerts: tick could not save (%s); again next tick", exc)
            except Exception:  # a bug here must not end reminders for good: log it, go on
                logger.exception("alerts: tick failed; again next tick")

    async def _forget_ended_windows(self, now: int) -> None:
        """Drop the windows that ended ``alerts_window_retention_s`` ago, from Kafka first (tombstones), so the
        state stays bounded across restarts; the ticks after a window's end have unmuted what it muted."""
        ended = self.windows.ended_before(now - self.settings.alerts_window_retention_s * 1000)
        if ended:
            await self.store.forget_windows(ended)
            self.windows.drop(ended)
            logger.info("alerts: %d ended silences and drill windows forgotten", len(ended))

    # -- saving and publishing --------------------------------------------------------------------------------

    def _messages(self, records: list[AlertRecord]) -> list[Alert]:
        out = []
        for rec in records:
            before = self.book.get(rec.alert.id)
            if before is None or rec.alert.seq > before.alert.seq:
                out.append(rec.alert)
        return out

    async def _save(self, records: list[AlertRecord]) -> None:
        """Save, then take and publish ``records`` (the caller holds the lock); ``KafkaUnavailable`` if not saved."""
        if not records:
            return
        messages = self._messages(records)
        try:
            await self.store.save(records, messages)
        except KafkaUnavailable:
            self._burn(messages)
            raise
        self.book.commit(records)
        self._publish(records, messages)

    def _burn(self, messages: list[Alert]) -> None:
        """A failed save may still have left these in Kafka: their numbers are never reused for other messages."""
        for alert in messages:
            self.book.burned[alert.id] = max(self.book.burned.get(alert.id, 0), alert.seq)

    def _publish(self, records: list[AlertRecord], messages: list[Alert]) -> None:
        for rec in records:
            self.live.publish(rec.alert)
        for alert in messages:
            self.metrics.messages.labels(alert.event, alert.level, alert.hazard, str(alert.exercise).lower()).inc()
            for department in alert.departments:
                self.metrics.routed.labels(department, alert.level, alert.hazard).inc()
            if self.archive is not None:
                self.archive.add(alert)
            self._dispatch(alert)
        self._count_open()

    def _dispatch(self, alert: Alert) -> None:
        count = self.dispatcher.submit(alert)
        if count:
            self._outstanding[(alert.id, alert.seq)] = count
        else:
            self._notified[alert.id] = max(self._notified.get(alert.id, 0), alert.seq)

    async def _delivered(self, delivery: Delivery, channel: str, seconds: float) -> None:
        self.metrics.deliveries.labels(channel, delivery.department, "delivered").inc()
        self.metrics.delivery_seconds.labels(channel).observe(seconds)
        self._one_done(delivery.alert)

    async def _undelivered(self, delivery: Delivery, channel: str, reason: str, attempts: int) -> None:
        self.metrics.deliveries.labels(channel, delivery.department, "undelivered").inc()
        a = delivery.alert
        entry: dict[str, object] = {
            "alert_id": a.id,
            "seq": a.seq,
            "event": a.event,
            "channel": channel,
            "department": delivery.department,
            "target": delivery.target,
            "reason": reason,
            "attempts": attempts,
            "at": self.clock(),
        }
        logger.error(
            "alerts: %s could not deliver alert %s #%d to %s: %s", channel, a.id, a.seq, delivery.target, reason
        )
        try:
            await self.store.undelivered(entry)
        except KafkaUnavailable:
            logger.exception("alerts: the undelivered record itself could not be written: %s", entry)
        self._one_done(a)

    def _one_done(self, alert: Alert) -> None:
        key = (alert.id, alert.seq)
        left = self._outstanding.get(key, 1) - 1
        if left > 0:
            self._outstanding[key] = left
            return
        self._outstanding.pop(key, None)
        self._notified[alert.id] = max(self._notified.get(alert.id, 0), alert.seq)

    async def _save_notified(self) -> None:
        """Persist how far each alert's messages have gone out (a silent state write, once a tick)."""
        done, self._notified = self._notified, {}
        records = []
        for alert_id, seq in done.items():
            rec = self.book.get(alert_id)
            if rec is not None and seq > rec.notified_seq:
                records.append(rec.model_copy(update={"notified_seq": min(seq, rec.alert.seq)}))
        if records:
            await self.store.save(records, [])
            self.book.commit(records)

    def _count_open(self) -> None:
        counts = {"true": 0, "false": 0}
        for rec in self.book.open_records():
            counts[str(rec.alert.exercise).lower()] += 1
        for label, value in counts.items():
            self.metrics.open_alerts.labels(label).set(value)
