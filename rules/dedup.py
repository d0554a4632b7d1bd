"""Repeats of (device, seq): a reading redelivered after a lost PUBACK or a gateway crash is counted once.

The gateway delivers at least once, so a reading can reach Kafka twice, as two records. Its copy carries the same
``seq`` and the same values, but not always the same ``ts``: a reading sent without one is stamped with its
receive time, which differs on the second delivery. So a repeat is recognised by (device, seq) and a fingerprint
of the reading's content (seq, values, drill), not by time.

The window, per device: the highest ``seq`` seen, and a slot per sequence number for the ``SEQ_WINDOW`` (64) below
and at it, each holding a 16-bit fingerprint of the reading that had that number (slot ``seq % 64``; 128 bytes a
device). A reading is a repeat when its number is in the window and its slot holds its fingerprint. Chosen to
err toward keeping a reading, never toward losing one:

- a number in the window with another fingerprint is a new reading (a device that restarted its counter sends the
  same numbers with other values), and takes the slot;
- a number more than 64 below the highest is kept without a check; if it is below 64 (a counter restarted at 0 or
  1), the window starts again from it, so a device's repeats are caught again from its first readings after a
  reboot;
- a reading without ``seq`` is never a repeat (firmware: send ``seq``).

The cost of erring that way: a copy more than 64 numbers below the device's newest (a redelivered batch of over 64
readings, say) is kept twice, and two different readings with one number and one 16-bit fingerprint (1 in 65,536)
count once. Pure: the state is passed in; ``streams`` keeps it in the device's changelog-backed state, so it moves
with the device's partition, and the InfluxDB writer keeps its own.
"""

from __future__ import annotations

import base64
import zlib
from typing import Final

from smartcity.contracts import ReadingDict

SEQ_WINDOW: Final = 64


def fingerprint(reading: ReadingDict) -> int:
    """16 bits of the reading's content: what a redelivered copy shares with its original (its ``ts`` may not)."""
    text = f"{reading['seq']}|{reading['drill']}|{reading['values']!r}"
    return zlib.crc32(text.encode()) & 0xFFFF


class SeqWindow:
    """The sequence numbers a device was last seen with (see the module docstring)."""

    __slots__ = ("hi", "slots")

    def __init__(self, hi: int = -1, slots: bytes | None = None) -> None:
        self.hi = hi
        self.slots = bytearray(slots if slots is not None else bytes(2 * SEQ_WINDOW))

    def repeat(self, seq: int, fp: int) -> bool:
        """True if this (seq, fingerprint) was seen within the window; otherwise it is noted and False."""
        at = 2 * (seq % SEQ_WINDOW)
        if seq > self.hi:
            self.hi = seq
        elif seq <= self.hi - SEQ_WINDOW:
            if seq < SEQ_WINDOW:  # the device restarted its counter
                self.hi = seq
            else:
                return False
        elif self.slots[at] == fp >> 8 and self.slots[at + 1] == fp & 0xFF:
            return True
        self.slots[at] = fp >> 8
        self.slots[at + 1] = fp & 0xFF
        return False

    def dump(self) -> list[int | str]:
        return [self.hi, base64.b64encode(self.slots).decode()]  # 172 characters

    @classmethod
    def load(cls, data: list[int | str]) -> SeqWindow:
        hi, slots = data
        return cls(int(hi), base64.b64decode(str(slots)))


def is_repeat(windows: dict[str, SeqWindow], reading: ReadingDict) -> bool:
    """The reading's verdict under ``windows`` (device id -> window, created as needed)."""
    seq = reading["seq"]
    if seq is None:
        return False
    device_id = reading["device_id"]
    window = windows.get(device_id)
    if window is None:
        window = windows[device_id] = SeqWindow()
    return window.repeat(seq, fingerprint(reading))
