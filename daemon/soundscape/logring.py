"""The last log events, kept in memory for the operator's page and ``soundscape status``.

A structlog processor (and the stdlib chain's pre-processor, so aiortc's and
aiohttp's warnings are there too) copies each event into a bounded ring. It
only appends a small dict: logging stays as cheap as it was.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from typing import Any

SIZE = 50
# Keys a renderer adds or that are too big for a status page.
_SKIP = {"event", "level", "logger", "timestamp", "exc_info", "_record", "_from_structlog"}


class LogRing:
    def __init__(self, size: int = SIZE) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()  # library threads log too
        self._seq = itertools.count(1)

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        """The structlog processor: record, pass the event on unchanged."""
        if method == "debug" or event.get("level") == "debug":
            return event  # the page shows what the log shows at its usual level
        fields = {k: _short(v) for k, v in event.items() if k not in _SKIP}
        entry = {
            "seq": next(self._seq),
            "time": event.get("timestamp"),
            "level": event.get("level", method),
            "event": str(event.get("event", "")),
            "logger": event.get("logger"),
            "fields": fields,
        }
        with self._lock:
            self._events.append(entry)
        return event

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)


def _short(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


RING = LogRing()  # the process's ring: logs.configure() installs it
