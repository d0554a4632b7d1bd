"""Reading InfluxDB back in tests: rows of an InfluxQL query as dicts (columns, and the series' tags)."""

from __future__ import annotations

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
