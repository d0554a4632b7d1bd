from __future__ import annotations

import pytest

from alerts.lifecycle import AlertBook, AlertRecord, LifecycleError
from alerts.routing import load_routing
from alerts.silences import DrillWindow, Matchers, Silence, Windows
from core.contracts.alert import AlertEvent
from core.contracts.catalogue import Department, Level
from core.contracts.finding import FindingEvent, Hazard
from tests.unit.alerts.factories import T0, finding

MIN = 60_000


@pytest.fixture
def book() -> AlertBook:
    return AlertBook(load_routing(), Windows())


def apply(book: AlertBook, records: list[AlertRecord]) -> list[AlertRecord]:
    book.commit(records)
    return records


def events(records: list[AlertRecord]) -> list[str]:
    return [r.alert.event.value for r in records]


def test_raise_routes_by_hazard_and_level(book: AlertBook) -> None:
    (rec,) = apply(book, book.on_finding(finding(level=Level.ORANGE), T0))
    assert rec.alert.event == AlertEvent.RAISED
    assert rec.alert.seq == 1
    assert rec.alert.departments == [Department.EMERGENCY]
    assert rec.alert.active
    assert not rec.alert.acknowledged
    fire = book.on_finding(finding("f-1", "fire.heat", hazard=Hazard.FIRE, level=Level.RED), T0)
    assert fire[0].alert.departments == [Department.FIRE, Department.EMERGENCY]
    water = book.on_finding(finding("w-1", "water.level", hazard=Hazard.WATER, level=Level.YELLOW), T0)
    assert water[0].alert.departments == [Department.WATER]


def test_device_hazard_goes_to_the_devices_own_departments(book: AlertBook) -> None:
    f = finding("w-2", "device.offline", hazard=Hazard.DEVICE, level=Level.BLUE, departments=[Department.WATER])
    assert book.on_finding(f, T0)[0].alert.departments == [Department.WATER]


def test_level_changes_clear_and_close(book: AlertBook) -> None:
    apply(book, book.on_finding(finding(), T0))
    (up,) = apply(book, book.on_finding(finding(event=FindingEvent.ESCALATED, level=Level.RED, ts=T0 + 1), T0 + 10))
    assert up.alert.event == AlertEvent.ESCALATED
    assert up.alert.level == Level.RED
    assert up.alert.seq == 2
    (down,) = apply(book, book.on_finding(finding(event=FindingEvent.DEESCALATED, ts=T0 + 2), T0 + 20))
    assert down.alert.event == AlertEvent.DEESCALATED
    assert down.alert.id == up.alert.id
    (cleared,) = apply(book, book.on_finding(finding(event=FindingEvent.CLEARED, ts=T0 + 3), T0 + 30))
    assert cleared.alert.event == AlertEvent.CLEARED
    assert not cleared.alert.active
    assert not cleared.alert.closed, "a cleared alert nobody acknowledged stays open"
    (acked,) = apply(book, book.acknowledge(cleared.alert.id, "李值班", "现场已处置", T0 + 40))
    assert acked.alert.closed
    assert acked.alert.acknowledgement is not None
    assert acked.alert.acknowledgement.by == "李值班"
    assert [h.event for h in acked.history] == ["raised", "escalated", "deescalated", "cleared", "acknowledged"]
    assert acked.history[-1].note == "现场已处置"


def test_new_occurrence_after_close_is_a_new_alert(book: AlertBook) -> None:
    (first,) = apply(book, book.on_finding(finding(), T0))
    apply(book, book.acknowledge(first.alert.id, "a", "", T0 + 1))
    apply(book, book.on_finding(finding(event=FindingEvent.CLEARED, ts=T0 + 2), T0 + 2))
    assert book.open_for(first.alert.key) is None
    (second,) = apply(book, book.on_finding(finding(ts=T0 + 10), T0 + 10))
    assert second.alert.id != first.alert.id
    assert second.alert.seq == 1
    assert second.alert.key == first.alert.key


def test_a_replayed_finding_changes_nothing(book: AlertBook) -> None:
    f = finding()
    apply(book, book.on_finding(f, T0))
    assert book.on_finding(f, T0 + 5) == []
    (_rec,) = apply(book, book.acknowledge(next(iter(book.records)), "a", "", T0 + 6))
    apply(book, book.on_finding(finding(event=FindingEvent.CLEARED, ts=T0 + 7), T0 + 7))
    assert book.on_finding(f, T0 + 8) == [], "a replay of the raise must not reopen a closed alert"


def test_acknowledge_twice_and_unknown_are_refused(book: AlertBook) -> None:
    (rec,) = apply(book, book.on_finding(finding(), T0))
    apply(book, book.acknowledge(rec.alert.id, "a", "", T0 + 1))
    with pytest.raises(LifecycleError) as twice:
        book.acknowledge(rec.alert.id, "b", "", T0 + 2)
    assert twice.value.status == 409
    assert "already acknowledged by a" in str(twice.value)
    with pytest.raises(LifecycleError) as unknown:
        book.acknowledge("nope", "b", "", T0)
    assert unknown.value.status == 404


def test_reminders_escalate_to_command_until_acknowledged(book: AlertBook) -> None:
    (rec,) = apply(book, book.on_finding(finding(level=Level.RED), T0))
    assert book.tick(T0 + 2 * MIN - 1) == []
    (first,) = apply(book, book.tick(T0 + 2 * MIN))
    assert first.alert.event == AlertEvent.REMINDER
    assert first.alert.escalations == 1
    assert first.alert.departments == [Department.EMERGENCY, Department.COMMAND]
    assert book.tick(T0 + 3 * MIN) == []
    (second,) = apply(book, book.tick(T0 + 4 * MIN))
    assert second.alert.escalations == 2
    apply(book, book.acknowledge(rec.alert.id, "a", "", T0 + 5 * MIN))
    assert book.tick(T0 + 60 * MIN) == []


def test_other_levels_wait_ten_minutes(book: AlertBook) -> None:
    apply(book, book.on_finding(finding(level=Level.YELLOW), T0))
    assert book.tick(T0 + 10 * MIN - 1) == []
    assert events(book.tick(T0 + 10 * MIN)) == ["reminder"]


def test_escalating_to_red_brings_the_reminder_forward(book: AlertBook) -> None:
    apply(book, book.on_finding(finding(level=Level.YELLOW), T0))
    apply(book, book.on_finding(finding(event=FindingEvent.ESCALATED, level=Level.RED, ts=T0 + 1), T0 + MIN))
    assert events(book.tick(T0 + 3 * MIN)) == ["reminder"]


def test_a_silence_mutes_and_its_end_reminds(book: AlertBook) -> None:
    book.windows.silences["s1"] = Silence(
        id="s1",
        matchers=Matchers(site_id="site-1"),
        reason="检修 maintenance",
        starts_at=T0 - 1,
        ends_at=T0 + 5 * MIN,
        created_by="admin",
        created_at=T0,
    )
    (rec,) = apply(book, book.on_finding(finding(level=Level.RED), T0))
    assert rec.alert.silenced_by == ["s1"]
    assert rec.alert.muted
    assert book.tick(T0 + 3 * MIN) == [], "no reminders while muted"
    (unmuted,) = apply(book, book.tick(T0 + 5 * MIN))
    assert unmuted.alert.event == AlertEvent.REMINDER
    assert unmuted.alert.silenced_by == []
    assert not unmuted.alert.muted


def test_a_silence_that_begins_mutes_silently(book: AlertBook) -> None:
    (rec,) = apply(book, book.on_finding(finding(), T0))
    book.windows.silences["s2"] = Silence(
        id="s2",
        matchers=Matchers(department=Department.EMERGENCY),
        reason="演练",
        starts_at=T0 + MIN,
        ends_at=T0 + 2 * MIN,
        created_by="admin",
        created_at=T0,
    )
    (muted,) = apply(book, book.tick(T0 + MIN))
    assert muted.alert.silenced_by == ["s2"]
    assert muted.alert.seq == rec.alert.seq, "state only, no message"


def test_offline_inhibits_the_devices_other_alerts(book: AlertBook) -> None:
    offline = finding("gas-1", "device.offline", hazard=Hazard.DEVICE, level=Level.BLUE)
    (off,) = apply(book, book.on_finding(offline, T0))
    (stale,) = apply(book, book.on_finding(finding(ts=T0 + 1), T0 + 1))
    assert stale.alert.inhibited_by == off.alert.id
    assert stale.alert.muted
    changed = apply(
        book,
        book.on_finding(
            finding("gas-1", "device.offline", FindingEvent.CLEARED, Level.BLUE, hazard=Hazard.DEVICE, ts=T0 + 2),
            T0 + 2,
        ),
    )
    freed = {r.alert.key: r for r in changed}["gas-1:gas.ch4"]
    assert freed.alert.inhibited_by is None


def test_confirmed_site_alert_absorbs_and_acknowledges_the_device_alerts(book: AlertBook) -> None:
    (a,) = apply(book, book.on_finding(finding("gas-1"), T0))
    (b,) = apply(book, book.on_finding(finding("gas-2"), T0))
    site = finding(
        "x",
        "gas.site",
        level=Level.RED,
        key="site:site-1:gas.site",
        device_id=None,
        confirmed=True,
        confirms=[a.alert.key, b.alert.key],
    )
    changed = apply(book, book.on_finding(site, T0 + 1))
    by_key = {r.alert.key: r for r in changed}
    site_id = by_key["site:site-1:gas.site"].alert.id
    assert by_key[a.alert.key].alert.inhibited_by == site_id
    assert by_key[b.alert.key].alert.inhibited_by == site_id
    acked = apply(book, book.acknowledge(site_id, "王", "消防已到场", T0 + 2))
    assert {r.alert.key for r in acked if r.alert.acknowledged} == {site.key, a.alert.key, b.alert.key}


def test_drill_findings_and_drill_windows_make_exercise_alerts(book: AlertBook) -> None:
    (drill,) = book.on_finding(finding(exercise=True), T0)
    assert drill.alert.exercise
    assert drill.alert.key.startswith("drill:")
    assert drill.alert.title.zh.startswith("演练")
    assert drill.alert.title.en.startswith("DRILL")
    book.windows.drills["d1"] = DrillWindow(
        id="d1", name="台风演练", site_ids=["site-1"], starts_at=T0, ends_at=T0 + MIN, created_by="a", created_at=T0
    )
    (windowed,) = book.on_finding(finding("gas-9"), T0 + 1)
    assert windowed.alert.exercise
    assert windowed.alert.key == "drill:gas-9:gas.ch4"
    (after,) = book.on_finding(finding("gas-9", ts=T0 + 2 * MIN), T0 + 2 * MIN)
    assert not after.alert.exercise


def test_close_by_an_officer(book: AlertBook) -> None:
    (rec,) = apply(book, book.on_finding(finding(), T0))
    (closed,) = apply(book, book.close(rec.alert.id, "主任", "误报 false alarm", T0 + 1))
    assert closed.alert.closed
    assert closed.alert.closed_by == "主任"
    assert closed.alert.event == AlertEvent.CLOSED
    assert closed.history[-1].note == "误报 false alarm"
    with pytest.raises(LifecycleError):
        book.close(rec.alert.id, "x", "", T0 + 2)
    # the condition still holds: its next change is a new alert
    (again,) = book.on_finding(finding(event=FindingEvent.ESCALATED, level=Level.RED, ts=T0 + 3), T0 + 3)
    assert again.alert.id != rec.alert.id
    assert again.alert.event == AlertEvent.RAISED


def test_offline_does_not_hide_an_alarm_raised_before_it(book: AlertBook) -> None:
    (gas,) = apply(book, book.on_finding(finding(level=Level.RED), T0))
    offline = finding("gas-1", "device.offline", hazard=Hazard.DEVICE, level=Level.BLUE, departments=[Department.WATER])
    changed = apply(book, book.on_finding(offline, T0 + 30_000))
    assert all(r.alert.inhibited_by is None for r in changed)
    (reminder,) = [r for r in apply(book, book.tick(T0 + 2 * MIN)) if r.alert.id == gas.alert.id]
    assert reminder.alert.event == AlertEvent.REMINDER, "the red alarm still escalates"
    off_id = next(r.alert.id for r in changed if r.alert.rule == "device.offline")
    acked = apply(book, book.acknowledge(off_id, "水务", "", T0 + 3 * MIN))
    assert [r.alert.id for r in acked] == [off_id], "acknowledging the offline alert acknowledges nothing else"


def test_the_end_of_an_inhibition_reminds(book: AlertBook) -> None:
    offline = finding("gas-1", "device.offline", hazard=Hazard.DEVICE, level=Level.BLUE)
    apply(book, book.on_finding(offline, T0))
    (stale,) = apply(book, book.on_finding(finding(level=Level.RED, ts=T0 + 1), T0 + 1))
    assert stale.alert.muted
    back = finding("gas-1", "device.offline", FindingEvent.CLEARED, Level.BLUE, hazard=Hazard.DEVICE, ts=T0 + 2)
    freed = {r.alert.key: r for r in apply(book, book.on_finding(back, T0 + 2))}["gas-1:gas.ch4"]
    assert freed.alert.event == AlertEvent.REMINDER
    assert not freed.alert.muted


def test_a_departments_silence_mutes_that_department_only(book: AlertBook) -> None:
    book.windows.silences["s3"] = Silence(
        id="s3", matchers=Matchers(department=Department.EMERGENCY), reason="r", starts_at=T0 - 1,
        ends_at=T0 + 60 * MIN, created_by="e", created_at=T0,
    )  # fmt: skip
    (fire,) = apply(book, book.on_finding(finding("f-2", "fire.heat", hazard=Hazard.FIRE, level=Level.RED), T0))
    assert fire.alert.silenced_by == ["s3"]
    assert fire.alert.muted_departments == [Department.EMERGENCY]
    assert not fire.alert.muted, "the fire department still hears it"
    assert events(book.tick(T0 + 2 * MIN)) == ["reminder"], "and it still escalates"


def test_a_department_told_once_hears_how_it_ends(book: AlertBook) -> None:
    fire = finding("f-3", "fire.heat", hazard=Hazard.FIRE, level=Level.RED)
    apply(book, book.on_finding(fire, T0))
    lower = finding("f-3", "fire.heat", FindingEvent.DEESCALATED, Level.ORANGE, hazard=Hazard.FIRE, ts=T0 + 1)
    (down,) = apply(book, book.on_finding(lower, T0 + 1))
    assert down.alert.departments == [Department.FIRE, Department.EMERGENCY]


def test_a_drill_window_never_turns_an_open_alert_into_a_drill_or_back(book: AlertBook) -> None:
    (real,) = apply(book, book.on_finding(finding("gas-5"), T0))
    book.windows.drills["d2"] = DrillWindow(
        id="d2", name="演练", device_ids=["gas-5", "gas-6"], starts_at=T0 + 10, ends_at=T0 + MIN, created_by="a",
        created_at=T0,
    )  # fmt: skip
    (up,) = apply(
        book, book.on_finding(finding("gas-5", event=FindingEvent.ESCALATED, level=Level.RED, ts=T0 + 20), T0 + 20)
    )
    assert (up.alert.id, up.alert.exercise) == (real.alert.id, False)
    (drill,) = apply(book, book.on_finding(finding("gas-6", ts=T0 + 30), T0 + 30))
    assert drill.alert.exercise
    (cleared,) = apply(
        book, book.on_finding(finding("gas-6", event=FindingEvent.CLEARED, ts=T0 + 2 * MIN), T0 + 2 * MIN)
    )
    assert (cleared.alert.id, cleared.alert.active) == (drill.alert.id, False), "its end still finds it"


def test_replays_are_recognised_per_partition(book: AlertBook) -> None:
    apply(book, book.on_finding(finding(), T0, (2, 100)))
    assert book.on_finding(finding(event=FindingEvent.CLEARED, ts=T0 - 5), T0, (2, 99)) == [], "below: a replay"
    moved = book.on_finding(finding(event=FindingEvent.ESCALATED, level=Level.RED, ts=T0 + 1), T0, (5, 3))
    assert events(moved) == ["escalated"], "another partition's offsets are not comparable"


def test_an_alert_keeps_the_peak_that_raised_it_after_it_clears(book: AlertBook) -> None:
    apply(book, book.on_finding(finding(value=30.0, threshold=25.0), T0))
    (up,) = apply(
        book,
        book.on_finding(
            finding(event=FindingEvent.ESCALATED, level=Level.RED, ts=T0 + 1, value=55.0, threshold=50.0), T0 + 1
        ),
    )
    assert (up.alert.peak, up.alert.peak_threshold) == (55.0, 50.0)
    flag = finding(event=FindingEvent.UPDATED, level=Level.RED, ts=T0 + 2, value=51.0, threshold=50.0, flapping=True)
    (same,) = apply(book, book.on_finding(flag, T0 + 2))
    assert same.alert.peak == 55.0, "a flag change at the same level is no new peak"
    (down,) = apply(
        book,
        book.on_finding(finding(event=FindingEvent.DEESCALATED, ts=T0 + 3, value=40.0, threshold=25.0), T0 + 3),
    )
    assert (down.alert.value, down.alert.peak) == (40.0, 55.0)
    (cleared,) = apply(
        book, book.on_finding(finding(event=FindingEvent.CLEARED, ts=T0 + 4, value=12.59, threshold=20.0), T0 + 4)
    )
    assert (cleared.alert.value, cleared.alert.threshold) == (12.59, 20.0), "value: what cleared it"
    assert (cleared.alert.peak, cleared.alert.peak_threshold) == (55.0, 50.0), "peak: what raised it to red"
    (again,) = apply(
        book, book.on_finding(finding(event=FindingEvent.RAISED, ts=T0 + 5, value=27.0, threshold=25.0), T0 + 5)
    )
    assert (again.alert.event, again.alert.peak) == (AlertEvent.RAISED, 55.0), "active again lower: red peak stays"


def test_closed_alerts_are_forgotten_when_old_or_beyond_the_most_kept(book: AlertBook) -> None:
    """An alert storm cannot grow the book without bound: beyond ``most`` closed alerts, the oldest closed go first;
    open ones are never forgotten, however old."""
    opened = apply(book, book.on_finding(finding("gas-open", ts=T0), T0))[0]
    closed_ids = []
    for k in range(5):
        (rec,) = apply(book, book.on_finding(finding(f"gas-{k}", ts=T0 + k * MIN), T0 + k * MIN))
        apply(book, book.close(rec.alert.id, "主任", "", T0 + k * MIN + 1))
        closed_ids.append(rec.alert.id)
    assert book.closed_to_forget(T0, most=5) == []
    assert book.closed_to_forget(T0 + 2 * MIN, most=5) == closed_ids[:2], "closed before the cutoff"
    assert sorted(book.closed_to_forget(T0, most=3)) == sorted(closed_ids[:2]), "the oldest beyond the most kept"
    assert sorted(book.closed_to_forget(T0 + 3 * MIN, most=4)) == sorted(closed_ids[:3]), "both at once"
    assert opened.alert.id not in book.closed_to_forget(T0 + 60 * MIN, most=0)
    book.forget(book.closed_to_forget(T0, most=1))
    assert [r.alert.id for r in book.records.values() if r.alert.closed] == closed_ids[-1:]
