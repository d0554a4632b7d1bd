"""Wall-clock time as the contracts count it (epoch milliseconds), and as people read it: Shenzhen time.

Everything a person reads (the console, CAP documents, drill reports, log lines) gives times in Shenzhen time with its
offset, ``2026-11-25T10:00:00+08:00``: the duty officers' clock, and never ambiguous. China keeps no daylight saving,
so the fixed offset is exact and needs no time-zone database.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Final

SHENZHEN: Final = timezone(timedelta(hours=8), "Asia/Shanghai")


def now_ms() -> int:
    return int(time.time() * 1000)


def local_now() -> datetime:
    """Now, in Shenzhen time."""
    return datetime.now(SHENZHEN)


def local_iso(epoch_s: float, timespec: str = "seconds") -> str:
    """``2026-11-25T10:00:00+08:00`` for an epoch time in seconds."""
    return datetime.fromtimestamp(epoch_s, SHENZHEN).isoformat(timespec=timespec)
