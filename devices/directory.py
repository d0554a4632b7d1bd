"""The read side of the device registry, as the ingest gateway sees it.

The gateway asks one question per message, so the interface is one method. ``devices.feed.KafkaDirectory`` answers
it from the registry's compacted Kafka topic (the default); ``OpenDirectory`` accepts every well-formed id
(benchmarks, deployments without a registry); tests also use ``StaticDirectory``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class DeviceDirectory(Protocol):
    """Answers whether a device id is registered. Must be cheap: it is called for every MQTT message."""

    def is_registered(self, device_id: str) -> bool: ...


class OpenDirectory:
    """Treats every well-formed device id as registered (the stack's mode until the registry exists)."""

    def is_registered(self, device_id: str) -> bool:
        return True


class StaticDirectory:
    """A fixed set of device ids, for tests and for small fixed deployments."""

    def __init__(self, device_ids: Iterable[str]) -> None:
        self._ids = frozenset(device_ids)

    def is_registered(self, device_id: str) -> bool:
        return device_id in self._ids
