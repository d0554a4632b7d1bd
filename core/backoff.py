"""Exponential backoff for every retry loop: one sequence of waits that honours the wait a failure asks for.

Kafka, MQTT and InfluxDB loops all wait the same way: ``initial`` seconds after the first failure, ``factor``
times longer after each further one, never more than ``maximum``, and back to ``initial`` (``reset``) once the
thing worked. Guarantees, and why:

- **A failure's own wait is honoured.** Our errors carry ``retry_after`` (``core.errors.TransportError``: the
  producer's "reconnecting, try in 0.5 s", InfluxDB's ``Retry-After`` on a 429). The wait is never shorter than
  that, even above ``maximum``: asking sooner than the server said only earns another refusal. ``maximum`` caps our
  own guess, not the server's word (the InfluxDB client already clamps ``Retry-After`` to 300 s).
- **A long ``retry_after`` does not inflate the waits after it.** The sequence doubles from its own last value, so
  one server asking for 60 s is not followed by 120 s, 240 s, ... of our own.
- **Jitter, when asked for, spreads clients that failed together** (every MQTT client of a restarted broker) by
  ±20 % around the sequence's value, so they do not all come back at the same instant. It never shortens a
  ``retry_after``.

``pause`` is the sleep that goes with it: it ends early when the caller's ``stop`` event is set, so a service told
to stop does not sit out a 30 s backoff first.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from core.errors import TransportError

#: Jitter multiplies a wait by a factor in [1 - JITTER, 1 + JITTER).
JITTER = 0.2


class Backoff:
    """The waits of one retry loop. Not shared between loops: each keeps its own place in the sequence."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        factor: float = 2.0,
        jitter: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        """``rng``: the source of jitter (tests pass a seeded one); the ``random`` module's by default."""
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError(f"a backoff needs 0 < initial <= maximum and factor >= 1: {initial}, {maximum}, {factor}")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._random = rng.random if rng is not None else random.random
        self._current = initial

    @property
    def current(self) -> float:
        """The wait the next failure gets from the sequence, before jitter and ``retry_after``."""
        return self._current

    def next(self, retry_after: float = 0.0) -> float:
        """Seconds to wait after a failure (at least ``retry_after``); the failure after it waits longer."""
        wait = self._current
        if self.jitter:
            wait *= 1 - JITTER + 2 * JITTER * self._random()
        self._current = min(self._current * self.factor, self.maximum)
        return max(retry_after, wait)

    def reset(self) -> None:
        """It worked: the next failure waits ``initial`` again."""
        self._current = self.initial


def retry_after(exc: BaseException) -> float:
    """The wait ``exc`` asks for: ``retry_after`` of our transport errors, 0 for anything else."""
    return exc.retry_after if isinstance(exc, TransportError) else 0.0


async def pause(seconds: float, stop: asyncio.Event | None = None) -> bool:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile; returns whether ``stop`` is set."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
