"""One log line per key per interval, with the count of lines held back.

A controller sending a wrong value at 60 Hz, or a flood of junk packets,
must not flood the log: the first refusal is logged at once, the rest of
that second are counted and reported with the next line.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class LogLimiter:
    def __init__(
        self,
        interval: float = 1.0,
        max_keys: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._clock = clock
        # key -> [time of the last line, lines held back since]
        self._keys: OrderedDict[str, list[float]] = OrderedDict()

    def check(self, key: str) -> int | None:
        """None: stay quiet. An int: log now, reporting that many held-back lines."""
        now = self._clock()
        entry = self._keys.get(key)
        if entry is not None and now - entry[0] < self.interval:
            entry[1] += 1
            return None
        suppressed = 0 if entry is None else int(entry[1])
        self._keys[key] = [now, 0]
        self._keys.move_to_end(key)
        # Bounded memory under a flood of distinct keys: forget the oldest.
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return suppressed
