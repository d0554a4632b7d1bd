"""influxd 1.6 as the stack starts it: the settings that bound its memory are the ones it runs with.

InfluxDB 1.6 ignores configuration keys it does not know, without a word in its log: ``influxd config`` prints the
configuration it would run with, so a misspelt key shows as a default here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from core.process import free_port
from harness.measure import memory_mib
from smartcity.bench.soak import GO_HEAP, go_heap_mib
from smartcity.stack.services import INFLUXD_MEMORY, Launch, influxdb
from tests.influx_util import influx_rows

pytestmark = pytest.mark.integration


def _shown(conf: Path) -> dict[str, str]:
    """``influxd config``'s [data] section: key -> value as printed."""
    printed = subprocess.run(
        ["/usr/bin/influxd", "config", "-config", str(conf)], capture_output=True, text=True, check=True
    ).stdout
    data = printed.split("[data]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r"^\s*([\w-]+) = (.*)$", data, re.M))


@pytest.mark.parametrize("bounded", [True, False])
def test_influxd_runs_with_the_memory_settings(tmp_path: Path, bounded: bool) -> None:
    launch = influxdb(tmp_path, "127.0.0.1", free_port(), free_port(), bounded=bounded)
    shown = _shown(Path(launch.process.argv[-1]))
    ours = {key: f'"{value}"' if isinstance(value, str) else str(value) for key, value in INFLUXD_MEMORY.items()}
    if bounded:
        assert {key: shown.get(key) for key in ours} == ours
    else:  # influxd's own defaults: the configuration before issue 19
        assert shown["index-version"] == '"inmem"'
        assert shown["cache-max-memory-size"] == str(1024**3)


async def test_the_stack_influxd_indexes_series_on_disk(influx_service: Launch, unique: str) -> None:
    """A database written to by the session's influxd has a tsi1 index directory in its shard."""
    db = f"c{unique}"
    async with httpx.AsyncClient(base_url=influx_service.url) as client:
        await client.post("/query", params={"q": f'CREATE DATABASE "{db}"'})
        response = await client.post("/write", params={"db": db}, content=b"probe,device_id=d1 v=1")
    assert response.status_code == 204
    assert await influx_rows(influx_service.url, db, "SELECT * FROM probe")
    data = Path(influx_service.process.argv[-1]).parent / "data" / db
    assert list(data.glob("*/*/index")), f"no tsi1 index under {data}"


def test_the_soak_reads_the_stack_influxd_heap(influx_service: Launch) -> None:
    """The soak judges influxd's collected heap (``GO_HEAP``): influxd 1.6 serves it at ``/debug/vars``, under the
    name the stack gives the process, and it is part of what the process holds."""
    assert influx_service.process.name in GO_HEAP
    heap = go_heap_mib(influx_service.url + GO_HEAP[influx_service.process.name])
    assert heap is not None
    assert 0 < heap <= memory_mib(influx_service.process.pid)["anon"]
    assert go_heap_mib(influx_service.url + "/no-such-page") is None
