"""A bounded hand-off from the event loop to one output's thread.

``put`` never blocks: when the box is full the oldest item is dropped. With
``max_age``, ``get`` also drops items that waited longer than that while a
newer one is queued, so a short burst (WebRTC hands over two or three frames
at once after a CPU hiccup, and the output thread may not run between them)
is delivered whole, while an output that is persistently slower than the
stream still only ever sees recent frames and never builds up latency.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestMailbox(Generic[T]):
    def __init__(
        self,
        size: int = 1,
        *,
        max_age: float | None = None,
        on_drop: Callable[[int, bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._items: deque[tuple[float, T]] = deque()
        self._size = size
        self._max_age = max_age
        self._on_drop = on_drop
        self._clock = clock
        self._cond = threading.Condition()
        self._woken = False
        self._closed = False

    def put(self, item: T) -> bool:
        """Queue ``item``; return True when an older item was dropped to make room."""
        with self._cond:
            dropped = len(self._items) == self._size
            if dropped:
                self._items.popleft()
                self._dropped(1, late=False)
            self._items.append((self._clock(), item))
            self._cond.notify()
        return dropped

    def wake(self) -> None:
        """Make a waiting ``get`` return now (state changed, time to re-decide)."""
        with self._cond:
            self._woken = True
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, timeout: float | None) -> T | None:
        """The oldest item still fresh enough, or None on timeout, wake or close."""
        with self._cond:
            if not self._items and not self._woken and not self._closed:
                self._cond.wait(timeout)
            self._woken = False
            if not self._items or self._closed:
                return None
            if self._max_age is not None:
                # The newest item is always kept: a stale frame beats no frame.
                now, stale = self._clock(), 0
                while len(self._items) > 1 and now - self._items[0][0] > self._max_age:
                    self._items.popleft()
                    stale += 1
                if stale:
                    self._dropped(stale, late=True)
            return self._items.popleft()[1]

    def drain(self) -> int:
        """Drop everything queued; return how many items were dropped."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            return n

    def _dropped(self, n: int, *, late: bool) -> None:
        """``on_drop(n, late)``: late = waited longer than ``max_age``, else overtaken (full)."""
        if self._on_drop is not None:
            self._on_drop(n, late)
