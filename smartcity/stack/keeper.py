"""Retention and compaction for the one-machine Kafka, applied by its object store (``smartcity.stack.store``).

Tansu 0.6's S3 engine keeps every batch it was given: it applies neither ``retention.ms`` nor ``cleanup.policy``
(its maintenance is empty; DeleteRecords is unimplemented). And it lists a partition's whole ``records/`` prefix on
every fetch: measured, a partition of 10,000 batch objects stalls a consumer with a 50 ms fetch wait
(docs/benchmarks.md). So the store keeps each partition small itself, from what it holds (docs/reliability.md):

- **Topic configs** come from Tansu's ``meta.json`` (the ``configs`` given at CreateTopics). ``cleanup.policy``
  ``delete`` (the default) applies ``retention.ms`` (default 7 days, Kafka's; ``-1`` keeps forever) by the objects'
  times; ``compact`` removes superseded records' objects; ``compact,delete`` both.
- **Consumed and trimmed.** A ``delete`` topic named in ``trim_consumed`` (the readings and the stream worker's
  internal topics) also loses the batches that every consumer group committed past, once they are ``grace_ms`` old:
  readings are kept until stored and evaluated, plus a margin, not for hours of listings. Only groups that committed
  on the partition count; a topic nobody consumes keeps its ``retention.ms``.
- **Compaction** removes a batch object when every record in it has a later record with the same key, or is a
  tombstone (null value) older than ``delete.retention.ms`` (default a day) with nothing later. Objects are removed
  whole, never rewritten, so offsets and order are untouched; a reader skips the gaps (Kafka's compacted topics have
  them too).
- **Never the newest object** of a partition: Tansu answers ListOffsets from it. And only whole prefixes are removed
  by time and consumption (a consumer is never left before a gap it has not passed).
- **Merged.** Small batch objects of the topics kept for their retention (``delete``, not trimmed once consumed, not
  compacted) are merged into larger ones (``smartcity.stack.merging``): fewer objects to hold, list and remove.

``plan`` is pure: objects and offsets in, the keys to remove out. ``Keeper`` reads the store and applies it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from aiokafka.record.default_records import DefaultRecordBatch

from smartcity.stack.merging import MIN_AGE_MS, Member, Unmergeable, merge, plan_runs
from smartcity.stack.store import Bucket, ObjectStore

logger = logging.getLogger(__name__)

DEFAULT_RETENTION_MS: Final = 7 * 24 * 3600 * 1000  # Kafka's log.retention.hours=168
DEFAULT_DELETE_RETENTION_MS: Final = 24 * 3600 * 1000  # Kafka's delete.retention.ms
GRACE_MS: Final = 60_000
#: Runs merged per pass at most: a pass stays short, a backlog of runs is worked through pass by pass.
MERGES_PER_PASS: Final = 20

_BATCH: Final = re.compile(r"^clusters/([^/]+)/topics/(.+)/partitions/(\d{10})/records/(\d{20})\.batch$")
_OFFSET: Final = re.compile(r"^clusters/([^/]+)/groups/consumers/(.+)/offsets/(.+)/partitions/(\d{10})\.json$")


@dataclass(frozen=True, slots=True)
class Policy:
    compact: bool = False
    delete: bool = True
    retention_ms: int | None = DEFAULT_RETENTION_MS  # None: forever
    delete_retention_ms: int = DEFAULT_DELETE_RETENTION_MS
    trim_consumed: bool = False


def policy(configs: Iterable[Mapping[str, object]], trim_consumed: bool = False) -> Policy:
    """A topic's policy from Tansu's ``configs`` list (``[{"name": ..., "value": ...}]``)."""
    values = {str(c.get("name")): str(c.get("value")) for c in configs}
    cleanup = {p.strip() for p in values.get("cleanup.policy", "delete").split(",")}
    retention = int(values.get("retention.ms", DEFAULT_RETENTION_MS))
    return Policy(
        compact="compact" in cleanup,
        delete="delete" in cleanup,
        retention_ms=None if retention < 0 else retention,
        delete_retention_ms=int(values.get("delete.retention.ms", DEFAULT_DELETE_RETENTION_MS)),
        trim_consumed=trim_consumed and "delete" in cleanup,
    )


@dataclass(slots=True)
class Batch:
    """One batch object: its key, first offset, time written (ms), and, for compacted topics, its records."""

    key: str
    offset: int
    written_ms: int
    records: list[tuple[int, bytes | None, bool]] = field(default_factory=list)  # (offset, key, tombstone)


def plan(
    batches: list[Batch], committed: list[int], policy: Policy, now_ms: int, grace_ms: int = GRACE_MS
) -> list[str]:
    """The keys of one partition's ``batches`` (in offset order) to remove; ``committed``: every group's offset."""
    if len(batches) < 2:
        return []
    removable = batches[:-1]  # never the newest
    out: list[str] = []
    if policy.delete:
        consumed = min(committed) if committed and policy.trim_consumed else None
        for i, batch in enumerate(removable):
            expired = policy.retention_ms is not None and batch.written_ms < now_ms - policy.retention_ms
            passed = consumed is not None and batches[i + 1].offset <= consumed and batch.written_ms < now_ms - grace_ms
            if not (expired or passed):
                break
            out.append(batch.key)
    if policy.compact:
        gone = set(out)
        latest: dict[bytes | None, int] = {}
        for batch in batches:
            for offset, key, _tombstone in batch.records:
                latest[key] = offset
        for batch in removable:
            if batch.key in gone:
                continue
            if all(
                latest[key] > offset or (tombstone and batch.written_ms < now_ms - policy.delete_retention_ms)
                for offset, key, tombstone in batch.records
            ):
                out.append(batch.key)
    return out


def records(data: bytes, base: int) -> list[tuple[int, bytes | None, bool]]:
    """(offset, key, tombstone) of every record in a stored batch (Tansu keeps the client's batch, base offset 0)."""
    batch = DefaultRecordBatch(data)
    return [(base + r.offset, r.key, r.value is None) for r in batch]


@dataclass(frozen=True, slots=True)
class Partition:
    cluster: str
    topic: str
    partition: int


def parse_batch_key(key: str) -> tuple[Partition, int] | None:
    match = _BATCH.match(key)
    if match is None:
        return None
    cluster, topic, partition, offset = match.groups()
    return Partition(cluster, topic, int(partition)), int(offset)


def parse_offset_key(key: str) -> Partition | None:
    match = _OFFSET.match(key)
    if match is None:
        return None
    cluster, _group, topic, partition = match.groups()
    return Partition(cluster, topic, int(partition))


def committed_offset(data: bytes) -> int | None:
    try:
        value = json.loads(data).get("offset")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and value >= 0 else None


class Keeper:
    """Applies ``plan`` to every partition of a bucket of ``smartcity.stack.store``, every ``interval_s``."""

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        trim_consumed: frozenset[str],
        grace_ms: int = GRACE_MS,
        merge_after_ms: int = MIN_AGE_MS,
    ) -> None:
        self.store = store
        self.merge_after_ms = merge_after_ms
        self.bucket_name = bucket
        self.trim_consumed = trim_consumed
        self.grace_ms = grace_ms
        self._records: dict[str, list[tuple[int, bytes | None, bool]]] = {}  # objects never change: parsed once
        self._unmergeable: set[str] = set()  # batch objects that must stay as they are
        self.removed = 0

    def policies(self, bucket: Bucket) -> dict[tuple[str, str], Policy]:
        out: dict[tuple[str, str], Policy] = {}
        for key in bucket.keys:
            if not key.endswith("/meta.json") or key.count("/") != 2:
                continue
            cluster = key.split("/")[1]
            try:
                topics = json.loads(bucket.path(key).read_bytes()).get("topics", {})
            except (OSError, ValueError, AttributeError):
                continue
            for name, entry in topics.items():
                configs = entry.get("topic", {}).get("configs") or []
                out[(cluster, name)] = policy(configs, trim_consumed=name in self.trim_consumed)
        return out

    async def run_once(self, now_ms: int) -> int:
        """One pass over the bucket; returns the number of objects removed."""
        bucket = self.store.buckets.get(self.bucket_name)
        if bucket is None:
            return 0
        policies = self.policies(bucket)
        batches: dict[Partition, list[Batch]] = {}
        committed: dict[Partition, list[int]] = {}
        for key in bucket.keys:
            found = parse_batch_key(key)
            if found is not None:
                where, offset = found
                batches.setdefault(where, []).append(Batch(key, offset, bucket.objects[key].mtime_ns // 1_000_000))
                continue
            partition = parse_offset_key(key)
            if partition is not None:
                with contextlib.suppress(OSError):
                    position = committed_offset(bucket.path(key).read_bytes())
                    if position is not None:
                        committed.setdefault(partition, []).append(position)
        doomed: list[str] = []
        for where, found_batches in batches.items():
            rule = policies.get((where.cluster, where.topic))
            if rule is None:
                continue
            if rule.compact:
                for batch in found_batches:
                    batch.records = self._parsed(bucket, batch)
            doomed += plan(found_batches, committed.get(where, []), rule, now_ms, self.grace_ms)
        await self.store.delete_many(bucket, doomed)
        live = set(bucket.objects)
        self._records = {k: v for k, v in self._records.items() if k in live}
        self._unmergeable &= live
        self.removed += len(doomed)
        mergeable = [
            found_batches
            for where, found_batches in batches.items()
            if (rule := policies.get((where.cluster, where.topic))) is not None
            and rule.delete
            and not rule.compact
            and not rule.trim_consumed
        ]
        merged = await self._merge(bucket, mergeable, now_ms)
        return len(doomed) + merged

    async def _merge(self, bucket: Bucket, partitions: list[list[Batch]], now_ms: int) -> int:
        """Merge up to ``MERGES_PER_PASS`` runs of small batch objects; returns the objects that went away."""
        gone = budget = 0
        for found_batches in partitions:
            members = [
                # an unmergeable object ends a run: it is planned as a large one
                Member(batch.key, batch.offset, 1 << 62 if batch.key in self._unmergeable else meta.size,
                       batch.written_ms)
                for batch in found_batches
                if (meta := bucket.objects.get(batch.key)) is not None
            ]  # fmt: skip
            for run in plan_runs(members, now_ms, min_age_ms=self.merge_after_ms):
                if budget >= MERGES_PER_PASS:
                    return gone
                budget += 1
                gone += await self._merge_run(bucket, run)
        return gone

    async def _merge_run(self, bucket: Bucket, run: list[Member]) -> int:
        try:
            bodies = await asyncio.to_thread(lambda: [(m.offset, bucket.path(m.key).read_bytes()) for m in run])
            body = await asyncio.to_thread(merge, bodies)
        except Unmergeable as exc:
            logger.info("kafka store: %s; kept as it is", exc)
            self._unmergeable.update(m.key for m in run if m.offset == exc.offset)
            return 0
        except OSError:
            return 0  # removed meanwhile: the next pass plans again
        except Exception:
            logger.exception("kafka store: the batches from %s cannot be merged; kept as they are", run[0].key)
            self._unmergeable.update(m.key for m in run)
            return 0
        if not await self.store.merge_objects(bucket, [m.key for m in run], body):
            return 0
        return len(run) - 1

    def _parsed(self, bucket: Bucket, batch: Batch) -> list[tuple[int, bytes | None, bool]]:
        cached = self._records.get(batch.key)
        if cached is None:
            try:
                cached = records(bucket.path(batch.key).read_bytes(), batch.offset)
            except Exception:
                logger.exception("kafka store: batch %s cannot be read; it is kept", batch.key)
                cached = [(batch.offset, b"\0unreadable\0" + batch.key.encode(), False)]  # a key nothing supersedes
            self._records[batch.key] = cached
        return cached

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                removed = await self.run_once(time.time_ns() // 1_000_000)
            except Exception:
                logger.exception("kafka store: the retention pass failed")
                continue
            if removed:
                logger.info("kafka store: removed %d objects (retention, compaction and merging)", removed)
