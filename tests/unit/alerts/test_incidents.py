"""Incidents: which alerts are one hazard event, and when an incident speaks (alerts.incidents)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.geometry import area_of, distance_m, hull
from alerts.incidents import IncidentBook, IncidentRecord, linked, member_of
from alerts.lifecycle import AlertBook, AlertRecord, HistoryEntry
from alerts.routing import load_routing
from alerts.silences import Windows
from core.contracts.alert import AlertEvent
from core.contracts.catalogue import Department, Level
from core.contracts.finding import Finding, FindingEvent, Hazard
from core.contracts.incident import Incident, IncidentEvent
from tests.unit.alerts.factories import T0, alert, finding

S = 1000  # one second in ms


@dataclass
class Desk:
    """The alert book and the incident book as the service drives them: apply, then commit both."""

    alerts: AlertBook = field(default_factory=lambda: AlertBook(load_routing(), Windows()))
    incidents: IncidentBook = field(default_factory=lambda: IncidentBook(load_routing()))
    sent: list[Incident] = field(default_factory=list)

    def take(self, records: list[AlertRecord], now: int, grouped: list[IncidentRecord] | None = None) -> None:
        records, changed = self.incidents.apply(records, now, self.alerts.get) if records else ([], [])
        changed = [*(grouped or []), *changed]
        for rec in changed:
            before = self.incidents.get(rec.incident.id)
            if rec.incident.seq > (before.incident.seq if before else 0):
                self.sent.append(rec.message())
        self.alerts.commit(records)
        self.incidents.commit(changed)

    def send(self, f: Finding, now: int) -> None:
        self.take(self.alerts.on_finding(f, now), now)

    def tick(self, now: int) -> None:
        self.take(self.alerts.tick(now), now)
        self.take([], now, self.incidents.tick(now))

    def open_incidents(self) -> list[Incident]:
        return [r.incident for r in self.incidents.open_records()]

    def events(self) -> list[tuple[str, IncidentEvent, Level]]:
        return [(m.id, m.event, m.level) for m in self.sent]


def gas(
    device: str,
    site: str,
    event: FindingEvent = FindingEvent.RAISED,
    level: Level = Level.ORANGE,
    *,
    rule: str = "gas.ch4",
    ts: int = T0,
    lat: float = 22.7,
    lon: float = 114.25,
    **extra: Any,
) -> Finding:
    return finding(device, rule, event, level, ts=ts, site=site, **extra).model_copy(update={"lat": lat, "lon": lon})


def test_a_leak_at_one_site_is_one_incident_with_its_worst_level_and_every_department() -> None:
    desk = Desk()
    desk.send(gas("g1", "park", rule="gas.ch4_rise", level=Level.YELLOW), T0)
    desk.send(gas("g2", "park", level=Level.ORANGE, lat=22.7002), T0 + 2 * S)
    both = ["g1:gas.ch4_rise", "g2:gas.ch4"]
    departments = [Department.EMERGENCY, Department.FIRE]
    site = gas("g2", "park", level=Level.RED, key="site:park:gas.site", device_id=None, confirmed=True,
               confirms=both, departments=departments)  # fmt: skip
    desk.send(site, T0 + 3 * S)
    [incident] = desk.open_incidents()
    assert incident.summary.alerts == 3
    assert incident.level == Level.RED
    assert incident.family == "gas"
    assert set(incident.departments) >= {Department.EMERGENCY}
    assert all(r.alert.incident_id == incident.id for r in desk.alerts.records.values())
    assert "等" not in incident.title.zh  # one place


def test_a_far_alert_of_the_same_hazard_is_another_incident() -> None:
    desk = Desk()
    desk.send(gas("g1", "park", lat=22.70), T0)
    desk.send(gas("g9", "other", lat=22.72), T0 + S)  # 2.2 km north: beyond the gas family's 500 m
    assert distance_m((22.70, 114.25), (22.72, 114.25)) > 2000
    assert len(desk.open_incidents()) == 2


def test_a_late_member_joins_within_the_window_and_not_after_it() -> None:
    desk = Desk()
    desk.send(gas("g1", "park"), T0)
    desk.send(gas("g1", "park", FindingEvent.CLEARED, ts=T0 + 60 * S), T0 + 60 * S)
    desk.send(gas("g2", "park", lat=22.7001), T0 + 20 * 60 * S)  # 19 min after g1 ended: within 30 min
    assert len(desk.open_incidents()) == 1
    desk.send(gas("g3", "park", lat=22.7002), T0 + 60 * 60 * S)  # g2 is still active: still one event
    assert len(desk.open_incidents()) == 1
    desk.send(gas("g2", "park", FindingEvent.CLEARED, ts=T0 + 61 * 60 * S), T0 + 61 * 60 * S)
    desk.send(gas("g3", "park", FindingEvent.CLEARED, ts=T0 + 61 * 60 * S), T0 + 61 * 60 * S)
    desk.send(gas("g4", "park", lat=22.7003), T0 + 100 * 60 * S)  # 39 min after the last ended: a new event
    assert len(desk.open_incidents()) == 2


def test_drills_and_real_alerts_never_share_an_incident() -> None:
    desk = Desk()
    desk.send(gas("g1", "park"), T0)
    desk.send(finding("g2", exercise=True, site="park"), T0 + S)
    incidents = desk.open_incidents()
    assert sorted(i.exercise for i in incidents) == [False, True]
    drill = next(i for i in incidents if i.exercise)
    assert drill.title.zh.startswith("演练")


def test_device_faults_are_per_device() -> None:
    desk = Desk()
    for n, device in enumerate(["d1", "d2", "d1"]):
        rule = ["device.offline", "device.offline", "device.battery"][n]
        desk.send(finding(device, rule, level=Level.BLUE, hazard=Hazard.DEVICE, site="park"), T0 + n * S)
    assert sorted(i.summary.alerts for i in desk.open_incidents()) == [1, 2]


def test_an_alert_linking_two_incidents_merges_them_into_the_older() -> None:
    desk = Desk()
    desk.send(gas("a", "s1", lat=22.700), T0)
    desk.send(gas("b", "s2", lat=22.708), T0 + S)  # 890 m apart: two incidents
    assert len(desk.open_incidents()) == 2
    older = next(i.id for i in desk.open_incidents() if any(m.device_id == "a" for m in i.members))
    desk.send(gas("c", "s3", lat=22.704), T0 + 2 * S)  # 445 m from each: one event
    [incident] = desk.open_incidents()
    assert incident.id == older
    assert incident.summary.alerts == 3
    assert {r.alert.incident_id for r in desk.alerts.records.values()} == {older}
    merged = [r.incident for r in desk.incidents.records.values() if r.incident.merged_into]
    assert [m.merged_into for m in merged] == [older]


def test_the_first_message_waits_for_members_but_a_red_never_waits() -> None:
    desk = Desk()
    desk.send(gas("g1", "park", rule="gas.ch4_rise", level=Level.YELLOW), T0)
    desk.send(gas("g2", "park", level=Level.ORANGE), T0 + 2 * S)
    desk.tick(T0 + 5 * S)
    assert desk.sent == []
    desk.tick(T0 + 10 * S)
    [opened] = desk.sent
    assert (opened.event, opened.level, opened.summary.alerts) == (IncidentEvent.OPENED, Level.ORANGE, 2)

    other = Desk()
    other.send(gas("g1", "park", level=Level.RED), T0)
    assert [(e, lv) for _, e, lv in other.events()] == [(IncidentEvent.OPENED, Level.RED)]


def test_a_gas_leak_speaks_at_most_three_times_from_start_to_clear() -> None:
    """The bundled gas leak's shape: a rise, the source orange then red, the site red, neighbours' rises, the end."""
    desk = Desk()
    now = T0
    desk.send(gas("g0", "park", rule="gas.ch4_rise", level=Level.YELLOW), now)
    desk.send(gas("g2", "park", level=Level.ORANGE), now + 1600)
    desk.send(gas("g2", "park", FindingEvent.ESCALATED, Level.RED), now + 3000)
    desk.send(gas("g2", "park", level=Level.RED, key="site:park:gas.site", device_id=None, confirmed=True,
                  confirms=["g2:gas.ch4"]), now + 4100)  # fmt: skip
    for k, device in enumerate(["g1", "g4", "g5", "g7"]):
        desk.send(gas(device, "park", rule="gas.ch4_rise", level=Level.YELLOW), now + (5 + k) * S)
    for t in range(1, 30):
        desk.tick(now + t * S)
    for rec in list(desk.alerts.open_records()):
        desk.send(gas(rec.alert.device_id or "g2", "park", FindingEvent.CLEARED, rec.alert.level, key=rec.alert.key,
                      rule=rec.alert.rule, device_id=rec.alert.device_id), now + 40 * S)  # fmt: skip
    for t in range(40, 200):
        desk.tick(now + t * S)
    events = [e for _, e, _ in desk.events()]
    assert events[0] == IncidentEvent.OPENED
    assert events[-1] == IncidentEvent.CLEARED
    assert len(events) <= 3, events
    assert desk.sent[-1].summary.alerts == 7


def test_an_unacknowledged_incident_reminds_and_escalates_to_the_command_centre() -> None:
    desk = Desk()
    desk.send(gas("g1", "park", level=Level.RED), T0)
    for t in range(1, 125):
        desk.tick(T0 + t * S)
    reminders = [m for m in desk.sent if m.event == IncidentEvent.REMINDER]
    assert len(reminders) == 1
    assert Department.COMMAND in reminders[0].departments
    assert reminders[0].escalations == 1


def test_acknowledging_every_member_acknowledges_the_incident_at_once() -> None:
    desk = Desk()
    desk.send(gas("g1", "park", level=Level.RED), T0)
    desk.send(gas("g2", "park", level=Level.ORANGE), T0 + S)
    for rec in list(desk.alerts.open_records()):
        desk.take(desk.alerts.acknowledge(rec.alert.id, "李", "", T0 + 5 * S), T0 + 5 * S)
    assert desk.sent[-1].event == IncidentEvent.ACKNOWLEDGED
    assert desk.sent[-1].acknowledged


def test_an_incident_area_covers_its_members() -> None:
    points = [(22.70, 114.25), (22.71, 114.25), (22.70, 114.26), (22.705, 114.255)]
    area = area_of(points)
    assert area is not None
    assert all(distance_m((area.lat, area.lon), p) <= area.radius_m for p in points)
    assert area.polygon[0] == area.polygon[-1]
    assert len(area.polygon) == 4  # closed, and the inner point is not on the hull
    assert hull([(1.0, 1.0), (2.0, 2.0)]) == [(1.0, 1.0), (2.0, 2.0)]


# -- any arrival order gives the same incidents ----------------------------------------------------------------

SITES = [("s0", 22.700, 114.250), ("s1", 22.7035, 114.250), ("s2", 22.707, 114.250), ("s3", 22.760, 114.300)]
_alert = st.tuples(
    st.integers(0, len(SITES) - 1),
    st.sampled_from([Hazard.GAS, Hazard.FIRE]),
    st.booleans(),  # a drill
    st.integers(0, 7200),  # raised at (s)
    st.one_of(st.none(), st.integers(1, 3600)),  # active this long, or still active
)


def _record(n: int, spec: tuple[int, Hazard, bool, int, int | None]) -> AlertRecord:
    index, hazard, drill, start, lasts = spec
    site, lat, lon = SITES[index]
    opened = T0 + start * S
    a = alert(id=f"a{n}", key=f"d{n}:{hazard.value}", device_id=f"d{n}", site_id=site, lat=lat, lon=lon,
              hazard=hazard, exercise=drill, opened_at=opened, updated_at=opened, active=lasts is None)  # fmt: skip
    history = [HistoryEntry(seq=1, event=AlertEvent.RAISED, level=a.level, at=opened, active=True,
                            acknowledged=False, departments=a.departments)]  # fmt: skip
    if lasts is not None:
        history.append(history[0].model_copy(update={"seq": 2, "event": AlertEvent.CLEARED, "active": False,
                                                      "at": opened + lasts * S}))  # fmt: skip
    return AlertRecord(alert=a, history=history)


def _partition(records: list[AlertRecord]) -> set[frozenset[str]]:
    book = IncidentBook(load_routing())
    for rec in records:
        _, changed = book.apply([rec], T0, lambda id_: next(r for r in records if r.alert.id == id_))
        book.commit(changed)
    return {frozenset(m.alert_id for m in r.incident.members) for r in book.records.values() if r.incident.members}


@settings(max_examples=200, deadline=None)
@given(st.lists(_alert, min_size=1, max_size=10), st.data())
def test_any_arrival_order_gives_the_same_incidents(specs: list[tuple[int, Hazard, bool, int, int | None]],
                                                    data: st.DataObject) -> None:  # fmt: skip
    """The same alerts (same places, same active times) in any order: the same members in the same incidents. The
    incidents are the connected components of the links, so every linked pair shares one, and no incident holds
    two alerts that no chain of links joins."""
    records = [_record(n, spec) for n, spec in enumerate(specs)]
    expected = _partition(records)
    assert _partition(data.draw(st.permutations(records))) == expected
    family = load_routing().incidents.families
    members = {r.alert.id: member_of(r) for r in records}
    for a, b in itertools.combinations(records, 2):
        if (a.alert.hazard, a.alert.exercise) == (b.alert.hazard, b.alert.exercise) and linked(
            members[a.alert.id], members[b.alert.id], family[a.alert.hazard.value], 1800 * S
        ):
            assert any({a.alert.id, b.alert.id} <= group for group in expected)


def test_an_incident_holds_at_most_max_members_and_a_storm_becomes_several() -> None:
    routing = load_routing()
    small = routing.model_copy(update={"incidents": routing.incidents.model_copy(update={"max_members": 5})})
    desk = Desk(alerts=AlertBook(small, Windows()), incidents=IncidentBook(small))
    for n in range(12):  # one site: every alert linked to every other
        desk.send(gas(f"g{n}", "plant"), T0 + n * S)
    sizes = sorted(i.summary.alerts for i in desk.open_incidents())
    assert sizes == [2, 5, 5]
    assert all(r.alert.incident_id for r in desk.alerts.records.values())


def test_the_closing_message_reaches_whoever_heard_of_the_incident() -> None:
    desk = Desk()
    desk.send(gas("g1", "park", level=Level.RED), T0)
    [rec] = desk.alerts.open_records()
    desk.take(desk.alerts.acknowledge(rec.alert.id, "李", "", T0 + S), T0 + S)
    desk.send(gas("g1", "park", FindingEvent.CLEARED, Level.RED, ts=T0 + 2 * S), T0 + 2 * S)
    last = desk.sent[-1]
    assert last.event == IncidentEvent.CLOSED
    assert Department.EMERGENCY in last.departments
    assert not last.muted, "a closed incident's last message must go out"


def _bridge() -> tuple[Desk, AlertRecord, AlertRecord]:
    """Two incidents 890 m apart, and a new alert between them (linking both) with a change of one of the younger
    incident's members, in one batch."""
    desk = Desk()
    desk.send(gas("a", "s1", lat=22.700), T0)
    desk.send(gas("b", "s2", lat=22.708), T0 + S)
    bridge = desk.alerts.on_finding(gas("c", "s3", lat=22.704), T0 + 2 * S)
    desk.alerts.commit(bridge)
    b = next(r for r in desk.alerts.records.values() if r.alert.device_id == "b")
    escalated = desk.alerts.on_finding(gas("b", "s2", FindingEvent.ESCALATED, Level.RED, lat=22.708), T0 + 3 * S)
    return desk, bridge[0], next(r for r in escalated if r.alert.id == b.alert.id)


def test_a_member_changed_in_the_batch_that_merged_its_incident_goes_to_the_survivor() -> None:
    desk, bridge, b = _bridge()
    older = desk.incidents.of_alert(next(r.alert.id for r in desk.alerts.records.values() if r.alert.device_id == "a"))
    records, changed = desk.incidents.apply([bridge, b], T0 + 3 * S, desk.alerts.get)
    assert {r.alert.incident_id for r in records} == {older}
    merged = [r for r in changed if r.incident.merged_into]
    assert len(merged) == 1
    assert [h.event for h in merged[0].history].count(IncidentEvent.MERGED) <= 1
    survivor = next(r for r in changed if r.incident.id == older)
    assert {m.device_id for m in survivor.incident.members} == {"a", "b", "c"}
    assert survivor.incident.level == Level.RED  # b's escalation reached the survivor


def test_a_rolled_back_merge_leaves_the_books_as_they_were() -> None:
    desk, bridge, _ = _bridge()
    index_before = {k: set(v) for k, v in desk.incidents._index.items()}
    of_before = dict(desk.incidents._of)
    _, changed = desk.incidents.apply([bridge], T0 + 3 * S, desk.alerts.get)
    undo: list[tuple[str, IncidentRecord | None]] = []
    desk.incidents.commit(list(reversed(changed)), undo)  # the survivor noted first: the order must not matter
    desk.incidents.rollback(undo)  # the save failed
    assert {k: set(v) for k, v in desk.incidents._index.items()} == index_before
    assert desk.incidents._of == of_before
    _, changed = desk.incidents.apply([bridge], T0 + 4 * S, desk.alerts.get)  # tried again: merges again
    assert len([r for r in changed if r.incident.merged_into]) == 1
