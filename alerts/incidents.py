"""Incidents: the alerts of one hazard event grouped, and when an incident speaks to people. Pure: no Kafka, no clock.

**Grouping.** Two alerts are *linked* when they are of one hazard family (routing file, ``incidents.families``), both
drills or both real, near each other (one site, or within the family's ``radius_m``; a ``per_device`` family: one
device), and close in time (each opened before the other ended, or within ``window_s`` after). An alert joins the
open incident of every alert it is linked to; linking two incidents merges them into the older one, which goes on
with every member (the younger closes as ``merged``). Links are checked when an alert is raised, against the members
of open incidents, so the incidents are the connected components of the links whatever order the alerts arrive in
(a property test checks it). An incident is closed once every member is closed, and then takes no new members: a
new alert there later is a new incident. An incident holds at most ``max_members`` alerts (500): it is one saved
record, and a storm linking a whole district would otherwise grow one past what Kafka carries; beyond, linked alerts
start a new incident (and there, arrival order decides which alerts share one).

**Speaking.** An incident's messages go to people (webhooks, e-mail, the console's sound) and to MQTT
``incidents/{department}``; its members' alert messages go on to MQTT ``alerts/{department}`` and Kafka as before.
The first message waits ``group_wait_s`` after the first member for others to join, unless a member is red (a red
never waits). Afterwards a change of state (cleared, active again, acknowledged, closed) or a rise to red goes at
once; other changes of level, of the membership summary and of the departments that hear it go at most once per
``group_interval_s``. While active and unacknowledged it reminds on its level's escalation policy, adding the
policy's departments, as an alert does.

Like ``AlertBook``, every method computes changed records without touching the book; the service saves them and
only then ``commit``s them (``rollback`` undoes a commit whose save failed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from alerts.geometry import area_of, cell, distance_m
from alerts.incident_text import incident_title
from alerts.lifecycle import AlertRecord
from alerts.routing import Family, RoutingTable
from core.contracts.alert import AlertEvent
from core.contracts.catalogue import LEVEL_RANK, Department, Level
from core.contracts.incident import MESSAGE_MEMBERS, Incident, IncidentEvent, Member, Summary

STATE_PREFIX = "incident:"
HISTORY_LIMIT = 200
LOG_LIMIT = 500


def incident_id(first_alert_id: str) -> str:
    return "inc-" + hashlib.blake2b(first_alert_id.encode(), digest_size=8).hexdigest()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HistoryEntry(_Frozen):
    """One message of the incident."""

    seq: int
    event: IncidentEvent
    level: Level
    at: int
    active: bool
    acknowledged: bool
    closed: bool
    departments: list[Department]
    alerts: int


class Action(_Frozen):
    """An officer's acknowledgement or close, of the incident or of one of its members."""

    kind: str = Field(description="acknowledge or close")
    by: str
    departments: list[Department] = Field(description="the acting officer's departments")
    at: int
    note: str = ""
    alert_ids: list[str] = Field(default_factory=list)


class DeliveryEntry(_Frozen):
    """Who was told, on which channel, when (or why not)."""

    seq: int
    event: IncidentEvent
    channel: str
    department: str
    target: str
    at: int
    delivered: bool
    reason: str | None = None


class Sent(_Frozen):
    """What the last message said: a message goes when this would change."""

    level: Level
    active: bool
    acknowledged: bool
    closed: bool
    alerts: int
    sites: int
    heard: list[Department]


class IncidentRecord(_Frozen):
    """What the alerts service keeps per incident (``alerts.state``, key ``incident:{id}``)."""

    incident: Incident = Field(description="the state now, every member (a message lists the worst 50)")
    history: list[HistoryEntry] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    deliveries: list[DeliveryEntry] = Field(default_factory=list)
    sent: Sent | None = None
    sent_at: int | None = None
    next_reminder_at: int | None = None
    notified_seq: int = 0
    last_message: Incident | None = Field(
        None, description="the last message as it was sent: sent again unchanged after a crash before it went out"
    )

    def message(self) -> Incident:
        """The incident now, as a message: its worst ``MESSAGE_MEMBERS`` members (the summary counts them all)."""
        members = sorted(self.incident.members, key=_worst_first)[:MESSAGE_MEMBERS]
        return self.incident.model_copy(update={"members": members})


#: (incident id, the record it replaced or None)
Undo = tuple[str, "IncidentRecord | None"]


def member_of(rec: AlertRecord) -> Member:
    a = rec.alert
    unheard = list(a.departments) if a.inhibited_by is not None else list(a.muted_departments)
    return Member(
        alert_id=a.id,
        key=a.key,
        level=a.level,
        hazard=a.hazard,
        rule=a.rule,
        device_id=a.device_id,
        site_id=a.site_id,
        site_name=a.site_name,
        lat=a.lat,
        lon=a.lon,
        departments=a.departments,
        muted_departments=unheard,
        active=a.active and not a.closed,
        acknowledged=a.acknowledged,
        closed=a.closed,
        opened_at=a.opened_at,
        ended_at=_ended_at(rec),
    )


def linked(a: Member, b: Member, family: Family, window_ms: int) -> bool:
    """Whether two members of one family (and one exercise flag) are one event: near and close in time."""
    if family.per_device:
        near = a.device_id is not None and a.device_id == b.device_id
    else:
        near = (a.site_id is not None and a.site_id == b.site_id) or (
            a.lat is not None
            and a.lon is not None
            and b.lat is not None
            and b.lon is not None
            and distance_m((a.lat, a.lon), (b.lat, b.lon)) <= family.radius_m
        )
    return near and _close_in_time(a, b, window_ms)


def _close_in_time(a: Member, b: Member, window_ms: int) -> bool:
    a_end = a.ended_at if a.ended_at is not None else 2**62
    b_end = b.ended_at if b.ended_at is not None else 2**62
    return a.opened_at <= b_end + window_ms and b.opened_at <= a_end + window_ms


class IncidentBook:
    def __init__(self, routing: RoutingTable) -> None:
        self.routing = routing
        self.rules = routing.incidents
        self.records: dict[str, IncidentRecord] = {}
        self._of: dict[str, str] = {}  # alert id -> incident id
        self._index: dict[tuple[Any, ...], set[str]] = {}  # members of open incidents, by place
        self._members: dict[str, Member] = {}  # indexed members by alert id
        #: open incidents with a message to come when time passes (a group wait or interval): what a tick looks at,
        #: beside the reminders that are due, so a tick over thousands of quiet incidents costs next to nothing
        self._waiting: set[str] = set()
        self.burned: dict[str, int] = {}

    # -- reading ----------------------------------------------------------------------------------------------

    def get(self, id_: str) -> IncidentRecord | None:
        return self.records.get(id_)

    def of_alert(self, alert_id: str) -> str | None:
        return self._of.get(alert_id)

    def open_records(self) -> Iterator[IncidentRecord]:
        return (r for r in self.records.values() if not r.incident.closed)

    # -- writing (after the records are saved) ----------------------------------------------------------------

    def commit(self, records: Iterable[IncidentRecord], undo: list[Undo] | None = None) -> None:
        records = list(records)
        befores: dict[str, IncidentRecord | None] = {}
        whole: set[str] = set()  # indexed anew: closed, or lost members (merged away)
        for rec in records:  # every lost place out first: a merge moves members from one record to another
            id_ = rec.incident.id
            before = befores[id_] = self.records.get(id_)
            if undo is not None:
                undo.append((id_, before))
            if before is not None and (rec.incident.closed or _ids(before) - _ids(rec)):
                self._unindex(before)
                whole.add(id_)
        for rec in records:
            inc = rec.incident
            before = befores[inc.id]
            self.records[inc.id] = rec
            for m in inc.members:
                self._of[m.alert_id] = inc.id
            if inc.closed:
                pass
            elif before is None or before.incident.closed or inc.id in whole:
                self._reindex(rec, inc.members)
            else:  # members only added or changed: their places stay, new ones go in
                known = _ids(before)
                self._reindex(rec, [m for m in inc.members if m.alert_id not in known])
                for m in inc.members:
                    self._members[m.alert_id] = m
            if not inc.closed and inc.merged_into is None and (rec.sent is None or rec.sent != _state(inc)):
                self._waiting.add(inc.id)
            else:
                self._waiting.discard(inc.id)

    def rollback(self, undo: list[Undo]) -> None:
        """Back to the state before the commits ``undo`` noted: every record they touched out of the indexes first,
        then each one's earliest noted state back in (a merge moved members between records: undoing one record at
        a time would index a member and then drop it again)."""
        first: dict[str, IncidentRecord | None] = {}
        for id_, before in undo:
            first.setdefault(id_, before)
        for id_ in first:
            now = self.records.pop(id_, None)
            self._waiting.discard(id_)
            if now is not None:
                self._unindex(now)
                for m in now.incident.members:
                    if self._of.get(m.alert_id) == id_:
                        del self._of[m.alert_id]
        self.commit([before for before in first.values() if before is not None])

    def forget(self, ids: Iterable[str]) -> None:
        for id_ in ids:
            rec = self.records.pop(id_, None)
            self._waiting.discard(id_)
            self.burned.pop(id_, None)
            if rec is None:
                continue
            self._unindex(rec)
            for m in rec.incident.members:
                if self._of.get(m.alert_id) == id_:
                    del self._of[m.alert_id]

    def closed_to_forget(self, cutoff: int, most: int) -> list[str]:
        """Closed incidents to forget: those closed before ``cutoff``, and the oldest beyond the ``most`` closed last
        (an alert storm of device faults makes an incident per device)."""
        closed = [(r.incident.updated_at, i) for i, r in self.records.items() if r.incident.closed]
        if len(closed) <= most:
            return [id_ for at, id_ in closed if at < cutoff]
        closed.sort()
        extra = len(closed) - most
        return [id_ for k, (at, id_) in enumerate(closed) if k < extra or at < cutoff]

    # -- changes ----------------------------------------------------------------------------------------------

    def apply(
        self, records: list[AlertRecord], now: int, lookup: Callable[[str], AlertRecord | None]
    ) -> tuple[list[AlertRecord], list[IncidentRecord]]:
        """The incidents ``records`` (changed alerts, not yet committed) change: the alert records with their
        ``incident_id`` set (and those of members moved by a merge), and the changed incident records."""
        work: dict[str, IncidentRecord] = {}
        alerts: dict[str, AlertRecord] = {}
        for rec in records:
            a = rec.alert
            member = member_of(rec)
            id_ = self._of.get(a.id) or next((i for i, w in work.items() if _has(w, a.id)), None)
            if id_ is not None:
                id_ = self._live(id_, work)  # merged earlier in this call: its survivor has the member now
            if id_ is None:
                id_ = self._join(member, a.exercise, work, alerts, now, lookup)
            else:
                current = work.get(id_) or self.records[id_]
                work[id_] = _with_member(current, member)
            if a.incident_id != id_:
                rec = rec.model_copy(update={"alert": a.model_copy(update={"incident_id": id_})})
            alerts[a.id] = rec
        changed = [self._speak(self._refreshed(w, now), now) for w in work.values()]
        return list(alerts.values()), changed

    def tick(self, now: int) -> list[IncidentRecord]:
        """Messages that came due: the end of a group wait or interval, reminders."""
        out = []
        for rec in self.open_records():
            due = rec.next_reminder_at is not None and rec.next_reminder_at <= now
            if not due and rec.incident.id not in self._waiting:
                continue
            spoken = self._speak(rec, now)
            if spoken is not rec:
                out.append(spoken)
        return out

    # -- grouping ---------------------------------------------------------------------------------------------

    def _join(
        self,
        member: Member,
        exercise: bool,
        work: dict[str, IncidentRecord],
        alerts: dict[str, AlertRecord],
        now: int,
        lookup: Callable[[str], AlertRecord | None],
    ) -> str:
        name, family = self.rules.family_of(member.hazard)
        window = int(self.rules.window_s * 1000)
        found: set[str] = set()
        for other_id in self._candidates(name, family, exercise, member):
            other = self._members.get(other_id)
            owner = self._of.get(other_id)
            if other is not None and owner is not None and linked(member, other, family, window):
                found.add(self._live(owner, work))
        for id_, w in work.items():  # incidents changed earlier in this call (not yet indexed)
            inc = w.incident
            if inc.closed or inc.merged_into is not None or inc.family != name or inc.exercise != exercise:
                continue
            if any(m.alert_id != member.alert_id and linked(member, m, family, window) for m in inc.members):
                found.add(id_)
        # oldest first; merged only while the members fit in one incident (``max_members``): a full incident takes
        # no new member, and a storm linking everything becomes several incidents, each a record Kafka can carry
        chosen: list[str] = []
        room = self.rules.max_members - 1
        for id_ in sorted(found, key=lambda i: ((work.get(i) or self.records[i]).incident.opened_at, i)):
            size = len((work.get(id_) or self.records[id_]).incident.members)
            if size <= room:
                chosen.append(id_)
                room -= size
        if not chosen:
            id_ = incident_id(member.alert_id)
            work[id_] = _new(id_, name, member, exercise, now)
            return id_
        survivor = chosen[0]
        target = work.get(survivor) or self.records[survivor]
        for loser in chosen[1:]:
            merged = work.get(loser) or self.records[loser]
            for m in merged.incident.members:
                target = _with_member(target, m)
                moved = alerts.get(m.alert_id) or lookup(m.alert_id)
                if moved is not None:
                    alerts[m.alert_id] = moved.model_copy(
                        update={"alert": moved.alert.model_copy(update={"incident_id": survivor})}
                    )
            work[loser] = self._merged(merged, survivor, now)
        work[survivor] = _with_member(target, member)
        return survivor

    def _live(self, id_: str, work: dict[str, IncidentRecord]) -> str:
        """The incident that holds ``id_``'s members now: itself, or the one it was merged into (in this call)."""
        seen = {id_}
        while (rec := work.get(id_) or self.records.get(id_)) is not None and rec.incident.merged_into is not None:
            id_ = rec.incident.merged_into
            if id_ in seen:
                break
            seen.add(id_)
        return id_

    def _keys(self, name: str, family: Family, exercise: bool, m: Member) -> list[tuple[Any, ...]]:
        keys: list[tuple[Any, ...]] = []
        if m.device_id is not None:
            keys.append(("device", name, exercise, m.device_id))
        if family.per_device:
            return keys
        if m.site_id is not None:
            keys.append(("site", name, exercise, m.site_id))
        if m.lat is not None and m.lon is not None:
            keys.append(("cell", name, exercise, *cell(m.lat, m.lon, family.radius_m)))
        return keys

    def _candidates(self, name: str, family: Family, exercise: bool, m: Member) -> set[str]:
        found: set[str] = set()
        for key in self._keys(name, family, exercise, m):
            if key[0] == "cell":
                _, fam, ex, y, x = key
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        found |= self._index.get(("cell", fam, ex, y + dy, x + dx), set())
            else:
                found |= self._index.get(key, set())
        return found

    def _reindex(self, rec: IncidentRecord, members: list[Member]) -> None:
        inc = rec.incident
        family = self.rules.families.get(inc.family)
        if family is None:  # a family the routing file no longer has: its incidents take no new members
            return
        for m in members:
            self._members[m.alert_id] = m
            for key in self._keys(inc.family, family, inc.exercise, m):
                self._index.setdefault(key, set()).add(m.alert_id)

    def _unindex(self, rec: IncidentRecord) -> None:
        inc = rec.incident
        family = self.rules.families.get(inc.family)
        for m in inc.members:
            self._members.pop(m.alert_id, None)
            if family is None:
                continue
            for key in self._keys(inc.family, family, inc.exercise, m):
                bucket = self._index.get(key)
                if bucket is not None:
                    bucket.discard(m.alert_id)
                    if not bucket:
                        del self._index[key]

    # -- the state and the messages ---------------------------------------------------------------------------

    def _refreshed(self, rec: IncidentRecord, now: int) -> IncidentRecord:
        inc = rec.incident
        if inc.merged_into is not None:
            return rec
        members = inc.members
        open_ = [m for m in members if not m.closed]
        basis = open_ or members
        worst = min(basis, key=_worst_first)
        departments = list(dict.fromkeys(d for m in members for d in m.departments))
        # who hears it: the departments of its open members not muted for them; once every member is closed, of all
        # its members (its closing message must reach whoever heard of it)
        heard = {d for m in (open_ or members) for d in m.departments if d not in m.muted_departments}
        if inc.escalations > 0:
            adds = self.routing.policy(worst.level).add
            departments = list(dict.fromkeys([*departments, *adds]))
            heard |= set(adds) if heard else set()
        closed = all(m.closed for m in members)
        points = [(m.lat, m.lon) for m in members if m.lat is not None and m.lon is not None]
        summary = Summary(
            alerts=len(members),
            active=sum(1 for m in open_ if m.active),
            sites=len({m.site_id or m.device_id or m.alert_id for m in members}),
            devices=len({m.device_id for m in members if m.device_id}),
            levels={level: sum(1 for m in open_ if m.level == level) for level in Level},
        )
        updated = inc.model_copy(
            update={
                "level": worst.level,
                "hazard": worst.hazard,
                "active": any(m.active for m in open_),
                "acknowledged": closed or (bool(open_) and all(m.acknowledged for m in open_)),
                "closed": closed,
                "departments": departments,
                "muted_departments": [d for d in departments if d not in heard],
                "summary": summary,
                "area": area_of(points),
                "title": incident_title(worst.hazard, _places(members), inc.exercise),
            }
        )
        return rec.model_copy(update={"incident": updated})

    def _speak(self, rec: IncidentRecord, now: int) -> IncidentRecord:
        """The record with the message that is due now, if any (and its reminder schedule kept)."""
        inc = rec.incident
        if inc.merged_into is not None:
            return rec
        policy = self.routing.policy(inc.level)
        waiting = inc.active and not inc.acknowledged and not inc.closed
        reminder = rec.next_reminder_at
        if not waiting:
            reminder = None
        elif reminder is None:
            reminder = max(inc.opened_at, rec.sent_at or 0) + int(policy.after_s * 1000)
        if reminder != rec.next_reminder_at:
            rec = rec.model_copy(update={"next_reminder_at": reminder})
        now_state = _state(inc)
        sent = rec.sent
        if sent is None:
            if inc.closed:  # over before anyone had to hear of it: the console showed it
                return rec.model_copy(update={"sent": now_state, "sent_at": now})
            if inc.level == Level.RED or now >= inc.opened_at + int(self.rules.group_wait_s * 1000):
                return self._message(rec, IncidentEvent.OPENED, now)
            return rec
        if reminder is not None and now >= reminder and not inc.muted:
            repeat = int(policy.repeat_s * 1000)
            rec = rec.model_copy(
                update={
                    "incident": inc.model_copy(update={"escalations": inc.escalations + 1}),
                    "next_reminder_at": None,
                }
            )
            rec = self._refreshed(rec, now)
            return self._message(rec, IncidentEvent.REMINDER, now).model_copy(update={"next_reminder_at": now + repeat})
        if now_state == sent:
            return rec
        event = _event(sent, now_state)
        urgent = event not in (IncidentEvent.UPDATED, IncidentEvent.ESCALATED, IncidentEvent.DEESCALATED) or (
            inc.level == Level.RED and sent.level != Level.RED
        )
        if urgent or now >= (rec.sent_at or 0) + int(self.rules.group_interval_s * 1000):
            return self._message(rec, event, now)
        return rec

    def _message(self, rec: IncidentRecord, event: IncidentEvent, now: int) -> IncidentRecord:
        inc = rec.incident
        seq = max(inc.seq, self.burned.get(inc.id, 0)) + 1
        inc = inc.model_copy(update={"event": event, "seq": seq, "updated_at": now})
        entry = HistoryEntry(
            seq=seq,
            event=event,
            level=inc.level,
            at=now,
            active=inc.active,
            acknowledged=inc.acknowledged,
            closed=inc.closed,
            departments=[d for d in inc.departments if d not in inc.muted_departments],
            alerts=inc.summary.alerts,
        )
        rec = rec.model_copy(
            update={
                "incident": inc,
                "history": [*rec.history, entry][-HISTORY_LIMIT:],
                "sent": _state(inc),
                "sent_at": now,
            }
        )
        return rec.model_copy(update={"last_message": rec.message()})

    def _merged(self, rec: IncidentRecord, into: str, now: int) -> IncidentRecord:
        inc = rec.incident.model_copy(update={"merged_into": into, "closed": True, "active": False, "members": []})
        rec = rec.model_copy(update={"incident": inc, "next_reminder_at": None})
        if rec.sent is None:  # nobody heard of it: it just goes
            return rec
        return self._message(rec, IncidentEvent.MERGED, now)


def _new(id_: str, family: str, member: Member, exercise: bool, now: int) -> IncidentRecord:
    incident = Incident(
        id=id_,
        seq=0,
        event=IncidentEvent.OPENED,
        family=family,
        hazard=member.hazard,
        level=member.level,
        active=member.active,
        acknowledged=member.acknowledged,
        exercise=exercise,
        departments=member.departments,
        summary=Summary(alerts=1, active=int(member.active), sites=1, devices=1, levels={}),
        members=[member],
        opened_at=member.opened_at,
        updated_at=now,
        title=incident_title(member.hazard, _places([member]), exercise),
    )
    return IncidentRecord(incident=incident)


def _ids(rec: IncidentRecord) -> set[str]:
    return {m.alert_id for m in rec.incident.members}


def _has(rec: IncidentRecord, alert_id: str) -> bool:
    return any(m.alert_id == alert_id for m in rec.incident.members)


def _with_member(rec: IncidentRecord, member: Member) -> IncidentRecord:
    members = [m for m in rec.incident.members if m.alert_id != member.alert_id]
    members.append(member)
    members.sort(key=lambda m: (m.opened_at, m.alert_id))
    opened = min(rec.incident.opened_at, member.opened_at)
    return rec.model_copy(
        update={"incident": rec.incident.model_copy(update={"members": members, "opened_at": opened})}
    )


def _worst_first(m: Member) -> tuple[int, int, int, str]:
    return (-LEVEL_RANK[m.level], int(m.closed), m.opened_at, m.alert_id)


def _places(members: list[Member]) -> list[str]:
    return list(dict.fromkeys(m.site_name or m.site_id or m.device_id or m.key for m in members))


def _state(inc: Incident) -> Sent:
    return Sent(
        level=inc.level,
        active=inc.active,
        acknowledged=inc.acknowledged,
        closed=inc.closed,
        alerts=inc.summary.alerts,
        sites=inc.summary.sites,
        heard=sorted(d for d in inc.departments if d not in inc.muted_departments),
    )


def _event(sent: Sent, now: Sent) -> IncidentEvent:
    if now.closed:
        return IncidentEvent.CLOSED
    if sent.active and not now.active:
        return IncidentEvent.CLEARED
    if now.active and not sent.active:
        return IncidentEvent.REACTIVATED
    if now.acknowledged and not sent.acknowledged:
        return IncidentEvent.ACKNOWLEDGED
    if LEVEL_RANK[now.level] > LEVEL_RANK[sent.level]:
        return IncidentEvent.ESCALATED
    if LEVEL_RANK[now.level] < LEVEL_RANK[sent.level]:
        return IncidentEvent.DEESCALATED
    return IncidentEvent.UPDATED


def _ended_at(rec: AlertRecord) -> int | None:
    """When the alert stopped being active (cleared, or closed while active); None while it is active."""
    a = rec.alert
    if a.active and not a.closed:
        return None
    ended: int | None = None
    for entry in rec.history:
        stopped = not entry.active or entry.event == AlertEvent.CLOSED
        ended = (ended if ended is not None else entry.at) if stopped else None
    return ended if ended is not None else a.updated_at
