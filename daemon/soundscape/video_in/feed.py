"""The latest frame of the source, shared by the reader thread and the tracks.

Latest frame wins: the reader thread replaces the frame, never queues it, so
a slow session never builds latency. The tracks on the event loop read it;
while the source is away they get its last frame or black, and the feed says
so once in the log (and once again when the source returns).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

import av
import numpy as np
import structlog

log = structlog.get_logger(__name__)


def black_frame(width: int, height: int) -> av.VideoFrame:
    """A black yuv420p frame (studio range: Y 16, U and V 128)."""
    buf = np.full((height * 3 // 2, width), 128, np.uint8)
    buf[:height] = 16
    return av.VideoFrame.from_ndarray(buf, format="yuv420p")


class Feed:
    """Holds the newest frame; ``put`` from any thread, everything else on the loop."""

    def __init__(
        self,
        size: tuple[int, int],
        *,
        when_away: str = "last",
        away_after: float = 0.5,
        label: str = "video-in",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.when_away = when_away
        self.away_after = away_after
        self.label = label
        self._clock = clock
        self._lock = threading.Lock()
        self._frame: av.VideoFrame | None = None
        self._at = 0.0
        self.seq = 0  # frames put so far
        self._black = black_frame(*size)
        self._away = True  # nothing has come yet
        self._was_live = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the tracks run on (woken when a frame arrives)."""
        self._loop = loop
        self._changed = asyncio.Event()

    # ----- the reader thread

    def put(self, frame: av.VideoFrame) -> None:
        """A new frame from the source, already at ``size`` in yuv420p."""
        with self._lock:
            self._frame = frame
            self._at = self._clock()
            self.seq += 1
        loop = self._loop
        if loop is not None and not loop.is_closed():
            # RuntimeError: the loop closed meanwhile, nobody is waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    # ----- the tracks (event loop)

    async def wait_new(self, seen: int, timeout: float) -> None:
        """Return when a frame newer than ``seen`` is there, or after ``timeout``."""
        if self.seq > seen or timeout <= 0 or self._changed is None:
            return
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await changed.wait()

    @property
    def live(self) -> bool:
        """The source sent a frame within ``away_after``."""
        return self._frame is not None and self._clock() - self._at < self.away_after

    def current(self) -> tuple[av.VideoFrame, int]:
        """The frame to send now and its sequence number; logs a change of presence once."""
        with self._lock:
            frame, at, seq = self._frame, self._at, self.seq
        now = self._clock()
        away = frame is None or now - at >= self.away_after
        if away != self._away:
            self._away = away
            if away:
                log.warning(
                    "video_in_away",
                    source=self.label,
                    silent_for=round(now - at, 2),
                    sending=self.when_away,
                )
            else:
                # The first frame, or the source back after being away.
                log.info("video_in_back" if self._was_live else "video_in_live", source=self.label)
                self._was_live = True
        if frame is None or (away and self.when_away == "black"):
            return self._black, seq
        return frame, seq
