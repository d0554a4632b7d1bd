"""Polling for a condition in async tests, without sleeping longer than needed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """True as soon as ``condition()`` holds; False if it never did within ``timeout`` seconds."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()
