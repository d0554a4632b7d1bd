"""In-order release of MQTT acknowledgements.

MQTT (3.1.1 §4.6, 5.0 §4.6) requires a client to send PUBACKs in the order the PUBLISH packets arrived. The gateway
finishes messages out of order (Kafka acknowledges flushes independently), so each message is registered when it
arrives and marked done when Kafka has every record it contributed to; ``release`` returns the packet ids at the
head of the line that are done.

After a reconnect the broker redelivers every message we had not acknowledged, so acknowledgements still pending
from the old connection are dropped, never sent: a packet id from the old connection may already name a different
message on the new one.
"""

from __future__ import annotations

from collections import deque


class AckTracker:
    """FIFO of [packet id, done] for QoS 1 messages awaiting their PUBACK."""

    def __init__(self) -> None:
        self._queue: deque[list[int]] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def arrived(self, mid: int) -> list[int]:
        """Register a message; the returned handle is passed to ``done``."""
        entry = [mid, 0]
        self._queue.append(entry)
        return entry

    @staticmethod
    def done(entry: list[int]) -> None:
        entry[1] = 1

    def release(self) -> list[int]:
        """Packet ids, in arrival order, that may be acknowledged now."""
        out: list[int] = []
        queue = self._queue
        while queue and queue[0][1]:
            out.append(queue.popleft()[0])
        return out

    def reconnected(self) -> None:
        """A new connection: forget every pending entry (the broker redelivers those messages)."""
        self._queue.clear()
