"""Spout output (Windows) through SpoutGL (the optional ``spout`` extra).

Written against SpoutGL's documented API (github.com/jlai/Python-SpoutGL:
``SpoutSender``, ``createOpenGL``, ``setSenderName``, ``sendImage``,
``setFrameSync``, ``releaseSender``). Spout shares GPU textures, so frames
go out as RGBA. ``createOpenGL`` makes a hidden OpenGL context on the
output's own thread, which is why every call stays on that thread.
Verified only with fakes of the library on Linux; see docs/outputs.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from fractions import Fraction
from types import ModuleType
from typing import Any

import av
import numpy as np

from soundscape.video.config import OutputConfig
from soundscape.video.outputs.base import Output, OutputError

# GL_RGBA; SpoutGL re-exports it as SpoutGL.enums.GL_RGBA (no PyOpenGL needed).
GL_RGBA = 0x1908


class SpoutOutput(Output):
    type = "spout"

    def __init__(self, config: OutputConfig, *, library: ModuleType | None = None) -> None:
        super().__init__(config)
        self._lib = library
        self._sender: Any = None
        self._size: tuple[int, int] | None = None
        self._cached: tuple[av.VideoFrame, np.ndarray] | None = None

    @classmethod
    def unavailable_reason(cls, config: OutputConfig) -> str | None:
        if sys.platform != "win32":
            return "Spout needs Windows"
        if importlib.util.find_spec("SpoutGL") is None:
            return "SpoutGL not installed: pip install 'soundscape[spout]'"
        return None

    def _library(self) -> ModuleType:
        if self._lib is None:
            self._lib = importlib.import_module("SpoutGL")
        return self._lib

    def open(self, width: int, height: int, fps: Fraction) -> None:
        lib = self._library()
        sender = lib.SpoutSender()
        if not sender.createOpenGL():
            raise OutputError("Spout could not create an OpenGL context")
        sender.setSenderName(self.config.name)
        self._sender, self._size = sender, (width, height)

    def send(self, frame: av.VideoFrame) -> None:
        if self._sender is None:
            raise OutputError("Spout sender is not open")
        if self._cached is None or self._cached[0] is not frame:
            self._cached = (frame, np.ascontiguousarray(frame.to_ndarray(format="rgba")))
        width, height = self._size or (frame.width, frame.height)
        gl_rgba = getattr(getattr(self._library(), "enums", None), "GL_RGBA", GL_RGBA)
        if not self._sender.sendImage(self._cached[1], width, height, gl_rgba, False, 0):
            raise OutputError("Spout sendImage failed")
        # Lets receivers that wait on the sender's frame event pick the frame up at once.
        self._sender.setFrameSync(self.config.name)

    def close(self) -> None:
        self._cached = None
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.releaseSender()
            sender.closeOpenGL()
