"""A scenario on its fleet, as the time-ordered messages the devices send, and its ground truth.

Every device reports every ``interval_s`` scenario seconds from its own phase (so a fleet does not publish in
lock-step); each report is its baseline reading with the hazards applied, carrying ``ts`` (event time: ``t0_ms``
plus the scenario second, plus any clock skew of a faulty device) and ``seq`` (the event time without skew in ms,
so it grows across runs too). Malformed messages and going offline (a disconnect with the will message) are
messages as well. The same scenario, seed and ``t0_ms`` give the same messages, byte for byte.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass

from core.contracts import TelemetryItem
from simulators.fleet import Fleet, SimDevice, generate_fleet
from simulators.hazards import Effect, Truth, resolve
from simulators.scenario import Scenario


@dataclass(frozen=True, slots=True)
class Message:
    at_s: float  # scenario second it is sent at
    device_id: str
    payload: bytes  # empty for ``offline``
    ts: int | None = None  # a reading's event time (None: malformed or offline)
    values: dict[str, float | bool] | None = None
    offline: bool = False


def scenario_fleet(scenario: Scenario, prefix: str = "sim") -> Fleet:
    spec = scenario.fleet
    seed = scenario.seed if spec.seed is None else spec.seed
    return generate_fleet(spec.devices, seed, interval_s=spec.interval_s, prefix=prefix)


class Plan:
    """``scenario`` placed on ``fleet`` with event times from ``t0_ms``; ``messages()`` can be iterated again."""

    def __init__(self, scenario: Scenario, fleet: Fleet, t0_ms: int, *, drill: bool = True) -> None:
        self.scenario, self.fleet, self.t0_ms, self.drill = scenario, fleet, t0_ms, drill
        self.truths: tuple[Truth, ...] = tuple(e.truth for e in self._effects())

    def _effects(self) -> list[Effect]:
        """Fresh effects (some keep state while the messages are produced, e.g. a stuck sensor's values)."""
        return [resolve(h, self.fleet, self.scenario.label(i)) for i, h in enumerate(self.scenario.hazards)]

    def messages(self, until_s: float | None = None) -> Iterator[Message]:
        effects = self._effects()
        end = self.scenario.duration_s if until_s is None else until_s
        streams = (self._device(d, effects, end) for d in self.fleet.devices)
        return heapq.merge(*streams, key=lambda m: m.at_s)

    def _device(self, device: SimDevice, effects: list[Effect], end: float) -> Iterator[Message]:
        interval = device.record.interval_s
        s = random.Random(f"{self.fleet.seed}:{device.id}:phase").uniform(0, interval)
        last = s - interval
        noise = device.baseline.new_noise()
        while s < end:
            for effect in effects:
                for raw in effect.malformed(device.id, s, last):
                    yield Message(s, device.id, raw)
            if any(e.silent(device.id, s) for e in effects):
                yield Message(s, device.id, b"", offline=True)
                return
            seq = self.t0_ms + int(s * 1000)
            values = device.baseline.values(s, seq, noise)
            for effect in effects:
                effect.apply(device, s, values)
            ts = seq + sum(e.skew_ms(device.id, s) for e in effects)
            item = TelemetryItem.model_construct(ts=ts, seq=seq, values=values, drill=self.drill)
            yield Message(s, device.id, item.model_dump_json().encode(), ts, values)
            last, s = s, s + interval


def batched(messages: Iterator[Message], size: int) -> Iterator[Message]:
    """Readings buffered per device and sent ``size`` at a time as one array, as a field concentrator or a device
    that reports in bursts does; a batch goes out with its last reading. Malformed messages and going offline pass
    through at once (a device going offline first sends what it holds)."""
    if size <= 1:
        yield from messages
        return
    held: dict[str, list[Message]] = {}
    for m in messages:
        if m.values is None:
            if m.offline and held.get(m.device_id):
                yield _batch(held.pop(m.device_id), m.at_s)
            yield m
            continue
        pending = held.setdefault(m.device_id, [])
        pending.append(m)
        if len(pending) >= size:
            yield _batch(held.pop(m.device_id), m.at_s)
    for pending in held.values():  # the end of the run: what each device still holds goes out now
        yield _batch(pending, pending[-1].at_s)


def _batch(items: list[Message], at_s: float) -> Message:
    body = b"[" + b",".join(m.payload for m in items) + b"]"
    return Message(at_s, items[0].device_id, body, items[-1].ts, items[-1].values)


async def paced(
    messages: Iterable[Message], start: float, speed: float = 1.0, waiting: Callable[[float], None] | None = None
) -> AsyncIterator[Message]:
    """Each message when its time comes: scenario second ``at_s`` at ``start`` (monotonic) + ``at_s / speed``.
    ``waiting(at_s)`` is called before each wait (a progress bar)."""
    for message in messages:
        delay = start + message.at_s / speed - time.monotonic()
        if delay > 0:
            if waiting is not None:
                waiting(message.at_s)
            await asyncio.sleep(delay)
        yield message
