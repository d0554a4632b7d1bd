"""The readings query: one device's metric read back from InfluxDB with InfluxQL on ``/query``.

``ReadingsQuery(conn).readings(measurement, device_id, metric, start_ms, end_ms, every_s)`` answers, oldest first:

- ``every_s=None``: the raw points, ``[{"ts": ms, "value": v}]`` (a float, or a bool for ``smoke``/``flame``);
- ``every_s=N``: one point per N-second interval that has data, ``[{"ts": ms, "mean": .., "min": .., "max": ..}]``;
  ``ts`` is the interval's start, intervals are aligned to the epoch (as InfluxDB's ``GROUP BY time`` and the
  writer's hourly aggregates align them), empty intervals are left out. Boolean metrics (catalogued as such) have
  ``mean`` ``None``: ``min``/``max`` say whether the value was false/true at some time in the interval.

The range is ``[start_ms, end_ms)``. Drill (exercise) readings are kept apart: ``drill=False`` (the default)
reads real readings only, ``drill=True`` exercise readings only, so the two can never be mixed up in a chart.

Where the points come from (InfluxDB 1.x):

- raw points: retention policy ``raw`` (or ``influx_rp`` when set). Raw points older than ``raw_days`` are gone;
- aggregates newer than the raw retention: computed from ``raw`` (exact);
- aggregates older than that, when ``every_s`` is a multiple of an hour: from ``agg_1h`` (``storage.retention``),
  ``mean`` of the hourly means (exact when readings are evenly spaced, as devices report every ``interval_s``),
  ``min`` of the minima, ``max`` of the maxima. A range crossing the raw retention boundary is read from both, split
  at an interval boundary, in one request. Finer intervals older than the raw retention have no data: the
  aggregates keep an hour's resolution.

On InfluxDB 2.x/3.x (``influx_api="v2"``) the same InfluxQL goes to the v1-compatible ``/query`` with
``Authorization: Token``, ``db`` = the bucket (its default DBRP mapping), no retention policy in ``FROM``: raw and
aggregates are read from the bucket; aggregates are always computed from raw there.

Limits and errors: at most ``MAX_POINTS`` (10,000) points per answer; beyond that ``TooManyPoints`` (with a
suggested ``every``) rather than a truncated series. InfluxDB unreachable, 5xx, 429: ``InfluxUnavailable``; a query
InfluxDB refuses (its message kept), credentials, a missing database or retention policy: ``InfluxRefused``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, Final

import httpx

from core.contracts.catalogue import METRICS
from core.errors import SmartCityError
from core.influx.client import DEFAULT_RETRY_S, InfluxConnection, InfluxRefused, InfluxUnavailable, status_error
from storage.retention import AGG_EVERY_S, AGG_RP, RAW_DAYS, RAW_RP, ident

logger = logging.getLogger(__name__)

MAX_POINTS: Final = 10_000
DAY_MS: Final = 86_400_000

Point = dict[str, Any]


class TooManyPoints(SmartCityError):
    """The range holds more than ``MAX_POINTS`` points at the asked resolution; ``every_s`` is the smallest
    interval that fits (whole minutes from a minute on, whole hours from an hour on, so it can use the hourly
    aggregates)."""

    def __init__(self, message: str, *, every_s: int) -> None:
        super().__init__(message)
        self.every_s = every_s


def literal(value: str) -> str:
    """An InfluxQL string literal: single-quoted, ``\\`` and ``'`` escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def suggested_every_s(start_ms: int, end_ms: int, max_points: int = MAX_POINTS) -> int:
    """The smallest interval (seconds) that gives at most ``max_points`` points over the range; rounded up to whole
    minutes from 60 s on, and to whole hours (the aggregates' interval) from an hour on."""
    seconds = max(1, math.ceil((end_ms - start_ms) / max_points / 1000))
    while _intervals(start_ms, end_ms, seconds) > max_points:
        seconds += 1
    for unit in (AGG_EVERY_S, 60):
        if seconds >= unit:
            return math.ceil(seconds / unit) * unit
    return seconds


def _intervals(start_ms: int, end_ms: int, every_s: int) -> int:
    """How many epoch-aligned intervals of ``every_s`` the range [start_ms, end_ms) touches."""
    every_ms = every_s * 1000
    return (end_ms - 1) // every_ms - start_ms // every_ms + 1


def build_queries(
    *,
    measurement: str,
    device_id: str,
    metric: str,
    start_ms: int,
    end_ms: int,
    every_s: int | None,
    drill: bool = False,
    boolean: bool = False,
    raw_rp: str | None = RAW_RP,
    agg_rp: str | None = AGG_RP,
    raw_since_ms: int | None = None,
    limit: int = MAX_POINTS + 1,
) -> list[str]:
    """The InfluxQL statements for one readings request, oldest part first (pure; the unit tests' subject).

    ``raw_rp``/``agg_rp`` ``None`` mean the database's default (v2: the bucket) and no aggregates RP.
    ``raw_since_ms``: raw points are complete from there on (now - raw retention); aggregates of older intervals
    come from ``agg_rp`` when ``every_s`` is a multiple of ``AGG_EVERY_S``.
    """
    if end_ms <= start_ms:
        raise ValueError(f"empty range: start {start_ms} >= end {end_ms}")
    where = f"{ident('device_id')} = {literal(device_id)} AND {ident('drill')} = {literal(str(drill).lower())}"

    def source(rp: str | None) -> str:
        return f"{ident(rp)}.{ident(measurement)}" if rp else ident(measurement)

    def span(start: int, end: int) -> str:
        return f"{where} AND time >= {start}ms AND time < {end}ms"

    field = ident(metric)
    if every_s is None:
        # Aliased: a metric may well be called "time". Every name is ident()-quoted, every value literal()-quoted.
        select = f"SELECT {field} AS {ident('value')} FROM {source(raw_rp)}"  # noqa: S608
        return [f"{select} WHERE {span(start_ms, end_ms)} LIMIT {limit}"]
    if every_s < 1:
        raise ValueError(f"every_s must be at least 1, got {every_s}")

    def aggregate(rp: str | None, downsampled: bool, start: int, end: int) -> str:
        """From raw: f(metric); from the aggregates RP: f(f_metric), the CQ's field for that function."""
        functions = ("min", "max") if boolean else ("mean", "min", "max")
        calls = [f"{f}({ident(f'{f}_{metric}') if downsampled else field}) AS {ident(f)}" for f in functions]
        return (
            f"SELECT {', '.join(calls)} FROM {source(rp)} WHERE {span(start, end)} "  # noqa: S608
            f"GROUP BY time({every_s}s) fill(none)"
        )

    every_ms = every_s * 1000
    use_agg = agg_rp is not None and raw_since_ms is not None and every_s % AGG_EVERY_S == 0
    if not use_agg or raw_since_ms is None or start_ms >= raw_since_ms:
        return [aggregate(raw_rp, False, start_ms, end_ms)]
    split = -(-raw_since_ms // every_ms) * every_ms  # the first interval wholly inside the raw retention
    if split >= end_ms:
        return [aggregate(agg_rp, True, start_ms, end_ms)]
    return [aggregate(agg_rp, True, start_ms, split), aggregate(raw_rp, False, split, end_ms)]


def _value(value: Any) -> Any:
    """JSON numbers as floats (InfluxDB writes 3.0 as 3), booleans and nulls as they are."""
    if isinstance(value, bool) or value is None:
        return value
    return float(value)


class ReadingsQuery:
    """Reads readings back; see the module docstring. ``close`` when done (the HTTP client is made on first use)."""

    def __init__(
        self,
        conn: InfluxConnection,
        *,
        raw_days: int = RAW_DAYS,
        max_points: int = MAX_POINTS,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``raw_days``: how long ``raw`` keeps points (the writer's setting); ``transport``: httpx's, for tests."""
        self.conn = conn
        self.raw_days = raw_days
        self.max_points = max_points
        self._clock = clock
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> ReadingsQuery:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def readings(
        self,
        measurement: str,
        device_id: str,
        metric: str,
        start_ms: int,
        end_ms: int,
        every_s: int | None,
        *,
        drill: bool = False,
    ) -> list[Point]:
        """Raw points or per-interval aggregates of ``metric`` of ``device_id`` in [start_ms, end_ms), oldest
        first. ``TooManyPoints`` past ``max_points``; ``InfluxUnavailable``/``InfluxRefused`` from InfluxDB;
        ``ValueError`` for an empty range or ``every_s`` < 1."""
        if end_ms <= start_ms or (every_s is not None and every_s < 1):
            raise ValueError(f"need start_ms < end_ms and every_s >= 1: {start_ms}, {end_ms}, {every_s}")
        if every_s is not None and _intervals(start_ms, end_ms, every_s) > self.max_points:
            raise self._too_many(start_ms, end_ms, f"{_intervals(start_ms, end_ms, every_s)} intervals of {every_s}s")
        v1 = self.conn.influx_api == "v1"
        catalogued = METRICS.get(metric)
        statements = build_queries(
            measurement=measurement,
            device_id=device_id,
            metric=metric,
            start_ms=start_ms,
            end_ms=end_ms,
            every_s=every_s,
            drill=drill,
            boolean=catalogued is not None and catalogued.boolean,
            raw_rp=(self.conn.influx_rp or RAW_RP) if v1 else None,
            agg_rp=AGG_RP if v1 else None,
            raw_since_ms=int(self._clock() * 1000) - self.raw_days * DAY_MS,
            limit=self.max_points + 1,
        )
        points: list[Point] = []
        for rows in await self._query(statements):
            if every_s is None:
                points += [{"ts": row["time"], "value": _value(row["value"])} for row in rows]
            else:
                points += [
                    {
                        "ts": row["time"],
                        "mean": _value(row.get("mean")),
                        "min": _value(row["min"]),
                        "max": _value(row["max"]),
                    }
                    for row in rows
                ]
        if len(points) > self.max_points:
            raise self._too_many(start_ms, end_ms, f"more than {self.max_points} raw points")
        return points

    def _too_many(self, start_ms: int, end_ms: int, what: str) -> TooManyPoints:
        every = suggested_every_s(start_ms, end_ms, self.max_points)
        return TooManyPoints(
            f"{what} in the range: at most {self.max_points} points per request; ask with every >= {every}s, "
            "or a shorter range",
            every_s=every,
        )

    async def _query(self, statements: list[str]) -> list[list[dict[str, Any]]]:
        """The rows (column name to value, ``time`` in epoch ms) of each statement, sent together in one GET."""
        c = self.conn
        target = c.influx_target
        params = {
            "q": ";\n".join(statements),
            "epoch": "ms",
            "db": c.influx_db if c.influx_api == "v1" else c.influx_bucket,
        }
        try:
            response = await self._client().get("/query", params=params)
        except httpx.TransportError as exc:
            raise InfluxUnavailable(f"InfluxDB ({target}) unreachable: {exc!r}", retry_after=DEFAULT_RETRY_S) from exc
        body = _json(response)
        if not response.is_success:
            reason = str(body.get("error") or body.get("message") or response.text[:500]).strip()
            if 400 <= response.status_code < 500 and response.status_code not in (401, 403, 404, 429):
                raise InfluxRefused(
                    f"InfluxDB ({target}) refused the query ({response.status_code}: {reason})",
                    status=response.status_code,
                )
            raise status_error(response.status_code, reason, response.headers.get("Retry-After"), target)
        results = body.get("results")
        if not isinstance(results, list) or len(results) != len(statements):
            raise InfluxRefused(
                f"InfluxDB ({target}): unexpected answer: {response.text[:300]}", status=response.status_code
            )
        out: list[list[dict[str, Any]]] = []
        for result in results:
            if result.get("error"):
                raise InfluxRefused(f"InfluxDB ({target}) refused the query: {result['error']}", status=200)
            rows: list[dict[str, Any]] = []
            for series in result.get("series", []):  # one: without GROUP BY tags InfluxDB merges the series
                rows += [dict(zip(series["columns"], values, strict=True)) for values in series.get("values", [])]
            out.append(rows)
        return out

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            c = self.conn
            auth: httpx.Auth | None = None
            headers: dict[str, str] = {}
            if c.influx_api == "v1" and c.influx_username:
                password = c.influx_password.get_secret_value() if c.influx_password else ""
                auth = httpx.BasicAuth(c.influx_username, password)
            elif c.influx_api == "v2" and c.influx_token:
                headers["Authorization"] = f"Token {c.influx_token.get_secret_value()}"
            self._http = httpx.AsyncClient(
                base_url=c.influx_url, auth=auth, headers=headers, timeout=c.influx_timeout_s, transport=self._transport
            )
        return self._http


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        doc = response.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
