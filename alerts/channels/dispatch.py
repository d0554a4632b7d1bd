"""The dispatcher: every alert message, through every channel, to every target, retried, and never lost silently.

``submit(alert)`` returns at once. For each channel it asks ``targets(alert, department)`` for every department in
``alert.departments`` (none while ``alert.muted``, nor those in ``alert.muted_departments``), drops a target
already chosen for another department (one message per address or URL, however many departments share it), and
queues one ``Delivery`` per target. It returns
how many deliveries it made; each of them ends in exactly one ``on_delivered`` or ``on_undelivered`` call (when
``on_delivered`` is given), so a caller can tell when an alert message has gone everywhere it can go.

Shape, and why:

- **One lane per (channel, target).** A lane is a FIFO with at most one task working on it, created when its first
  delivery arrives and gone when it is empty. Messages of one alert to one target therefore arrive in ``seq``
  order even when one of them needs retries (a receiver never sees ``cleared`` before ``raised``), and a hanging
  or failing target holds up only its own lane. Hashing targets onto a fixed set of worker queues would also keep
  the order, but one slow target would then stall every target that shares its bucket.
- **Bounded concurrency per channel** (``concurrency``, default 4): a semaphore per channel, held only while a send
  is in flight, never while a lane sleeps before a retry. Channels share nothing, so a slow or failing channel
  never delays another.
- **Bounded queue per channel** (``max_queue``, default 10,000 deliveries waiting or in flight): beyond it a
  delivery is recorded as undelivered (reason ``queue full``) instead of blocking ``submit`` or growing memory.
- **Retries**: a ``DeliveryError`` that is not ``permanent`` is retried after ``retry_after`` when the channel gave
  one (capped at ``max_backoff_s``), else after an exponential backoff with jitter: ``base * 2**(attempt-1)``
  capped at ``max_backoff_s``, then a uniformly random time between half of that and all of it, so receivers that
  came back are not hit by every lane at once. After ``max_attempts`` sends, or a permanent error, the delivery is
  handed to ``on_undelivered(delivery, channel_name, reason, attempts)`` (the service writes it to Kafka), and the
  lane moves on.
- **Nothing vanishes.** A channel raising something other than ``DeliveryError`` is a bug: its lane's deliveries
  are recorded as undelivered with the error as the reason and the traceback is logged. ``close()`` records what
  is still queued as undelivered (reason ``dispatcher closed``).

``on_delivered(delivery, channel_name, seconds)``, optional and sync or async, gets the time from ``submit`` to
the successful send, retries included (a latency metric).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from alerts.channels.base import Channel, Delivery, DeliveryError, Message

logger = logging.getLogger(__name__)

OnUndelivered = Callable[[Delivery, str, str, int], Awaitable[None]]
OnDelivered = Callable[[Delivery, str, float], Awaitable[None] | None]

QUEUE_FULL: Final = "queue full"
CLOSED: Final = "dispatcher closed"


@dataclass(slots=True)
class _Job:
    delivery: Delivery
    submitted: float  # monotonic
    attempts: int = 0
    done: bool = False  # its one callback has been made (or is being made)


@dataclass(slots=True)
class _Lane:
    jobs: deque[_Job] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class _ChannelRunner:
    """One channel's lanes, semaphore and queue bound."""

    def __init__(self, channel: Channel, owner: Dispatcher, concurrency: int, max_queue: int) -> None:
        self.channel = channel
        self.owner = owner
        self.max_queue = max_queue
        self.semaphore = asyncio.Semaphore(concurrency)
        self.lanes: dict[str, _Lane] = {}
        self.pending = 0

    def offer(self, job: _Job) -> bool:
        if self.pending >= self.max_queue:
            return False
        target = job.delivery.target
        lane = self.lanes.get(target)
        if lane is None:
            lane = self.lanes[target] = _Lane()
        lane.jobs.append(job)
        self.pending += 1
        if lane.task is None:
            lane.task = asyncio.create_task(self._run(target, lane), name=f"deliver:{self.channel.name}:{target}")
            lane.task.add_done_callback(lambda task: self._lane_done(target, lane, task))
        return True

    async def _run(self, target: str, lane: _Lane) -> None:
        while lane.jobs:
            await self._deliver(lane.jobs[0])
            lane.jobs.popleft()
            self.pending -= 1
        # no await between the emptiness check and here: a delivery offered now starts a new task
        lane.task = None
        if self.lanes.get(target) is lane:
            del self.lanes[target]
        self.owner._wake()

    def _lane_done(self, target: str, lane: _Lane, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return  # close() records what is left
        error = task.exception()
        if error is None:
            return
        stranded = [job for job in lane.jobs if not job.done]
        logger.error(
            "%s to %s: unexpected error (a bug in the channel or a callback); %d deliveries recorded undelivered",
            self.channel.name,
            target,
            len(stranded),
            exc_info=error,
        )
        self.pending -= len(lane.jobs)
        lane.jobs.clear()
        lane.task = None
        if self.lanes.get(target) is lane:
            del self.lanes[target]
        reason = f"channel error: {type(error).__name__}: {error}"
        self.owner._record_later([(job, reason) for job in stranded], self.channel.name)
        self.owner._wake()

    async def _deliver(self, job: _Job) -> None:
        owner = self.owner
        name = self.channel.name
        while True:
            job.attempts += 1
            async with self.semaphore:
                try:
                    await self.channel.send(job.delivery)
                except DeliveryError as error:
                    failure: DeliveryError | None = error
                else:
                    failure = None
            if failure is None:
                job.done = True
                await owner._delivered(job, name)
                return
            if failure.permanent or job.attempts >= owner.max_attempts:
                kind = "permanent" if failure.permanent else f"gave up after {job.attempts} attempts"
                logger.warning("%s to %s undelivered (%s): %s", name, job.delivery.target, kind, failure)
                job.done = True
                await owner._undelivered(job, name, str(failure))
                return
            delay = owner.backoff(job.attempts, failure.retry_after)
            logger.info(
                "%s to %s failed (attempt %d/%d), retrying in %.1f s: %s",
                name,
                job.delivery.target,
                job.attempts,
                owner.max_attempts,
                delay,
                failure,
            )
            await asyncio.sleep(delay)

    async def cancel(self) -> list[_Job]:
        """Stop every lane; the jobs they still held (including the one in flight)."""
        tasks = [lane.task for lane in self.lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stranded = [job for lane in self.lanes.values() for job in lane.jobs if not job.done]
        self.lanes.clear()
        self.pending = 0
        return stranded


class Dispatcher:
    """Delivers alert messages through ``channels``; see the module docstring for the guarantees."""

    def __init__(
        self,
        channels: Iterable[Channel],
        *,
        on_undelivered: OnUndelivered,
        on_delivered: OnDelivered | None = None,
        max_attempts: int = 8,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        concurrency: int = 4,
        max_queue: int = 10_000,
    ) -> None:
        if max_attempts < 1 or concurrency < 1 or max_queue < 1:
            raise ValueError("max_attempts, concurrency and max_queue must be at least 1")
        if base_backoff_s < 0 or max_backoff_s < base_backoff_s:
            raise ValueError("need 0 <= base_backoff_s <= max_backoff_s")
        self.channels = list(channels)
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be unique: {names}")
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self._concurrency = concurrency
        self._max_queue = max_queue
        self._on_undelivered = on_undelivered
        self._on_delivered = on_delivered
        self._runners: list[_ChannelRunner] = []
        self._background: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._started = False
        self._closed = False

    async def start(self) -> None:
        """Start every channel (in order; a channel that cannot start fails the start)."""
        if self._started:
            return
        for channel in self.channels:
            await channel.start()
        self._runners = [_ChannelRunner(c, self, self._concurrency, self._max_queue) for c in self.channels]
        self._started = True
        logger.info("dispatcher started: channels %s", ", ".join(c.name for c in self.channels) or "(none)")

    def submit(self, alert: Message) -> int:
        """Queue ``alert`` for every channel and target without blocking; the number of deliveries made (0 when
        muted or nobody is configured). Every one of them ends in exactly one callback."""
        if not self._started or self._closed:
            raise RuntimeError("Dispatcher.submit before start() or after close()")
        if alert.muted:
            logger.debug("alert %s #%d muted: not dispatched", alert.id, alert.seq)
            return 0
        now = time.monotonic()
        made = 0
        for runner in self._runners:
            chosen: set[str] = set()
            overflow: list[tuple[_Job, str]] = []
            for department in alert.departments:
                if department in alert.muted_departments:  # a silence of that department
                    continue
                for target in runner.channel.targets(alert, department.value):
                    if target in chosen:
                        continue
                    chosen.add(target)
                    made += 1
                    job = _Job(Delivery(alert, department.value, target), now)
                    if runner.offer(job):
                        self._idle.clear()
                    else:
                        overflow.append((job, QUEUE_FULL))
            if overflow:
                logger.error(
                    "channel %s queue full (%d): %d deliveries of alert %s #%d recorded undelivered",
                    runner.channel.name,
                    runner.max_queue,
                    len(overflow),
                    alert.id,
                    alert.seq,
                )
                self._record_later(overflow, runner.channel.name)
        return made

    @property
    def pending(self) -> dict[str, int]:
        """Deliveries waiting or in flight, per channel."""
        return {r.channel.name: r.pending for r in self._runners}

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued delivery is delivered or recorded undelivered; False if ``timeout`` passed."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, *, drain_timeout: float = 5.0) -> None:
        """Let queued deliveries finish for up to ``drain_timeout`` s, record the rest undelivered, close channels."""
        if self._closed:
            return
        self._closed = True
        if self._started and drain_timeout > 0:
            await self.drain(drain_timeout)
        for runner in self._runners:
            stranded = await runner.cancel()
            if stranded:
                logger.warning("%s: %d deliveries still queued at close", runner.channel.name, len(stranded))
            for job in stranded:
                await self._undelivered(job, runner.channel.name, CLOSED)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for channel in self.channels:
            await channel.close()
        self._idle.set()
        logger.info("dispatcher closed")

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (from 1)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff_s)
        ceiling = min(self.max_backoff_s, self.base_backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    # callbacks and bookkeeping, used by the runners

    async def _delivered(self, job: _Job, channel: str) -> None:
        if self._on_delivered is None:
            return
        result = self._on_delivered(job.delivery, channel, time.monotonic() - job.submitted)
        if inspect.isawaitable(result):
            await result

    async def _undelivered(self, job: _Job, channel: str, reason: str) -> None:
        await self._on_undelivered(job.delivery, channel, reason, job.attempts)

    def _record_later(self, jobs: list[tuple[_Job, str]], channel: str) -> None:
        """Record ``jobs`` undelivered from a task of its own (from sync code, without blocking the caller)."""
        if not jobs:
            return

        for job, _ in jobs:
            job.done = True

        async def record() -> None:
            for job, reason in jobs:
                await self._undelivered(job, channel, reason)

        task = asyncio.create_task(record(), name=f"undelivered:{channel}")
        self._background.add(task)
        self._idle.clear()
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("recording undelivered deliveries failed", exc_info=task.exception())
        self._wake()

    def _wake(self) -> None:
        if not self._background and all(r.pending == 0 for r in self._runners):
            self._idle.set()
