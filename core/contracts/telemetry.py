"""Telemetry: what firmware publishes over MQTT, and the readings the gateway puts on Kafka.

Inbound (``devices/{device_id}/telemetry``, UTF-8 JSON, at most 64 KiB): one ``TelemetryItem`` object or an array
of up to 500. The model is strict on purpose: ``"12.5"`` is not a number, ``1`` is not ``true``, unknown fields are
refused, so that a firmware bug shows up as a refusal with a reason instead of quietly wrong data.

Outbound (Kafka readings topic): ``ReadingBatch`` records. The gateway groups the readings of one flush by the
partition their device id hashes to (Kafka's murmur2, as the Java client and aiokafka compute it) and writes one
record per group, keyed by one of the group's device ids, so a record lands on the partition of every device in it.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Final, Literal, NotRequired

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, with_config
from typing_extensions import TypedDict

SCHEMA_VERSION: Final = 1

DEVICE_ID_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
DEVICE_ID_RE: Final = re.compile(DEVICE_ID_PATTERN)
#: Metric names become InfluxDB field names and rule keys: lower snake case, at most 64 characters.
METRIC_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")

MAX_PAYLOAD_BYTES: Final = 64 * 1024
MAX_BATCH_ITEMS: Final = 500
#: Readings stamped further ahead than this (device clock skew) are refused.
MAX_FUTURE_MS: Final = 5 * 60 * 1000
#: Epoch milliseconds before 2000-01-01 are refused: they are almost always epoch seconds sent by mistake.
MIN_TS_MS: Final = 946_684_800_000

TELEMETRY_TOPIC: Final = "devices/{device_id}/telemetry"
ERRORS_TOPIC: Final = "devices/{device_id}/errors"
STATUS_TOPIC: Final = "devices/{device_id}/status"

MetricValue = StrictFloat | StrictBool
Timestamp = StrictInt | AwareDatetime
Seq = Annotated[StrictInt, Field(ge=0)]
_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


class TelemetryItem(BaseModel):
    """One reading as firmware sends it. ``ts`` absent means the gateway's receive time."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    ts: Timestamp | None = None
    seq: Seq | None = None
    values: dict[str, MetricValue]
    drill: StrictBool = False


@with_config(_STRICT)
class TelemetryItemDict(TypedDict):
    """``TelemetryItem`` as a TypedDict, built from the same field types: the gateway validates into plain dicts
    because creating a model per reading costs more than validating it. Tests hold the two to the same verdicts."""

    ts: NotRequired[Timestamp | None]
    seq: NotRequired[Seq | None]
    values: dict[str, MetricValue]
    drill: NotRequired[StrictBool]


class ReadingDict(TypedDict):
    """``Reading`` as the gateway builds it (a plain dict, serialised without a model)."""

    device_id: str
    ts: int
    seq: int | None
    values: dict[str, float | bool]
    drill: bool
    received_at: int


class Reading(BaseModel):
    """One accepted reading, normalised: event time in epoch ms, the device it came from, when it arrived."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device_id: str
    ts: int
    seq: int | None = None
    values: dict[str, float | bool]
    drill: bool = False
    received_at: int


class ReadingBatch(BaseModel):
    """The value of one Kafka record on the readings topic: readings of devices that share a partition."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = SCHEMA_VERSION
    readings: list[Reading]


def decode_batch(raw: bytes) -> list[ReadingDict]:
    """A readings record (``ReadingBatch`` JSON, written by our gateway) as plain dicts: fast, for the consumers
    of the readings topic. Trusted but checked for its version; ``ValueError`` if it is not a v1 batch."""
    body = json.loads(raw)
    if not isinstance(body, dict) or body.get("v") != 1 or not isinstance(body.get("readings"), list):
        raise ValueError("not a v1 reading batch")
    readings: list[ReadingDict] = body["readings"]
    return readings
