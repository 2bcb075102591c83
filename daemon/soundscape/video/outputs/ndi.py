"""NDI output through cyndilib (the optional ``ndi`` extra).

I420 goes out exactly as decoded: the planes of a yuv420p frame are the I420
layout, so there is no colour conversion. ``clock_video=False`` because the
WebRTC stream (or the hold timer) already paces frames; NDI's own clock would
only add waiting.

cyndilib (0.1.x) refuses to change a video frame's resolution while its
sender is open, so a resize closes the same Sender, sets the new resolution
and frame rate on the same VideoSendFrame and opens it again: receivers
reconnect by name on their own (measured: about a second of the last picture
on a cyndilib receiver). A fixed ``width``/``height`` in the config avoids
that entirely by scaling every frame to one size.
"""

from __future__ import annotations

import importlib
import importlib.util
from fractions import Fraction
from types import ModuleType
from typing import Any

import av
import numpy as np
import structlog

from soundscape.video.config import OutputConfig
from soundscape.video.frames import i420
from soundscape.video.outputs.base import Output, OutputError

log = structlog.get_logger(__name__)

INSTALL_HINT = "cyndilib not installed: pip install 'soundscape[ndi]'"


class NdiOutput(Output):
    type = "ndi"

    def __init__(self, config: OutputConfig, *, library: ModuleType | None = None) -> None:
        super().__init__(config)
        self._lib = library
        self._sender: Any = None
        self._video_frame: Any = None
        self._size: tuple[int, int] | None = None
        self._fps: Fraction | None = None
        self._cached: tuple[av.VideoFrame, np.ndarray] | None = None
        self._source_name: str | None = None

    @classmethod
    def unavailable_reason(cls, config: OutputConfig) -> str | None:
        if importlib.util.find_spec("cyndilib") is None:
            return INSTALL_HINT
        return None

    def _library(self) -> ModuleType:
        if self._lib is None:
            self._lib = importlib.import_module("cyndilib")
        return self._lib

    def open(self, width: int, height: int, fps: Fraction) -> None:
        lib = self._library()
        if self._sender is None:
            self._sender = lib.Sender(
                self.config.name, ndi_groups=self.config.groups, clock_video=False
            )
            self._video_frame = lib.VideoSendFrame()
            self._video_frame.set_fourcc(lib.FourCC.I420)
            self._configure(width, height, fps)
            self._sender.set_video_frame(self._video_frame)
        else:
            self._configure(width, height, fps)
        self._sender.open()
        self._remember_source()

    def _remember_source(self) -> None:
        # Read here, on the output's thread; describe() runs on the event loop.
        source = self._sender.source
        self._source_name = source.name if source is not None else None

    def _configure(self, width: int, height: int, fps: Fraction) -> None:
        self._video_frame.set_resolution(width, height)
        self._video_frame.set_frame_rate(fps)
        self._size, self._fps = (width, height), fps

    def resize(self, width: int, height: int, fps: Fraction) -> None:
        # Same Sender and VideoSendFrame; only the NDI instance is recreated.
        if self._sender is None:
            self.open(width, height, fps)
            return
        self._sender.close()
        self._configure(width, height, fps)
        self._sender.open()
        self._remember_source()

    def send(self, frame: av.VideoFrame) -> None:
        if self._sender is None:
            raise OutputError("NDI sender is not open")
        if (frame.width, frame.height) != self._size:
            raise OutputError(f"frame is {frame.width}x{frame.height}, sender is {self._size}")
        # Holding re-sends one frame many times: convert it once.
        if self._cached is None or self._cached[0] is not frame:
            self._cached = (frame, i420(frame))
        if not self._sender.write_video(self._cached[1]):
            raise OutputError("NDI sender refused the frame (not running)")

    def close(self) -> None:
        self._cached = None
        if self._sender is not None:
            self._sender.close()

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"ndi_name": self.config.name}
        if self._source_name is not None:
            info["ndi_source"] = self._source_name
        if self._fps is not None:
            info["ndi_frame_rate"] = str(self._fps)
        return info
