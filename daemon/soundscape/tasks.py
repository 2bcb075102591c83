"""Stopping background tasks the one right way."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has finished.

    The task's own CancelledError is expected and absorbed; if the *caller*
    is being cancelled meanwhile, that cancellation is re-raised, never
    swallowed (a bare ``suppress(CancelledError)`` would eat it).
    """
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
