"""When to send a hold frame and which one: pure timing, driven by the caller's clock.

A receiver (NDI monitor, media server) drops a source that goes quiet, so
while Scope is away each output keeps sending at its configured rate. "Away"
means the session said so (``streaming = False``) or no frame came for about
two frame intervals. Black or a still image replace the last frame only after
``hold_after`` seconds (or at once when the session is declared lost), so
network jitter never flashes black on stage.
"""

from __future__ import annotations

import statistics
from collections import deque

STALE_INTERVALS = 2.0  # frame intervals without a frame before holding starts


class HoldClock:
    def __init__(self, fps: float, hold_after: float = 1.0, window: int = 30) -> None:
        self.period = 1.0 / fps
        self.hold_after = hold_after
        self.streaming = False
        self.last_real: float | None = None
        self.last_send: float | None = None
        self._intervals: deque[float] = deque(maxlen=window)

    # -- events -------------------------------------------------------------
    def on_real(self, now: float) -> None:
        """A real frame arrived (called when it is taken from the queue).

        Frames flowing means the stream is back, even before the session says so.
        """
        self.streaming = True
        if self.last_real is not None:
            gap = now - self.last_real
            # Gaps of an outage are not the stream's frame interval.
            if gap < 1.0:
                self._intervals.append(gap)
        self.last_real = now
        self.last_send = now

    def on_hold_sent(self, now: float) -> None:
        self.last_send = now

    def set_streaming(self, streaming: bool) -> None:
        self.streaming = streaming

    # -- questions ------------------------------------------------------------
    @property
    def interval(self) -> float:
        """The stream's frame interval: median of recent gaps, else the hold period."""
        if len(self._intervals) >= 3:
            return statistics.median(self._intervals)
        return self.period

    def measured_fps(self) -> float | None:
        if len(self._intervals) < 3:
            return None
        return 1.0 / max(statistics.median(self._intervals), 1e-6)

    def stale_at(self) -> float | None:
        """The moment the stream counts as away if nothing arrives (None: already away)."""
        if not self.streaming or self.last_real is None:
            return None
        return self.last_real + STALE_INTERVALS * max(self.interval, self.period)

    def away(self, now: float) -> bool:
        at = self.stale_at()
        return at is None or now >= at

    def next_deadline(self, now: float) -> float:
        """When the worker should wake to re-decide if no frame arrives first."""
        if not self.away(now):
            at = self.stale_at()
            assert at is not None
            return at
        if self.last_send is None:
            return now
        return self.last_send + self.period

    def hold_due(self, now: float) -> bool:
        return self.away(now) and (self.last_send is None or now - self.last_send >= self.period)

    def show_last(self, now: float) -> bool:
        """True while the last real frame should still stand in (short hiccups)."""
        if self.last_real is None or not self.streaming:
            return False
        return now - self.last_real < self.hold_after
