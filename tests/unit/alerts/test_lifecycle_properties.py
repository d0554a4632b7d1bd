"""Any sequence of findings, officers' actions, silences and time keeps the lifecycle's invariants."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.lifecycle import AlertBook, LifecycleError
from alerts.routing import load_routing
from alerts.silences import Matchers, Silence, Windows
from core.contracts.alert import AlertEvent
from core.contracts.catalogue import Level
from core.contracts.finding import FindingEvent, Hazard
from tests.unit.alerts.factories import T0, finding

ROUTING = load_routing()
DEVICES = ["gas-1", "gas-2"]
RULES = [("gas.ch4", Hazard.GAS), ("device.offline", Hazard.DEVICE)]

steps = st.one_of(
    st.tuples(
        st.just("finding"),
        st.sampled_from(DEVICES),
        st.sampled_from(RULES),
        st.sampled_from(list(FindingEvent)),
        st.sampled_from(list(Level)),
        st.booleans(),
    ),
    st.tuples(st.just("ack"), st.integers(0, 10)),
    st.tuples(st.just("close"), st.integers(0, 10)),
    st.tuples(st.just("time"), st.integers(1, 15 * 60_000)),
    st.tuples(st.just("silence"), st.sampled_from(DEVICES), st.integers(1, 20 * 60_000)),
    st.tuples(st.just("replay"), st.integers(0, 30)),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(steps, max_size=60))
def test_invariants_hold_for_any_sequence(sequence: list[tuple[object, ...]]) -> None:
    book = AlertBook(ROUTING, Windows())
    now = T0
    seen = []
    messages: dict[str, list[int]] = {}
    refusals: list[int] = []
    for step in sequence:
        kind = step[0]
        changed = []
        if kind == "finding":
            _, device, (rule, hazard), event, level, exercise = step
            f = finding(device, rule, event, level, hazard=hazard, exercise=exercise, ts=now)
            seen.append((f, len(seen)))
            changed = book.on_finding(f, now, (0, len(seen) - 1))
        elif kind == "replay" and seen:
            # a restart of the alerts service delivers again, in order, what came after its last commit
            for f, offset in seen[-(step[1] % len(seen)) - 1 :]:
                assert book.on_finding(f, now, (0, offset)) == [], "a replayed finding changes nothing"
        elif kind in ("ack", "close") and book.records:
            target = sorted(book.records)[step[1] % len(book.records)]
            try:
                if kind == "ack":
                    changed = book.acknowledge(target, "officer", "", now)
                else:
                    changed = book.close(target, "officer", "", now)
            except LifecycleError as exc:
                refusals.append(exc.status)
        elif kind == "time":
            now += step[1]
            changed = book.tick(now)
        elif kind == "silence":
            sid = f"s{len(book.windows.silences)}"
            book.windows.silences[sid] = Silence(
                id=sid,
                matchers=Matchers(device_id=step[1]),
                reason="r",
                starts_at=now,
                ends_at=now + step[2],
                created_by="a",
                created_at=now,
            )
        for rec in changed:
            before = book.get(rec.alert.id)
            a = rec.alert
            if before is not None:
                assert a.seq in (before.alert.seq, before.alert.seq + 1), "one message per change"
                assert not (before.alert.acknowledged and not a.acknowledged), "an acknowledgement is never lost"
                assert not (before.alert.closed and not a.closed), "closed is final"
                if a.seq > before.alert.seq:
                    assert a.updated_at >= before.alert.updated_at
            else:
                assert a.seq == 1
                assert a.event == AlertEvent.RAISED
                assert a.active
            if a.event == AlertEvent.REMINDER and a.seq > (before.alert.seq if before else 0):
                assert a.active
                assert not a.acknowledged
                assert not a.muted
            if a.seq > (before.alert.seq if before else 0):
                messages.setdefault(a.id, []).append(a.seq)
        book.commit(changed)
        _check(book)
    assert set(refusals) <= {409}, "only conflicts: every target exists"
    for seqs in messages.values():
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "message numbers have no gaps"


def _check(book: AlertBook) -> None:
    open_keys = [r.alert.key for r in book.open_records()]
    offline = {
        (r.alert.device_id, r.alert.exercise): r.alert
        for r in book.open_records()
        if r.alert.rule == "device.offline" and r.alert.active
    }
    for rec in book.open_records():
        a = rec.alert
        source = offline.get((a.device_id, a.exercise)) if a.hazard != Hazard.DEVICE else None
        expected = source.id if source is not None and a.opened_at >= source.opened_at else None
        assert a.inhibited_by == expected, "inhibition as a full recomputation gives it"
    assert len(open_keys) == len(set(open_keys)), "at most one open alert per key"
    for rec in book.records.values():
        a = rec.alert
        if a.closed:
            assert (not a.active and a.acknowledged) or a.closed_by is not None
        if a.acknowledged or not a.active or a.closed:
            assert rec.next_reminder_at is None
        assert a.exercise == a.key.startswith("drill:")
        assert set(ROUTING.departments(a.hazard, a.level, a.rule, rec.own_departments)) <= set(a.departments)
        assert len(rec.history) == min(a.seq, 200)
        assert rec.history[-1].seq == a.seq
