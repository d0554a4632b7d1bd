"""One batching sink for InfluxDB: lines in, batches out, refused lines found and handed back to the caller.

The shape of every sink and channel (quix-streams' ``BatchingSink``): ``start``, ``add``, ``flush``, ``close``.
``add``/``flush`` keep lines in the sink's buffer until InfluxDB has them (the alert archive: nothing else keeps
them). ``write`` writes a batch the caller keeps itself (the readings writer: Kafka keeps its batch until the
commit, and the batch is written again after a failure). What is guaranteed:

- **Written means taken.** ``write`` and ``flush`` return only once InfluxDB answered 2xx for every line it did not
  refuse; lines go out in order, ``influx_batch_lines`` per request.
- **A refused line never blocks the others.** InfluxDB 1.x refuses a whole request for one bad line (400: a field
  type conflict, a point beyond the retention policy). The sink then halves the request, and halves again, until
  the refused lines are found, and writes the rest. ``max_halvings`` caps the requests this costs (at most
  ``2 * 2**max_halvings`` per request): past the cap the group still refused is handed over whole. ``None``
  halves down to single lines. (InfluxDB 1.x stores the good points of a request it refuses, a "partial write":
  a group handed over past the cap may be partly stored.)
- **The caller decides what a refusal means.** Lines InfluxDB refused for good are handed to ``on_refused`` with
  the ``InfluxRefused`` that says why (InfluxDB's own text, and ``status``): isolated lines on a 400, a whole
  request on any other refusal (401/403 credentials, 404 no database: the setup, not the lines). When the
  callback returns, those lines are settled (recorded, logged, dropped) and the sink goes on with the rest; when it
  raises, the write stops with that exception (the readings writer raises a setup refusal back, to wait and retry).
- **Not now is raised, nothing lost.** InfluxDB unreachable, 5xx, 429: ``InfluxUnavailable`` with ``retry_after``
  for the caller to wait. ``flush`` first puts the lines it had not settled back at the front of the buffer, in
  order (also when its task is cancelled, or the callback raised). Retrying is safe: a line written twice is
  stored once (same measurement, tags and timestamp); a refused line may be handed over again.
- **The buffer is bounded** when ``max_buffered`` is set: past it the oldest lines are dropped, counted in
  ``dropped`` and logged, once when dropping starts and once, with the count, after the next flush that got
  through.

``written``, ``refused`` and ``dropped`` count lines since the sink was made.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from core.influx.client import InfluxRefused, LineWriter

logger = logging.getLogger(__name__)

#: ``on_refused(lines, refusal)``: InfluxDB refused ``lines`` for good, ``refusal`` says why.
OnRefused = Callable[[Sequence[str], InfluxRefused], Awaitable[None]]


@dataclass
class _Progress:
    """How far one write got: lines at the front of the batch written or handed over, and how many handed over."""

    settled: int = 0
    refused: int = 0


class InfluxSink:
    """Writes batches of lines through ``writer`` (which it starts and closes); see the module docstring.

    ``name`` says whose sink it is in log lines ("alert archive", "writer").
    """

    def __init__(
        self,
        writer: LineWriter,
        on_refused: OnRefused,
        *,
        name: str,
        max_halvings: int | None = None,
        max_buffered: int | None = None,
    ) -> None:
        if max_halvings is not None and max_halvings < 0:
            raise ValueError("max_halvings must be 0 or more (None: down to single lines)")
        if max_buffered is not None and max_buffered < 1:
            raise ValueError("max_buffered must be at least 1 (None: unbounded)")
        self.writer = writer
        self.name = name
        self.max_halvings = max_halvings
        self.max_buffered = max_buffered
        self.written = 0
        self.refused = 0
        self.dropped = 0
        self._on_refused = on_refused
        self._buffer: deque[str] = deque()
        self._lock = asyncio.Lock()
        self._unlogged_drops = 0

    @property
    def pending(self) -> int:
        """Lines in the buffer, waiting for the next flush."""
        return len(self._buffer)

    async def start(self) -> None:
        """Start the writer (idempotent)."""
        await self.writer.start()

    def add(self, line: str) -> None:
        """Buffer one line for the next flush; never blocks, never raises (drops the oldest past ``max_buffered``)."""
        self._buffer.append(line)
        self._trim()

    async def flush(self) -> int:
        """Write every buffered line; returns how many were handed to ``on_refused``. On an exception (see the
        module docstring) the lines not settled are back in the buffer."""
        async with self._lock:
            if not self._buffer:
                return 0
            batch = list(self._buffer)
            self._buffer.clear()
            progress = _Progress()
            try:
                await self._write(batch, progress)
            except BaseException:
                self._buffer.extendleft(reversed(batch[progress.settled :]))
                self._trim()
                raise
            if self._unlogged_drops:
                logger.warning("%s: %d lines were dropped while InfluxDB was down", self.name, self._unlogged_drops)
                self._unlogged_drops = 0
            return progress.refused

    async def write(self, lines: Sequence[str]) -> int:
        """Write ``lines`` now, past the buffer; returns how many were handed to ``on_refused``. On an exception
        the caller still holds the batch: writing it again whole is safe."""
        progress = _Progress()
        await self._write(lines, progress)
        return progress.refused

    async def close(self) -> None:
        """Close the writer. Buffered lines are not flushed here: ``flush`` first (``pending`` says how many)."""
        await self.writer.close()

    async def __aenter__(self) -> InfluxSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _write(self, lines: Sequence[str], progress: _Progress) -> None:
        size = self.writer.conn.influx_batch_lines
        for start in range(0, len(lines), size):
            await self._isolating(lines[start : start + size], 0, progress)

    async def _isolating(self, lines: Sequence[str], depth: int, progress: _Progress) -> None:
        """Write ``lines`` (at most one request); on a 400, halve until the refused lines are isolated or the cap
        is reached, and hand those over."""
        try:
            await self.writer.write(lines)
        except InfluxRefused as exc:
            capped = self.max_halvings is not None and depth >= self.max_halvings
            if exc.status == 400 and len(lines) > 1 and not capped:
                middle = len(lines) // 2
                await self._isolating(lines[:middle], depth + 1, progress)
                await self._isolating(lines[middle:], depth + 1, progress)
                return
            await self._on_refused(lines, exc)
            self.refused += len(lines)
            progress.refused += len(lines)
        else:
            self.written += len(lines)
        progress.settled += len(lines)

    def _trim(self) -> None:
        if self.max_buffered is None:
            return
        while len(self._buffer) > self.max_buffered:
            self._buffer.popleft()
            self.dropped += 1
            if self._unlogged_drops == 0:
                logger.warning("%s: buffer full (%d lines), dropping the oldest", self.name, self.max_buffered)
            self._unlogged_drops += 1
