"""Repeats of (device, seq): a reading redelivered after a lost PUBACK or a gateway crash is counted once.

The gateway delivers at least once, so a reading can reach Kafka twice, as two records. Its copy carries the same
``seq`` and the same values, but not always the same ``ts``: a reading sent without one is stamped with its
receive time, which differs on the second delivery. So a repeat is recognised by (device, seq) and a fingerprint
of the reading's content (seq, values, drill), not by time.

The window, per device: 64 slots of 16 bits (128 bytes), slot ``seq % 64`` holding a fingerprint of the last
reading seen with a ``seq`` of that residue. A reading is a repeat when its slot holds its own fingerprint. With
``seq`` increasing by one per reading (firmware.md asks for it) the window is the device's 64 newest readings: over a
minute for a device that reports at most once a second, longer than Mosquitto's persistence snapshot (30 s: a broker
killed replays up to that much) or a gateway's restart. A device whose ``seq`` steps by more holds fewer (steps of 60:
16, the gcd of 60 and 64 being 4). It errs toward keeping a reading, never toward losing one:

- the fingerprint covers ``seq`` itself, so a reading whose slot another number took since is kept;
- a device that restarted its counter sends the same numbers with other values: other fingerprints, kept;
- a reading without ``seq`` is never a repeat (firmware: send ``seq``).

The cost of erring that way: a copy whose slot a later reading took is kept twice, and two different readings with
one slot and one 16-bit fingerprint (1 in 65,535) count once; so do two identical readings with one ``seq`` (a
restarted counter sending the very same values: a rule counting consecutive readings counts one fewer). Pure: the
state is passed in; ``streams`` keeps it in the device's changelog-backed state, so it moves with the device's
partition, and the InfluxDB writer keeps its own.
"""

from __future__ import annotations

import base64
import zlib
from typing import Final

from core.contracts import ReadingDict

SEQ_WINDOW: Final = 64


def fingerprint(reading: ReadingDict) -> int:
    """16 bits of the reading's content, never 0 (an empty slot): what a redelivered copy shares with its original
    (its ``ts`` may differ: stamped on arrival)."""
    text = f"{reading['seq']}|{reading['drill']}|{reading['values']!r}"
    return (zlib.crc32(text.encode()) & 0xFFFF) or 1


class SeqWindow:
    """The fingerprints of a device's latest readings by ``seq % SEQ_WINDOW`` (see the module docstring)."""

    __slots__ = ("slots",)

    def __init__(self, slots: bytes | None = None) -> None:
        self.slots = bytearray(slots if slots is not None else bytes(2 * SEQ_WINDOW))

    def repeat(self, seq: int, fp: int) -> bool:
        """True if this (seq, fingerprint) holds its slot; otherwise it takes the slot and False."""
        at = 2 * (seq % SEQ_WINDOW)
        slots = self.slots
        high, low = fp >> 8, fp & 0xFF
        if slots[at] == high and slots[at + 1] == low:
            return True
        slots[at] = high
        slots[at + 1] = low
        return False

    def dump(self) -> str:
        return base64.b64encode(self.slots).decode()  # 172 characters

    @classmethod
    def load(cls, data: str) -> SeqWindow:
        return cls(base64.b64decode(data))


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
