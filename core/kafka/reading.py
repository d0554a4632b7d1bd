"""Reading a topic, or some of its partitions, up to its end offsets: state rebuilt from a log before going on.

Used where a service rebuilds memory from Kafka: the alerts service's state and silences (``read_table``), the
InfluxDB writer's repeat window (a range of offsets below the committed one), the device directory's first
catch-up, and the tests. What ``read_to_end`` guarantees, and why:

- **Every record below the end, once, in offset order per partition.** The end is the broker's end offsets when
  the call starts (after seeking), unless the caller gives its own.
- **The broker's end offsets are a floor, not a bound.** The one-machine broker, Tansu, answers ListOffsets with
  the first offset of a partition's last record batch plus one, so the rest of that batch lies above its answer
  although it was written before the call. Reading to the broker's end therefore hands over whole fetched batches
  (a fetch is never cut inside a batch: no ``max_records``), and with them any record that arrived after the call
  in the same fetch. That is harmless where it is used: state rebuilt from a log only gets newer.
- **Ends the caller gives are exact** (the writer's are a group's committed offsets, which name real records):
  nothing at or past them is handed over, and the consumer is moved back to them, so a caller that goes on with its
  own consumer reads those records next, not never.
- **Done means done**: it returns the partitions it did *not* read to their end, so an empty answer is a complete
  read. A ``timeout_s`` that passes while reading returns what is left (the writer's repeat window is best effort);
  one that passes before the end offsets are known, and any failure of Kafka, raise ``KafkaUnavailable``.
- Given a bootstrap address it uses a consumer of its own, without a group (a reader needs every partition, and a
  read must not move anyone's committed offsets), fetching big batches, and always stops it. Given a started
  consumer it leaves it running, assigned to the partitions it read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from core.errors import KafkaUnavailable
from core.kafka.consumer import stop_consumer, topic_partitions

logger = logging.getLogger(__name__)

#: What one fetch may bring per partition: a read to the end wants big batches.
FETCH_BYTES = 8 * 1024 * 1024

#: Called with each aiokafka ``ConsumerRecord`` handed over.
OnRecord = Callable[[Any], object]


async def read_to_end(
    source: str | AIOKafkaConsumer,
    what: str | list[TopicPartition],
    on_record: OnRecord,
    *,
    start: Mapping[TopicPartition, int] | None = None,
    ends: Mapping[TopicPartition, int] | None = None,
    timeout_s: float | None = None,
) -> dict[TopicPartition, int]:
    """Hand every record of ``what`` (a topic: all its partitions; or the partitions given) from ``start`` (by
    default the beginning) up to ``ends`` (by default the end offsets now) to ``on_record``. Returns the partitions
    not read to their end when ``timeout_s`` passed, with their end offsets: empty once everything was read.

    ``source`` is a bootstrap address (a consumer of our own, stopped after) or a started consumer of the caller's.
    """
    own = isinstance(source, str)
    consumer: AIOKafkaConsumer = (
        AIOKafkaConsumer(
            bootstrap_servers=source,
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=FETCH_BYTES,
        )
        if own
        else source
    )
    where = what if isinstance(what, str) else ", ".join(sorted({tp.topic for tp in what}))
    where += f" from Kafka {source}" if own else ""
    deadline = None if timeout_s is None else asyncio.get_running_loop().time() + timeout_s
    pending: dict[TopicPartition, int] | None = None
    try:
        async with asyncio.timeout_at(deadline):
            if own:
                await consumer.start()
            tps = await topic_partitions(consumer, what) if isinstance(what, str) else list(what)
            if not tps:
                return {}
            if consumer.assignment() != set(tps):
                consumer.assign(tps)
            starts = start or {}
            beginning = [tp for tp in tps if tp not in starts]
            if beginning:
                await consumer.seek_to_beginning(*beginning)
            for tp in tps:
                if tp in starts:
                    consumer.seek(tp, starts[tp])
            given = ends or {}
            missing = [tp for tp in tps if tp not in given]
            now = await consumer.end_offsets(missing) if missing else {}
            pending = {tp: given[tp] if tp in given else now[tp] for tp in tps}
            await _read(consumer, pending, on_record, exact=set(given))
    except TimeoutError as exc:
        if pending is None:
            raise KafkaUnavailable(f"cannot read {where}: no answer within {timeout_s} s") from exc
        return pending
    except (KafkaError, OSError) as exc:
        raise KafkaUnavailable(f"cannot read {where}: {exc!r}") from exc
    finally:
        if own:
            await stop_consumer(consumer)
    return pending


async def _read(
    consumer: AIOKafkaConsumer, pending: dict[TopicPartition, int], on_record: OnRecord, exact: set[TopicPartition]
) -> None:
    """Read until every partition of ``pending`` reached its end; each one reached is removed from ``pending``.
    Records at or past the end of an ``exact`` partition are not handed over (the module docstring says why)."""
    while True:
        for tp, end in list(pending.items()):
            if await consumer.position(tp) >= end:
                del pending[tp]
        if not pending:
            return
        for tp, records in (await consumer.getmany(*pending, timeout_ms=200)).items():
            bound = pending[tp] if tp in exact else None
            for record in records:
                if bound is not None and record.offset >= bound:
                    consumer.seek(tp, bound)  # what lies past the end is the caller's to read next
                    break
                on_record(record)


async def read_table(bootstrap: str, topic: str, *, timeout_s: float = 30.0) -> dict[str, bytes | None]:
    """A compacted topic as a table: every key's latest value (None: deleted), read to the end as of now.

    Raises ``KafkaUnavailable`` when Kafka fails or the read does not end within ``timeout_s``: a partial table
    would look like deletions.
    """
    latest: dict[str, bytes | None] = {}

    def keep(record: Any) -> None:
        latest[record.key.decode() if record.key else ""] = record.value

    left = await read_to_end(bootstrap, topic, keep, timeout_s=timeout_s)
    if left:
        raise KafkaUnavailable(f"cannot read {topic!r} from Kafka {bootstrap}: not read to its end in {timeout_s} s")
    return latest


async def exact_end_offsets(
    bootstrap: str, tps: list[TopicPartition], *, timeout_s: float = 30.0
) -> dict[TopicPartition, int]:
    """The end offsets of ``tps`` as a fetch reports them (each partition's high watermark), not as ListOffsets does:
    the one-machine broker answers ListOffsets with the first offset of the last batch plus one (the module
    docstring), which is not where a partition ends when its last batch holds several records. A reader that stops
    at the end offsets and drops what lies past them, as Faust's table recovery does, needs this one.

    From the ListOffsets answer (a floor) it seeks into the last batch and fetches it once; the fetch answer carries
    the partition's high watermark. ``KafkaUnavailable`` when Kafka fails or does not answer within ``timeout_s``.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20)
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            consumer.assign(tps)
            floors = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(floors[tp] - 1, 0))
            ends: dict[TopicPartition, int] = {}
            while len(ends) < len(tps):
                await consumer.getmany(*[tp for tp in tps if tp not in ends], timeout_ms=200)
                for tp in tps:
                    highwater = consumer.highwater(tp)
                    if tp not in ends and highwater is not None:
                        ends[tp] = max(highwater, floors[tp])
            return ends
    except (TimeoutError, KafkaError, OSError) as exc:
        raise KafkaUnavailable(
            f"cannot read the end offsets of {sorted(set(tp.topic for tp in tps))}: {exc!r}"
        ) from exc
    finally:
        await stop_consumer(consumer)
