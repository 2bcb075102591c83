"""The event wait shared by the Link scripts that test_link.py runs (no sleep stands in
for an event: the condition is polled until it holds or the time is up)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_for(cond: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until ``cond()`` held, or None if it did not within ``timeout``."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while loop.time() - t0 < timeout:
        if cond():
            return loop.time() - t0
        await asyncio.sleep(0.01)
    return None
