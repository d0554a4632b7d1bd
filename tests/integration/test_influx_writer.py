"""The InfluxDB writer against real servers: InfluxDB 1.6 (v1 API) and VictoriaMetrics (v2 write API), and the
alert history on top of it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from alerts.history import AlertHistory
from core.contracts.alert import Acknowledgement, Alert, AlertEvent
from core.contracts.catalogue import Department, Level
from core.contracts.finding import Hazard, Text
from core.influx.client import InfluxConnection, InfluxRefused, InfluxUnavailable, LineWriter, point_line
from core.process import free_port
from smartcity.stack.services import Launch
from tests.influx_util import influx_rows
from tests.waiting import eventually

pytestmark = pytest.mark.integration

T0 = 1_763_900_000_000
SITE = "坪地 化工园,A=1"


def _v1(url: str, db: str, **changes: Any) -> InfluxConnection:
    return InfluxConnection(influx_url=url, influx_api="v1", influx_db=db, **changes)


async def _influxql(url: str, query: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/query", params={"q": query})
    response.raise_for_status()
    assert "error" not in response.json()["results"][0]


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


def _alert(seq: int, event: AlertEvent, **changes: Any) -> Alert:
    fields: dict[str, Any] = dict(
        id="a-1", key="gas-1:gas.ch4", seq=seq, event=event, level=Level.ORANGE, hazard=Hazard.GAS, rule="gas.ch4",
        device_id="gas-1", site_id=SITE, site_name="坪地化工园", metric="ch4_lel", value=30.0, threshold=25.0,
        departments=[Department.EMERGENCY, Department.COMMAND], active=True, acknowledged=False, exercise=False,
        opened_at=T0, updated_at=T0 + 60_000, ts=T0 + 59_990, title=Text(zh="可燃气体浓度超限", en="Gas above limit"),
    )  # fmt: skip
    fields.update(changes)
    return Alert.model_validate(fields)


ACKED = Acknowledgement(by="王警官", note="on site", at=T0 + 60_000)


async def test_alert_history_keeps_two_messages_of_one_millisecond(influx_service: Launch, unique: str) -> None:
    db = f"t{unique}"
    history = AlertHistory(LineWriter(_v1(influx_service.url, db)))
    await history.start()
    history.add(_alert(1, AlertEvent.RAISED))
    history.add(_alert(2, AlertEvent.ACKNOWLEDGED, acknowledged=True, acknowledgement=ACKED))  # same updated_at
    assert await history.flush() == 0
    await history.close()
    assert history.written == 2
    rows = await influx_rows(influx_service.url, db, "SELECT * FROM alert_events ORDER BY time")
    rows.sort(key=lambda r: int(r["seq"]))
    assert [(r["time"], r["seq"], r["event"], r["acknowledged"], r["acknowledged_by"]) for r in rows] == [
        (T0 + 60_000, "1", "raised", False, None),
        (T0 + 60_000, "2", "acknowledged", True, "王警官"),
    ]
    first = rows[0]
    assert (first["key"], first["alert_id"], first["level"], first["hazard"], first["rule"]) == (
        "gas-1:gas.ch4", "a-1", "orange", "gas", "gas.ch4",
    )  # fmt: skip
    assert (first["exercise"], first["site_id"], first["device_id"]) == ("false", SITE, "gas-1")
    assert (first["value"], first["threshold"], first["active"], first["departments"]) == (
        30.0, 25.0, True, "emergency,command",
    )  # fmt: skip
    assert (first["title_zh"], first["title_en"], first["metric"]) == ("可燃气体浓度超限", "Gas above limit", "ch4_lel")


async def test_alert_history_keeps_its_buffer_while_influxdb_is_down(influx_service: Launch, unique: str) -> None:
    """A missing retention policy answers 500 (as an overloaded server would): the batch stays, and goes out once
    the server takes it."""
    db = f"t{unique}"
    history = AlertHistory(LineWriter(_v1(influx_service.url, db, influx_rp="week")))
    await history.start()
    history.add(_alert(1, AlertEvent.RAISED))
    history.add(_alert(2, AlertEvent.ESCALATED, level=Level.RED, value=55.5))
    with pytest.raises(InfluxUnavailable, match="retention policy not found"):
        await history.flush()
    assert history.pending == 2
    await _influxql(influx_service.url, f'CREATE RETENTION POLICY "week" ON "{db}" DURATION INF REPLICATION 1')
    history.add(_alert(3, AlertEvent.CLEARED, active=False))
    assert await history.flush() == 0
    assert history.pending == 0
    await history.close()
    rows = await influx_rows(influx_service.url, db, 'SELECT "event", "value" FROM "week"."alert_events"')
    assert sorted((r["event"], r["value"]) for r in rows) == [("cleared", 30.0), ("escalated", 55.5), ("raised", 30.0)]


async def test_alert_history_unreachable_is_bounded() -> None:
    history = AlertHistory(LineWriter(InfluxConnection(influx_url=f"http://127.0.0.1:{free_port()}")), max_buffered=3)
    await history.start()  # InfluxDB down at start is not fatal
    for seq in range(1, 6):
        history.add(_alert(seq, AlertEvent.REMINDER))
    assert (history.pending, history.dropped) == (3, 2)
    with pytest.raises(InfluxUnavailable):
        await history.flush()
    assert history.pending == 3
    await history.close()  # logs what could not be written, does not raise


async def test_alert_history_drops_only_refused_lines(influx_service: Launch, unique: str) -> None:
    """A field type conflict refuses the whole request; the history halves it and drops only the bad line."""
    db = f"t{unique}"
    async with LineWriter(_v1(influx_service.url, db)) as writer:
        await writer.ensure_database()
        await writer.write([point_line("alert_events", {"alert_id": "other"}, {"value": "not a number"}, T0)])
    history = AlertHistory(LineWriter(_v1(influx_service.url, db)))
    await history.start()
    history.add(_alert(1, AlertEvent.RAISED))  # value=30.0: conflicts with the string field
    history.add(_alert(2, AlertEvent.RAISED, id="a-2", value=True, threshold=True))  # no value field
    history.add(_alert(3, AlertEvent.RAISED, id="a-3", value=None, threshold=None))
    assert await history.flush() == 1
    assert (history.refused, history.written, history.pending) == (1, 2, 0)
    await history.close()
    rows = await influx_rows(influx_service.url, db, "SELECT * FROM alert_events WHERE \"alert_id\" != 'other'")
    assert sorted(r["alert_id"] for r in rows) == ["a-2", "a-3"]


async def test_alert_history_run_flushes_periodically(influx_service: Launch, unique: str) -> None:
    db = f"t{unique}"
    history = AlertHistory(LineWriter(_v1(influx_service.url, db)))
    await history.start()
    stop = asyncio.Event()
    runner = asyncio.create_task(history.run(stop, interval_s=0.05))
    history.add(_alert(1, AlertEvent.RAISED, exercise=True, key="drill:gas-1:gas.ch4"))
    assert await eventually(lambda: history.written == 1, timeout=5)
    stop.set()
    await asyncio.wait_for(runner, 5)
    await history.close()
    rows = await influx_rows(influx_service.url, db, "SELECT * FROM alert_events WHERE \"exercise\" = 'true'")
    assert [r["key"] for r in rows] == ["drill:gas-1:gas.ch4"]
