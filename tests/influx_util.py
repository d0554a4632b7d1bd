"""Reading InfluxDB back in tests: rows of an InfluxQL query as dicts (columns, and the series' tags)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx


async def influx_rows(url: str, db: str, query: str) -> list[dict[str, Any]]:
    """Rows of ``query`` (time in epoch ms); a series without values (SHOW on an empty database) gives none."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.get("/query", params={"db": db, "q": query, "epoch": "ms"})
    response.raise_for_status()
    result = response.json()["results"][0]
    assert "error" not in result, result
    return [
        dict(zip(series["columns"], values, strict=True)) | series.get("tags", {})
        for series in result.get("series", [])
        for values in series.get("values", [])
    ]


def wait_gas_count(url: str, prefix: str, since_ms: int, expected: int, timeout: float = 120) -> int:
    """The count of ``ch4_lel`` points of devices named ``prefix...`` from ``since_ms`` on, polled until it reaches
    ``expected`` or ``timeout`` passes (for tests of a whole stack, from synchronous code)."""
    query = f'SELECT count("ch4_lel") FROM "gas" WHERE "device_id" =~ /^{prefix}/ AND time >= {since_ms}ms'
    deadline = time.monotonic() + timeout
    while True:
        rows = asyncio.run(influx_rows(url, "smartcity", query))
        stored = int(rows[0]["count"]) if rows else 0
        if stored >= expected or time.monotonic() > deadline:
            return stored
        time.sleep(2)


def gas_points(url: str, prefix: str, since_ms: int) -> list[dict[str, Any]]:
    query = f'SELECT "device_id", "ch4_lel" FROM "gas" WHERE "device_id" =~ /^{prefix}/ AND time >= {since_ms}ms'
    return asyncio.run(influx_rows(url, "smartcity", query))
