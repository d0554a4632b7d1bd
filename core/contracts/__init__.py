"""The wire contracts, in one place: every producer and consumer (simulators included) imports them from here.

Changing a field needs a bump of ``SCHEMA_VERSION`` and a migration note in docs/contracts.md.
"""

from __future__ import annotations

from core.contracts.refusal import Refusal, RefusalItem, RefusalReason, RefusedMessage
from core.contracts.telemetry import (
    DEVICE_ID_RE,
    ERRORS_TOPIC,
    MAX_BATCH_ITEMS,
    MAX_FUTURE_MS,
    MAX_PAYLOAD_BYTES,
    METRIC_NAME_RE,
    MIN_TS_MS,
    SCHEMA_VERSION,
    STATUS_TOPIC,
    TELEMETRY_TOPIC,
    Reading,
    ReadingBatch,
    ReadingDict,
    TelemetryItem,
    TelemetryItemDict,
)

__all__ = [
    "DEVICE_ID_RE",
    "ERRORS_TOPIC",
    "MAX_BATCH_ITEMS",
    "MAX_FUTURE_MS",
    "MAX_PAYLOAD_BYTES",
    "METRIC_NAME_RE",
    "MIN_TS_MS",
    "SCHEMA_VERSION",
    "STATUS_TOPIC",
    "TELEMETRY_TOPIC",
    "Reading",
    "ReadingBatch",
    "ReadingDict",
    "Refusal",
    "RefusalItem",
    "RefusalReason",
    "RefusedMessage",
    "TelemetryItem",
    "TelemetryItemDict",
]
