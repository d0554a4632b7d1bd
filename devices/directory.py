"""The read side of the device registry, as the ingest gateway sees it.

The gateway asks one question per message, so the interface is one method. ``devices.feed.KafkaDirectory`` answers
it from the registry's compacted Kafka topic (the default); ``OpenDirectory`` accepts every well-formed id
(benchmarks, deployments without a registry); tests also use ``StaticDirectory``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class DeviceDirectory(Protocol):
    """Answers whether a device id is registered. ``is_registered`` must be cheap: it is called for every MQTT
    message. ``catch_up`` is called before a device is refused as unknown: it returns once every registration that
    had answered before the call is known here (``False`` if that could not be confirmed in time)."""

    def is_registered(self, device_id: str) -> bool: ...

    async def catch_up(self, timeout_s: float = 10.0) -> bool: ...


class OpenDirectory:
    """Treats every well-formed device id as registered (the stack's mode until the registry exists)."""

    def is_registered(self, device_id: str) -> bool:
        return True

    async def catch_up(self, timeout_s: float = 10.0) -> bool:
        return True


class StaticDirectory:
    """A fixed set of device ids, for tests and for small fixed deployments."""

    def __init__(self, device_ids: Iterable[str]) -> None:
        self._ids = frozenset(device_ids)

    def is_registered(self, device_id: str) -> bool:
        return device_id in self._ids

    async def catch_up(self, timeout_s: float = 10.0) -> bool:
        return True
