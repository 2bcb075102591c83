"""Syphon output (macOS) through syphon-python (the optional ``syphon`` extra).

Written against syphon-python's documented Metal API
(github.com/cansik/syphon-python: ``SyphonMetalServer(name)``, its
``device``, ``syphon.utils.raw.create_mtl_texture``,
``syphon.utils.numpy.copy_image_to_mtl_texture``, ``publish_frame_texture``,
``stop``). Frames go out as RGBA textures. Verified only with fakes of the
library on Linux; see docs/outputs.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from fractions import Fraction
from types import ModuleType, SimpleNamespace
from typing import Any

import av
import numpy as np

from soundscape.video.config import OutputConfig
from soundscape.video.outputs.base import Output, OutputError


class SyphonOutput(Output):
    type = "syphon"

    def __init__(
        self, config: OutputConfig, *, library: ModuleType | SimpleNamespace | None = None
    ) -> None:
        super().__init__(config)
        self._lib = library
        self._server: Any = None
        self._texture: Any = None
        self._cached: tuple[av.VideoFrame, np.ndarray] | None = None

    @classmethod
    def unavailable_reason(cls, config: OutputConfig) -> str | None:
        if sys.platform != "darwin":
            return "Syphon needs macOS"
        if importlib.util.find_spec("syphon") is None:
            return "syphon-python not installed: pip install 'soundscape[syphon]'"
        return None

    def _library(self) -> Any:
        if self._lib is None:
            syphon = importlib.import_module("syphon")
            # The helpers live in submodules that importing the package does not load.
            importlib.import_module("syphon.utils.raw")
            importlib.import_module("syphon.utils.numpy")
            self._lib = syphon
        return self._lib

    def open(self, width: int, height: int, fps: Fraction) -> None:
        lib = self._library()
        if self._server is None:
            self._server = lib.SyphonMetalServer(self.config.name)
        self._texture = lib.utils.raw.create_mtl_texture(self._server.device, width, height)

    def resize(self, width: int, height: int, fps: Fraction) -> None:
        # Keep the server (clients stay connected); only the texture changes size.
        self._cached = None
        self.open(width, height, fps)

    def send(self, frame: av.VideoFrame) -> None:
        if self._server is None or self._texture is None:
            raise OutputError("Syphon server is not open")
        if self._cached is None or self._cached[0] is not frame:
            rgba = np.ascontiguousarray(frame.to_ndarray(format="rgba"))
            self._cached = (frame, rgba)
            self._library().utils.numpy.copy_image_to_mtl_texture(rgba, self._texture)
        self._server.publish_frame_texture(self._texture)

    def close(self) -> None:
        self._cached = None
        self._texture = None
        server, self._server = self._server, None
        if server is not None:
            server.stop()
