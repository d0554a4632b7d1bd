"""PUBACKs leave in arrival order, whatever order Kafka finishes flushes in; a reconnect forgets old ones."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingest.acks import AckTracker


@given(st.permutations(list(range(1, 60))))
def test_acks_are_released_in_arrival_order_whatever_the_completion_order(order: list[int]) -> None:
    tracker = AckTracker()
    entries = {mid: tracker.arrived(mid) for mid in range(1, 60)}
    released: list[int] = []
    for mid in order:
        AckTracker.done(entries[mid])
        released.extend(tracker.release())
        # Nothing is released while an earlier message is still pending.
        assert released == list(range(1, len(released) + 1))
    assert released == list(range(1, 60))
    assert len(tracker) == 0


def test_nothing_released_while_the_head_is_pending() -> None:
    tracker = AckTracker()
    first, second = tracker.arrived(10), tracker.arrived(11)
    AckTracker.done(second)
    assert tracker.release() == []
    AckTracker.done(first)
    assert tracker.release() == [10, 11]


def test_reconnect_drops_pending_acknowledgements_of_the_old_connection() -> None:
    tracker = AckTracker()
    old = tracker.arrived(5)
    tracker.reconnected()
    new = tracker.arrived(5)  # the broker may reuse the packet id for a redelivery or a new message
    AckTracker.done(old)
    assert tracker.release() == []
    AckTracker.done(new)
    assert tracker.release() == [5]
