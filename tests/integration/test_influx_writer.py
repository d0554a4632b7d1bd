"""The InfluxDB line writer (``core.influx.client``) against real servers: InfluxDB 1.6 (v1 API) and
VictoriaMetrics (v2 write API). The sink on top of it: tests/unit/core/test_influx_sink.py; the alert archive:
test_alert_archive.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from core.influx.client import InfluxConnection, InfluxRefused, InfluxUnavailable, LineWriter, point_line
from core.process import free_port
from smartcity.stack.services import Launch
from tests.influx_util import influx_rows

pytestmark = pytest.mark.integration

T0 = 1_763_900_000_000
SITE = "坪地 化工园,A=1"


def _v1(url: str, db: str, **changes: Any) -> InfluxConnection:
    return InfluxConnection(influx_url=url, influx_api="v1", influx_db=db, **changes)


async def test_v1_writes_and_reads_back(influx_service: Launch, unique: str) -> None:
    db = f"t{unique}"
    lines = [
        point_line("probe", {"site": SITE, "device_id": "gas-1"}, {"v": 12.5, "n": 3, "ok": True, "s": 'a "b"\nc'}, T0),
        point_line("probe", {"site": SITE, "device_id": "gas-1"}, {"v": 13.0, "n": 4, "ok": False, "s": ""}, T0 + 1),
        point_line(
            "probe", {"site": SITE, "device_id": "gas 2"}, {"v": -1.25, "n": 5, "ok": True, "s": "龙岗"}, T0 + 1
        ),
    ]
    async with LineWriter(_v1(influx_service.url, db, influx_batch_lines=2)) as writer:
        await writer.ensure_database()
        await writer.ensure_database()  # idempotent
        await writer.write(lines)
    rows = await influx_rows(influx_service.url, db, "SELECT * FROM probe")
    assert sorted((r["time"], r["device_id"], r["site"], r["v"], r["n"], r["ok"], r["s"]) for r in rows) == [
        (T0, "gas-1", SITE, 12.5, 3, True, 'a "b"\\nc'),
        (T0 + 1, "gas 2", SITE, -1.25, 5, True, "龙岗"),
        (T0 + 1, "gas-1", SITE, 13.0, 4, False, ""),
    ]
    fields = await influx_rows(influx_service.url, db, "SHOW FIELD KEYS FROM probe")
    assert {r["fieldKey"]: r["fieldType"] for r in fields} == {
        "v": "float", "n": "integer", "ok": "boolean", "s": "string",
    }  # fmt: skip


async def test_v1_field_type_conflict_is_refused_with_influxdb_message(influx_service: Launch, unique: str) -> None:
    async with LineWriter(_v1(influx_service.url, f"t{unique}")) as writer:
        await writer.ensure_database()
        await writer.write([point_line("probe", {}, {"v": 1.5}, T0)])
        with pytest.raises(InfluxRefused, match="field type conflict") as refused:
            await writer.write([point_line("probe", {}, {"v": "text"}, T0 + 1)])
    assert refused.value.status == 400


async def test_v1_missing_database_is_refused(influx_service: Launch, unique: str) -> None:
    async with LineWriter(_v1(influx_service.url, f"missing{unique}")) as writer:
        with pytest.raises(InfluxRefused, match="database not found") as refused:
            await writer.write([point_line("probe", {}, {"v": 1.5}, T0)])
    assert refused.value.status == 404


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_closed_port_is_unavailable(api: str) -> None:
    conn = InfluxConnection(influx_url=f"http://127.0.0.1:{free_port()}", influx_api=api, influx_timeout_s=2)
    async with LineWriter(conn) as writer:
        with pytest.raises(InfluxUnavailable, match="unreachable") as unavailable:
            await writer.write([point_line("probe", {}, {"v": 1.5}, T0)])
        if api == "v1":
            with pytest.raises(InfluxUnavailable):
                await writer.ensure_database()
    assert unavailable.value.retry_after > 0


async def test_v2_api_against_influxdb_1_is_refused(influx_service: Launch) -> None:
    """The v2 path's HTTP errors map like the v1 path's: InfluxDB 1.6 has no /api/v2/write (404)."""
    conn = InfluxConnection(influx_url=influx_service.url, influx_api="v2", influx_token="t")
    async with LineWriter(conn) as writer:
        with pytest.raises(InfluxRefused, match="404") as refused:
            await writer.write([point_line("probe", {}, {"v": 1.5}, T0)])
    assert refused.value.status == 404


async def test_v2_writes_to_victoria_metrics(victoria_service: Launch, unique: str) -> None:
    """VictoriaMetrics stores each numeric field as the metric ``{measurement}_{field}``, tags as labels; booleans
    become 1/0 and string fields are not kept (they read back as 0)."""
    measurement = f"probe{unique}"
    tags = {"site": SITE, "device_id": "gas-1"}
    fields: list[dict[str, float | int | bool | str]] = [
        {"v": 12.5 + i, "n": i, "ok": i % 2 == 0, "s": "x"} for i in range(5)
    ]
    lines = [point_line(measurement, tags, f, T0 + i) for i, f in enumerate(fields)]
    conn = InfluxConnection(
        influx_url=victoria_service.url, influx_api="v2", influx_token="unused", influx_batch_lines=2
    )
    async with LineWriter(conn) as writer:
        await writer.ensure_database()  # nothing to do on v2
        await writer.write(lines)

    async with httpx.AsyncClient(base_url=victoria_service.url) as client:

        async def export() -> dict[str, dict[str, Any]]:
            await client.get("/internal/force_flush")
            response = await client.get("/api/v1/export", params={"match[]": f'{{__name__=~"{measurement}_.*"}}'})
            response.raise_for_status()
            series = [json.loads(line) for line in response.text.splitlines() if line]
            return {s["metric"]["__name__"]: s for s in series}

        got: dict[str, dict[str, Any]] = {}
        for _ in range(100):
            got = await export()
            if len(got) == 4 and all(len(s["values"]) == 5 for s in got.values()):
                break
            await asyncio.sleep(0.1)
    assert set(got) == {f"{measurement}_{field}" for field in ("v", "n", "ok", "s")}
    v = got[f"{measurement}_v"]
    assert v["metric"] == {"__name__": f"{measurement}_v", "site": SITE, "device_id": "gas-1"}
    assert v["timestamps"] == [T0 + i for i in range(5)]
    assert v["values"] == [12.5 + i for i in range(5)]
    assert got[f"{measurement}_n"]["values"] == [0, 1, 2, 3, 4]
    assert got[f"{measurement}_ok"]["values"] == [1, 0, 1, 0, 1]
    assert got[f"{measurement}_s"]["values"] == [0] * 5  # the text is not kept
