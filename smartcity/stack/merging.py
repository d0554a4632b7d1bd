"""Small batch objects of the kept topics merged into larger ones, in the one-machine Kafka's store.

Tansu's S3 engine writes every produced batch as an object of its own, and lists a partition's whole ``records/``
prefix on every fetch that has something to read. The topics kept for days (findings, alerts, refused readings)
get a batch per alert or per refusal: at the soak's probe rate, 8 objects a second, each a file of a few hundred
bytes (a 4 KiB block on disk), an entry in the store's index (about 1 KiB of memory), and a line in every listing.
Kept for 7 days, that is millions of objects, and a listing that no fetch wait can cover.

So the keeper (``smartcity.stack.keeper``) merges them. A **run** is a sequence of consecutive batch objects of one
partition of a ``delete`` topic (compacted topics are left alone: compaction removes objects whole), each smaller
than ``small_bytes``, each older than ``min_age_ms``, never the partition's newest object (Tansu answers ListOffsets
from it). A run of at least ``min_objects`` (or one whose oldest object is older than ``max_wait_ms``) becomes one
batch object:

- under the key of its first object, with every record at its own offset (the records' offset deltas re-based on
  the first object's offset: Kafka offsets are contiguous, so the merged batch covers exactly the run's offsets),
  the records' keys, values, headers and timestamps as they were;
- uncompressed, without producer id (a merged batch is no producer's: idempotence applies to the append, long
  past), ``CreateTime``;
- with the time of its newest member, so retention by time never removes a record earlier than it would have.

Fetches see the same records at the same offsets. A fetch that listed the objects just before a merge may ask for a
member that is gone (Tansu answers that fetch with an error and the client fetches again) or get the merged batch
and a member: Kafka clients skip records below their position (a broker returns whole batches, so a batch may start
before the fetch offset). Control and transactional batches, and ``LogAppendTime`` ones, end a run: they are kept
as they are. ``plan_runs`` is pure; ``merge`` builds the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

SMALL_BYTES: Final = 64 * 1024
MIN_OBJECTS: Final = 16
MAX_OBJECTS: Final = 2_000
MAX_BYTES: Final = 1024 * 1024
MIN_AGE_MS: Final = 60_000
MAX_WAIT_MS: Final = 600_000


@dataclass(frozen=True, slots=True)
class Member:
    """One batch object of a partition, in offset order: its key, first offset, size and time written (ms)."""

    key: str
    offset: int
    size: int
    written_ms: int


def plan_runs(
    members: Sequence[Member],
    now_ms: int,
    *,
    small_bytes: int = SMALL_BYTES,
    min_objects: int = MIN_OBJECTS,
    max_objects: int = MAX_OBJECTS,
    max_bytes: int = MAX_BYTES,
    min_age_ms: int = MIN_AGE_MS,
    max_wait_ms: int = MAX_WAIT_MS,
) -> list[list[Member]]:
    """The runs of ``members`` (one partition, offset order) to merge, each of two objects or more (module
    docstring)."""
    runs: list[list[Member]] = []
    run: list[Member] = []
    size = 0

    def close() -> None:
        nonlocal run, size
        if len(run) >= 2 and (len(run) >= min_objects or run[0].written_ms < now_ms - max_wait_ms):
            runs.append(run)
        run, size = [], 0

    for member in members[:-1]:  # never the newest
        if member.written_ms >= now_ms - min_age_ms:
            break
        if member.size >= small_bytes:
            close()
            continue
        if len(run) >= max_objects or size + member.size > max_bytes:
            close()
        run.append(member)
        size += member.size
    close()
    return runs


class Unmergeable(ValueError):
    """A member that must stay as it is: a control or transactional batch, or one stamped ``LogAppendTime``."""

    def __init__(self, offset: int, why: str) -> None:
        super().__init__(f"the batch at offset {offset} {why}")
        self.offset = offset


def merge(bodies: Sequence[tuple[int, bytes]]) -> bytes:
    """One batch of the records of ``bodies`` ((first offset, stored batch) in offset order, Tansu's stored form:
    base offset 0), at their offsets relative to the first. ``Unmergeable`` for a batch that must stay as it is."""
    first = bodies[0][0]
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=2**31 - 1,
    )
    for offset, body in bodies:
        batch = DefaultRecordBatch(body)
        if batch.is_control_batch or batch.is_transactional or batch.timestamp_type != 0:
            raise Unmergeable(offset, "is a control, transactional or LogAppendTime batch")
        shift = offset - first - batch.base_offset  # record.offset is the batch's base offset plus its delta
        for record in batch:
            headers = [(k, v) for k, v in record.headers]
            if builder.append(shift + record.offset, record.timestamp, record.key, record.value, headers) is None:
                raise Unmergeable(offset, "does not fit")  # batch_size is 2 GiB: never
    return bytes(builder.build())
