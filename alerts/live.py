"""The console's live stream: every alert and incident change pushed to the officers who may see it (server-sent
events).

Each subscriber has a bounded queue; a subscriber too slow to keep up loses its queue and is told to reload
(an ``overflow`` event) rather than slowing the alerts service or other consoles.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from alerts.officers import Officer
from core.contracts.alert import Alert
from core.contracts.incident import Incident

QUEUE_LIMIT = 1000


@dataclass(eq=False)
class _Subscriber:
    officer: Officer
    queue: asyncio.Queue[Alert | Incident | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))


class LiveHub:
    def __init__(self) -> None:
        self._subscribers: set[_Subscriber] = set()

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, alert: Alert | Incident) -> None:
        for sub in list(self._subscribers):
            if not sub.officer.sees(alert.departments):
                continue
            try:
                sub.queue.put_nowait(alert)
            except asyncio.QueueFull:
                sub.queue = asyncio.Queue(1)
                sub.queue.put_nowait(None)  # overflow: the console reloads the list

    async def follow(self, officer: Officer) -> AsyncIterator[Alert | Incident | None]:
        """Alerts and incidents as they change (None: the subscriber fell behind and should reload)."""
        sub = _Subscriber(officer)
        self._subscribers.add(sub)
        try:
            while True:
                item = await sub.queue.get()
                yield item
                if item is None:
                    return
        finally:
            self._subscribers.discard(sub)
