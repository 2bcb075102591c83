"""Debounced, durable writes of the show's state, off the event loop.

``mark()`` says "something changed". The state is collected on the loop (a
few dictionaries, microseconds): at once after a quiet spell, then at most
once per ``debounce`` seconds while changes keep coming, and written only when
it differs from the last write; the write itself (fsync
included) runs in a thread, so the loop never waits on the disk. ``stop()``
writes what is pending, so a clean shutdown loses nothing; a ``kill -9`` loses
at most the last ``debounce`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from soundscape.state.files import write_atomic
from soundscape.tasks import Supervised, supervise

log = structlog.get_logger(__name__)


class StateWriter:
    """``StateWriter(path, collect, debounce=0.5)``; ``collect()`` returns the file's bytes."""

    def __init__(
        self,
        path: Path,
        collect: Callable[[], bytes],
        *,
        debounce: float = 0.5,
        idle: float | None = None,
    ) -> None:
        self.path = path
        self.collect = collect
        self.debounce = debounce
        self.idle = idle  # also look every ``idle`` seconds for changes nobody marked
        self.writes = 0
        self.failures = 0
        self._last: bytes | None = None
        self._dirty = asyncio.Event()
        self._task: Supervised | None = None
        self._writing: asyncio.Future[None] | None = None  # the write in its thread
        self._written: list[Callable[[int], None]] = []

    def mark(self) -> None:
        """Something changed: write within ``debounce`` seconds."""
        self._dirty.set()

    def on_written(self, listener: Callable[[int], None]) -> None:
        """``listener(writes)`` after each completed write (tests wait on it)."""
        self._written.append(listener)

    async def start(self) -> None:
        self._task = supervise("state-writer", self._run)  # restarted with backoff if it fails

    async def stop(self) -> None:
        if self._task is not None:
            await self._task.stop()
        self._task = None
        if self._writing is not None:  # a stopped loop's write lands before the last one
            with contextlib.suppress(Exception):
                await self._writing
        await self.flush()

    async def flush(self) -> None:
        """Write now if the state differs from the last write."""
        self._dirty.clear()
        try:
            data = self.collect()
        except Exception:  # a part that cannot report must not stop the others' saving
            log.exception("state_collect_failed")
            return
        if data == self._last:
            return
        self._writing = asyncio.ensure_future(asyncio.to_thread(write_atomic, self.path, data))
        try:
            # Shielded: a cancelled wait must not leave a write behind that lands later.
            await asyncio.shield(self._writing)
        except OSError as err:
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:  # a full disk: not one line per knob
                log.error(
                    "state_not_saved", path=str(self.path), error=str(err), failures=self.failures
                )
            return
        self._last = data
        self.writes += 1
        for listener in list(self._written):
            listener(self.writes)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.idle):
                    await self._dirty.wait()
            started = time.monotonic()
            await self.flush()
            # At most one write per period, however fast the knobs move.
            await asyncio.sleep(max(0.0, self.debounce - (time.monotonic() - started)))
