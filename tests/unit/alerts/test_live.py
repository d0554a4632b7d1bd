"""The live stream: officers get only their departments' alerts; a subscriber that falls behind is told to reload."""

from __future__ import annotations

import asyncio

from alerts.live import QUEUE_LIMIT, LiveHub
from alerts.officers import Officer
from core.contracts.catalogue import Department
from tests.unit.alerts.factories import alert


async def test_a_subscriber_too_slow_is_told_to_reload_and_let_go() -> None:
    hub = LiveHub()
    stream = hub.follow(Officer(name="o", departments=[Department.EMERGENCY]))
    first = asyncio.ensure_future(anext(stream))  # subscribed, waiting
    await asyncio.sleep(0)
    for seq in range(1, QUEUE_LIMIT + 3):
        hub.publish(alert(seq=seq))
    got = [await first]
    async for item in stream:
        got.append(item)
    assert got[-1] is None, "the last thing it hears is: reload"
    assert len(got) <= QUEUE_LIMIT + 1
    assert len(hub) == 0


async def test_other_departments_alerts_are_not_streamed() -> None:
    hub = LiveHub()
    stream = hub.follow(Officer(name="f", departments=[Department.FIRE]))
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    hub.publish(alert(departments=[Department.EMERGENCY]))
    hub.publish(alert(key="fire-1:fire.heat", departments=[Department.FIRE]))
    assert (await asyncio.wait_for(waiting, 1)).key == "fire-1:fire.heat"  # type: ignore[union-attr]
    await stream.aclose()
