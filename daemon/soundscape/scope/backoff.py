"""The one retry schedule of the daemon: immediate first retry, then exponential, capped.

Pure: it counts failures and turns the count into a delay; callers do the
waiting. The Scope supervisor, the audio capture and the video outputs all use
it, so "how fast do we retry" has one answer (``docs/operations.md``).

The first retry after a loss is immediate: most losses (a dropped connection,
a restarted server) are over by the time we notice them. From the second
failure in a row the delay doubles from ``initial`` up to ``cap``, plus a
random share (``jitter``) so that many daemons do not retry in lock-step.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(
    attempt: int,
    initial: float,
    cap: float,
    jitter: float = 0.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Delay before retry ``attempt`` (1-based): 0 for the first, then exponential."""
    if attempt <= 1:
        return 0.0
    base = min(cap, initial * 2 ** min(attempt - 2, 62))
    return base * (1.0 + jitter * rand())


class Backoff:
    """Failures in a row and the delay they earn.

    ``failed()`` counts one more failure and returns the delay before the next
    try; ``reset()`` is for the caller to decide when things are good again
    (the supervisor waits for frames to flow for a while, not just for an
    answer).
    """

    def __init__(
        self,
        initial: float,
        cap: float,
        jitter: float = 0.0,
        *,
        immediate_first: bool = True,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.jitter = jitter
        self.failures = 0
        # Without an immediate first retry the schedule starts at ``initial`` (devices
        # that just failed to open will not have changed a moment later).
        self._offset = 0 if immediate_first else 1
        self._rand = rand

    def failed(self) -> float:
        self.failures += 1
        return self.delay()

    def delay(self) -> float:
        """The delay earned by the failures so far (0 when there are none)."""
        if self.failures == 0:
            return 0.0
        return backoff_delay(
            self.failures + self._offset, self.initial, self.cap, self.jitter, self._rand
        )

    def peek(self) -> float:
        """The delay the next failure would earn, without jitter (for log lines)."""
        return backoff_delay(self.failures + 1 + self._offset, self.initial, self.cap)

    def reset(self) -> None:
        self.failures = 0
