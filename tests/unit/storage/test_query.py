"""The readings query, without InfluxDB: InfluxQL quoting, which retention policy each part of a range is read from,
the point limit, and the parsing of the API's ``every``, ``from`` and ``to``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.api import parse_every, parse_time
from storage.query import DAY_MS, MAX_POINTS, build_queries, literal, suggested_every_s
from storage.retention import duration_s, ident

T0 = 1_794_996_000_000  # an hour boundary
MIN = 60_000
HOUR = 60 * MIN


def _unquote(text: str, quote: str) -> str:
    """InfluxQL's reading of a quoted string (its scanner's escapes: \\\\, \\n and the quote)."""
    assert text[0] == quote
    assert text[-1] == quote
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\":
            out.append({"\\": "\\", "n": "\n", quote: quote}[body[i + 1]])
            i += 2
        else:
            assert body[i] != quote, "an unescaped quote ends the string early"
            out.append(body[i])
            i += 1
    return "".join(out)


def test_quoting_escapes_quotes_and_backslashes() -> None:
    assert literal("it's") == "'it\\'s'"
    assert literal("a\\'b") == "'a\\\\\\'b'"
    assert ident('we"ird') == '"we\\"ird"'
    assert ident("a\\b") == '"a\\\\b"'
    assert ident("key") == '"key"'  # a keyword, safe once quoted


@given(st.text())
def test_literal_and_ident_read_back_as_given(text: str) -> None:
    assert _unquote(literal(text), "'") == text
    assert _unquote(ident(text), '"') == text


def _q(**changes: object) -> list[str]:
    args: dict[str, object] = {
        "measurement": "gas",
        "device_id": "gas-1",
        "metric": "ch4_lel",
        "start_ms": T0,
        "end_ms": T0 + 10 * MIN,
        "every_s": None,
        "raw_since_ms": T0 - 90 * DAY_MS,
    }
    args.update(changes)
    return build_queries(**args)  # type: ignore[arg-type]


WHERE = "WHERE \"device_id\" = 'gas-1' AND \"drill\" = 'false'"


def test_raw_points_from_raw_with_limit() -> None:
    assert _q() == [
        f'SELECT "ch4_lel" AS "value" FROM "raw"."gas" {WHERE} '
        f"AND time >= {T0}ms AND time < {T0 + 10 * MIN}ms LIMIT 10001"
    ]


def test_drill_readings_are_asked_for_apart_and_device_id_is_escaped() -> None:
    (query,) = _q(device_id="o'brien\\1", drill=True)
    assert "\"device_id\" = 'o\\'brien\\\\1' AND \"drill\" = 'true'" in query


def test_recent_aggregates_are_computed_from_raw() -> None:
    assert _q(every_s=60) == [
        f'SELECT mean("ch4_lel") AS "mean", min("ch4_lel") AS "min", max("ch4_lel") AS "max" FROM "raw"."gas" '
        f"{WHERE} AND time >= {T0}ms AND time < {T0 + 10 * MIN}ms GROUP BY time(60s) fill(none)"
    ]


def test_old_aggregates_come_from_the_hourly_policy() -> None:
    (query,) = _q(every_s=10_800, end_ms=T0 + 12 * HOUR, raw_since_ms=T0 + 20 * HOUR)
    assert query.startswith(
        'SELECT mean("mean_ch4_lel") AS "mean", min("min_ch4_lel") AS "min", max("max_ch4_lel") AS "max" '
        'FROM "agg_1h"."gas" '
    )
    assert query.endswith("GROUP BY time(10800s) fill(none)")


def test_a_range_across_the_raw_retention_is_split_at_an_interval_boundary() -> None:
    since = T0 + 3 * HOUR + 7_000  # raw complete from here: the first whole 2-hour interval starts at T0 + 4 h
    older, newer = _q(every_s=7_200, end_ms=T0 + 10 * HOUR, raw_since_ms=since)
    assert '"agg_1h"."gas"' in older
    assert f"time >= {T0}ms AND time < {T0 + 4 * HOUR}ms" in older
    assert '"raw"."gas"' in newer
    assert 'mean("ch4_lel")' in newer
    assert f"time >= {T0 + 4 * HOUR}ms AND time < {T0 + 10 * HOUR}ms" in newer


def test_intervals_that_are_not_whole_hours_and_raw_points_always_read_raw() -> None:
    """The aggregates are hourly: a 5-minute interval older than the raw retention has no data to read."""
    old = T0 + 20 * MIN
    assert '"raw"."gas"' in _q(every_s=90, raw_since_ms=old)[0]
    assert '"raw"."gas"' in _q(every_s=300, raw_since_ms=old)[0]
    assert '"raw"."gas"' in _q(every_s=None, raw_since_ms=old)[0]


def test_v2_reads_the_bucket_default_mapping_and_never_the_aggregates_policy() -> None:
    (query,) = _q(every_s=60, raw_rp=None, agg_rp=None, raw_since_ms=T0 + 20 * MIN)
    assert f'FROM "gas" {WHERE}' in query
    assert "agg_1h" not in query


def test_boolean_metrics_have_no_mean() -> None:
    (query,) = _q(metric="smoke", measurement="fire", every_s=60, boolean=True)
    assert query.startswith('SELECT min("smoke") AS "min", max("smoke") AS "max" FROM "raw"."fire" ')
    (old,) = _q(metric="smoke", measurement="fire", every_s=3_600, boolean=True, raw_since_ms=T0 + 20 * MIN)
    assert old.startswith('SELECT min("min_smoke") AS "min", max("max_smoke") AS "max" FROM "agg_1h"."fire" ')


def test_empty_range_and_bad_interval_are_refused() -> None:
    with pytest.raises(ValueError, match="empty range"):
        _q(end_ms=T0)
    with pytest.raises(ValueError, match="every_s"):
        _q(every_s=0)


def test_suggested_every_fits_the_point_limit() -> None:
    assert suggested_every_s(T0, T0 + 10_000_000) == 1  # 10,000 s
    assert suggested_every_s(T0, T0 + 20_000_000) == 2
    day = suggested_every_s(T0, T0 + DAY_MS)  # 8.64 s -> 9 s
    assert day == 9
    week = suggested_every_s(T0, T0 + 7 * DAY_MS)
    assert week % 60 == 0
    assert week == 120
    assert suggested_every_s(T0, T0 + 365 * DAY_MS) == 3_180  # 3,153.6 s: whole minutes
    assert suggested_every_s(T0, T0 + 730 * DAY_MS) == 7_200  # 6,307 s: whole hours, the hourly aggregates serve it
    for span in (DAY_MS, 7 * DAY_MS, 365 * DAY_MS, 12_345_678):
        every = suggested_every_s(T0 + 1, T0 + 1 + span)
        assert (T0 + span) // (every * 1000) - (T0 + 1) // (every * 1000) + 1 <= MAX_POINTS


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60", 60), ("90s", 90), ("5m", 300), ("1h", 3600), ("1d", 86_400), (" 15m ", 900)],
)
def test_every_parses(text: str, seconds: int) -> None:
    assert parse_every(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "-5", "1.5m", "5 m", "1w", "m", "5M", "367d", "60s; DROP"])
def test_every_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="every"):
        parse_every(text)


@given(st.integers(1, 100_000), st.sampled_from(["", "s", "m", "h", "d"]))
def test_every_property(n: int, unit: str) -> None:
    seconds = n * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}[unit]
    if seconds <= 366 * 86_400:
        assert parse_every(f"{n}{unit}") == seconds
    else:
        with pytest.raises(ValueError, match="366"):
            parse_every(f"{n}{unit}")


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1795000020000", 1_795_000_020_000),
        ("2026-11-18T21:07:00Z", 1_795_036_020_000),
        ("2026-11-19T05:07:00+08:00", 1_795_036_020_000),
        ("2026-11-19T05:07:00 08:00", 1_795_036_020_000),  # "+" decoded to a space in a URL
        ("2026-11-18T21:07:00.250Z", 1_795_036_020_250),
        ("2026-11-18 21:07:00-00:00", 1_795_036_020_000),
    ],
)
def test_time_parses(text: str, ms: int) -> None:
    assert parse_time(text) == ms


@pytest.mark.parametrize("text", ["", "yesterday", "2026-11-18T21:07:00", "2026-11-18", "1795000020000.5"])
def test_time_refuses_unreadable_and_zoneless(text: str) -> None:
    with pytest.raises(ValueError, match="time"):
        parse_time(text)


def test_duration_seconds() -> None:
    assert [duration_s(t) for t in ("90s", "1m", "2h", "3d", "1w")] == [90, 60, 7200, 259_200, 604_800]
