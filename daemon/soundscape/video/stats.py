"""Per-output counters: frames in, sent, held, dropped, and time in the daemon.

Written by the output's thread, read by the event loop (``counters()`` and the
periodic log line), hence the lock around the latency window.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

LATENCY_WINDOW = 300  # ~10 s of frames at 30 fps


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[rank]


class OutputStats:
    def __init__(self, window: int = LATENCY_WINDOW) -> None:
        self.frames_in = 0  # real frames offered to this output
        self.sent = 0  # real frames sent
        self.held = 0  # hold frames sent while Scope was away
        self.dropped = 0  # real frames never sent (queue full, too late, output not open)
        self.late = 0  # of those, frames that waited longer than the output's max age
        self.errors = 0  # sends or opens that raised
        self.reopens = 0  # backend reopened (resolution change, recovery)
        self._lock = threading.Lock()
        self._latency_ms: deque[float] = deque(maxlen=window)

    def add_dropped(self, n: int = 1, late: bool = False) -> None:
        # Both the event loop (queue full) and the worker (too late, output closed) drop frames.
        with self._lock:
            self.dropped += n
            if late:
                self.late += n

    def add_error(self) -> None:
        with self._lock:
            self.errors += 1

    def record_sent(self, latency_ns: int) -> None:
        with self._lock:
            self.sent += 1
            self._latency_ms.append(latency_ns / 1e6)

    def latency(self) -> tuple[float, float]:
        """(median, p99) in milliseconds over the recent window; NaN when empty."""
        with self._lock:
            values = sorted(self._latency_ms)
        return percentile(values, 50), percentile(values, 99)

    def snapshot(self) -> dict[str, Any]:
        p50, p99 = self.latency()
        return {
            "frames_in": self.frames_in,
            "sent": self.sent,
            "held": self.held,
            "dropped": self.dropped,
            "late": self.late,
            "errors": self.errors,
            "reopens": self.reopens,
            "latency_ms_p50": round(p50, 3) if p50 == p50 else None,
            "latency_ms_p99": round(p99, 3) if p99 == p99 else None,
        }
