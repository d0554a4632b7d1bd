"""What the stream agents do, without Faust: decode a reading record, run the rules per device, decide which rule
states must reach the changelog now and which can wait for the next checkpoint.

The agents (``streams.app``) stay thin: they hand records and clock ticks to a ``RuleProcessor`` and send what it
returns. Keeping this part free of Faust lets it be tested and measured directly.

State and the changelog. A device's ``DeviceState`` lives in memory while its partition is assigned here, and is
saved (as the JSON of ``DeviceState.dump()``) in a changelog-backed table. A state whose published alarm changed is
saved right after its finding was sent; any other change (a rate window, the last-seen time) is saved at the
partition's next checkpoint, every ``checkpoint_s``. So after a crash, alarms are exactly as officers were told,
and windows and last-seen times are at most ``checkpoint_s`` old (then brought up to date by the replayed readings).

Buckets. Faust pays about 100 µs per changelog record (measured: docs/benchmarks.md), so one record per device per
checkpoint would cap a worker near 8,000 device states a second. The table is therefore keyed by bucket,
``"{partition}:{n}"`` with ``n`` from the device id, each value holding the JSON of its devices' states: a checkpoint
writes one record per dirty bucket. The bucket lives on the device's own partition, so the table stays
co-partitioned with the readings (Faust writes a change to the partition of the record being processed).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable
from typing import Any, Protocol

from core.contracts import ReadingDict
from core.contracts.device import Device
from core.contracts.finding import Finding
from core.kafka.partitioning import Partitioner
from rules.engine import Engine
from rules.site import SiteState, correlate, site_key
from rules.state import DeviceState

logger = logging.getLogger(__name__)

#: What the table holds: bucket key -> {device id: JSON of its DeviceState.dump()}
Bucket = dict[str, str]


class StateTable(Protocol):
    def get(self, key: str) -> Bucket | None: ...


class RuleProcessor:
    def __init__(
        self,
        engine: Engine,
        device_of: Callable[[str], Device | None],
        partitioner: Partitioner,
        *,
        checkpoint_s: float = 30.0,
        buckets_per_partition: int = 256,
    ) -> None:
        self.engine = engine
        self._device_of = device_of
        self.partitioner = partitioner
        self._checkpoint_ms = int(checkpoint_s * 1000)
        self._buckets = buckets_per_partition
        self._states: dict[str, DeviceState] = {}
        self._dirty: dict[int, set[str]] = {}
        self._last_checkpoint: dict[int, int] = {}
        self._stream_time: dict[int, int] = {}
        self.duplicates = 0  # readings not evaluated: repeats of a (device, seq) (``rules.dedup``)

    # ------------------------------------------------------------------ readings

    def readings(
        self, batch: list[ReadingDict], partition: int, now: int, table: StateTable
    ) -> tuple[list[Finding], set[str]]:
        """Findings of one record, and the devices whose state must be saved once those findings are sent."""
        if batch:
            self.advance(partition, max(r["received_at"] for r in batch))
        findings: list[Finding] = []
        save_now: set[str] = set()
        dirty = self._dirty.setdefault(partition, set())
        device_of, evaluate = self._device_of, self.engine.evaluate
        for reading in batch:
            device_id = reading["device_id"]
            state = self._state(device_id, table)
            if state.repeat(reading):  # a redelivered copy: evaluated once, when the original came
                self.duplicates += 1
                continue
            found = evaluate(reading, device_of(device_id), state, now)
            if found:
                findings.extend(found)
                save_now.add(device_id)
            else:
                dirty.add(device_id)
        dirty -= save_now
        return findings, save_now

    # ------------------------------------------------------------------ clock

    def advance(self, partition: int, record_ms: int) -> None:
        """The pipeline into ``partition`` has got to ``record_ms`` (a record's time, a reading's arrival, or the
        gateway's heartbeat: an empty batch it writes to every partition every few seconds)."""
        if record_ms > self._stream_time.get(partition, 0):
            self._stream_time[partition] = record_ms

    def tick(
        self, partition: int, devices: dict[str, Device], wall: int, table: StateTable
    ) -> tuple[list[Finding], set[str]]:
        """Offline checks for the registered devices of ``partition``; devices to save once the findings are sent.

        Silence is measured at the partition's stream time, how far the pipeline into it has got, not at the wall
        clock: if the gateway or Kafka stalls, stream time stops and no device is declared offline for the
        pipeline's fault; a worker catching up a backlog judges silence as of the records it is at. Before any
        record (or heartbeat) has arrived on the partition there is no evidence either way, and no check."""
        now = self._stream_time.get(partition)
        if now is None:
            return [], set()
        findings: list[Finding] = []
        save_now: set[str] = set()
        partition_of = self.partitioner.partition_of
        for device_id, device in devices.items():
            if partition_of(device_id) != partition:
                continue
            state = self._state(device_id, table)
            fresh = state.since is None
            found = self.engine.check_silence(device, state, now, wall)
            if found or fresh:
                findings.extend(found)
                save_now.add(device_id)
        self._dirty.get(partition, set()).difference_update(save_now)
        return findings, save_now

    def checkpoint_due(self, partition: int, now: int) -> set[str]:
        """The devices of ``partition`` changed since its last checkpoint, when one is due (else none)."""
        last = self._last_checkpoint.setdefault(partition, now)
        if now - last < self._checkpoint_ms:
            return set()
        self._last_checkpoint[partition] = now
        return self._dirty.pop(partition, set())

    def bucket_writes(self, device_ids: set[str], table: StateTable) -> dict[str, Bucket]:
        """The table writes that save these devices' states: one per bucket touched."""
        writes: dict[str, Bucket] = {}
        states = self._states
        for device_id in device_ids:
            state = states.get(device_id)
            if state is None:
                continue
            key = self.bucket_of(device_id)
            bucket = writes.get(key)
            if bucket is None:
                bucket = writes[key] = dict(table.get(key) or {})
            bucket[device_id] = json.dumps(state.dump(), separators=(",", ":"))
        return writes

    def bucket_of(self, device_id: str) -> str:
        return f"{self.partitioner.partition_of(device_id)}:{zlib.crc32(device_id.encode()) % self._buckets}"

    # ------------------------------------------------------------------ ownership

    def forget_partitions(self, partitions: set[int]) -> None:
        """Partitions moved away (or came back after a rebalance): their cached states may be stale."""
        for device_id in [d for d in self._states if self.partitioner.partition_of(d) in partitions]:
            del self._states[device_id]
        for p in partitions:
            self._dirty.pop(p, None)

    def forget_device(self, device_id: str) -> None:
        self._states.pop(device_id, None)
        self.engine.forget(device_id)

    def __len__(self) -> int:
        return len(self._states)

    def _state(self, device_id: str, table: StateTable) -> DeviceState:
        state = self._states.get(device_id)
        if state is None:
            bucket = table.get(self.bucket_of(device_id))
            stored = bucket.get(device_id) if bucket else None
            state = DeviceState.load(json.loads(stored)) if stored else DeviceState()
            self._states[device_id] = state
        return state


class SiteProcessor:
    """Site correlation, fed with device findings regrouped by site (key = site key)."""

    def __init__(self, engine: Engine) -> None:
        self._rules = {r.id: r for r in engine.sites}
        self._listeners: dict[str, list[str]] = {}
        for rule in engine.sites:
            for device_rule in rule.rules:
                self._listeners.setdefault(device_rule, []).append(rule.id)
        self._states: dict[str, SiteState] = {}

    def routes(self, finding: Finding) -> list[str]:
        """The site keys a device finding must go to (none when no site rule listens to its rule)."""
        if finding.site_id is None or finding.device_id is None:
            return []
        return [
            site_key(self._rules[r], finding.site_id, finding.exercise) for r in self._listeners.get(finding.rule, ())
        ]

    def correlate(
        self, key: str, finding: Finding, now: int, load: Callable[[str], list[Any] | None]
    ) -> tuple[Finding | None, list[Any] | None]:
        """The site finding (if any) and the site state to save (``None``: delete, it is idle)."""
        rule = self._rules[key.rsplit(":", 1)[1]]
        state = self._states.get(key)
        if state is None:
            stored = load(key)
            state = SiteState.load(stored) if stored else SiteState()
            self._states[key] = state
        out = correlate(rule, state, finding, now)
        return out, (None if state.idle else state.dump())

    def forget(self) -> None:
        self._states.clear()
