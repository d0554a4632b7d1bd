"""The readings API: ``GET /api/devices/{device_id}/readings?metric=&from=&to=&every=&drill=``.

- ``metric``: required, a metric name (``[a-z][a-z0-9_]{0,63}``, 422 otherwise); any name a device reports works,
  catalogued ones also get their ``unit``.
- ``from``/``to``: epoch milliseconds or RFC 3339 with a zone (``2026-11-25T08:00:00+08:00``; URL-encode the ``+``,
  though a ``+`` decoded to a space is accepted); default the last hour; the range is [from, to). 422 if unreadable,
  400 if ``from >= to``.
- ``every``: absent for raw points; else ``90`` (seconds), ``90s``, ``5m``, ``1h``, ``1d`` for mean/min/max per
  interval (intervals aligned to the epoch; ``ts`` is an interval's start). 422 if unreadable.
- ``drill``: ``false`` (default) real readings only, ``true`` exercise readings only.

Answers ``{"device_id", "metric", "unit", "from", "to", "every_s", "drill", "points": [...]}`` (points as in
``storage.query``). Unknown device 404; more than 10,000 points 400 with the smallest ``every`` that
fits; InfluxDB down 503 with ``Retry-After``; InfluxDB refused the query 502 with its message.

Every officer may read every device's readings: devices are not scoped by department here (alerts are). The
measurement is the device's kind from the registry, ``device_health`` for ``battery_pct``/``rssi_dbm``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from core.contracts.catalogue import METRICS
from core.contracts.device import Device
from core.contracts.telemetry import METRIC_NAME_RE
from core.http.errors import retry_later, unprocessable
from core.influx.client import InfluxRefused, InfluxUnavailable
from storage.lines import HEALTH_MEASUREMENT, HEALTH_METRICS
from storage.query import ReadingsQuery, TooManyPoints

DEFAULT_SPAN_MS: Final = 3_600_000
MAX_EVERY_S: Final = 366 * 86_400
_EVERY_RE: Final = re.compile(r"^([1-9][0-9]{0,9})(s|m|h|d)?$")
_EVERY_UNIT_S: Final = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
_EPOCH_MS_RE: Final = re.compile(r"^-?[0-9]{1,16}$")
_SPACED_OFFSET_RE: Final = re.compile(r" ([0-9]{2}:?[0-9]{2})$")


def parse_every(text: str) -> int:
    """``60``, ``60s``, ``5m``, ``1h``, ``1d`` as seconds (1 s to 366 days); ``ValueError`` otherwise."""
    match = _EVERY_RE.match(text.strip())
    if match is None:
        raise ValueError(f"every {text!r}: expected seconds or a number with s, m, h or d (60, 90s, 5m, 1h, 1d)")
    seconds = int(match.group(1)) * _EVERY_UNIT_S[match.group(2)]
    if seconds > MAX_EVERY_S:
        raise ValueError(f"every {text!r}: at most 366 days")
    return seconds


def parse_time(text: str) -> int:
    """Epoch milliseconds, or RFC 3339 with a zone (``Z`` or an offset), as epoch milliseconds; ``ValueError``
    otherwise. A ``+`` of an offset that URL decoding turned into a space is taken as a ``+``."""
    text = text.strip()
    if _EPOCH_MS_RE.match(text):
        return int(text)
    text = _SPACED_OFFSET_RE.sub(r"+\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(f"time {text!r}: expected epoch milliseconds or RFC 3339 with a zone (2026-11-25T08:00:00Z)")
    return round(parsed.timestamp() * 1000)


def _parsed(name: str, text: str, parse: Callable[[str], int]) -> int:
    """A query parameter parsed, or 422 naming it (in FastAPI's own shape of validation errors)."""
    try:
        return parse(text)
    except ValueError as exc:
        raise unprocessable(("query", name), str(exc), text) from exc


class ReadingsOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    device_id: str
    metric: str
    unit: str | None = Field(description="from the metric catalogue; null for an uncatalogued metric")
    from_ms: int = Field(alias="from", description="epoch ms, inclusive")
    to_ms: int = Field(alias="to", description="epoch ms, exclusive")
    every_s: int | None = Field(description="null: raw points")
    drill: bool
    points: list[dict[str, Any]] = Field(
        description='raw: {"ts", "value"}; aggregated: {"ts", "mean", "min", "max"} per interval (mean null for '
        "boolean metrics)"
    )


def readings_router(
    query: ReadingsQuery,
    lookup: Callable[[str], Device | None],
    auth: Callable[..., Any],
    *,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    """``lookup`` gives a device's record (``Registry.get``); ``auth`` is the bearer-token dependency shared by
    every /api/ router (``alerts.api.officer_auth``)."""
    router = APIRouter(prefix="/api/devices", tags=["readings"], dependencies=[Depends(auth)])

    @router.get("/{device_id}/readings", response_model=ReadingsOut, response_model_by_alias=True)
    async def device_readings(
        device_id: str,
        metric: Annotated[str, Query(pattern=f"^{METRIC_NAME_RE.pattern}$", description="metric name")],
        from_: Annotated[str | None, Query(alias="from", description="epoch ms or RFC 3339")] = None,
        to: Annotated[str | None, Query(description="epoch ms or RFC 3339; default now")] = None,
        every: Annotated[str | None, Query(description="60, 60s, 5m, 1h, 1d; absent: raw points")] = None,
        drill: bool = False,
    ) -> ReadingsOut:
        device = lookup(device_id)
        if device is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
        end_ms = _parsed("to", to, parse_time) if to is not None else int(clock() * 1000)
        start_ms = _parsed("from", from_, parse_time) if from_ is not None else end_ms - DEFAULT_SPAN_MS
        every_s = _parsed("every", every, parse_every) if every is not None else None
        if start_ms >= end_ms:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"from ({start_ms}) must be before to ({end_ms})")
        measurement = HEALTH_MEASUREMENT if metric in HEALTH_METRICS else device.kind.value
        try:
            points = await query.readings(measurement, device_id, metric, start_ms, end_ms, every_s, drill=drill)
        except TooManyPoints as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
        except InfluxUnavailable as exc:
            raise retry_later("the readings store is unavailable", exc) from exc
        except InfluxRefused as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from exc
        catalogued = METRICS.get(metric)
        return ReadingsOut(
            device_id=device_id,
            metric=metric,
            unit=catalogued.unit if catalogued is not None else None,
            from_ms=start_ms,
            to_ms=end_ms,
            every_s=every_s,
            drill=drill,
            points=points,
        )

    return router
