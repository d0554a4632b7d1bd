"""Backoff: doubling waits up to a cap, never shorter than a failure's ``retry_after``, reset once it worked."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.backoff import JITTER, Backoff, pause, retry_after
from core.errors import KafkaUnavailable, TransportError


def test_waits_double_up_to_the_maximum() -> None:
    backoff = Backoff(0.5, 10.0)
    assert [backoff.next() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_another_factor() -> None:
    backoff = Backoff(1.0, 100.0, factor=3)
    assert [backoff.next() for _ in range(5)] == [1.0, 3.0, 9.0, 27.0, 81.0]


def test_reset_starts_again_from_the_initial_wait() -> None:
    backoff = Backoff(0.2, 5.0)
    for _ in range(4):
        backoff.next()
    assert backoff.current == 3.2
    backoff.reset()
    assert backoff.current == 0.2
    assert backoff.next() == 0.2


def test_retry_after_is_a_floor() -> None:
    backoff = Backoff(0.2, 5.0)
    assert backoff.next(retry_after=0.5) == 0.5  # the producer's "reconnecting, 0.5 s" beats our 0.2 s
    assert backoff.next(retry_after=0.5) == 0.5  # our 0.4 s is still shorter
    assert backoff.next(retry_after=0.5) == 0.8


def test_retry_after_is_honoured_above_the_maximum() -> None:
    """The cap bounds our own guess; a server that asks for 60 s gets 60 s."""
    backoff = Backoff(0.5, 30.0)
    assert backoff.next(retry_after=60.0) == 60.0


def test_a_long_retry_after_does_not_inflate_the_waits_after_it() -> None:
    backoff = Backoff(1.0, 60.0)
    assert backoff.next(retry_after=40.0) == 40.0
    assert backoff.next() == 2.0


def test_jitter_stays_within_twenty_percent() -> None:
    backoff = Backoff(1.0, 1.0, jitter=True, rng=random.Random(7))
    waits = [backoff.next() for _ in range(1000)]
    assert all(1 - JITTER <= w < 1 + JITTER for w in waits)
    assert max(waits) - min(waits) > 0.3  # it does spread


def test_jitter_never_shortens_a_retry_after() -> None:
    backoff = Backoff(2.0, 2.0, jitter=True, rng=random.Random(1))
    assert all(backoff.next(retry_after=2.0) >= 2.0 for _ in range(200))


def test_jitter_follows_the_capped_sequence() -> None:
    """As the MQTT client had it: the sequence doubles and caps without jitter; jitter is applied to each wait."""
    backoff = Backoff(0.5, 30.0, jitter=True, rng=random.Random(3))
    for expected in [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]:
        assert backoff.current == expected
        assert expected * (1 - JITTER) <= backoff.next() < expected * (1 + JITTER)


@given(
    initial=st.floats(0.01, 10),
    spread=st.floats(1, 100),
    factor=st.floats(1, 4),
    asks=st.lists(st.floats(0, 500), max_size=30),
)
def test_every_wait_is_within_the_bounds(initial: float, spread: float, factor: float, asks: list[float]) -> None:
    backoff = Backoff(initial, initial * spread, factor=factor)
    for ask in asks:
        wait = backoff.next(retry_after=ask)
        assert wait >= ask
        assert wait >= initial
        assert wait <= max(ask, initial * spread)


@pytest.mark.parametrize(("initial", "maximum", "factor"), [(0, 1, 2), (-1, 1, 2), (2, 1, 2), (1, 2, 0.5)])
def test_nonsense_is_refused(initial: float, maximum: float, factor: float) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(initial, maximum, factor=factor)


def test_retry_after_of_an_exception() -> None:
    assert retry_after(KafkaUnavailable("down", retry_after=0.5)) == 0.5
    assert retry_after(TransportError("down")) == 1.0
    assert retry_after(OSError("refused")) == 0.0


async def test_pause_sleeps_without_a_stop_event() -> None:
    started = time.monotonic()
    assert await pause(0.05) is False
    assert time.monotonic() - started >= 0.05


async def test_pause_ends_early_when_stopped() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    started = time.monotonic()
    assert await pause(30, stop) is True
    assert time.monotonic() - started < 5


async def test_pause_runs_out_when_not_stopped() -> None:
    assert await pause(0.02, asyncio.Event()) is False
