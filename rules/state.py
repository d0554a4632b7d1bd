"""Per-device rule state: small, slotted, saved as a compact JSON-able list (a Faust table value in ``streams``).

Only what changes findings is kept: the alarms that are not idle, one event-time window per rate rule, the latest
value of the metrics that condition rules look at, the newest event time (for ordering), when the device was
last heard from (for silence), and the sequence numbers it was last seen with (``rules.dedup``: a redelivered
reading is evaluated once). Readings flagged ``drill`` run on a separate ``drill`` state, so an exercise never
moves a real alarm, and a real reading never clears an exercise one.
"""

from __future__ import annotations

from typing import Any

from core.contracts import ReadingDict
from rules.alarm import AlarmState
from rules.dedup import SeqWindow, fingerprint
from rules.window import Window


class DeviceState:
    __slots__ = ("alarms", "drill", "last_seen", "last_ts", "latest", "seqs", "since", "windows")

    def __init__(self) -> None:
        self.alarms: dict[str, AlarmState] = {}
        self.windows: dict[str, Window] = {}
        self.latest: dict[str, tuple[int, float | bool]] | None = None  # made when a condition rule needs it
        self.last_ts: int | None = None  # newest event time taken in order
        self.last_seen: int | None = None  # wall-clock ms of the newest arrival (silence is measured on it)
        self.since: int | None = None  # wall-clock ms when the engine first knew the device (never-heard-from)
        self.drill: DeviceState | None = None
        self.seqs: SeqWindow | None = None  # made at the first reading with a ``seq``

    def repeat(self, reading: ReadingDict) -> bool:
        """Whether ``reading`` repeats one this device was already seen with (``rules.dedup``); noted if not."""
        seq = reading["seq"]
        if seq is None:
            return False
        if self.seqs is None:
            self.seqs = SeqWindow()
        return self.seqs.repeat(seq, fingerprint(reading))

    def dump(self) -> list[Any]:
        return [
            {k: a.dump() for k, a in self.alarms.items()},
            {k: w.dump() for k, w in self.windows.items()},
            {k: [t, v] for k, (t, v) in self.latest.items()} if self.latest else None,
            self.last_ts,
            self.last_seen,
            self.since,
            self.drill.dump() if self.drill is not None else None,
            self.seqs.dump() if self.seqs is not None else None,
        ]

    @classmethod
    def load(cls, data: list[Any]) -> DeviceState:
        state = cls()
        alarms, windows, latest, state.last_ts, state.last_seen, state.since, drill = data[:7]
        seqs = data[7] if len(data) > 7 else None  # states saved before the window existed have none
        state.seqs = SeqWindow.load(seqs) if seqs is not None else None
        state.alarms = {k: AlarmState.load(a) for k, a in alarms.items()}
        state.windows = {k: Window.load(w) for k, w in windows.items()}
        state.latest = {k: (t, v) for k, (t, v) in latest.items()} if latest else None
        state.drill = cls.load(drill) if drill is not None else None
        return state
