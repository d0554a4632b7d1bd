"""The alert lifecycle: findings and officers' actions in, alert messages out. Pure: no Kafka, no clock of its own.

One open alert per key. Two axes, ``active`` (the condition holds) and ``acknowledged`` (an officer took it):

==============  =============  =====================================================================
active          acknowledged   what happens next
==============  =============  =====================================================================
yes             no             reminders (escalating to more departments) until acknowledged
yes             yes            quiet until the condition ends, changes level, or an officer closes it
no (cleared)    no             stays open and visible until acknowledged or closed
no              yes            closed: the record is kept for a while, the key is free again
==============  =============  =====================================================================

Every method *computes* the changed records and returns them without touching the book; the service persists them
to Kafka first and only then ``commit``s them, so an acknowledgement the API answered is never lost, and a crash in
between leaves the book as it was. A record whose ``alert.seq`` grew carries a message for officers; one that changed
only silently (a silence began, an inhibition, a flapping flag) is persisted and shown on the console but not sent.

Replays are dropped twice over: each record remembers the ids of the recent findings it applied (finding ids are
derived from their content, so a finding a stream worker re-emits after its restart has the same id), and the
Kafka offset of the last one: all findings of a key share a partition, so after a restart of the alerts service
anything at or below that offset was seen already, including findings that changed nothing then (a ``cleared``
with no open alert must not clear the alert raised after it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from alerts.routing import RoutingTable
from alerts.silences import Windows
from core.contracts.alert import DRILL_PREFIX, Acknowledgement, Alert, AlertEvent
from core.contracts.catalogue import LEVEL_RANK, Department, Level
from core.contracts.finding import Finding, FindingEvent, Hazard, Text
from core.errors import SmartCityError

HISTORY_LIMIT = 200
#: findings that bring an alert to their level (not a flag change at the same level): a new peak at that level
_TO_A_LEVEL = frozenset({FindingEvent.RAISED, FindingEvent.ESCALATED})
FINDINGS_REMEMBERED = 32


class LifecycleError(SmartCityError):
    """An officer's action that cannot apply; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class HistoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    seq: int
    event: AlertEvent
    level: str
    at: int
    active: bool
    acknowledged: bool
    departments: list[Department]
    by: str | None = None
    note: str | None = None


class AlertRecord(BaseModel):
    """What the alerts service keeps per alert (compacted Kafka topic ``alerts.state``, key = alert id)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    alert: Alert
    own_departments: list[Department] = Field(default_factory=list)
    findings: list[str] = Field(default_factory=list, description="ids of the recent findings applied")
    history: list[HistoryEntry] = Field(default_factory=list)
    next_reminder_at: int | None = None
    offsets: dict[int, int] = Field(
        default_factory=dict, description="findings partition -> Kafka offset of the last finding applied from it"
    )
    notified_seq: int = Field(0, description="the last message every channel has taken (or given up on)")
    peak_level: Level | None = Field(None, description="the highest level reached: the level of ``alert.peak``")


#: (alert id, the record it replaced or None, its key, the key's alert id before)
Undo = tuple[str, "AlertRecord | None", str, str | None]


def alert_id(key: str, finding_id: str) -> str:
    return hashlib.blake2b(f"{key}|{finding_id}".encode(), digest_size=8).hexdigest()


def drill_title(title: Text) -> Text:
    return Text(zh=f"{DRILL_PREFIX.zh} / {DRILL_PREFIX.en}：{title.zh}", en=f"{DRILL_PREFIX.en}: {title.en}")


class AlertBook:
    """Every open alert, and the recently closed ones, by id; plus the latest alert of each key."""

    def __init__(self, routing: RoutingTable, windows: Windows) -> None:
        self.routing = routing
        self.windows = windows
        self.records: dict[str, AlertRecord] = {}
        self._by_key: dict[str, str] = {}
        #: open alerts that may inhibit others (offline, confirmed site): few, so settling a change stays O(1)
        self._inhibiting: dict[str, AlertRecord] = {}
        #: message numbers a failed save may have left in Kafka: never given to another message
        self.burned: dict[str, int] = {}

    # -- reading ----------------------------------------------------------------------------------------------

    def get(self, alert_id: str) -> AlertRecord | None:
        return self.records.get(alert_id)

    def open_for(self, key: str) -> AlertRecord | None:
        rec = self.records.get(self._by_key.get(key, ""))
        return rec if rec is not None and not rec.alert.closed else None

    def open_records(self) -> Iterator[AlertRecord]:
        return (r for r in self.records.values() if not r.alert.closed)

    # -- writing (after the records are persisted) -------------------------------------------------------------

    def commit(self, records: Iterable[AlertRecord], undo: list[Undo] | None = None) -> None:
        """Take ``records``; with ``undo``, note what they replaced so that ``rollback(undo)`` restores it."""
        for rec in records:
            if undo is not None:
                a = rec.alert
                undo.append((a.id, self.records.get(a.id), a.key, self._by_key.get(a.key)))
            self.records[rec.alert.id] = rec
            if _could_inhibit(rec, self.routing) and not rec.alert.closed:
                self._inhibiting[rec.alert.id] = rec
            else:
                self._inhibiting.pop(rec.alert.id, None)
            latest = self.records.get(self._by_key.get(rec.alert.key, ""))
            if latest is None or latest.alert.opened_at <= rec.alert.opened_at:
                self._by_key[rec.alert.key] = rec.alert.id

    def rollback(self, undo: list[Undo]) -> None:
        for alert_id_, before, key, key_before in reversed(undo):
            if before is None:
                self.records.pop(alert_id_, None)
                self._inhibiting.pop(alert_id_, None)
            else:
                self.commit([before])
            if key_before is None:
                self._by_key.pop(key, None)
            else:
                self._by_key[key] = key_before

    def forget(self, alert_ids: Iterable[str]) -> None:
        for alert_id_ in alert_ids:
            rec = self.records.pop(alert_id_, None)
            self._inhibiting.pop(alert_id_, None)
            if rec is not None and self._by_key.get(rec.alert.key) == alert_id_:
                del self._by_key[rec.alert.key]

    # -- findings ---------------------------------------------------------------------------------------------

    def on_finding(self, finding: Finding, now: int, position: tuple[int, int] | None = None) -> list[AlertRecord]:
        """``position``: the finding's Kafka (partition, offset), when it came from Kafka."""
        drill_key = finding.key if finding.exercise else f"drill:{finding.key}"
        candidates = [k for k in (finding.key, drill_key) if k in self._by_key]
        for key_ in candidates:
            seen = self.records.get(self._by_key[key_])
            if seen is not None and _replayed(seen, finding, position):
                return []
        # An open alert keeps its nature to the end: a drill window opening or closing while it is open changes
        # nothing; whether a new alert is a drill is decided by the event time of the finding that raises it.
        open_now = [r for k in candidates if (r := self.open_for(k)) is not None]
        rec: AlertRecord | None = open_now[0] if open_now else None
        latest: AlertRecord | None = rec
        if rec is not None:
            key = rec.alert.key
        else:
            exercise = finding.exercise or self.windows.in_drill(finding, finding.ts)
            key = drill_key if exercise else finding.key
            latest = self.records.get(self._by_key.get(key, ""))
        if rec is None:
            if not finding.active:
                return []  # the end of something already closed
            raised = self._raise(finding, key, key.startswith("drill:"), now)
            remembered = [*(latest.findings if latest else []), finding.id][-FINDINGS_REMEMBERED:]
            offsets = _advanced(latest.offsets if latest else {}, position)
            return self._settle([raised.model_copy(update={"findings": remembered, "offsets": offsets})], now)
        fields: dict[str, Any] = {
            "metric": finding.metric or rec.alert.metric,
            "value": finding.value,
            "threshold": finding.threshold,
            "flapping": finding.flapping,
            "confirmed": finding.confirmed,
            "confirms": finding.confirms,
            "ts": finding.ts,
        }
        peak_level = rec.peak_level or rec.alert.level
        if finding.active and (
            LEVEL_RANK[finding.level] > LEVEL_RANK[peak_level]
            or (LEVEL_RANK[finding.level] == LEVEL_RANK[peak_level] and finding.event in _TO_A_LEVEL)
        ):
            fields.update(peak=finding.value, peak_threshold=finding.threshold)
            peak_level = finding.level
        policy = self.routing.policy(finding.level)
        if finding.event == FindingEvent.CLEARED or not finding.active:
            changed = self._message(
                rec, AlertEvent.CLEARED, now, active=False, closed=rec.alert.acknowledged, **fields
            ).model_copy(update={"next_reminder_at": None})
        elif finding.level != rec.alert.level or not rec.alert.active:
            up = LEVEL_RANK[finding.level] > LEVEL_RANK[rec.alert.level]
            event = AlertEvent.ESCALATED if up else AlertEvent.DEESCALATED if rec.alert.active else AlertEvent.RAISED
            soon = now + int(policy.after_s * 1000)
            pending = rec.next_reminder_at if rec.alert.active and rec.next_reminder_at is not None else soon
            changed = self._message(
                rec,
                event,
                now,
                level=finding.level,
                active=True,
                departments=self._departments(rec, finding.level, rec.alert.escalations),
                **fields,
            ).model_copy(update={"next_reminder_at": None if rec.alert.acknowledged else min(pending, soon)})
        else:
            changed = _silent(rec, **fields)
        remembered = [*rec.findings, finding.id][-FINDINGS_REMEMBERED:]
        changed = changed.model_copy(
            update={"findings": remembered, "offsets": _advanced(rec.offsets, position), "peak_level": peak_level}
        )
        return self._settle([changed], now)

    def _raise(self, finding: Finding, key: str, exercise: bool, now: int) -> AlertRecord:
        own = list(finding.departments)
        title = drill_title(finding.title) if exercise else finding.title
        alert = Alert(
            id=alert_id(key, finding.id),
            key=key,
            seq=1,
            event=AlertEvent.RAISED,
            level=finding.level,
            hazard=finding.hazard,
            rule=finding.rule,
            device_id=finding.device_id,
            site_id=finding.site_id,
            site_name=finding.site_name,
            lat=finding.lat,
            lon=finding.lon,
            metric=finding.metric,
            value=finding.value,
            threshold=finding.threshold,
            peak=finding.value,
            peak_threshold=finding.threshold,
            departments=self.routing.departments(finding.hazard, finding.level, finding.rule, own),
            active=True,
            acknowledged=False,
            exercise=exercise,
            confirmed=finding.confirmed,
            flapping=finding.flapping,
            confirms=finding.confirms,
            opened_at=now,
            updated_at=now,
            ts=finding.ts,
            title=title,
        )
        return AlertRecord(
            alert=alert,
            own_departments=own,
            findings=[finding.id],
            history=[_entry(alert)],
            next_reminder_at=now + int(self.routing.policy(finding.level).after_s * 1000),
            peak_level=finding.level,
        )

    # -- officers ---------------------------------------------------------------------------------------------

    def acknowledge(self, alert_id_: str, by: str, note: str, now: int) -> list[AlertRecord]:
        rec = self._actionable(alert_id_)
        if rec.alert.acknowledged:
            ack = rec.alert.acknowledgement
            raise LifecycleError(f"alert {alert_id_} was already acknowledged by {ack.by if ack else '?'}", 409)
        changed = [self._acknowledged(rec, by, note, now)]
        for other in self.open_records():  # a site alert's acknowledgement covers the device alerts it absorbed
            if (
                other.alert.key in rec.alert.confirms
                and other.alert.inhibited_by == alert_id_
                and not (other.alert.acknowledged)
            ):
                changed.append(self._acknowledged(other, by, note or f"via {alert_id_}", now))
        return self._settle(changed, now)

    def _acknowledged(self, rec: AlertRecord, by: str, note: str, now: int) -> AlertRecord:
        ack = Acknowledgement(by=by, note=note, at=now)
        changed = self._message(
            rec,
            AlertEvent.ACKNOWLEDGED,
            now,
            by=by,
            note=note,
            acknowledged=True,
            acknowledgement=ack,
            closed=not rec.alert.active,
        )
        return changed.model_copy(update={"next_reminder_at": None})

    def close(self, alert_id_: str, by: str, note: str, now: int) -> list[AlertRecord]:
        rec = self._actionable(alert_id_)
        changed = self._message(rec, AlertEvent.CLOSED, now, by=by, note=note, closed=True, closed_by=by)
        return self._settle([changed.model_copy(update={"next_reminder_at": None})], now)

    def _actionable(self, alert_id_: str) -> AlertRecord:
        rec = self.records.get(alert_id_)
        if rec is None:
            raise LifecycleError(f"no alert {alert_id_}", 404)
        if rec.alert.closed:
            raise LifecycleError(f"alert {alert_id_} is closed", 409)
        return rec

    # -- time -------------------------------------------------------------------------------------------------

    def tick(self, now: int) -> list[AlertRecord]:
        """Reminders and escalations that are due, and mutes that began or ended."""
        changed = self._settle([], now, every=True)
        touched = {r.alert.id for r in changed}
        for rec in self.open_records():
            if rec.alert.id in touched or rec.next_reminder_at is None or rec.next_reminder_at > now:
                continue
            if not rec.alert.active or rec.alert.acknowledged or rec.alert.muted:
                continue
            changed.append(self._remind(rec, now, escalate=True))
        return changed

    def closed_to_forget(self, cutoff: int, most: int) -> list[str]:
        """The closed alerts to forget: those closed before ``cutoff``, and the oldest beyond the ``most`` closed
        last, so that an alert storm cannot grow the book beyond what it can hold."""
        closed = [(r.alert.updated_at, r.alert.id) for r in self.records.values() if r.alert.closed]
        if len(closed) <= most:
            return [id_ for at, id_ in closed if at < cutoff]
        closed.sort()
        extra = len(closed) - most
        return [id_ for k, (at, id_) in enumerate(closed) if k < extra or at < cutoff]

    def _remind(self, rec: AlertRecord, now: int, *, escalate: bool) -> AlertRecord:
        escalations = rec.alert.escalations + (1 if escalate else 0)
        changed = self._message(
            rec,
            AlertEvent.REMINDER,
            now,
            escalations=escalations,
            departments=self._departments(rec, rec.alert.level, escalations),
        )
        repeat = int(self.routing.policy(rec.alert.level).repeat_s * 1000)
        return changed.model_copy(update={"next_reminder_at": now + repeat})

    def _departments(self, rec: AlertRecord, level: Level, escalations: int) -> list[Department]:
        """Routing for the level now, plus every department told before: whoever heard of an alert hears how it
        ends (a red fire that drops to orange still reaches emergency)."""
        a = rec.alert
        now = self.routing.departments(a.hazard, level, a.rule, rec.own_departments, escalations)
        return list(dict.fromkeys([*a.departments, *now]))

    # -- mutes ------------------------------------------------------------------------------------------------

    def _settle(self, changed: list[AlertRecord], now: int, *, every: bool = False) -> list[AlertRecord]:
        """Recompute silences and inhibitions on the changed records (and on every open one when ``every``, or
        when a changed record may inhibit others). An alert that a silence or an inhibition stops muting for some
        department, still active and unacknowledged, gets a reminder unless this change already sends a message."""
        pending = {r.alert.id: r for r in changed}
        candidates = {i: r for i, r in self._inhibiting.items() if i not in pending}
        candidates.update({i: r for i, r in pending.items() if _could_inhibit(r, self.routing)})
        inhibitors = self._inhibitors(candidates.values())
        wide = every or any(i in self._inhibiting or _could_inhibit(r, self.routing) for i, r in pending.items())
        scope = {**{r.alert.id: r for r in self.open_records()}, **pending}.values() if wide else pending.values()
        out: dict[str, AlertRecord] = dict(pending)
        for rec in list(scope):
            a = rec.alert
            if a.closed:
                continue
            silenced, muted = self.windows.muting(a, now)
            inhibited = _inhibitor_of(a, inhibitors)
            if (silenced, muted, inhibited) == (a.silenced_by, a.muted_departments, a.inhibited_by):
                continue
            updated = _silent(rec, silenced_by=silenced, muted_departments=muted, inhibited_by=inhibited)
            before = self.records.get(a.id)
            sending = before is None or rec.alert.seq > before.alert.seq
            if not sending and a.active and not a.acknowledged and _heard_by(updated.alert) - _heard_by(a):
                updated = self._remind(updated, now, escalate=False)
            out[a.id] = updated
        return list(out.values())

    def _inhibitors(self, records: Iterable[AlertRecord]) -> dict[str, tuple[str, int]]:
        """What inhibits whom, for every active inhibitor: ``offline:{device}`` -> (the offline alert's id, when it
        opened); a device alert key -> (the confirmed site alert absorbing it, 0)."""
        found: dict[str, tuple[str, int]] = {}
        for rec in records:
            a = rec.alert
            if not a.active or a.closed:
                continue
            if a.rule in self.routing.inhibit.offline_rules and a.device_id:
                found[f"offline:{'drill:' if a.exercise else ''}{a.device_id}"] = (a.id, a.opened_at)
            if self.routing.inhibit.site_absorbs and a.confirmed and a.site_id and a.device_id is None:
                for key in a.confirms:
                    found[key] = (a.id, 0)
        return found

    def _message(
        self,
        rec: AlertRecord,
        event: AlertEvent,
        now: int,
        *,
        by: str | None = None,
        note: str | None = None,
        **changes: Any,
    ) -> AlertRecord:
        """The next message of ``rec`` (``changes`` applied), with its history entry (``by`` and ``note``)."""
        seq = max(rec.alert.seq, self.burned.get(rec.alert.id, 0)) + 1
        alert = rec.alert.model_copy(update={**changes, "event": event, "seq": seq, "updated_at": now})
        history = [*rec.history, _entry(alert, by=by, note=note)][-HISTORY_LIMIT:]
        return rec.model_copy(update={"alert": alert, "history": history})


def _silent(rec: AlertRecord, **changes: Any) -> AlertRecord:
    return rec.model_copy(update={"alert": rec.alert.model_copy(update=changes)})


def _could_inhibit(rec: AlertRecord, routing: RoutingTable) -> bool:
    """Only these alerts can inhibit others: kept in an index, so a change elsewhere never scans every alert."""
    a = rec.alert
    return a.rule in routing.inhibit.offline_rules or (a.device_id is None and a.confirmed)


def _inhibitor_of(alert: Alert, inhibitors: dict[str, tuple[str, int]]) -> str | None:
    """An offline device's alerts raised after it went silent are stale (buffered readings); those raised before
    it are real and stay loud. A confirmed site alert absorbs the device alerts it names."""
    if alert.hazard != Hazard.DEVICE and alert.device_id:
        offline = inhibitors.get(f"offline:{'drill:' if alert.exercise else ''}{alert.device_id}")
        if offline is not None and alert.opened_at >= offline[1]:
            return offline[0]
    absorbed = inhibitors.get(alert.key)
    return absorbed[0] if absorbed is not None and absorbed[0] != alert.id else None


def _heard_by(alert: Alert) -> set[Department]:
    """The departments officers are notified in now."""
    return set() if alert.inhibited_by is not None else set(alert.departments) - set(alert.muted_departments)


def _replayed(rec: AlertRecord, finding: Finding, position: tuple[int, int] | None) -> bool:
    if finding.id in rec.findings:
        return True
    return position is not None and position[1] <= rec.offsets.get(position[0], -1)


def _advanced(offsets: dict[int, int], position: tuple[int, int] | None) -> dict[int, int]:
    if position is None:
        return offsets
    partition, offset = position
    return {**offsets, partition: max(offset, offsets.get(partition, -1))}


def _entry(alert: Alert, *, by: str | None = None, note: str | None = None) -> HistoryEntry:
    return HistoryEntry(
        seq=alert.seq,
        event=alert.event,
        level=alert.level,
        at=alert.updated_at,
        active=alert.active,
        acknowledged=alert.acknowledged,
        departments=alert.departments,
        by=by,
        note=note,
    )
