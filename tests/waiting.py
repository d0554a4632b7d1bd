"""Polling for a condition in tests, without sleeping longer than needed.

A test that must let something happen (a commit, a rebalance, a subscription) waits for the thing itself, never for
a fixed time: a sleep is too short on a busy machine and too long on an idle one, and it never says what it awaited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """True as soon as ``condition()`` holds; False if it never did within ``timeout`` seconds."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.2) -> None:
    """Return as soon as ``await check()`` holds; raise ``AssertionError(what)`` if it did not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (not within {timeout:.0f} s)")
        await asyncio.sleep(every)


def until_sync(check: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    """``until`` for threads and sync tests."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (not within {timeout:.0f} s)")
        time.sleep(every)
