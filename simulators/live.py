"""``smartcity simulate fleet``: a generated fleet registered and reporting healthy readings until stopped.

It is the background a console demo or a manual test wants: real devices with their own credentials, baselines
with noise and daily cycles, one reading per message or in batches. Its readings are flagged ``drill`` (simulated
data is exercise data, end to end) unless asked otherwise. On stop the fleet is removed from the registry, since
a registered device that falls silent is, rightly, reported offline; ``keep`` leaves it registered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx

from core.contracts.finding import Text
from simulators.field import FieldDevices, Target, register, unregister
from simulators.fleet import Fleet
from simulators.plan import Plan, batched, paced
from simulators.scenario import Scenario

logger = logging.getLogger(__name__)

FOREVER_S = 10 * 365 * 86_400.0


async def run_fleet(
    fleet: Fleet,
    target: Target,
    *,
    duration_s: float | None = None,
    batch: int = 1,
    drill: bool = True,
    keep: bool = False,
    progress: Callable[[float, int], None] | None = None,
) -> int:
    """Run until ``duration_s`` has passed (or forever, until cancelled); the messages sent."""
    quiet = Scenario(
        version=1,
        name="fleet",
        title=Text(zh="模拟设备群", en="simulated fleet"),
        duration_s=duration_s or FOREVER_S,
    )
    plan = Plan(quiet, fleet, int(time.time() * 1000), drill=drill)
    sent = 0
    async with target.http() as http:
        field = FieldDevices(target, await register(http, fleet))
        try:
            await field.connect()

            def show(at_s: float) -> None:
                if progress is not None:
                    progress(at_s, sent)

            async for message in paced(batched(plan.messages(), batch), time.monotonic(), waiting=show):
                field.send(message.device_id, message.payload)
                sent += 1
        finally:
            await field.close()
            if not keep:
                try:
                    await unregister(http, fleet)
                except httpx.HTTPError as exc:
                    logger.warning(
                        "could not remove the fleet from the registry (%s); its devices stay registered", exc
                    )
    return sent
