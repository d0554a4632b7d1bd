"""Retention, downsampling, the readings query and its API against a real InfluxDB 1.6, one database per test.

Readings are written the way the writer writes them (``LineBuilder`` lines, ``LineWriter`` with ``influx_rp="raw"``);
the expected raw points and aggregates are computed here from the same values.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator
from functools import partial
from statistics import fmean
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from alerts.api import officer_auth
from alerts.officers import Officers
from core.contracts.telemetry import ReadingDict
from core.influx.client import InfluxConnection, InfluxRefused, InfluxUnavailable, LineWriter
from core.process import free_port
from harness.builders import device, reading
from smartcity.stack.services import Launch
from storage.aggregate import Aggregates
from storage.api import readings_router
from storage.backfill import Backfill
from storage.lines import LineBuilder, series
from storage.query import DAY_MS, ReadingsQuery, TooManyPoints
from storage.retention import AGG_RP, CQ_NAME, RAW_RP, aggregation, ensure_retention, run_statement
from tests.influx_util import influx_rows

pytestmark = pytest.mark.integration

MIN = 60_000
HOUR = 60 * MIN
TOKEN = "readings-test-token"
ODD_ID = "it's \\odd\""  # not a valid device id, but tags and queries must survive it


DEVICES = {  # the odd id is not a valid one: its record is registered as "odd"
    name: device(name if "'" not in name else "odd", kind, site="S1", site_name="坪地 化工园", interval_s=10)
    for name, kind in (("gas-a", "gas"), ("gas-b", "gas"), ("fire-a", "fire"), (ODD_ID, "gas"))
}


def _now_minute() -> int:
    return int(time.time() * 1000) // MIN * MIN


@pytest.fixture
def conn(influx_service: Launch, unique: str) -> InfluxConnection:
    return InfluxConnection(influx_url=influx_service.url, influx_api="v1", influx_db=f"h{unique}", influx_rp=RAW_RP)


@pytest.fixture
async def query(conn: InfluxConnection) -> AsyncIterator[ReadingsQuery]:
    async with ReadingsQuery(conn) as found:
        yield found


def _readings(base: int) -> list[ReadingDict]:
    """Five minutes from ``base``: gas-a and gas-b every 10 s (different values), fire-a every 20 s, one drill
    reading of gas-a, and the odd device."""
    out: list[ReadingDict] = []
    for i in range(30):
        ts = base + i * 10_000
        out.append(reading("gas-a", {"ch4_lel": round(i * 1.25 + (i % 4) * 0.5, 3), "battery_pct": 90.0 - i}, ts=ts))
        out.append(reading("gas-b", {"ch4_lel": 100.0 + i}, ts=ts))
        if i % 2 == 0:
            out.append(reading("fire-a", {"smoke": i % 6 == 0, "temp_c": 20.0 + i / 2}, ts=ts))
    out.append(reading("gas-a", {"ch4_lel": 77.5}, ts=base + 15_000, drill=True))
    out.append(reading(ODD_ID, {"ch4_lel": 1.5}, ts=base + 5_000))
    return out


def _values(readings: list[ReadingDict], device_id: str, metric: str, drill: bool = False) -> list[tuple[int, Any]]:
    return sorted(
        (r["ts"], r["values"][metric])
        for r in readings
        if r["device_id"] == device_id and r["drill"] == drill and metric in r["values"]
    )


def _aggregates(points: list[tuple[int, Any]], every_s: int, start: int, end: int) -> list[dict[str, Any]]:
    buckets: dict[int, list[Any]] = defaultdict(list)
    for ts, value in points:
        if start <= ts < end:
            buckets[ts // (every_s * 1000) * every_s * 1000].append(value)
    return [
        {
            "ts": ts,
            "mean": None if isinstance(values[0], bool) else pytest.approx(fmean(values)),
            "min": min(values),
            "max": max(values),
        }
        for ts, values in sorted(buckets.items())
    ]


async def _write(conn: InfluxConnection, lines: list[str]) -> None:
    async with LineWriter(conn) as writer:
        await writer.write(lines)


@pytest.fixture
async def stored(conn: InfluxConnection) -> tuple[int, list[ReadingDict]]:
    """The database set up as the writer sets it up, and ``_readings`` written into ``raw``. Returns (base, them)."""
    await ensure_retention(conn)
    base = _now_minute() - 60 * MIN
    readings = _readings(base)
    builder = LineBuilder(DEVICES.get)
    await _write(conn, [line for r in readings for line in builder.lines(r)])
    return base, readings


async def test_retention_is_set_up_idempotently_and_follows_changes(
    conn: InfluxConnection, caplog: pytest.LogCaptureFixture
) -> None:
    db, url = conn.influx_db, conn.influx_url

    async def policies() -> dict[str, tuple[str, bool]]:
        rows = await influx_rows(url, db, f'SHOW RETENTION POLICIES ON "{db}"')
        return {r["name"]: (r["duration"], r["default"]) for r in rows}

    async def queries() -> list[str]:
        rows = await influx_rows(url, db, "SHOW CONTINUOUS QUERIES")
        return [r["name"] for r in rows if r["query"].startswith(f"CREATE CONTINUOUS QUERY {CQ_NAME} ON {db} ")]

    await ensure_retention(conn)
    await ensure_retention(conn)
    assert await policies() == {"autogen": ("0s", False), RAW_RP: ("2160h0m0s", True), AGG_RP: ("26280h0m0s", False)}
    assert await queries() == [], "the writer aggregates as it writes: no continuous query"

    await ensure_retention(conn, raw_days=30, agg_days=400)
    assert await policies() == {"autogen": ("0s", False), RAW_RP: ("720h0m0s", True), AGG_RP: ("9600h0m0s", False)}

    async with httpx.AsyncClient(base_url=url) as client:  # someone made autogen the default again
        await client.post("/query", params={"q": f'ALTER RETENTION POLICY "autogen" ON "{db}" DEFAULT'})
    await ensure_retention(conn)
    assert (await policies())[RAW_RP] == ("2160h0m0s", True)

    async with LineWriter(conn) as writer:  # an earlier version's continuous query, as it created it
        every_minute = aggregation(db, "1m")
        old = f'CREATE CONTINUOUS QUERY "{CQ_NAME}" ON "{db}" RESAMPLE EVERY 1m FOR 2m BEGIN {every_minute} END'
        await run_statement(writer, old)
    assert await queries() == [CQ_NAME]
    await ensure_retention(conn)
    assert await queries() == []

    async with LineWriter(conn) as writer:  # an earlier version's one-minute aggregates: kept, and named
        await run_statement(writer, f'CREATE RETENTION POLICY "agg_1m" ON "{db}" DURATION 1095d REPLICATION 1')
    with caplog.at_level("WARNING"):
        await ensure_retention(conn)
    assert (await policies())["agg_1m"] == ("26280h0m0s", False)
    assert f'DROP RETENTION POLICY "agg_1m" ON "{db}"' in caplog.text

    with pytest.raises(ValueError, match="raw_days"):
        await ensure_retention(conn, raw_days=0)


async def test_retention_on_v2_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    nowhere = InfluxConnection(influx_url=f"http://127.0.0.1:{free_port()}", influx_api="v2")
    with caplog.at_level("INFO"):
        await ensure_retention(nowhere)  # no request: nothing listens there
    assert "set up by the operator" in caplog.text


async def test_raw_points_of_one_device_within_the_window(
    query: ReadingsQuery, stored: tuple[int, list[ReadingDict]]
) -> None:
    base, readings = stored
    start, end = base + MIN, base + 3 * MIN
    got = await query.readings("gas", "gas-a", "ch4_lel", start, end, None)
    expected = [{"ts": ts, "value": v} for ts, v in _values(readings, "gas-a", "ch4_lel") if start <= ts < end]
    assert got == expected
    assert len(got) == 12
    assert all(isinstance(p["value"], float) for p in got)

    other = await query.readings("gas", "gas-b", "ch4_lel", start, end, None)
    assert [p["value"] for p in other] == [100.0 + i for i in range(6, 18)]

    drill = await query.readings("gas", "gas-a", "ch4_lel", base, end, None, drill=True)
    assert drill == [{"ts": base + 15_000, "value": 77.5}]

    health = await query.readings("device_health", "gas-a", "battery_pct", base, base + 30_000, None)
    assert health == [{"ts": base + i * 10_000, "value": 90.0 - i} for i in range(3)]

    odd = await query.readings("gas", ODD_ID, "ch4_lel", base, end, None)
    assert odd == [{"ts": base + 5_000, "value": 1.5}]


@pytest.mark.parametrize("every_s", [60, 120, 45])
async def test_aggregates_per_interval_equal_what_the_readings_give(
    query: ReadingsQuery, stored: tuple[int, list[ReadingDict]], every_s: int
) -> None:
    base, readings = stored
    start, end = base + 20_000, base + 5 * MIN
    got = await query.readings("gas", "gas-a", "ch4_lel", start, end, every_s)
    assert got == _aggregates(_values(readings, "gas-a", "ch4_lel"), every_s, start, end)
    assert got[0]["ts"] <= start < got[0]["ts"] + every_s * 1000  # epoch-aligned: the first interval starts earlier


async def test_boolean_metrics_raw_and_aggregated(query: ReadingsQuery, stored: tuple[int, list[ReadingDict]]) -> None:
    base, readings = stored
    end = base + 5 * MIN
    raw = await query.readings("fire", "fire-a", "smoke", base, end, None)
    assert raw == [{"ts": ts, "value": v} for ts, v in _values(readings, "fire-a", "smoke")]
    assert {type(p["value"]) for p in raw} == {bool}
    per_minute = await query.readings("fire", "fire-a", "smoke", base, end, 60)
    assert per_minute == _aggregates(_values(readings, "fire-a", "smoke"), 60, base, end)
    assert per_minute[0] == {"ts": base, "mean": None, "min": False, "max": True}


async def test_empty_ranges_and_unknown_names_give_no_points(
    query: ReadingsQuery, stored: tuple[int, list[ReadingDict]]
) -> None:
    base, _ = stored
    assert await query.readings("gas", "gas-a", "ch4_lel", base - 30 * MIN, base, None) == []
    assert await query.readings("gas", "gas-a", "ch4_lel", base - 30 * MIN, base, 60) == []
    assert await query.readings("gas", "nobody", "ch4_lel", base, base + 5 * MIN, None) == []
    assert await query.readings("gas", "gas-a", "co_ppm", base, base + 5 * MIN, 60) == []
    assert await query.readings("water", "gas-a", "ch4_lel", base, base + 5 * MIN, None) == []


async def test_too_many_points_is_refused_with_a_usable_every(
    conn: InfluxConnection, stored: tuple[int, list[ReadingDict]]
) -> None:
    base, _ = stored
    async with ReadingsQuery(conn, max_points=10) as small:
        with pytest.raises(TooManyPoints) as raw:
            await small.readings("gas", "gas-a", "ch4_lel", base, base + 5 * MIN, None)
        assert raw.value.every_s == 30
        assert len(await small.readings("gas", "gas-a", "ch4_lel", base, base + 5 * MIN, raw.value.every_s)) == 10
        with pytest.raises(TooManyPoints, match="every >= 30s"):
            await small.readings("gas", "gas-a", "ch4_lel", base, base + 5 * MIN, 20)


async def test_old_intervals_come_from_the_hourly_aggregates_split_at_the_raw_retention(conn: InfluxConnection) -> None:
    """Pretend raw is kept only until 2.5 hours past ``h0`` (the clock), and put recognisable hourly aggregates in
    ``agg_1h``: hourly intervals before the retention boundary come from them, later ones from raw; finer intervals
    and raw points never come from the aggregates."""
    await ensure_retention(conn)
    h0 = _now_minute() // (2 * HOUR) * (2 * HOUR) - 10 * HOUR  # aligned to two hours, as the 7200 s intervals
    readings = [reading("gas-a", {"ch4_lel": 5.0 + (i % 7) * 0.5}, ts=h0 + i * 10 * MIN) for i in range(30)]
    builder = LineBuilder(DEVICES.get)
    await _write(conn, [line for r in readings for line in builder.lines(r)])
    prefix = series("gas", "gas-a", DEVICES["gas-a"].site_id, "gas", False)
    fake = {h0 + h * HOUR: (1000.0 + h, 900.0 + h, 1100.0 + h) for h in range(5)}
    await _write(
        conn.model_copy(update={"influx_rp": AGG_RP}),
        [f"{prefix} mean_ch4_lel={a},min_ch4_lel={b},max_ch4_lel={c} {ts}" for ts, (a, b, c) in fake.items()],
    )
    raw_days = 1

    def clock() -> float:
        return (h0 + 150 * MIN + raw_days * DAY_MS) / 1000

    end = h0 + 5 * HOUR
    values = _values(readings, "gas-a", "ch4_lel")
    async with ReadingsQuery(conn, raw_days=raw_days, clock=clock) as query:
        hourly = await query.readings("gas", "gas-a", "ch4_lel", h0, end, 3600)
        from_raw = _aggregates(values, 3600, h0, end)
        assert hourly[:3] == [{"ts": ts, "mean": a, "min": b, "max": c} for ts, (a, b, c) in fake.items()][:3]
        assert hourly[3:] == from_raw[3:]  # split at h0 + 3 h, the first whole interval after the boundary

        two_hours = await query.readings("gas", "gas-a", "ch4_lel", h0, h0 + 2 * HOUR, 7200)
        assert two_hours == [
            {"ts": h0, "mean": pytest.approx(1000.5), "min": 900.0, "max": 1101.0}
        ]  # mean of the hourly means, min of the minima, max of the maxima
        # a finer interval, and raw points, are never taken from the aggregates
        assert await query.readings("gas", "gas-a", "ch4_lel", h0, end, 600) == _aggregates(values, 600, h0, end)
        assert len(await query.readings("gas", "gas-a", "ch4_lel", h0, end, None)) == 30


async def test_the_writers_aggregates_are_what_raw_gives_and_are_read_once_raw_is_gone(conn: InfluxConnection) -> None:
    """The hourly aggregates the writer computes as it writes (``storage.aggregate``), written into ``agg_1h``: read
    through ``ReadingsQuery`` once raw has aged out, they equal those computed from raw; a backfill statement over the
    same range (``storage.retention.aggregation``) writes the very same points (same fields, same types: InfluxDB
    would refuse a boolean where a float was)."""
    await ensure_retention(conn)
    start = _now_minute() // HOUR * HOUR - 4 * HOUR
    readings = [
        reading("fire-a", {"temp_c": 20.0 + i * 1.5 + (i % 3), "smoke": i in (2, 5), "battery_pct": 80.0 - i},
                ts=start + i * 9 * MIN)
        for i in range(20)
    ]  # fmt: skip
    builder = LineBuilder(DEVICES.get)
    hours = Aggregates()
    hours.assign(0, start)
    fold = partial(hours.fold, 0)
    await _write(conn, [line for r in readings for line in builder.lines(r, fold)])
    closed = hours.close(start + 10 * HOUR)
    assert closed.intervals == [start, start + HOUR, start + 2 * HOUR]
    await _write(conn.model_copy(update={"influx_rp": AGG_RP}), closed.lines)
    end = start + 3 * HOUR

    async def agg_rows() -> list[dict[str, Any]]:
        q = f'SELECT * FROM "{AGG_RP}"./^(fire|device_health)$/ WHERE time >= {start}ms AND time < {end}ms'
        return await influx_rows(conn.influx_url, conn.influx_db, q)

    written = await agg_rows()
    assert len(written) == 6  # three hours of fire and of device_health
    fire = [row for row in written if row.get("mean_temp_c") is not None]  # the other rows are device_health's
    assert all(row["device_id"] == "fire-a" and row["site_id"] == "S1" and row["drill"] == "false" for row in fire)
    assert all(row.get("mean_smoke") is None for row in fire)
    assert [row["max_smoke"] for row in fire] == [True, False, False]

    expected = _aggregates(_values(readings, "fire-a", "temp_c"), 3600, start, end)

    def two_days_later() -> float:  # with raw kept one day, the whole range is read from agg_1h
        return time.time() + 2 * DAY_MS / 1000

    async with ReadingsQuery(conn, raw_days=1, clock=two_days_later) as aged:
        assert await aged.readings("fire", "fire-a", "temp_c", start, end, 3600) == expected
        smoke = await aged.readings("fire", "fire-a", "smoke", start, end, 3600)
    assert smoke == _aggregates(_values(readings, "fire-a", "smoke"), 3600, start, end)

    async with LineWriter(conn) as writer:
        await run_statement(writer, Backfill(start, end, None, tuple(closed.intervals)).statement(conn.influx_db))
    again = await agg_rows()
    assert [
        {k: v if not isinstance(v, float) else pytest.approx(v) for k, v in row.items()} for row in again
    ] == written


# --- the HTTP API, on the real InfluxDB ---


def _app(query: ReadingsQuery) -> FastAPI:
    app = FastAPI()
    auth = officer_auth(Officers([], TOKEN))  # the administrator's token: an admin Officer
    app.include_router(readings_router(query, DEVICES.get, auth))
    return app


async def _get(
    app: FastAPI, path: str, *, token: str | None = TOKEN, from_: int | str | None = None, **params: Any
) -> httpx.Response:
    if from_ is not None:
        params["from"] = from_
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://smartcity") as client:
        return await client.get(path, params=params, headers=headers)


async def test_api_answers_raw_and_aggregated_series(
    query: ReadingsQuery, stored: tuple[int, list[ReadingDict]]
) -> None:
    base, readings = stored
    app = _app(query)
    raw = await _get(app, "/api/devices/gas-a/readings", metric="ch4_lel", from_=base, to=base + MIN)
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert {k: body[k] for k in ("device_id", "metric", "unit", "from", "to", "every_s", "drill")} == {
        "device_id": "gas-a", "metric": "ch4_lel", "unit": "%LEL", "from": base, "to": base + MIN, "every_s": None,
        "drill": False,
    }  # fmt: skip
    assert body["points"] == [{"ts": ts, "value": v} for ts, v in _values(readings, "gas-a", "ch4_lel")][:6]

    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base / 1000))
    agg = await _get(
        app, "/api/devices/gas-a/readings", metric="ch4_lel", every="1m", from_=f"{iso}Z", to=base + 5 * MIN
    )
    assert agg.status_code == 200, agg.text
    assert agg.json()["every_s"] == 60
    assert agg.json()["points"] == _aggregates(_values(readings, "gas-a", "ch4_lel"), 60, base, base + 5 * MIN)

    health = await _get(app, "/api/devices/gas-a/readings", metric="battery_pct", from_=base, to=base + 1)
    assert health.json()["unit"] == "%"
    assert health.json()["points"] == [{"ts": base, "value": 90.0}]

    drill = await _get(app, "/api/devices/gas-a/readings", metric="ch4_lel", drill="true", from_=base)
    assert drill.json()["points"] == [{"ts": base + 15_000, "value": 77.5}]

    latest = await _get(app, "/api/devices/gas-a/readings", metric="ch4_lel")  # the last hour: base is 60 min ago
    assert latest.status_code == 200
    assert latest.json()["to"] - latest.json()["from"] == 3_600_000


async def test_api_refusals(query: ReadingsQuery, stored: tuple[int, list[ReadingDict]]) -> None:
    base, _ = stored
    app = _app(query)
    path = "/api/devices/gas-a/readings"
    assert (await _get(app, path, token=None, metric="ch4_lel")).status_code == 401
    assert (await _get(app, "/api/devices/nobody/readings", metric="ch4_lel")).status_code == 404
    assert (await _get(app, path, metric="CH4")).status_code == 422
    assert (await _get(app, path)).status_code == 422
    assert (await _get(app, path, metric="ch4_lel", every="5 minutes")).status_code == 422
    assert (await _get(app, path, metric="ch4_lel", from_="yesterday")).status_code == 422
    same = await _get(app, path, metric="ch4_lel", from_=base, to=base)
    assert same.status_code == 400
    assert "before" in same.json()["detail"]
    many = await _get(app, path, metric="ch4_lel", every="1s", from_=base - 10 * DAY_MS, to=base)
    assert many.status_code == 400
    assert "every >=" in many.json()["detail"]


async def test_api_influxdb_down_is_503_and_refused_is_502(
    conn: InfluxConnection, stored: tuple[int, list[ReadingDict]]
) -> None:
    down = conn.model_copy(update={"influx_url": f"http://127.0.0.1:{free_port()}"})
    async with ReadingsQuery(down) as query:
        with pytest.raises(InfluxUnavailable):
            await query.readings("gas", "gas-a", "ch4_lel", 0, 1, None)
        response = await _get(_app(query), "/api/devices/gas-a/readings", metric="ch4_lel")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"

    missing = conn.model_copy(update={"influx_db": conn.influx_db + "_missing"})
    async with ReadingsQuery(missing) as query:
        with pytest.raises(InfluxRefused, match="database not found"):
            await query.readings("gas", "gas-a", "ch4_lel", 0, 1, None)
        response = await _get(_app(query), "/api/devices/gas-a/readings", metric="ch4_lel")
    assert response.status_code == 502
    assert "database not found" in response.json()["detail"]


async def test_v2_reads_the_bucket_through_v1_compatibility(
    conn: InfluxConnection, stored: tuple[int, list[ReadingDict]]
) -> None:
    """v2: ``db`` = the bucket, no retention policy in ``FROM`` (the default mapping; on this 1.6 server the default
    policy, ``raw``), ``Authorization: Token``. InfluxDB 1.6 without auth ignores the header; a recording transport
    shows it is sent."""
    base, readings = stored
    v2 = InfluxConnection(
        influx_api="v2", influx_url=conn.influx_url, influx_bucket=conn.influx_db, influx_token="s3cret"
    )
    async with ReadingsQuery(v2) as query:
        got = await query.readings("gas", "gas-a", "ch4_lel", base, base + 5 * MIN, 60)
    assert got == _aggregates(_values(readings, "gas-a", "ch4_lel"), 60, base, base + 5 * MIN)

    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"results": [{"statement_id": 0}]})

    async with ReadingsQuery(v2, transport=httpx.MockTransport(answer)) as query:
        assert await query.readings("gas", "gas-a", "ch4_lel", base, base + MIN, None) == []
    assert seen[0].headers["Authorization"] == "Token s3cret"
    assert seen[0].url.params["db"] == conn.influx_db
    assert seen[0].url.params["epoch"] == "ms"
    assert 'FROM "gas" WHERE' in seen[0].url.params["q"]

    v1 = conn.model_copy(update={"influx_username": "reader", "influx_password": SecretStr("pw")})
    async with ReadingsQuery(v1, transport=httpx.MockTransport(answer)) as query:
        await query.readings("gas", "gas-a", "ch4_lel", base, base + MIN, None)
    assert seen[1].headers["Authorization"] == httpx.BasicAuth("reader", "pw")._auth_header
    assert 'FROM "raw"."gas" WHERE' in seen[1].url.params["q"]
