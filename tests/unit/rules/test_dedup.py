"""Repeats of (device, seq) (``rules.dedup``): a redelivered copy counts once; a reading is never lost to it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.kafka.partitioning import Partitioner
from rules.dedup import SEQ_WINDOW, SeqWindow, fingerprint, is_repeat
from rules.engine import Engine
from rules.state import DeviceState
from streams.processor import RuleProcessor
from tests.unit.rules.helpers import device, pack_of, reading

#: (seq, fingerprint) as a device's readings would bring them
events = st.lists(st.tuples(st.integers(0, 300), st.integers(1, 0xFFFF)), max_size=200)


@settings(max_examples=500, deadline=None)
@given(events)
def test_a_repeat_is_only_ever_something_seen_before(stream: list[tuple[int, int]]) -> None:
    """Soundness: nothing is called a repeat unless that (seq, fingerprint) was noted before, or an earlier reading
    of its slot (``seq`` 64·k apart) had the same 16 bits: the documented 1 in 65,535."""
    window, seen = SeqWindow(), set()
    for seq, fp in stream:
        if window.repeat(seq, fp):
            assert (seq, fp) in seen or any(s % SEQ_WINDOW == seq % SEQ_WINDOW and f == fp for s, f in seen)
        seen.add((seq, fp))


@settings(max_examples=500, deadline=None)
@given(events, st.integers(0, 70))
def test_a_copy_is_a_repeat_while_no_other_reading_took_its_slot(stream: list[tuple[int, int]], later: int) -> None:
    """Completeness: a copy arriving ``later`` readings after its original is a repeat exactly when no reading of
    its slot with another fingerprint came between."""
    window = SeqWindow()
    for i, (seq, fp) in enumerate(stream):
        window.repeat(seq, fp)
        between = stream[i + 1 : i + 1 + later]
        if len(between) < later:
            break
        probe = SeqWindow(bytes(window.slots))
        for s, f in between:
            probe.repeat(s, f)
        taken = any(s % SEQ_WINDOW == seq % SEQ_WINDOW and f != fp for s, f in between)
        last = next((f for s, f in reversed(between) if s % SEQ_WINDOW == seq % SEQ_WINDOW), fp)
        assert probe.repeat(seq, fp) == (not taken or last == fp)


def test_the_64_newest_of_consecutive_numbers_are_caught() -> None:
    window = SeqWindow()
    for seq in range(1_000):
        assert not window.repeat(seq, 1 + seq % 5000)
    assert all(window.repeat(seq, 1 + seq % 5000) for seq in range(936, 1_000))
    assert not window.repeat(935, 1 + 935)  # its slot was taken by 999


def test_a_counter_restarted_at_zero_keeps_every_reading() -> None:
    window = SeqWindow()
    for seq in range(1, 200):
        assert not window.repeat(seq, 1000 + seq)
    # Rebooted: 0, 1, 2, ... again with other values: none is a repeat, and repeats are caught again at once.
    for seq in range(0, 50):
        assert not window.repeat(seq, 5000 + seq)
        assert window.repeat(seq, 5000 + seq)


def test_the_window_survives_a_dump_and_load() -> None:
    state = DeviceState()
    r = reading({"ch4_lel": 1.0}, 0, seq=41)
    assert not state.repeat(r)
    loaded = DeviceState.load(state.dump())
    assert loaded.repeat({**r, "ts": r["ts"] + 999, "received_at": r["received_at"] + 999})
    legacy = state.dump()[:7]  # a state saved before the window existed
    assert DeviceState.load(legacy).seqs is None


def test_the_fingerprint_ignores_the_time_a_copy_was_stamped_with() -> None:
    r = reading({"ch4_lel": 1.0, "battery_pct": 80.0}, 0, seq=3)
    assert fingerprint(r) == fingerprint({**r, "ts": r["ts"] + 5000, "received_at": r["received_at"] + 5000})
    assert fingerprint(r) != fingerprint({**r, "values": {"ch4_lel": 1.5, "battery_pct": 80.0}})
    assert fingerprint(r) != fingerprint({**r, "seq": 4})


def test_readings_without_seq_are_never_repeats() -> None:
    windows: dict[str, SeqWindow] = {}
    r = reading({"ch4_lel": 1.0}, 0)
    assert not is_repeat(windows, r)
    assert not is_repeat(windows, r)
    assert windows == {}


def test_a_redelivered_reading_is_evaluated_once() -> None:
    """A repeat rule (three consecutive readings over 25) must not count a redelivered copy, stamped on arrival
    with a later time, as a second reading."""
    engine = Engine(
        pack_of({"id": "t.r", "kind": "threshold", "metric": "ch4_lel", "levels": {"orange": 25}, "repeat": 3})
    )
    proc = RuleProcessor(engine, {"gas-001": device()}.get, Partitioner(4))
    table: dict[str, dict[str, str]] = {}
    first, second = reading({"ch4_lel": 30.0}, 0, seq=1), reading({"ch4_lel": 30.0}, 1, seq=2)
    copy = {**second, "ts": second["ts"] + 3000, "received_at": second["received_at"] + 3000}
    findings, _ = proc.readings([first, second, copy], 0, first["ts"], table)
    assert findings == []
    assert proc.duplicates == 1
    findings, _ = proc.readings([reading({"ch4_lel": 30.0}, 5, seq=3)], 0, first["ts"], table)
    assert [f.event.value for f in findings] == ["raised"]
