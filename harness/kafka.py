"""Every record of a Kafka topic, from its beginning to its end at the moment of the call.

For accounting after a run (was every reading published in Kafka? when was a probe's record produced?): it reads
without a consumer group, commits nothing, and stops at the end offsets taken when it started, so it returns even
while producers keep writing. The reading itself is ``core.kafka.reading.read_to_end``.
"""

from __future__ import annotations

from collections.abc import Callable

from core.kafka.reading import read_to_end


async def read_topic(bootstrap: str, topic: str, keep: Callable[[int, bytes], None]) -> None:
    """Give ``keep`` (record timestamp in epoch ms, value) for every record of every partition of ``topic`` up to its
    end offset now, in offset order within each partition (none for a topic the broker does not know)."""
    await read_to_end(bootstrap, topic, lambda record: keep(record.timestamp, record.value))
