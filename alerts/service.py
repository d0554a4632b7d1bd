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
from alerts.channels.base import Channel, Delivery, Message
from alerts.channels.dispatch import Dispatcher
from alerts.incidents import LOG_LIMIT, Action, DeliveryEntry, IncidentBook, IncidentRecord, member_of
from alerts.incidents import Undo as IncidentUndo
from alerts.lifecycle import AlertBook, AlertRecord, LifecycleError, Undo
from alerts.live import LiveHub
from alerts.metrics import AlertMetrics
from alerts.routing import RoutingTable
from alerts.settings import AlertsSettings
from alerts.silences import DrillWindow, Silence, Windows
from alerts.store import AlertStore
from core.backoff import Backoff
from core.clock import now_ms
from core.contracts.alert import Alert
from core.contracts.catalogue import Department
from core.contracts.finding import Finding
from core.contracts.incident import Incident
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
        self.incidents = IncidentBook(routing)
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
        self._delivery_log: dict[str, list[DeliveryEntry]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # -- running ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.start()
        loaded = await self.store.load()
        self.book.commit(loaded.records)
        self.incidents.commit(loaded.incidents)
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
        for inc in self.incidents.records.values():
            if inc.notified_seq < inc.incident.seq and inc.last_message is not None:
                self._dispatch(inc.last_message)
        try:
            await self._save(self._out_of_step())
        except KafkaUnavailable as exc:  # the next start tries again; meanwhile the next change of each mends it
            logger.warning("alerts: incidents not brought in step with their alerts: %s", exc)
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

    def _out_of_step(self) -> list[AlertRecord]:
        """Alerts their incidents do not show as they are: kept from before incidents (none yet), or saved without
        their incident's record (an alert and its incident are separate Kafka records: a save that failed half-way,
        then a restart). Given to ``apply`` again, each joins or updates its incident."""
        out = []
        for rec in self.book.records.values():
            a = rec.alert
            owner = self.incidents.of_alert(a.id)
            held = self.incidents.get(owner) if owner is not None else None
            if held is None:
                if not a.closed:
                    out.append(rec)
                continue
            stored = next((m for m in held.incident.members if m.alert_id == a.id), None)
            if a.incident_id != owner or (not held.incident.closed and stored != member_of(rec)):
                out.append(rec)
        return out

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

    async def acknowledge(
        self, alert_id: str, by: str, note: str, departments: list[Department] | None = None
    ) -> Alert:
        async with self._lock:
            now = self.clock()
            changed = self.book.acknowledge(alert_id, by, note, now)
            action = Action(kind="acknowledge", by=by, departments=departments or [], at=now, note=note,
                            alert_ids=[r.alert.id for r in changed])  # fmt: skip
            await self._save(changed, action)
        return self.book.records[alert_id].alert

    async def close(self, alert_id: str, by: str, note: str, departments: list[Department] | None = None) -> Alert:
        async with self._lock:
            now = self.clock()
            changed = self.book.close(alert_id, by, note, now)
            action = Action(kind="close", by=by, departments=departments or [], at=now, note=note, alert_ids=[alert_id])
            await self._save(changed, action)
        return self.book.records[alert_id].alert

    async def act_on_incident(
        self,
        incident_id: str,
        kind: str,
        by: str,
        note: str,
        departments: list[Department],
        may: Callable[[Alert], bool] = lambda _alert: True,
    ) -> Incident:
        """Acknowledge (``kind`` "acknowledge") or close every open member of an incident that ``may`` allows (the
        officer's departments' alerts), in one save: all or nothing. 404 for no such incident, 409 when there is
        nothing left to do."""
        async with self._lock:
            rec = self.incidents.get(incident_id)
            if rec is None:
                raise LifecycleError(f"no incident {incident_id}", 404)
            if rec.incident.merged_into is not None:
                raise LifecycleError(f"incident {incident_id} was merged into {rec.incident.merged_into}", 409)
            if rec.incident.closed:
                raise LifecycleError(f"incident {incident_id} is closed", 409)
            now = self.clock()
            undo: list[Undo] = []
            changed: dict[str, AlertRecord] = {}
            try:
                for member in rec.incident.members:
                    current = self.book.get(member.alert_id)
                    if current is None or current.alert.closed or not may(current.alert):
                        continue
                    if kind == "acknowledge":
                        if current.alert.acknowledged:
                            continue
                        records = self.book.acknowledge(member.alert_id, by, note or f"via {incident_id}", now)
                    else:
                        records = self.book.close(member.alert_id, by, note or f"via {incident_id}", now)
                    self.book.commit(records, undo)  # the next member must see this one's effect
                    changed.update({r.alert.id: r for r in records})
            finally:
                self.book.rollback(undo)  # saved below, all together
            if not changed:
                done = "acknowledged" if kind == "acknowledge" else "closed"
                raise LifecycleError(f"every open alert of incident {incident_id} is {done} already", 409)
            action = Action(kind=kind, by=by, departments=departments, at=now, note=note, alert_ids=list(changed))
            await self._save(list(changed.values()), action)
            return self.incidents.records[incident_id].incident

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
                incident_undo: list[IncidentUndo] = []
                changed: dict[str, AlertRecord] = {}
                incidents: dict[str, IncidentRecord] = {}
                messages: list[Alert] = []
                incident_messages: list[Incident] = []
                try:
                    for finding, position in findings:
                        records = self.book.on_finding(finding, now, position)
                        self.metrics.findings.labels("applied" if records else "unchanged").inc()
                        records, grouped = self.incidents.apply(records, now, self.book.get)
                        messages.extend(self._messages(records))
                        incident_messages.extend(self._incident_messages(grouped))
                        self.book.commit(records, undo)  # the next finding of the batch must see this one's effect
                        self.incidents.commit(grouped, incident_undo)
                        changed.update({r.alert.id: r for r in records})
                        incidents.update({r.incident.id: r for r in grouped})
                        if records:
                            self.metrics.finding_to_alert_seconds.observe(max(now - finding.detected_at, 0) / 1000)
                except Exception:  # a bug: nothing of the batch stays, so reading it again applies it whole
                    self.book.rollback(undo)
                    self.incidents.rollback(incident_undo)
                    raise
                try:
                    await self.store.save(list(changed.values()), messages, list(incidents.values()))
                except KafkaUnavailable as exc:
                    self.book.rollback(undo)
                    self.incidents.rollback(incident_undo)
                    self._burn(messages, incident_messages)
                    self.metrics.save_retries.inc()
                    wait = backoff.next(exc.retry_after)
                    logger.warning("alerts: findings not saved (%s); again in %.1f s", exc, wait)
                else:
                    self._publish(list(changed.values()), messages, list(incidents.values()), incident_messages)
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
                    await self._save([], incidents=self.incidents.tick(now))
                    await self._save_notified()
                    cutoff = now - self.settings.alerts_closed_retention_s * 1000
                    expired = self.book.closed_to_forget(cutoff, self.settings.alerts_closed_max)
                    gone = self.incidents.closed_to_forget(cutoff, self.settings.alerts_closed_max)
                    if expired or gone:
                        await self.store.forget(expired, gone)
                        self.book.forget(expired)
                        self.incidents.forget(gone)
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

    def _incident_messages(self, records: list[IncidentRecord]) -> list[Incident]:
        out = []
        for rec in records:
            before = self.incidents.get(rec.incident.id)
            if rec.incident.seq > (before.incident.seq if before is not None else 0) and rec.last_message:
                out.append(rec.last_message)
        return out

    async def _save(
        self,
        records: list[AlertRecord],
        action: Action | None = None,
        incidents: list[IncidentRecord] | None = None,
    ) -> None:
        """Save, then take and publish ``records`` and the incident changes they make (the caller holds the lock);
        ``KafkaUnavailable`` if not saved. ``action``: an officer's, noted on the incidents of the alerts it took."""
        now = self.clock()
        records, grouped = self.incidents.apply(records, now, self.book.get) if records else ([], [])
        by_id = {r.incident.id: r for r in [*(incidents or []), *grouped]}
        if action is not None:
            for id_ in dict.fromkeys(i for a in action.alert_ids if (i := self._incident_of(a, records))):
                rec = by_id.get(id_) or self.incidents.get(id_)
                if rec is not None:
                    by_id[id_] = rec.model_copy(update={"actions": [*rec.actions, action][-LOG_LIMIT:]})
        changed = list(by_id.values())
        if not records and not changed:
            return
        messages = self._messages(records)
        incident_messages = self._incident_messages(changed)
        try:
            await self.store.save(records, messages, changed)
        except KafkaUnavailable:
            self._burn(messages, incident_messages)
            raise
        self.book.commit(records)
        self.incidents.commit(changed)
        self._publish(records, messages, changed, incident_messages)

    def _incident_of(self, alert_id: str, records: list[AlertRecord]) -> str | None:
        found = next((r.alert.incident_id for r in records if r.alert.id == alert_id), None)
        return found or self.incidents.of_alert(alert_id)

    def _burn(self, messages: list[Alert], incident_messages: list[Incident] | None = None) -> None:
        """A failed save may still have left these in Kafka: their numbers are never reused for other messages."""
        for alert in messages:
            self.book.burned[alert.id] = max(self.book.burned.get(alert.id, 0), alert.seq)
        for inc in incident_messages or []:
            self.incidents.burned[inc.id] = max(self.incidents.burned.get(inc.id, 0), inc.seq)

    def _publish(
        self,
        records: list[AlertRecord],
        messages: list[Alert],
        incidents: list[IncidentRecord] | None = None,
        incident_messages: list[Incident] | None = None,
    ) -> None:
        for inc in incidents or []:
            self.live.publish(inc.message())
        for message in incident_messages or []:
            self._dispatch(message)
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

    def _dispatch(self, alert: Message) -> None:
        count = self.dispatcher.submit(alert)
        if count:
            self._outstanding[(alert.id, alert.seq)] = count
        else:
            self._notified[alert.id] = max(self._notified.get(alert.id, 0), alert.seq)

    async def _delivered(self, delivery: Delivery, channel: str, seconds: float) -> None:
        self.metrics.deliveries.labels(channel, delivery.department, "delivered").inc()
        self.metrics.delivery_seconds.labels(channel).observe(seconds)
        self._log_delivery(delivery, channel, None)
        self._one_done(delivery.alert)

    def _log_delivery(self, delivery: Delivery, channel: str, reason: str | None) -> None:
        """Who was told of an incident, when, on which channel (saved with the next tick's notified marks)."""
        message = delivery.alert
        if isinstance(message, Incident):
            entry = DeliveryEntry(
                seq=message.seq,
                event=message.event,
                channel=channel,
                department=delivery.department,
                target=delivery.target,
                at=self.clock(),
                delivered=reason is None,
                reason=reason,
            )
            self._delivery_log.setdefault(message.id, []).append(entry)

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
        self._log_delivery(delivery, channel, reason)
        try:
            await self.store.undelivered(entry)
        except KafkaUnavailable:
            logger.exception("alerts: the undelivered record itself could not be written: %s", entry)
        self._one_done(a)

    def _one_done(self, alert: Message) -> None:
        key = (alert.id, alert.seq)
        left = self._outstanding.get(key, 1) - 1
        if left > 0:
            self._outstanding[key] = left
            return
        self._outstanding.pop(key, None)
        self._notified[alert.id] = max(self._notified.get(alert.id, 0), alert.seq)

    async def _save_notified(self) -> None:
        """Persist how far each alert's and incident's messages have gone out, and who was told of each incident
        (a silent state write, once a tick)."""
        done, self._notified = self._notified, {}
        log, self._delivery_log = self._delivery_log, {}
        records = []
        incidents: dict[str, IncidentRecord] = {}
        for id_, seq in done.items():
            inc = self.incidents.get(id_)
            if inc is not None and seq > inc.notified_seq:
                incidents[id_] = inc.model_copy(update={"notified_seq": min(seq, inc.incident.seq)})
            rec = self.book.get(id_)
            if rec is not None and seq > rec.notified_seq:
                records.append(rec.model_copy(update={"notified_seq": min(seq, rec.alert.seq)}))
        for id_, entries in log.items():
            base = incidents.get(id_) or self.incidents.get(id_)
            if base is not None:
                incidents[id_] = base.model_copy(update={"deliveries": [*base.deliveries, *entries][-LOG_LIMIT:]})
        if records or incidents:
            try:
                await self.store.save(records, [], list(incidents.values()))
            except KafkaUnavailable:
                for id_, entries in log.items():  # kept for the next tick
                    self._delivery_log.setdefault(id_, [])[:0] = entries
                raise
            self.book.commit(records)
            self.incidents.commit(incidents.values())

    def _count_open(self) -> None:
        counts = {"true": 0, "false": 0}
        for rec in self.book.open_records():
            counts[str(rec.alert.exercise).lower()] += 1
        for label, value in counts.items():
            self.metrics.open_alerts.labels(label).set(value)
        incidents = {"true": 0, "false": 0}
        for inc in self.incidents.open_records():
            incidents[str(inc.incident.exercise).lower()] += 1
        for label, value in incidents.items():
            self.metrics.open_incidents.labels(label).set(value)
