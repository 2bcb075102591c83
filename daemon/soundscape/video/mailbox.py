"""A bounded, latest-wins hand-off from the event loop to one output's thread.

``put`` never blocks: when the box is full the oldest item is dropped, so a
slow output only ever sees fresher frames and never holds anyone else up.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestMailbox(Generic[T]):
    def __init__(self, size: int = 1) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._items: deque[T] = deque(maxlen=size)
        self._cond = threading.Condition()
        self._woken = False
        self._closed = False

    def put(self, item: T) -> bool:
        """Queue ``item``; return True when an older item was dropped to make room."""
        with self._cond:
            dropped = len(self._items) == self._items.maxlen
            self._items.append(item)
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
        """The oldest item, or None on timeout, wake or close."""
        with self._cond:
            if not self._items and not self._woken and not self._closed:
                self._cond.wait(timeout)
            self._woken = False
            if self._items and not self._closed:
                return self._items.popleft()
            return None

    def drain(self) -> int:
        """Drop everything queued; return how many items were dropped."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            return n
