"""Repeats of (device, seq) (``rules.dedup``): a redelivered copy counts once; a reading is never lost to it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.partitioning import Partitioner
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
    """Soundness: nothing is called a repeat unless that (seq, fingerprint) was noted before (or a slot's earlier
    tenant, ``seq`` 64·k apart, had the same 16 bits: the documented 1 in 65,536)."""
    window, seen = SeqWindow(), set()
    for seq, fp in stream:
        if window.repeat(seq, fp):
            assert (seq, fp) in seen or any(s % SEQ_WINDOW == seq % SEQ_WINDOW and f == fp for s, f in seen)
        seen.add((seq, fp))


@settings(max_examples=500, deadline=None)
@given(events, st.integers(0, 5))
def test_a_copy_within_the_window_is_a_repeat(stream: list[tuple[int, int]], later: int) -> None:
    """Completeness: a copy arriving up to ``later`` readings after its original is a repeat while its number is in
    the window and no other reading took its slot meanwhile."""
    window = SeqWindow()
    pending: list[tuple[int, int, int]] = []  # (due at index, seq, fp)
    for i, (seq, fp) in enumerate(stream):
        for due, s, f in [p for p in pending if p[0] == i]:
            pending.remove((due, s, f))
            slot_kept = window.slots[2 * (s % SEQ_WINDOW) : 2 * (s % SEQ_WINDOW) + 2] == bytes([f >> 8, f & 0xFF])
            in_window = window.hi - SEQ_WINDOW < s <= window.hi
            assert window.repeat(s, f) == (in_window and slot_kept)
        fresh = window.repeat(seq, fp)
        if not fresh:
            pending.append((i + 1 + later, seq, fp))


def test_a_counter_restarted_at_zero_keeps_every_reading() -> None:
    window = SeqWindow()
    for seq in range(1, 200):
        assert not window.repeat(seq, 1000 + seq)
    # Rebooted: 0, 1, 2, ... again with other values: none is a repeat, and repeats are caught again at once.
    for seq in range(0, 50):
        assert not window.repeat(seq, 5000 + seq)
        assert window.repeat(seq, 5000 + seq)


def test_a_number_far_below_is_kept_unchecked() -> None:
    window = SeqWindow()
    assert not window.repeat(1000, 7)
    assert not window.repeat(900, 9)
    assert not window.repeat(900, 9)  # too far below to tell: kept (never lose a reading)
    assert window.hi == 1000


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
