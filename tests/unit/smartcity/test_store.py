"""The Kafka store's S3 subset, through its HTTP face in process: what Tansu relies on."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from xml.sax.saxutils import escape

import httpx
import pytest_asyncio

from smartcity.stack.store import HEALTH_PATH, ObjectStore, StoreServer

AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=smartcity/20261206/us-east-1/s3/aws4_request, Signature=x"}


@pytest_asyncio.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    from aiohttp.test_utils import TestServer

    store = ObjectStore(tmp_path / "store", sync="off")
    store.create_bucket("tansu")
    server = TestServer(StoreServer(store, "smartcity").app)
    await server.start_server()
    async with httpx.AsyncClient(base_url=str(server.make_url("")), headers=AUTH) as http:
        yield http
    await server.close()


async def test_conditional_puts_let_exactly_one_writer_win(client: httpx.AsyncClient) -> None:
    assert (await client.put("/tansu/a/w.json", content=b"1", headers={"If-None-Match": "*"})).status_code == 200
    again = await client.put("/tansu/a/w.json", content=b"2", headers={"If-None-Match": "*"})
    assert again.status_code == 412
    assert b"PreconditionFailed" in again.content
    got = await client.get("/tansu/a/w.json")
    etag = got.headers["ETag"]
    racers = await asyncio.gather(
        *[client.put("/tansu/a/w.json", content=str(i).encode(), headers={"If-Match": etag}) for i in range(8)]
    )
    assert sorted(r.status_code for r in racers) == [200] + [412] * 7
    assert (await client.get("/tansu/a/w.json", headers={"If-None-Match": etag})).status_code == 200, "changed"
    now = (await client.get("/tansu/a/w.json")).headers["ETag"]
    assert (await client.get("/tansu/a/w.json", headers={"If-None-Match": now})).status_code == 304
    assert (await client.put("/tansu/a/x", content=b"", headers={"If-Match": now})).status_code == 412, "missing"


async def test_listing_is_sorted_paged_and_times_strictly_increase(client: httpx.AsyncClient) -> None:
    for i in range(30):
        await client.put(f"/tansu/t/records/{i:020d}.batch", content=b"x")
    await client.put("/tansu/u/other", content=b"y")
    keys, times, token = [], [], None
    while True:
        params = {"list-type": "2", "prefix": "t/records/", "max-keys": "7"}
        if token:
            params["continuation-token"] = token
        page = (await client.get("/tansu", params=params)).text
        keys += [part.split("</Key>")[0] for part in page.split("<Key>")[1:]]
        times += [part.split("</LastModified>")[0] for part in page.split("<LastModified>")[1:]]
        if "<IsTruncated>true" not in page:
            break
        token = page.split("<NextContinuationToken>")[1].split("<")[0]
    assert keys == [f"t/records/{i:020d}.batch" for i in range(30)]
    assert times == sorted(times), "in the order written"
    assert len(set(times)) == 30, "milliseconds, one per write"
    folders = (await client.get("/tansu", params={"list-type": "2", "delimiter": "/"})).text
    assert "<Prefix>t/</Prefix>" in folders
    assert "<Prefix>u/</Prefix>" in folders
    assert "<Key>" not in folders


async def test_a_listing_shows_an_object_as_it_is_now_after_a_rewrite(client: httpx.AsyncClient) -> None:
    """Listing entries are made once per object version (Tansu lists a partition on every fetch): a rewritten object
    (a watermark, a group's offsets) must be listed with its new size and etag, not the first one's."""
    params = {"list-type": "2", "prefix": "w/"}
    first = await client.put("/tansu/w/watermark.json", content=b"{}")
    assert (
        f"<ETag>{escape(first.headers['ETag'])}</ETag><Size>2</Size>"
        in (await client.get("/tansu", params=params)).text
    )
    second = await client.put("/tansu/w/watermark.json", content=b'{"high":12}')
    listed = (await client.get("/tansu", params=params)).text
    assert f"<ETag>{escape(second.headers['ETag'])}</ETag><Size>11</Size>" in listed
    assert listed.count("<Contents>") == 1


async def test_reads_ranges_deletes_and_refusals(client: httpx.AsyncClient) -> None:
    await client.put("/tansu/k", content=b"0123456789")
    assert (await client.get("/tansu/k", headers={"Range": "bytes=2-4"})).content == b"234"
    assert (await client.get("/tansu/k", headers={"Range": "bytes=-3"})).content == b"789"
    assert (await client.get("/tansu/k", headers={"Range": "bytes=20-"})).status_code == 416
    head = await client.head("/tansu/k")
    assert head.headers["Content-Length"] == "10"
    assert "GMT" in head.headers["Last-Modified"]
    body = b"<Delete><Object><Key>k</Key></Object><Object><Key>gone</Key></Object></Delete>"
    assert b"<Deleted><Key>k</Key></Deleted>" in (await client.post("/tansu?delete", content=body)).content
    assert (await client.get("/tansu/k")).status_code == 404
    assert (await client.get("/tansu/../etc/passwd")).status_code in (400, 404)
    assert (await client.put("/tansu/a/%2E%2E/b", content=b"")).status_code == 400
    assert (await client.get("/nobucket/k")).status_code == 404
    assert (await client.get("/tansu/k", headers={"Authorization": "Credential=other/x"})).status_code == 403
    assert (await client.get(HEALTH_PATH, headers={"Authorization": ""})).status_code == 200
    assert (await client.get("/healthz", headers={"Authorization": ""})).status_code == 200  # as every service
    assert (await client.post("/tansu/k?uploads")).status_code == 501


def test_objects_and_their_order_survive_a_restart(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path, sync="write")
    store.create_bucket("b")
    bucket = store.buckets["b"]
    metas = [asyncio.run(store.put(bucket, f"p/{i}", b"v" * i, None, None)) for i in range(5)]
    (tmp_path / ".tmp" / "torn").write_bytes(b"half a write")
    again = ObjectStore(tmp_path)
    assert again.buckets["b"].keys == [f"p/{i}" for i in range(5)]
    assert [again.buckets["b"].objects[f"p/{i}"].mtime_ns for i in range(5)] == [m.mtime_ns for m in metas]
    assert not os.listdir(tmp_path / ".tmp"), "a torn write is not an object and is removed"
    later = asyncio.run(again.put(again.buckets["b"], "p/9", b"", None, None))
    assert later.mtime_ns > metas[-1].mtime_ns


def test_interval_sync_runs_only_after_writes(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path, sync="interval")
    store.create_bucket("b")

    async def scenario() -> list[bool]:
        ran = [await store.sync_filesystem()]
        await store.put(store.buckets["b"], "k", b"v", None, None)
        ran += [await store.sync_filesystem(), await store.sync_filesystem()]
        await store.delete_many(store.buckets["b"], ["k"])
        return [*ran, await store.sync_filesystem()]

    assert asyncio.run(scenario()) == [False, True, False, True]


_LARGE_BLOCK_PROBE = """
import ctypes, sys
from smartcity.stack.store import fix_mmap_threshold

libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()


def in_heap(address):
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            low, high = (int(x, 16) for x in line.split()[0].split("-"))
            if low <= address < high:
                return True
    return False


libc.free(libc.malloc(512 * 1024))  # a large body, freed
block = libc.malloc(512 * 1024)  # the next one
print("heap" if in_heap(block) else "mapped")
"""


def test_the_store_gives_every_large_block_its_own_mapping() -> None:
    """glibc's default moves large blocks into the heap once one was freed (its threshold follows them); the store
    fixes the threshold, so a large body's memory goes back to the system when it is freed."""

    def where(mode: str) -> str:
        done = subprocess.run([sys.executable, "-c", _LARGE_BLOCK_PROBE, mode], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert where("default") == "heap"
    assert where("fixed") == "mapped"
