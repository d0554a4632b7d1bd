"""Telemetry parsing: one MQTT message in, readings and refusals out. Pure: no I/O, never raises on input.

The fast path is one ``validate_json`` call in pydantic's Rust core for the whole message (one object or an
array), into plain dicts (``TelemetryItemDict``: the contract's types, without a model object per reading); only
when it fails do we look at the errors item by item to give each refused item its specific reason, and still accept
the good items of a batch. Post-validation checks that need the receive time (``ts`` in the future) or are cheaper
in Python (metric names, timestamp range) run per item. Readings come out as ``ReadingDict``, which serialises to
exactly the contract's ``Reading``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import pydantic_core
from pydantic import TypeAdapter, ValidationError

from core.contracts import (
    DEVICE_ID_RE,
    MAX_BATCH_ITEMS,
    MAX_FUTURE_MS,
    MAX_PAYLOAD_BYTES,
    METRIC_NAME_RE,
    MIN_TS_MS,
    ReadingDict,
    Refusal,
    RefusalItem,
    RefusalReason,
    TelemetryItemDict,
)
from devices.directory import DeviceDirectory

_ONE: Final = TypeAdapter(TelemetryItemDict)
_MANY: Final = TypeAdapter(list[TelemetryItemDict])

# Metric names already checked against METRIC_NAME_RE; bounded so hostile input cannot grow it without limit.
_GOOD_METRICS: set[str] = set()
_GOOD_METRICS_MAX: Final = 4096


@dataclass(slots=True)
class Parsed:
    """The outcome for one MQTT message: accepted readings, and a refusal if anything was refused."""

    device_id: str
    readings: list[ReadingDict] = field(default_factory=list)
    refusal: Refusal | None = None
    stamped: list[ReadingDict] = field(default_factory=list)  # readings sent without ``ts``: stamped on arrival


def device_id_of(topic: str) -> str:
    """The device id segment of ``devices/{device_id}/telemetry`` (whatever it is; not validated here)."""
    parts = topic.split("/")
    return parts[1] if len(parts) == 3 else topic


def parse_message(topic: str, payload: bytes, received_at: int, directory: DeviceDirectory) -> Parsed:
    """Turn one MQTT telemetry message into readings and at most one refusal.

    Every refused item gets a reason; the good items of a batch are accepted. Never raises on any ``payload``.
    """
    device_id = device_id_of(topic)
    parsed = Parsed(device_id)

    def refuse(reason: RefusalReason, detail: str) -> Parsed:
        parsed.refusal = Refusal.of(device_id, topic, received_at, 0, [RefusalItem(reason=reason, detail=detail)])
        return parsed

    if not topic.startswith("devices/") or not topic.endswith("/telemetry") or topic.count("/") != 2:
        return refuse(RefusalReason.BAD_TOPIC, f"topic must be devices/{{device_id}}/telemetry, got {topic!r}")
    if DEVICE_ID_RE.fullmatch(device_id) is None:
        return refuse(
            RefusalReason.BAD_TOPIC,
            f"device id {device_id[:80]!r} must match {DEVICE_ID_RE.pattern} (1-64 characters)",
        )
    if len(payload) > MAX_PAYLOAD_BYTES:
        return refuse(RefusalReason.TOO_LARGE, f"payload is {len(payload)} bytes; at most {MAX_PAYLOAD_BYTES}")
    if not directory.is_registered(device_id):
        return refuse(RefusalReason.UNKNOWN_DEVICE, f"device {device_id!r} is not registered")

    is_batch = payload.lstrip()[:1] == b"["
    errors: list[RefusalItem] = []
    try:
        items: Sequence[TelemetryItemDict | None] = (
            _MANY.validate_json(payload) if is_batch else [_ONE.validate_json(payload)]
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            return refuse(RefusalReason.INVALID_JSON, first["msg"])
        if first["type"] in ("model_type", "list_type") and first["loc"] in ((), ("__root__",)):
            return refuse(RefusalReason.BAD_STRUCTURE, "payload must be a JSON object or an array of objects")
        items, errors = _items_one_by_one(payload, is_batch, exc)

    if is_batch and not items:
        return refuse(RefusalReason.EMPTY_BATCH, "the array holds no readings")
    if len(items) > MAX_BATCH_ITEMS:
        return refuse(RefusalReason.TOO_MANY_READINGS, f"{len(items)} items; at most {MAX_BATCH_ITEMS}")

    latest = received_at + MAX_FUTURE_MS
    readings = parsed.readings
    # Items without ``ts`` take the receive time, a millisecond apart in their order and the last at the receive
    # time itself: InfluxDB keeps one point per series and timestamp, so equal times would collapse a batch.
    unstamped = sum(1 for item in items if item is not None and item.get("ts") is None)
    for index, item in enumerate(items):
        if item is None:
            continue
        ts = item.get("ts")
        if ts is None:
            unstamped -= 1
            ms = received_at - unstamped
        else:
            ms = ts if isinstance(ts, int) else _ms(ts)
        problem = _check(item["values"], ms, latest)
        if problem is not None:
            reason, detail = problem
            errors.append(
                RefusalItem(reason=reason, detail=detail, index=index if is_batch else None, seq=item.get("seq"))
            )
            continue
        reading: ReadingDict = {
            "device_id": device_id,
            "ts": ms,
            "seq": item.get("seq"),
            "values": item["values"],
            "drill": item.get("drill", False),
            "received_at": received_at,
        }
        readings.append(reading)
        if ts is None:
            parsed.stamped.append(reading)
    if errors:
        errors.sort(key=lambda e: -1 if e.index is None else e.index)
        parsed.refusal = Refusal.of(device_id, topic, received_at, len(readings), errors)
    return parsed


def _check(values: dict[str, float | bool], ms: int, latest: int) -> tuple[RefusalReason, str] | None:
    """Checks the schema cannot make alone: non-empty values, metric names, timestamp range."""
    if not values:
        return RefusalReason.NO_VALUES, "values must hold at least one metric"
    for name in values:
        if name not in _GOOD_METRICS:
            if METRIC_NAME_RE.fullmatch(name) is None:
                return (
                    RefusalReason.BAD_METRIC_NAME,
                    f"metric name {name[:80]!r} must match {METRIC_NAME_RE.pattern}",
                )
            if len(_GOOD_METRICS) < _GOOD_METRICS_MAX:
                _GOOD_METRICS.add(name)
    if ms < MIN_TS_MS:
        return (
            RefusalReason.BAD_TIMESTAMP,
            f"ts {ms} is before 2000-01-01: ts is in epoch milliseconds, not seconds",
        )
    if ms > latest:
        return (
            RefusalReason.TS_IN_FUTURE,
            f"ts is {(ms - latest + MAX_FUTURE_MS) / 1000:.1f} s ahead of the gateway",
        )
    return None


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _items_one_by_one(
    payload: bytes, is_batch: bool, exc: ValidationError
) -> tuple[list[TelemetryItemDict | None], list[RefusalItem]]:
    """The slow path: which items failed and why. Good items of a batch are validated again one by one."""
    by_index: dict[int | None, list[Any]] = {}
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if is_batch:
            if loc and isinstance(loc[0], int):
                by_index.setdefault(loc[0], []).append({**err, "loc": loc[1:]})
        else:
            by_index.setdefault(None, []).append(err)
    # Validation failed but JSON parsing did not, so this parses; the guard keeps the never-raises promise.
    try:
        parsed_json: Any = pydantic_core.from_json(payload, allow_inf_nan=True)
    except ValueError:
        parsed_json = None
    raw_items: list[Any] = parsed_json if isinstance(parsed_json, list) else [parsed_json]

    refused = [_classify(errs, index, _seq_of(raw_items, index)) for index, errs in by_index.items()]
    if not is_batch:
        return [None], refused
    items: list[TelemetryItemDict | None] = []
    for index, raw in enumerate(raw_items):
        if index in by_index:
            items.append(None)
        else:
            items.append(_ONE.validate_json(pydantic_core.to_json(raw)))
    return items, refused


def _seq_of(raw_items: list[Any], index: int | None) -> int | None:
    """The ``seq`` of a refused item, when it has a usable one, so firmware can tell which reading it was."""
    raw = raw_items[index or 0] if len(raw_items) > (index or 0) else None
    seq = raw.get("seq") if isinstance(raw, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else None


def _classify(errs: list[Any], index: int | None, seq: int | None) -> RefusalItem:
    """Map pydantic's errors for one item to the contract's most specific reason."""
    reason, detail = RefusalReason.BAD_STRUCTURE, "each reading must be a JSON object"
    best = 99
    for err in errs:
        loc, kind = err["loc"], err["type"]
        field_name = loc[0] if loc else None
        where = ".".join(str(p) for p in loc if p not in ("float", "bool", "int", "datetime"))
        if kind == "extra_forbidden":
            candidate = (1, RefusalReason.UNKNOWN_FIELD, f"unknown field {str(field_name)[:80]!r}")
        elif field_name == "values":
            if len(loc) == 1:
                candidate = (2, RefusalReason.NO_VALUES, "values must be an object of metric name to value")
            elif kind == "finite_number":
                candidate = (3, RefusalReason.NON_FINITE, f"{where[:120]}: NaN and Infinity are not readings")
            else:
                candidate = (4, RefusalReason.BAD_VALUE_TYPE, f"{where[:120]}: must be a number or a boolean")
        elif field_name == "ts":
            hint = (
                "an RFC 3339 timestamp needs a zone (Z or +08:00)"
                if kind == "timezone_aware"
                else ("must be epoch milliseconds (integer) or an RFC 3339 string with a zone")
            )
            candidate = (5, RefusalReason.BAD_TIMESTAMP, f"ts: {hint}")
        elif field_name == "seq":
            candidate = (6, RefusalReason.BAD_SEQ, "seq must be a non-negative integer")
        elif field_name == "drill":
            candidate = (7, RefusalReason.BAD_DRILL, "drill must be true or false")
        else:
            candidate = (8, RefusalReason.BAD_STRUCTURE, "each reading must be a JSON object")
        if candidate[0] < best:
            best, reason, detail = candidate
    return RefusalItem(reason=reason, detail=detail, index=index, seq=seq)
