"""One reconnecting consumer loop for every service that consumes Kafka.

``consume_forever(build, run)`` builds a consumer with the caller's factory (which keeps each caller's knobs: a
group or none, a rebalance listener, the fetch wait, the session timeout), starts it and hands it to the caller's
``run``. When Kafka fails (``KafkaError``, ``OSError``, ``KafkaUnavailable``) it logs one line and builds a new
consumer after a backoff (``core.backoff``, honouring the failure's ``retry_after``). What it guarantees, and why:

- **A new consumer every turn, never a restarted one.** aiokafka's consumer cannot be started twice, and a new one
  starts from the committed offsets (or wherever ``run`` seeks), so nothing fetched but not yet processed is
  skipped.
- **Every consumer is stopped**, whatever ended its turn (a failure, ``stop``, a bug, cancellation). In a group that
  is a clean leave: a successor gets the partitions at once rather than after the session timeout. It is stopped
  before the backoff, not after it, for the same reason. ``stop_consumer`` also survives an aiokafka 0.14 bug: when
  the broker is gone, ``AIOKafkaConsumer.stop`` can raise the ``CancelledError`` of a fetch that was sleeping out
  its retry backoff (``Fetcher.close`` awaits the fetch tasks it cancelled; aio-libs/aiokafka#647 is the same
  family) and return before closing its client. Raised out of the loop, that error ended it as if cancelled: a
  Kafka outage could stop a service consuming for good.
- **The backoff is reset once a consumer started**: a broker that came back gets a quick reconnect the next time it
  fails, not the longest wait of the last outage.
- **It ends when ``stop`` is set** (checked before each consumer, and during the backoff), or runs until cancelled.
  ``run`` returning while ``stop`` is not set means "again": a new consumer is built at once (the device feed does
  that while its topic does not exist yet).
- **A bug ends the loop** (it raises), unless the caller asks for ``reconnect_on_bug``: then it is logged with its
  traceback and the loop reconnects as after a Kafka failure. The alerts service asks for that, because one batch
  that trips a bug must not end alerting for good; the others would rather fail loudly (their supervisor and health
  checks see it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from core.backoff import Backoff, pause, retry_after
from core.errors import KafkaUnavailable

logger = logging.getLogger(__name__)


def consumer_backoff() -> Backoff:
    """The consumers' reconnect waits: 0.5 s, doubling, at most 10 s."""
    return Backoff(0.5, 10.0)


async def consume_forever(
    build: Callable[[], AIOKafkaConsumer],
    run: Callable[[AIOKafkaConsumer], Awaitable[None]],
    *,
    label: str,
    stop: asyncio.Event | None = None,
    prepare: Callable[[], Awaitable[None]] | None = None,
    backoff: Backoff | None = None,
    reconnect_on_bug: bool = False,
) -> None:
    """Build, start and ``run`` consumers until ``stop`` is set (see the module docstring for the guarantees).

    ``label`` starts every log line (``"alerts: findings consumer"``). ``prepare`` runs before each consumer starts
    (creating a topic first); its failures count as Kafka's.
    """
    backoff = backoff or consumer_backoff()
    failed = False
    while stop is None or not stop.is_set():
        consumer = build()
        try:
            if prepare is not None:
                await prepare()
            await consumer.start()
            backoff.reset()
            if failed:
                logger.info("%s: consuming again", label)
                failed = False
            await run(consumer)
            continue
        except (KafkaError, OSError, KafkaUnavailable) as exc:
            wait = backoff.next(retry_after(exc))
            logger.warning("%s: Kafka failed (%r); reconnecting in %.1f s", label, exc, wait)
        except Exception:
            if not reconnect_on_bug:
                raise
            wait = backoff.next()
            logger.exception("%s: consumer crashed; reconnecting in %.1f s", label, wait)
        finally:
            await stop_consumer(consumer)
        failed = True
        if await pause(wait, stop):
            return


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic`` as the broker's metadata has it now, in order; none if the topic does not exist.

    Asks for the metadata of all topics, never of ``topic`` by name: a request naming a missing topic may create it.
    """
    await consumer.topics()
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop ``consumer`` and close its connections, even when its broker is gone (see the module docstring).

    A ``CancelledError`` is raised on only when this task itself is being cancelled."""
    try:
        await consumer.stop()
    except (KafkaError, OSError) as exc:
        logger.debug("consumer stopped with an error: %r", exc)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        # aiokafka's own cancellation of a fetch, leaked out of ``Fetcher.close``: finish what ``stop`` left undone
        with contextlib.suppress(KafkaError, OSError):
            await consumer._client.close()


async def follow_topic(
    bootstrap: str,
    topic: str,
    label: str,
    run: Callable[[AIOKafkaConsumer, list[TopicPartition]], Awaitable[None]],
    prepare: Callable[[], Awaitable[None]] | None = None,
    fetch_wait_ms: int = 500,
) -> None:
    """Consume every partition of ``topic`` without a consumer group (each reader needs all of it), handing the
    assigned consumer to ``run``; a new consumer after each Kafka failure, with backoff (``core.kafka.consumer``);
    while the topic does not exist, a new consumer every second. Runs until cancelled. For readers that need
    every record of a topic whatever the others read: the device directory, device health."""

    def build() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=fetch_wait_ms)

    async def assigned(consumer: AIOKafkaConsumer) -> None:
        tps = await topic_partitions(consumer, topic)
        if not tps:
            await asyncio.sleep(1)
            return
        consumer.assign(tps)
        await run(consumer, tps)

    await consume_forever(build, assigned, label=label, prepare=prepare)
