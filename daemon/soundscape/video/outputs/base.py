"""The small interface every video output implements.

An output is driven by its own worker thread (see ``runner.py``): ``open``,
``send``, ``resize`` and ``close`` are all called on that one thread, so
blocking library calls (NDI send, encoding, GL uploads) never touch the event
loop, and thread-bound resources (an OpenGL context) stay on their thread.
Third-party libraries are imported in ``open``, never at module import, so
the registry can say why a backend is unavailable without loading it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from fractions import Fraction
from typing import Any, ClassVar

import av

from soundscape.errors import SoundscapeError
from soundscape.video.config import OutputConfig


class OutputError(SoundscapeError):
    """A send or open failed in a way the output cannot recover from by itself."""


def frame_rate(fps: float) -> Fraction:
    """A tidy rational frame rate: 30 -> 30/1, 29.97 -> 30000/1001."""
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
    if abs(float(ntsc) - fps) < 0.005:
        return ntsc
    nearest = round(fps)
    if nearest and abs(fps - nearest) < 0.01 * nearest:
        return Fraction(nearest)
    return Fraction(fps).limit_denominator(1001)


class Output(ABC):
    """One destination for frames: NDI sender, Spout/Syphon server, recording."""

    type: ClassVar[str]

    def __init__(self, config: OutputConfig) -> None:
        self.config = config

    @classmethod
    def unavailable_reason(cls, config: OutputConfig) -> str | None:
        """Why this backend cannot run here (missing extra, wrong platform), or None."""
        return None

    @abstractmethod
    def open(self, width: int, height: int, fps: Fraction) -> None:
        """Start sending at this size; raise on failure (the runner retries)."""

    @abstractmethod
    def send(self, frame: av.VideoFrame) -> None:
        """Send one yuv420p frame of the opened size. Never modify ``frame``."""

    def resize(self, width: int, height: int, fps: Fraction) -> None:
        """The stream changed size: by default close and open again."""
        self.close()
        self.open(width, height, fps)

    @abstractmethod
    def close(self) -> None:
        """Release everything; safe to call twice or without ``open``."""

    def describe(self) -> dict[str, Any]:
        """Extra fields for counters (e.g. the file being written)."""
        return {}
