"""The batching sink against a real InfluxDB 1.6: refused lines found by halving (with and without a cap) and handed
over with InfluxDB's reason, the rest written; unavailable raised with ``retry_after`` and nothing lost; the bound."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from core.influx.client import InfluxConnection, InfluxRefused, InfluxUnavailable, LineWriter, point_line
from core.influx.sink import InfluxSink
from core.process import free_port
from smartcity.stack.services import Launch
from tests.influx_util import influx_rows

pytestmark = pytest.mark.integration

T0 = 1_763_900_000_000


class Refusals:
    """An ``on_refused`` that records what it was handed (and raises ``raising``, when set)."""

    def __init__(self, raising: bool = False) -> None:
        self.calls: list[tuple[list[str], InfluxRefused]] = []
        self.raising = raising

    async def __call__(self, lines: Sequence[str], exc: InfluxRefused) -> None:
        self.calls.append((list(lines), exc))
        if self.raising:
            raise exc

    @property
    def groups(self) -> list[list[str]]:
        return [lines for lines, _ in self.calls]


class CountingWriter(LineWriter):
    """The real writer, remembering how many lines each call sent (one request each: batches are small here)."""

    def __init__(self, conn: InfluxConnection) -> None:
        super().__init__(conn)
        self.sizes: list[int] = []

    async def write(self, lines: Sequence[str]) -> None:
        self.sizes.append(len(lines))
        await super().write(lines)


def _conn(url: str, db: str, **changes: Any) -> InfluxConnection:
    return InfluxConnection(influx_url=url, influx_api="v1", influx_db=db, **changes)


def _lines(count: int, bad: set[int]) -> list[str]:
    """Points ``n=0..count-1``; those in ``bad`` write ``v`` as a string, which ``_database`` made a float field."""
    return [point_line("probe", {"n": str(i)}, {"v": "text" if i in bad else float(i)}, T0 + i) for i in range(count)]


async def _database(url: str, db: str) -> None:
    """The database, with ``v`` a float field of ``probe``: a string ``v`` is then refused (400, type conflict)."""
    async with LineWriter(_conn(url, db)) as writer:
        await writer.ensure_database()
        await writer.write([point_line("probe", {"n": "seed"}, {"v": 0.5}, T0 - 1)])


async def _stored(url: str, db: str) -> list[int]:
    rows = await influx_rows(url, db, "SELECT * FROM probe WHERE \"n\" != 'seed'")
    return sorted(int(r["n"]) for r in rows)


async def test_refused_lines_are_isolated_one_by_one_with_influxdbs_reason(influx_service: Launch, unique: str) -> None:
    db = f"t{unique}"
    await _database(influx_service.url, db)
    lines = _lines(8, bad={5})
    refusals = Refusals()
    writer = CountingWriter(_conn(influx_service.url, db))
    async with InfluxSink(writer, refusals, name="test") as sink:
        assert await sink.write(lines) == 1
    # all 8 refused; 0-3 written, 4-7 refused; 4-5 refused; 4 written, 5 refused; 6-7 written
    assert writer.sizes == [8, 4, 4, 2, 1, 1, 2]
    assert refusals.groups == [[lines[5]]]
    [(_, reason)] = refusals.calls
    assert reason.status == 400
    assert "field type conflict" in str(reason)
    assert (sink.written, sink.refused) == (7, 1)
    assert await _stored(influx_service.url, db) == [0, 1, 2, 3, 4, 6, 7]


async def test_without_a_cap_every_refused_line_is_found_in_every_request(influx_service: Launch, unique: str) -> None:
    """Requests are ``influx_batch_lines`` long; each is searched on its own."""
    db = f"t{unique}"
    await _database(influx_service.url, db)
    lines = _lines(10, bad={0, 3, 9})
    refusals = Refusals()
    async with InfluxSink(LineWriter(_conn(influx_service.url, db, influx_batch_lines=4)), refusals, name="t") as sink:
        for line in lines:
            sink.add(line)
        assert await sink.flush() == 3
    assert refusals.groups == [[lines[0]], [lines[3]], [lines[9]]]
    assert (sink.pending, sink.written, sink.refused) == (0, 7, 3)
    assert await _stored(influx_service.url, db) == [1, 2, 4, 5, 6, 7, 8]


async def test_past_the_cap_the_group_still_refused_is_handed_over_whole(influx_service: Launch, unique: str) -> None:
    db = f"t{unique}"
    await _database(influx_service.url, db)
    lines = _lines(8, bad={1, 2})
    refusals = Refusals()
    writer = CountingWriter(_conn(influx_service.url, db))
    async with InfluxSink(writer, refusals, name="test", max_halvings=1) as sink:
        assert await sink.write(lines) == 4
    assert writer.sizes == [8, 4, 4]  # one halving, no more
    assert refusals.groups == [lines[:4]]
    assert "field type conflict" in str(refusals.calls[0][1])
    # InfluxDB 1.x stores the good points of a request it refuses (a partial write): 0 and 3 are in, handed over
    assert await _stored(influx_service.url, db) == [0, 3, 4, 5, 6, 7]

    no_halving = Refusals()
    async with InfluxSink(LineWriter(_conn(influx_service.url, db)), no_halving, name="test", max_halvings=0) as sink:
        assert await sink.write(lines) == 8
    assert no_halving.groups == [lines]


async def test_a_refused_setup_goes_to_the_callback_which_settles_or_raises(
    influx_service: Launch, unique: str
) -> None:
    """404 (no such database) is a refusal of a whole request, not of lines: handed over as it is, never halved.
    A callback that returns settles the request and the sink goes on; one that raises stops it, lines kept."""
    missing = _conn(influx_service.url, f"missing{unique}", influx_batch_lines=2)
    lines = _lines(5, bad=set())
    settling = Refusals()
    async with InfluxSink(LineWriter(missing), settling, name="test") as sink:
        assert await sink.write(lines) == 5
    assert settling.groups == [lines[0:2], lines[2:4], lines[4:5]]
    assert {exc.status for _, exc in settling.calls} == {404}

    raising = Refusals(raising=True)
    async with InfluxSink(LineWriter(missing), raising, name="test") as sink:
        for line in lines:
            sink.add(line)
        with pytest.raises(InfluxRefused, match="no such database") as refused:
            await sink.flush()
    assert refused.value.status == 404
    assert (sink.pending, sink.refused) == (5, 0)


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_a_server_that_is_down_is_unavailable_with_retry_after(api: str) -> None:
    conn = InfluxConnection(influx_url=f"http://127.0.0.1:{free_port()}", influx_api=api, influx_timeout_s=2)
    refusals = Refusals()
    lines = _lines(3, bad=set())
    async with InfluxSink(LineWriter(conn), refusals, name="test") as sink:
        with pytest.raises(InfluxUnavailable) as unavailable:
            await sink.write(lines)
        assert unavailable.value.retry_after > 0
        for line in lines:
            sink.add(line)
        with pytest.raises(InfluxUnavailable):
            await sink.flush()
    assert (sink.pending, sink.written, sink.refused, refusals.calls) == (3, 0, 0, [])


async def test_lines_kept_while_unavailable_go_out_first_once_influxdb_takes_them(
    influx_service: Launch, unique: str
) -> None:
    """InfluxDB 1.6 answers 500 for a missing retention policy, as an overloaded server would: the lines stay, in
    order, ahead of those added since, and are written once the policy exists."""
    db = f"t{unique}"
    await _database(influx_service.url, db)
    lines = _lines(4, bad=set())
    async with InfluxSink(LineWriter(_conn(influx_service.url, db, influx_rp="week")), Refusals(), name="t") as sink:
        sink.add(lines[0])
        sink.add(lines[1])
        with pytest.raises(InfluxUnavailable, match="retention policy not found") as unavailable:
            await sink.flush()
        assert unavailable.value.retry_after > 0
        assert sink.pending == 2
        sink.add(lines[2])
        async with httpx.AsyncClient(base_url=influx_service.url) as client:
            query = f'CREATE RETENTION POLICY "week" ON "{db}" DURATION INF REPLICATION 1'
            (await client.post("/query", params={"q": query})).raise_for_status()
        sink.add(lines[3])
        assert await sink.flush() == 0
    assert (sink.pending, sink.written) == (0, 4)
    rows = await influx_rows(influx_service.url, db, 'SELECT * FROM "week"."probe"')
    assert sorted(int(r["n"]) for r in rows) == [0, 1, 2, 3]


async def test_a_bounded_buffer_drops_the_oldest(influx_service: Launch, unique: str) -> None:
    db = f"t{unique}"
    await _database(influx_service.url, db)
    async with InfluxSink(LineWriter(_conn(influx_service.url, db)), Refusals(), name="t", max_buffered=3) as sink:
        for line in _lines(5, bad=set()):
            sink.add(line)
        assert (sink.pending, sink.dropped) == (3, 2)
        assert await sink.flush() == 0
    assert await _stored(influx_service.url, db) == [2, 3, 4]


def test_knobs_are_checked() -> None:
    writer = LineWriter(InfluxConnection())
    with pytest.raises(ValueError, match="max_halvings"):
        InfluxSink(writer, Refusals(), name="test", max_halvings=-1)
    with pytest.raises(ValueError, match="max_buffered"):
        InfluxSink(writer, Refusals(), name="test", max_buffered=0)
