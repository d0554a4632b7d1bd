"""Refusals: why the gateway did not accept (part of) a telemetry message.

A device reads ``Refusal`` on ``devices/{device_id}/errors``; operators find the same, plus the raw bytes, as a
``RefusedMessage`` on the Kafka topic of refused readings. One MQTT message gives at most one refusal message; it
lists every refused item of a batch by its index, and says how many items were accepted.
"""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.contracts.telemetry import SCHEMA_VERSION


class RefusalReason(StrEnum):
    """Every reason a message or an item can be refused for. Firmware can switch on these strings."""

    BAD_TOPIC = "bad_topic"  # the topic's device id does not match the contract's pattern
    TOO_LARGE = "too_large"  # payload over 64 KiB
    UNKNOWN_DEVICE = "unknown_device"  # the device id is not registered
    INVALID_JSON = "invalid_json"  # not UTF-8 JSON (or nested too deep)
    BAD_STRUCTURE = "bad_structure"  # JSON, but not an object or an array of objects
    EMPTY_BATCH = "empty_batch"  # an empty array
    TOO_MANY_READINGS = "too_many_readings"  # an array of more than 500 items
    NO_VALUES = "no_values"  # `values` missing, not an object, or empty
    BAD_METRIC_NAME = "bad_metric_name"  # a key of `values` is not a lower-case metric name
    BAD_VALUE_TYPE = "bad_value_type"  # a value is not a number or a boolean
    NON_FINITE = "non_finite"  # NaN or +-Infinity (or a number too large for a double)
    BAD_TIMESTAMP = "bad_timestamp"  # `ts` neither epoch ms nor RFC 3339 with a zone, or before 2000
    TS_IN_FUTURE = "ts_in_future"  # `ts` more than 5 minutes ahead of the gateway's clock
    BAD_SEQ = "bad_seq"  # `seq` not a non-negative integer
    BAD_DRILL = "bad_drill"  # `drill` not a boolean
    UNKNOWN_FIELD = "unknown_field"  # a field the contract does not have (a typo, usually)
    RATE_LIMITED = "rate_limited"  # the device sent more messages than its rate limit (gateway_device_rate)
    STORAGE_REFUSED = "storage_refused"  # accepted, but InfluxDB refused the point (a field's type changed)


class RefusalItem(BaseModel):
    """One refused item. ``index`` is its position in a batch array, ``None`` for the whole message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: RefusalReason
    detail: str
    index: int | None = None
    seq: int | None = None


class Refusal(BaseModel):
    """What the device reads on ``devices/{device_id}/errors``.

    ``reason`` repeats the first error's reason, for firmware that reads one field; ``accepted`` counts the items
    of the same message that were taken.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = SCHEMA_VERSION
    device_id: str
    topic: str
    received_at: int
    reason: RefusalReason
    accepted: int
    errors: list[RefusalItem] = Field(min_length=1)

    @model_validator(mode="after")
    def _reason_is_first_error(self) -> Refusal:
        if self.reason != self.errors[0].reason:
            raise ValueError("reason must be the first error's reason")
        return self

    @classmethod
    def of(cls, device_id: str, topic: str, received_at: int, accepted: int, errors: list[RefusalItem]) -> Refusal:
        return cls(
            device_id=device_id,
            topic=topic,
            received_at=received_at,
            reason=errors[0].reason,
            accepted=accepted,
            errors=errors,
        )


class RefusedMessage(BaseModel):
    """A record on the Kafka topic of refused readings: the refusal and the message's raw bytes (base64)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = SCHEMA_VERSION
    refusal: Refusal
    raw_b64: str

    @classmethod
    def of(cls, refusal: Refusal, raw: bytes) -> RefusedMessage:
        return cls(refusal=refusal, raw_b64=base64.b64encode(raw).decode("ascii"))

    @property
    def raw(self) -> bytes:
        return base64.b64decode(self.raw_b64)
