"""Retention of readings: raw points for ``raw_days``, hourly aggregates for ``agg_days``.

On InfluxDB 1.x (``influx_api="v1"``) ``ensure_retention`` sets everything up and is meant to run at every writer
start. It guarantees, in the connection's database:

- retention policy ``raw`` (``RAW_RP``): ``raw_days`` long and the database's DEFAULT, so readings written without an
  ``rp`` land there too. The writer writes with ``influx_rp="raw"``;
- retention policy ``agg_1h`` (``AGG_RP``): ``agg_days`` long. The writer fills it as it writes: it aggregates each
  hour in memory and writes the hour's points once it is closed (``storage.aggregate``, which says why an hour), and
  it recomputes from ``raw`` what memory missed with ``aggregation`` (``storage.backfill``);
- no continuous query. Earlier versions had one (``agg_1m``, ``RESAMPLE EVERY 1m FOR 2m``) that re-read two minutes
  of every series every minute: over 10,000 devices a third of a core in bursts, over 60,000 more than half
  (docs/benchmarks.md). It is dropped when found. Its retention policy ``agg_1m`` (one-minute aggregates, written by
  earlier versions) is left as it is, with its data, and named in a warning: nothing writes or reads it any more,
  and ``DROP RETENTION POLICY "agg_1m" ON <db>`` frees its disk (docs/storage.md).

``aggregation`` is the ``SELECT ... INTO`` that computes the aggregates from ``raw``::

    SELECT mean(*), min(*), max(*) INTO "<db>"."agg_1h".:MEASUREMENT
    FROM "<db>"."raw"./^(gas|water|fire|structural|device_health|unregistered)$/ WHERE <range> GROUP BY time(3600s), *

Fields come out as ``mean_<metric>``, ``min_<metric>``, ``max_<metric>``; booleans (``smoke``, ``flame``) get
``min_``/``max_`` only (InfluxDB has no mean of booleans). The measurements are named, not ``/.*/``, so other
measurements of the database (``alert_events``) are never aggregated. The writer's own aggregates have the same
fields, tags and timestamps.

Idempotent: policies are created when missing and ALTERed when their duration (or raw's DEFAULT flag) differs from
the arguments. Shrinking a duration deletes data older than the new one: that is what the operator asked for, and it
is logged as a warning.

On InfluxDB 2.x/3.x (``influx_api="v2"``) buckets and downsampling tasks need an operator's all-access token, which
services do not hold: the function logs that and returns (docs/storage.md has the commands).

Errors are those of ``core.influx.client``: ``InfluxUnavailable`` (retry later), ``InfluxRefused`` (credentials without
the admin right these statements need, or a statement InfluxDB refused; the message carries its text).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

from core.influx.client import InfluxConnection, InfluxRefused, LineWriter
from storage.aggregate import EVERY_MS
from storage.lines import MEASUREMENTS

logger = logging.getLogger(__name__)

RAW_RP: Final = "raw"
AGG_RP: Final = "agg_1h"
CQ_NAME: Final = "agg_1m"  # the continuous query of earlier versions, dropped when found
OLD_AGG_RP: Final = "agg_1m"  # the one-minute aggregates of earlier versions: left alone, named in a warning
RAW_DAYS: Final = 90
AGG_DAYS: Final = 1095
AGG_EVERY_S: Final = EVERY_MS // 1000  # the interval of AGG_RP's points; the readings query relies on it
AGG_EVERY: Final = f"{AGG_EVERY_S}s"  # the same as an InfluxQL duration
#: The readings' measurements as an InfluxQL regex, named (never ``alert_events``).
READINGS_REGEX: Final = "/^(" + "|".join(re.escape(m) for m in MEASUREMENTS) + ")$/"
_DURATION_RE: Final = re.compile(r"^([1-9][0-9]*)(s|m|h|d|w)$")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_GO_DURATION_RE: Final = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")


def ident(name: str) -> str:
    """An InfluxQL identifier: double-quoted, ``\\`` and ``"`` escaped (so keywords and odd names are safe)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def duration_s(text: str) -> int:
    """Seconds of an InfluxQL duration literal we accept (``90s``, ``1m``, ``2h``, ``3d``, ``1w``); ValueError
    otherwise: the text goes into a statement, so only this shape is let through."""
    match = _DURATION_RE.match(text)
    if match is None:
        raise ValueError(f"duration {text!r}: expected a positive integer and s, m, h, d or w (e.g. 1m)")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def _go_duration_s(text: str) -> float:
    """Seconds of a duration as InfluxDB shows it (``2160h0m0s``; ``0s`` is infinite). NaN if unreadable."""
    match = _GO_DURATION_RE.match(text)
    if match is None or not text:
        return float("nan")
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def aggregation(db: str, every: str = AGG_EVERY, where: str = "") -> str:
    """The ``SELECT ... INTO`` that writes ``raw``'s mean, min and max per ``every`` into ``agg_1h``, keeping every
    tag, with a ``where`` clause (checked by the caller): a backfill. Re-running it over the same range writes the
    same points again: it is idempotent."""
    duration_s(every)
    # Identifiers go through ident(), durations through duration_s(): nothing reaches the text unchecked.
    return (
        f"SELECT mean(*), min(*), max(*) INTO {ident(db)}.{ident(AGG_RP)}.:MEASUREMENT "  # noqa: S608
        f"FROM {ident(db)}.{ident(RAW_RP)}.{READINGS_REGEX} {where + ' ' if where else ''}GROUP BY time({every}), *"
    )


async def ensure_retention(conn: InfluxConnection, *, raw_days: int = RAW_DAYS, agg_days: int = AGG_DAYS) -> None:
    """Create or adjust the database, ``raw`` and ``agg_1h``, and drop an earlier version's continuous query
    (module docstring). ``ValueError`` for arguments that cannot work."""
    if conn.influx_api != "v1":
        logger.info(
            "InfluxDB %s: retention (buckets) and downsampling (tasks) are set up by the operator, see "
            "docs/storage.md; nothing to do here",
            conn.influx_target,
        )
        return
    if raw_days < 1 or agg_days < 1:
        raise ValueError(f"raw_days ({raw_days}) and agg_days ({agg_days}) must be at least 1")
    db = ident(conn.influx_db)
    async with LineWriter(conn) as writer:
        await writer.ensure_database()
        policies = {row["name"]: row for row in await _rows(writer, f"SHOW RETENTION POLICIES ON {db}")}
        for name, days, default in ((RAW_RP, raw_days, True), (AGG_RP, agg_days, False)):
            clause = f"{ident(name)} ON {db} DURATION {days}d REPLICATION 1{' DEFAULT' if default else ''}"
            found = policies.get(name)
            if found is None:
                await run_statement(writer, f"CREATE RETENTION POLICY {clause}")
                logger.info("InfluxDB %s: retention policy %r created (%d days)", conn.influx_target, name, days)
                continue
            had = _go_duration_s(str(found.get("duration", "")))
            if had != days * 86400 or (default and not found.get("default")):
                await run_statement(writer, f"ALTER RETENTION POLICY {clause}")
                if had == 0 or had > days * 86400:
                    logger.warning(
                        "InfluxDB %s: retention policy %r shortened from %s to %d days: older data is deleted",
                        conn.influx_target,
                        name,
                        found.get("duration"),
                        days,
                    )
                else:
                    logger.info(
                        "InfluxDB %s: retention policy %r set from %s to %d days (default: %s)",
                        conn.influx_target,
                        name,
                        found.get("duration"),
                        days,
                        default,
                    )
        if await _has_continuous_query(writer, conn.influx_db):
            await run_statement(writer, f"DROP CONTINUOUS QUERY {ident(CQ_NAME)} ON {db}")
            logger.info(
                "InfluxDB %s: continuous query %r dropped (the writer aggregates as it writes)",
                conn.influx_target,
                CQ_NAME,
            )
    if OLD_AGG_RP in policies:
        logger.warning(
            "InfluxDB %s: retention policy %r holds one-minute aggregates of an earlier version; nothing writes or "
            "reads it any more (readings older than %d days come from %r). Drop it to free its disk: "
            "DROP RETENTION POLICY %s ON %s",
            conn.influx_target,
            OLD_AGG_RP,
            raw_days,
            AGG_RP,
            ident(OLD_AGG_RP),
            db,
        )
    logger.info(
        "InfluxDB %s: retention ready: %r %d days (default), %r %d days",
        conn.influx_target,
        RAW_RP,
        raw_days,
        AGG_RP,
        agg_days,
    )


async def _has_continuous_query(writer: LineWriter, db: str) -> bool:
    """Whether ``db`` has the continuous query of earlier versions (``SHOW CONTINUOUS QUERIES`` lists every
    database's, one series per database)."""
    result = await _result(writer, "SHOW CONTINUOUS QUERIES")
    for series in result.get("series", []):
        if series.get("name") == db:
            names = [
                dict(zip(series["columns"], values, strict=True)).get("name") for values in series.get("values", [])
            ]
            if CQ_NAME in names:
                return True
    return False


async def _result(writer: LineWriter, statement: str) -> dict[str, Any]:
    response = await writer._v1_post("/query", {"q": statement}, None)  # the writer's error mapping, one client
    try:
        doc = response.json()
        result: dict[str, Any] = doc["results"][0]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise InfluxRefused(
            f"InfluxDB ({writer.conn.influx_target}): unexpected answer to {statement!r}: {response.text[:300]}",
            status=response.status_code,
        ) from exc
    return result


async def run_statement(writer: LineWriter, statement: str, *, allow_error: bool = False) -> str | None:
    """Run one InfluxQL statement on ``/query`` (v1). Its error text is returned with ``allow_error``, raised as
    ``InfluxRefused`` without; ``InfluxUnavailable`` when InfluxDB does not answer (or not in the writer's
    ``influx_timeout_s``)."""
    error = (await _result(writer, statement)).get("error")
    if error and not allow_error:
        raise InfluxRefused(f"InfluxDB ({writer.conn.influx_target}): {error}: {statement}", status=200)
    return str(error) if error else None


async def query_result(writer: LineWriter, statement: str) -> dict[str, Any]:
    """One statement's result on ``/query`` (v1): its ``series``; errors as ``run_statement``'s."""
    result = await _result(writer, statement)
    if result.get("error"):
        raise InfluxRefused(f"InfluxDB ({writer.conn.influx_target}): {result['error']}: {statement}", status=200)
    return result


async def _rows(writer: LineWriter, statement: str) -> list[dict[str, Any]]:
    result = await query_result(writer, statement)
    rows: list[dict[str, Any]] = []
    for series in result.get("series", []):
        rows += [dict(zip(series["columns"], values, strict=True)) for values in series.get("values", [])]
    return rows
