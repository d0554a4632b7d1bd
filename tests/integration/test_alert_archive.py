"""The alert archive (``alerts.archive``) against a real InfluxDB 1.6: every message its own point, the buffer kept
while InfluxDB is down and bounded, only refused lines dropped, periodic flushes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from alerts.archive import AlertArchive
from core.contracts.alert import Acknowledgement, Alert, AlertEvent
from core.contracts.catalogue import Department, Level
from core.contracts.finding import Hazard, Text
from core.influx.client import InfluxConnection, InfluxUnavailable, LineWriter, point_line
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


async def test_alert_archive_keeps_two_messages_of_one_millisecond(influx_service: Launch, unique: str) -> None:
    db = f"t{unique}"
    archive = AlertArchive(LineWriter(_v1(influx_service.url, db)))
    await archive.start()
    archive.add(_alert(1, AlertEvent.RAISED))
    archive.add(_alert(2, AlertEvent.ACKNOWLEDGED, acknowledged=True, acknowledgement=ACKED))  # same updated_at
    assert await archive.flush() == 0
    await archive.close()
    assert archive.written == 2
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


async def test_alert_archive_keeps_its_buffer_while_influxdb_is_down(influx_service: Launch, unique: str) -> None:
    """A missing retention policy answers 500 (as an overloaded server would): the batch stays, and goes out once
    the server takes it."""
    db = f"t{unique}"
    archive = AlertArchive(LineWriter(_v1(influx_service.url, db, influx_rp="week")))
    await archive.start()
    archive.add(_alert(1, AlertEvent.RAISED))
    archive.add(_alert(2, AlertEvent.ESCALATED, level=Level.RED, value=55.5))
    with pytest.raises(InfluxUnavailable, match="retention policy not found"):
        await archive.flush()
    assert archive.pending == 2
    await _influxql(influx_service.url, f'CREATE RETENTION POLICY "week" ON "{db}" DURATION INF REPLICATION 1')
    archive.add(_alert(3, AlertEvent.CLEARED, active=False))
    assert await archive.flush() == 0
    assert archive.pending == 0
    await archive.close()
    rows = await influx_rows(influx_service.url, db, 'SELECT "event", "value" FROM "week"."alert_events"')
    assert sorted((r["event"], r["value"]) for r in rows) == [("cleared", 30.0), ("escalated", 55.5), ("raised", 30.0)]


async def test_alert_archive_unreachable_is_bounded() -> None:
    archive = AlertArchive(LineWriter(InfluxConnection(influx_url=f"http://127.0.0.1:{free_port()}")), max_buffered=3)
    await archive.start()  # InfluxDB down at start is not fatal
    for seq in range(1, 6):
        archive.add(_alert(seq, AlertEvent.REMINDER))
    assert (archive.pending, archive.dropped) == (3, 2)
    with pytest.raises(InfluxUnavailable):
        await archive.flush()
    assert archive.pending == 3
    await archive.close()  # logs what could not be written, does not raise


async def test_alert_archive_drops_only_refused_lines(influx_service: Launch, unique: str) -> None:
    """A field type conflict refuses the whole request; the archive halves it and drops only the bad line."""
    db = f"t{unique}"
    async with LineWriter(_v1(influx_service.url, db)) as writer:
        await writer.ensure_database()
        await writer.write([point_line("alert_events", {"alert_id": "other"}, {"value": "not a number"}, T0)])
    archive = AlertArchive(LineWriter(_v1(influx_service.url, db)))
    await archive.start()
    archive.add(_alert(1, AlertEvent.RAISED))  # value=30.0: conflicts with the string field
    archive.add(_alert(2, AlertEvent.RAISED, id="a-2", value=True, threshold=True))  # no value field
    archive.add(_alert(3, AlertEvent.RAISED, id="a-3", value=None, threshold=None))
    assert await archive.flush() == 1
    assert (archive.refused, archive.written, archive.pending) == (1, 2, 0)
    await archive.close()
    rows = await influx_rows(influx_service.url, db, "SELECT * FROM alert_events WHERE \"alert_id\" != 'other'")
    assert sorted(r["alert_id"] for r in rows) == ["a-2", "a-3"]


async def test_alert_archive_drops_a_refused_setup_with_a_logged_error(
    influx_service: Launch, caplog: pytest.LogCaptureFixture
) -> None:
    """A 404 (here: no v2 API on InfluxDB 1.6) is not the lines' fault, but retrying will not help either: the lines
    are dropped and logged, so that later alerts are not held behind them."""
    archive = AlertArchive(
        LineWriter(InfluxConnection(influx_url=influx_service.url, influx_api="v2", influx_token="t"))
    )
    await archive.start()
    archive.add(_alert(1, AlertEvent.RAISED))
    archive.add(_alert(2, AlertEvent.REMINDER))
    with caplog.at_level(logging.ERROR, logger="alerts.archive"):
        assert await archive.flush() == 2
    assert (archive.refused, archive.written, archive.pending) == (2, 0, 0)
    assert "InfluxDB refused 2 alert events, dropped" in caplog.text
    assert "404" in caplog.text
    await archive.close()


async def test_alert_archive_run_flushes_periodically(influx_service: Launch, unique: str) -> None:
    db = f"t{unique}"
    archive = AlertArchive(LineWriter(_v1(influx_service.url, db)))
    await archive.start()
    stop = asyncio.Event()
    runner = asyncio.create_task(archive.run(stop, interval_s=0.05))
    archive.add(_alert(1, AlertEvent.RAISED, exercise=True, key="drill:gas-1:gas.ch4"))
    assert await eventually(lambda: archive.written == 1, timeout=5)
    stop.set()
    await asyncio.wait_for(runner, 5)
    await archive.close()
    rows = await influx_rows(influx_service.url, db, "SELECT * FROM alert_events WHERE \"exercise\" = 'true'")
    assert [r["key"] for r in rows] == ["drill:gas-1:gas.ch4"]
