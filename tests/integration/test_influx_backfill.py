"""The writer's aggregates against a real influxd 1.6 (and Tansu for the writer itself).

The writer aggregates each interval in memory and writes it into ``agg_1h`` 30 s after it ends; readings written
after that (five intervals late, say) are in ``raw`` and the writer's backfill computes their intervals again from it.
A restarted writer recomputes from ``raw`` the intervals it had not written yet, for every device in parts. The
writer's intervals are hours; here they are minutes (``run_writer``'s ``agg_every_ms``), so that a test sees them
close. The expected aggregates are computed here from the readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from statistics import fmean
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.contracts.telemetry import ReadingBatch, ReadingDict
from core.influx.client import InfluxConnection, LineWriter
from core.kafka.admin import TopicSpec, devices_topic, ensure_topics
from core.process import free_port
from devices.feed import DevicePublisher
from harness.builders import device, reading
from harness.measure import sample_sum
from smartcity.stack.services import Launch
from storage.aggregate import Closed
from storage.backfill import Backfill, LateIntervals, devices_of, devices_statement
from storage.backfiller import WRITE_POINTS, Backfiller
from storage.lines import LineBuilder
from storage.main import run_writer
from storage.metrics import WriterMetrics
from storage.retention import AGG_RP, RAW_RP, ensure_retention, query_result, run_statement
from storage.settings import WriterSettings
from tests.influx_util import influx_rows
from tests.waiting import until

pytestmark = pytest.mark.integration

MIN = 60_000
BACKFILLED = "smartcity_writer_backfilled_intervals_total"
LATE = "smartcity_writer_late_device_intervals_total"
AGGREGATED = "smartcity_writer_aggregate_points_total"
DEVICES = {
    name: device(name, kind, site="S1", interval_s=10)
    for name, kind in (("gas-a", "gas"), ("gas-b", "gas"), ("fire-a", "fire"), ("gas-ok", "gas"), ("gas-c", "gas"))
}
METRICS = {"gas": ("ch4_lel",), "fire": ("temp_c", "smoke")}


def _late_readings(devices: list[str], base: int, minutes: int = 3) -> list[ReadingDict]:
    """Every 10 s for ``minutes`` from ``base``, values that differ by device and time (and health values)."""
    out = []
    for n, name in enumerate(devices):
        for i in range(minutes * 6):
            ts = base + i * 10_000 + n * 1_000
            if DEVICES[name].kind.value == "fire":
                values: dict[str, float | bool] = {"temp_c": 20.0 + i * 0.7 + (i % 4), "smoke": i % 5 == 2}
            else:
                values = {"ch4_lel": round(n * 10 + i * 1.25 + (i % 3) * 0.5, 3)}
            values["battery_pct"] = 90.0 - i
            out.append(reading(name, values, ts=ts, seq=i + 1))
    return out


def _expected(readings: list[ReadingDict]) -> dict[tuple[str, str, int], tuple[Any, Any, Any]]:
    """(device, metric, minute) -> (mean, min, max), mean None for booleans."""
    buckets: dict[tuple[str, str, int], list[Any]] = defaultdict(list)
    for r in readings:
        kind = DEVICES[r["device_id"]].kind.value
        for metric in METRICS[kind]:
            buckets[(r["device_id"], metric, r["ts"] // MIN * MIN)].append(r["values"][metric])
    return {
        key: (None if isinstance(v[0], bool) else pytest.approx(fmean(v)), min(v), max(v)) for key, v in buckets.items()
    }


async def _aggregated(url: str, db: str, start: int, end: int) -> dict[tuple[str, str, int], tuple[Any, Any, Any]]:
    got = {}
    for kind, metrics in METRICS.items():
        q = f'SELECT * FROM "{AGG_RP}"."{kind}" WHERE time >= {start}ms AND time < {end}ms'
        for row in await influx_rows(url, db, q):
            for metric in metrics:
                got[(row["device_id"], metric, row["time"])] = (
                    row.get(f"mean_{metric}"),
                    row[f"min_{metric}"],
                    row[f"max_{metric}"],
                )
    return got


def _late_base() -> int:
    """The start of the minute six minutes ago: readings from there on are four to six minutes late now."""
    return int(time.time() * 1000) // MIN * MIN - 6 * MIN


async def test_a_backfill_statement_aggregates_every_device_or_those_it_names(
    influx_service: Launch, unique: str
) -> None:
    conn = InfluxConnection(influx_url=influx_service.url, influx_api="v1", influx_db=f"b{unique}", influx_rp=RAW_RP)
    await ensure_retention(conn)
    base = _late_base()
    readings = _late_readings(["gas-a", "gas-b", "fire-a"], base)
    builder = LineBuilder(DEVICES.get)
    minutes = (base, base + MIN, base + 2 * MIN)
    async with LineWriter(conn) as influx:
        await influx.write([line for r in readings for line in builder.lines(r)])
        await run_statement(
            influx,
            Backfill(base, base + 3 * MIN, frozenset({"gas-a", "fire-a"}), minutes, MIN).statement(conn.influx_db),
        )
        filtered = await _aggregated(conn.influx_url, conn.influx_db, base, base + 3 * MIN)
        every = Backfill(base, base + 3 * MIN, None, minutes, MIN)
        listed = devices_of(await query_result(influx, devices_statement(conn.influx_db)))
        assert listed == {"gas-a", "gas-b", "fire-a"}
        for part in every.parts(listed, size=2):  # every device, in parts: as the writer runs it
            await run_statement(influx, part.statement(conn.influx_db))
        whole = await _aggregated(conn.influx_url, conn.influx_db, base, base + 3 * MIN)
        await run_statement(influx, every.statement(conn.influx_db))  # one statement over every device
        again = await _aggregated(conn.influx_url, conn.influx_db, base, base + 3 * MIN)

    expected = _expected(readings)
    assert filtered == {k: v for k, v in expected.items() if k[0] != "gas-b"}
    assert whole == expected
    assert again == whole  # idempotent, and the parts wrote what one statement writes
    health = await influx_rows(
        conn.influx_url, conn.influx_db, f'SELECT * FROM "{AGG_RP}"."device_health" WHERE "device_id" = \'gas-a\''
    )
    assert health, "device_health is aggregated too"
    assert all(row["site_id"] == "S1" and row["drill"] == "false" for row in health)


async def test_the_backfiller_aggregates_every_device_in_parts_and_writes_an_hours_points_in_chunks(
    influx_service: Launch, unique: str
) -> None:
    """The writer's side task itself: an every-device backfill is listed from raw's index and run in parts (here of
    two devices: three statements for five), and a closed interval's points go out in writes of ``WRITE_POINTS``."""
    conn = InfluxConnection(influx_url=influx_service.url, influx_api="v1", influx_db=f"p{unique}", influx_rp=RAW_RP)
    await ensure_retention(conn)
    base = _late_base()
    names = ["gas-a", "gas-b", "fire-a", "gas-ok", "gas-c"]
    readings = _late_readings(names, base, minutes=2)
    builder = LineBuilder(DEVICES.get)
    async with LineWriter(conn) as influx:
        await influx.write([line for r in readings for line in builder.lines(r)])
    metrics = WriterMetrics.create(CollectorRegistry())
    backfiller = Backfiller(conn, LateIntervals(every_ms=MIN), metrics, part_devices=2)
    await backfiller.start()
    try:
        # a closed interval's points, from memory: more than one write takes. One series of a device raw holds, at
        # 12,000 times: the devices are listed from every retention policy's index, agg_1h's too.
        later = base + 2 * MIN
        series = "gas,device_id=gas-a,drill=false,kind=gas,site_id=S9"
        lines = [f"{series} mean_ch4_lel=1.0 {later + i}" for i in range(12_000)]
        writes_before = await _write_requests(conn.influx_url)
        backfiller.closed(Closed(lines=lines, intervals=[later], backfill=[base, base + MIN]))

        async def done() -> bool:
            return await _aggregated(conn.influx_url, conn.influx_db, base, base + 2 * MIN) == _expected(readings)

        await until(done, 60, "every device's two minutes are aggregated")
        await until(lambda: _idle(backfiller), 30, "the backfiller is done")
    finally:
        await backfiller.close()
    assert metrics.backfilled_intervals._value.get() == 3 * 2  # three parts of two minutes each
    assert metrics.aggregate_points._value.get() == 12_000
    count = f'SELECT count("mean_ch4_lel") FROM "{AGG_RP}"."gas" WHERE "site_id" = \'S9\''
    rows = await influx_rows(conn.influx_url, conn.influx_db, count)
    assert rows[0]["count"] == 12_000 > WRITE_POINTS
    # influxd's own count of write requests: 5,000 + 5,000 + 2,000 (the parts are queries, not writes)
    assert await _write_requests(conn.influx_url) - writes_before == 3


async def _write_requests(url: str) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        stats = (await client.get(f"{url}/debug/vars")).json()
    return sum(int(v["values"]["writeReq"]) for v in stats.values() if isinstance(v, dict) and v.get("name") == "httpd")


class _FlakyInflux:
    """A reverse proxy to the real influxd that answers 503 once, to the second aggregating statement it sees: an
    InfluxDB that did not take one part of a backfill. Every statement and its answer is noted."""

    def __init__(self, target: str) -> None:
        self.target, self.port = target, free_port()
        self.seen: list[tuple[str, int]] = []  # (statement, status) of each SELECT ... INTO
        app = Starlette(routes=[Route("/{path:path}", self._forward, methods=["GET", "POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.client = httpx.AsyncClient(base_url=target, timeout=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _forward(self, request: Request) -> Response:
        body = await request.body()
        form = parse_qs(body.decode()) if request.method == "POST" else {}
        statement = request.query_params.get("q") or form.get("q", [""])[0]
        if " INTO " in statement and len(self.seen) == 1:
            self.seen.append((statement, 503))
            return Response("influxd is busy", status_code=503)
        answer = await self.client.request(
            request.method, request.url.path, params=request.query_params, content=body,
            headers={k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")},
        )  # fmt: skip
        if " INTO " in statement:
            self.seen.append((statement, answer.status_code))
        return Response(answer.content, status_code=answer.status_code, media_type=answer.headers.get("content-type"))

    async def __aenter__(self) -> _FlakyInflux:
        self.task = asyncio.create_task(self.server.serve())

        async def serves() -> bool:
            return self.server.started

        await until(serves, 10, "the proxy serves")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 10)
        await self.client.aclose()


async def test_a_part_influxdb_did_not_take_is_run_again_and_the_others_once(
    influx_service: Launch, unique: str
) -> None:
    """InfluxDB answers 503 to the second part of an every-device backfill: that part is run again, as it was, after
    a backoff; the first is not repeated, the third runs after it, and every device's minutes are aggregated."""
    direct = InfluxConnection(influx_url=influx_service.url, influx_api="v1", influx_db=f"r{unique}", influx_rp=RAW_RP)
    await ensure_retention(direct)
    base = _late_base()
    readings = _late_readings(list(DEVICES), base, minutes=2)
    builder = LineBuilder(DEVICES.get)
    async with LineWriter(direct) as influx:
        await influx.write([line for r in readings for line in builder.lines(r)])
    metrics = WriterMetrics.create(CollectorRegistry())
    async with _FlakyInflux(influx_service.url) as proxy:
        backfiller = Backfiller(
            direct.model_copy(update={"influx_url": proxy.url}), LateIntervals(every_ms=MIN), metrics, part_devices=2
        )
        await backfiller.start()
        try:
            backfiller.closed(Closed(lines=[], intervals=[], backfill=[base, base + MIN]))

            async def done() -> bool:
                return await _aggregated(direct.influx_url, direct.influx_db, base, base + 2 * MIN) == _expected(
                    readings
                )

            await until(done, 60, "every device's two minutes are aggregated")
            await until(lambda: _idle(backfiller), 30, "the backfiller is done")
        finally:
            await backfiller.close()
    statements = [s for s, _ in proxy.seen]
    assert [status for _, status in proxy.seen] == [200, 503, 200, 200]
    assert statements[2] == statements[1], "the part InfluxDB did not take is run again as it was"
    assert len(set(statements)) == 3, "no part runs twice once taken"
    assert metrics.backfilled_intervals._value.get() == 3 * 2


async def _idle(backfiller: Backfiller) -> bool:
    task = backfiller._task
    return task is not None and task.done()


def _settings(kafka_bootstrap: str, influx_url: str, unique: str) -> WriterSettings:
    return WriterSettings(
        kafka_bootstrap=kafka_bootstrap,
        influx_url=influx_url,
        influx_db=f"w{unique}",
        influx_rp=RAW_RP,
        topic_readings=f"readings.{unique}",
        topic_rejected=f"rejected.{unique}",
        topic_devices=f"devices.{unique}",
        writer_group=f"writer-{unique}",
        writer_http_port=free_port(),
        writer_batch_ms=300,
    )


@contextlib.asynccontextmanager
async def _writer(settings: WriterSettings) -> AsyncIterator[str]:
    """A writer in this event loop, with retention and the backfill; yields its /metrics URL once it serves."""
    await ensure_topics(
        settings.kafka_bootstrap,
        [TopicSpec(settings.topic_readings, 2), TopicSpec(settings.topic_rejected, 1), devices_topic(settings)],
    )
    feed = DevicePublisher(settings)
    await feed.start()
    try:
        await feed.publish(list(DEVICES.values()))
    finally:
        await feed.stop()
    stop = asyncio.Event()
    task = asyncio.create_task(run_writer(settings, stop, agg_every_ms=MIN))
    url = f"http://127.0.0.1:{settings.writer_http_port}/metrics"
    try:
        await until(lambda: _serves(url, task), 30, "the writer serves /metrics")
        yield url
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _serves(url: str, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(url)).status_code == 200
    return False


async def _metric(url: str, name: str) -> float:
    async with httpx.AsyncClient(timeout=5) as client:
        return sample_sum((await client.get(url)).text, name)


async def _produce(settings: WriterSettings, readings: list[ReadingDict]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for first in range(0, len(readings), 20):
            part = readings[first : first + 20]
            body = ReadingBatch.model_validate({"readings": part}).model_dump_json().encode()
            await producer.send_and_wait(settings.topic_readings, body, key=part[0]["device_id"].encode())
    finally:
        await producer.stop()


async def _stored(settings: WriterSettings, query: str, expected: int) -> bool:
    rows = await influx_rows(settings.influx_url, settings.influx_db, query)
    return bool(rows) and int(rows[0]["count"]) >= expected


async def test_the_writer_backfills_readings_written_late_and_not_on_time_ones(
    kafka_bootstrap: str, influx_service: Launch, unique: str
) -> None:
    settings = _settings(kafka_bootstrap, influx_service.url, unique)
    async with _writer(settings) as metrics:
        now = int(time.time() * 1000)
        on_time = [reading("gas-ok", {"ch4_lel": 1.0 + i}, ts=now - 3_000 + i * 500, seq=i + 1) for i in range(6)]
        await _produce(settings, on_time)
        count = 'SELECT count("ch4_lel") FROM "gas" WHERE "device_id" = \'gas-ok\''
        await until(lambda: _stored(settings, count, 6), 30, "the on-time readings are stored")
        await asyncio.sleep(1.0)  # they would have been noted late by now
        assert await _metric(metrics, LATE) == 0

        base = _late_base()
        late = _late_readings(["gas-a", "gas-b", "fire-a"], base)
        await _produce(settings, late)
        expected = _expected(late)

        async def aggregated() -> bool:
            got = await _aggregated(settings.influx_url, settings.influx_db, base, base + 3 * MIN)
            return got == expected

        await until(aggregated, 60, "the late readings are aggregated in agg_1h")
        assert await _metric(metrics, LATE) == 9  # three devices, three minutes
        assert await _metric(metrics, BACKFILLED) >= 3


async def test_the_writer_writes_each_minute_as_it_closes_and_recomputes_what_a_restart_left_open(
    kafka_bootstrap: str, influx_service: Launch, unique: str
) -> None:
    """The first writer holds the next minute's readings of gas-a (a device clock ahead) in memory when it stops.
    The second one reads back that they were written, so it recomputes that minute from raw, with the gas-a readings
    it writes itself; the minute after, gas-b's, it writes from memory as the minute closes (30 s after its end)."""
    settings = _settings(kafka_bootstrap, influx_service.url, unique)
    m1 = int(time.time() * 1000) // MIN * MIN + MIN
    m2 = m1 + MIN
    first = [reading("gas-a", {"ch4_lel": 10.0 + i}, ts=m1 + i * 4_000, seq=i + 1) for i in range(5)]
    count = 'SELECT count("ch4_lel") FROM "gas" WHERE "device_id" = \'gas-a\''
    async with _writer(settings):
        await _produce(settings, first)
        await until(lambda: _stored(settings, count, 5), 30, "the first writer stored gas-a's readings")
        await asyncio.sleep(1.5)  # and committed them
    second = [reading("gas-a", {"ch4_lel": 30.0 + i}, ts=m1 + 30_000 + i * 4_000, seq=10 + i) for i in range(5)]
    second += [reading("gas-b", {"ch4_lel": 50.0 - i * 2.5}, ts=m2 + i * 9_000, seq=i + 1) for i in range(6)]
    async with _writer(settings) as metrics:
        await _produce(settings, second)
        expected = _expected(first + second)

        async def aggregated() -> bool:
            return await _aggregated(settings.influx_url, settings.influx_db, m1, m2 + MIN) == expected

        await until(aggregated, 240, "both minutes are aggregated in agg_1h")
        assert await _metric(metrics, AGGREGATED) >= 1, "gas-b's minute came from the writer's memory"
        assert await _metric(metrics, LATE) == 0
