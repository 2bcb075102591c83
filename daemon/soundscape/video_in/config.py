"""The ``[video_in]`` config section.

Example::

    [video_in]
    source = "ndi:TouchDesigner"   # or /dev/video0, a file or URL, or "test"
    when_away = "last"             # while the source is away: last frame or black
"""

from __future__ import annotations

import dataclasses

from soundscape.settings import setting

AWAY_MODES = ("last", "black")


@dataclasses.dataclass
class VideoInConfig:
    source: str = setting(
        "",
        "What to send Scope in video mode: ndi:NAME, /dev/videoN, a file or URL (looped), "
        "test, or scope-ndi:NAME / scope-spout:NAME read by the server (empty = nothing).",
    )
    input_mode: str = setting(
        "video",
        "input_mode the sessions start in when a source is set.",
        choices=("video", "text"),
    )
    fps: float = setting(30.0, "Frames per second sent to Scope (the pipeline's rate).", low=1)
    width: int = setting(0, "Width sent (0 = the pipeline's).", low=0, high=8192)
    height: int = setting(0, "Height sent (0 = the pipeline's).", low=0, high=8192)
    when_away: str = setting(
        "last", "Sent while the source is away: its last frame or black.", choices=AWAY_MODES
    )
    away_after: float = setting(
        0.5, "Seconds without a new frame before the source counts as away.", low=0.05, high=60
    )
    loop: bool = setting(True, "Play a file source again from the start at its end.")
