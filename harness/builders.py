"""Device records and readings for tests and benchmarks: one set of builders, so test data cannot drift from the
wire contracts in ``core.contracts``.

Devices: ``device_record`` is the JSON of ``PUT /api/devices/{id}`` (and one item of ``POST /api/devices/import``),
``device`` the same validated as a ``core.contracts.device.Device``. The defaults are what a whole-stack test
wants: a gas detector for ``emergency``, alone on a site of its own (``site-{id}``: no site correlation with any
other device), expecting a reading an hour (``interval_s`` 3600: no offline alert within a test), in Longgang.
Every field is a knob; ``extra`` adds or overrides any field of the record (``meta``, ...).

Readings: ``telemetry`` is the MQTT payload firmware publishes on ``devices/{id}/telemetry`` (``telemetry_item`` one
item as a dict, ``telemetry_batch`` an array of them); a field left out (``ts``, ``seq``) is left out of the JSON,
as a device without a clock or counter sends it, and the gateway fills it in. ``reading`` is a ``ReadingDict`` as the
gateway puts it on Kafka, for the consumers of the readings topic (rules, streams, storage). None of them validate:
a test of a refusal builds its wrong payload with these and changes it, or writes it out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.contracts import ReadingDict
from core.contracts.device import Device

SITE_NAME = "龙岗 test site"
LAT, LON = 22.72, 114.25  # Longgang district, Shenzhen
INTERVAL_S = 3600
DEPARTMENTS = ("emergency",)

Values = Mapping[str, float | bool]


def device_record(
    device_id: str,
    kind: str = "gas",
    *,
    site: str | None = None,
    site_name: str = SITE_NAME,
    lat: float = LAT,
    lon: float = LON,
    interval_s: int = INTERVAL_S,
    departments: Sequence[str] = DEPARTMENTS,
    thresholds: Mapping[str, Mapping[str, float]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A device record as the registry's API takes it. ``site`` defaults to ``site-{device_id}``; ``thresholds``
    (``{metric: {level: value}}``) is in the record only when given, as a client that sets none sends it."""
    record: dict[str, Any] = {
        "id": device_id,
        "kind": kind,
        "site_id": site or f"site-{device_id}",
        "site_name": site_name,
        "lat": lat,
        "lon": lon,
        "interval_s": interval_s,
        "departments": list(departments),
    }
    if thresholds is not None:
        record["thresholds"] = {metric: dict(levels) for metric, levels in thresholds.items()}
    return record | extra


def device(device_id: str, kind: str = "gas", **knobs: Any) -> Device:
    """``device_record`` validated as a ``Device`` (``pydantic.ValidationError`` if a knob breaks the contract)."""
    return Device.model_validate(device_record(device_id, kind, **knobs))


def telemetry_item(
    values: Values, *, ts: int | None = None, seq: int | None = None, drill: bool = False
) -> dict[str, Any]:
    """One telemetry item as firmware sends it: ``ts`` and ``seq`` only when given, ``drill`` only when true."""
    item: dict[str, Any] = {}
    if ts is not None:
        item["ts"] = ts
    if seq is not None:
        item["seq"] = seq
    item["values"] = dict(values)
    if drill:
        item["drill"] = True
    return item


def telemetry(values: Values, *, ts: int | None = None, seq: int | None = None, drill: bool = False) -> bytes:
    """The MQTT payload of one reading (UTF-8 JSON of ``telemetry_item``)."""
    return json.dumps(telemetry_item(values, ts=ts, seq=seq, drill=drill)).encode()


def telemetry_batch(items: Iterable[Mapping[str, Any]]) -> bytes:
    """The MQTT payload of a batch: a JSON array of items (``telemetry_item``), as a field concentrator sends it."""
    return json.dumps(list(items)).encode()


def reading(
    device_id: str,
    values: Values,
    *,
    ts: int,
    seq: int | None = None,
    drill: bool = False,
    received_at: int | None = None,
) -> ReadingDict:
    """An accepted reading as the gateway builds it; ``received_at`` defaults to ``ts`` (a device without a clock is
    stamped on arrival)."""
    return {
        "device_id": device_id,
        "ts": ts,
        "seq": seq,
        "values": dict(values),
        "drill": drill,
        "received_at": ts if received_at is None else received_at,
    }
