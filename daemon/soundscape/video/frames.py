"""Frame helpers shared by the outputs: hold frames, sizing, raw planes.

All of them return new frames and never modify the one passed in: a decoded
frame from Scope is shared by every output at once.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import structlog
from PIL import Image, ImageOps

log = structlog.get_logger(__name__)

# Limited-range BT.601 black, the range WebRTC decoders produce.
BLACK_Y, BLACK_UV = 16, 128


def black_frame(width: int, height: int) -> av.VideoFrame:
    planes = np.empty((height * 3 // 2, width), dtype=np.uint8)
    planes[:height] = BLACK_Y
    planes[height:] = BLACK_UV
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


def load_still(path: str | Path, width: int, height: int) -> av.VideoFrame | None:
    """The image at ``path`` fitted (letterboxed) into width×height, or None with one log line."""
    try:
        with Image.open(path) as img:
            rgb = ImageOps.pad(img.convert("RGB"), (width, height), color=(0, 0, 0))
    except (OSError, ValueError) as err:
        log.warning("still_image_unreadable", path=str(path), error=str(err))
        return None
    return av.VideoFrame.from_image(rgb).reformat(format="yuv420p")


def even_size(width: int, height: int) -> tuple[int, int]:
    return max(2, width - width % 2), max(2, height - height % 2)


def conform(frame: av.VideoFrame, size: tuple[int, int] | None) -> av.VideoFrame:
    """``frame`` as yuv420p at ``size`` (None: its own size, made even).

    Returns the same object when nothing needs changing (the common case: a
    decoded WebRTC frame is already yuv420p), so there is no copy on the hot path.
    """
    width, height = size if size is not None else even_size(frame.width, frame.height)
    if frame.format.name == "yuv420p" and frame.width == width and frame.height == height:
        return frame
    return frame.reformat(width=width, height=height, format="yuv420p")


def i420(frame: av.VideoFrame) -> np.ndarray:
    """The I420 bytes (Y, then U, then V planes, no padding) of a yuv420p frame, 1-D."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    return frame.to_ndarray().reshape(-1)
