"""Per-device rate limit: a chatty or misbehaving device cannot starve the others. Pure: no I/O, the clock is given.

A token bucket per device id: ``rate`` messages a second on average, bursts of up to ``burst`` (a device that was
offline sends what it buffered, best as batches of up to 500 readings a message). A message over the limit is
refused before it is parsed, with reason ``rate_limited``; like every refusal it is kept, raw, on the refused topic.
The table is bounded: past ``max_devices`` it is cleared (a flood of made-up device ids cannot grow it), which at
worst gives every device a fresh burst.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    told_at: float = float("-inf")  # when the device was last told it is limited


class DeviceRateLimit:
    def __init__(self, rate: float, burst: float, *, max_devices: int = 500_000, notify_every_s: float = 1.0) -> None:
        self.rate = rate
        self.burst = burst
        self.max_devices = max_devices
        self.notify_every_s = notify_every_s
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, device_id: str, now: float) -> bool:
        """Take one token for a message of ``device_id`` at ``now`` (seconds, monotonic)."""
        bucket = self._buckets.get(device_id)
        if bucket is None:
            if len(self._buckets) >= self.max_devices:
                self._buckets.clear()
            bucket = self._buckets[device_id] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens >= 1 - 1e-9:  # a device sending at exactly its rate must not lose to rounding
            bucket.tokens -= 1
            return True
        return False

    def tell(self, device_id: str, now: float) -> bool:
        """Whether to publish this refusal to the device: at most once per ``notify_every_s``, so that answering a
        flood does not become a flood (every refused message is still kept on the refused topic)."""
        bucket = self._buckets.get(device_id)
        if bucket is None or now - bucket.told_at < self.notify_every_s:
            return False
        bucket.told_at = now
        return True

    def __len__(self) -> int:
        return len(self._buckets)
