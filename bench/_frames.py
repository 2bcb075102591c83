"""When each Scope session's first frame reached the daemon's outputs.

Benchmarks time recovery by frames, not by the status the supervisor reports:
what the audience sees is frames, and a status that lags (or says "connecting"
while frames flow) must not hide or fake a recovery.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def on_first_frame(daemon: Any, callback: Callable[[float, str], None]) -> None:
    """Call ``callback(time.monotonic(), session_id)`` at the first frame of each session.

    Wraps the frame sink's ``on_frame`` (the video fan-out) on this one daemon object;
    a frame is credited to the session the supervisor names once its offer is through.
    """
    sink = daemon.video
    forward = sink.on_frame
    seen: set[str] = set()

    def on_frame(frame: Any) -> None:
        session_id = daemon.supervisor.status.session_id
        if session_id and session_id not in seen:
            seen.add(session_id)
            callback(time.monotonic(), session_id)
        forward(frame)

    sink.on_frame = on_frame
