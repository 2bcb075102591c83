"""A Scope-compatible server for tests, demos and benchmarks (see docs/emulator.md)."""

from soundscape.emulator.config import EmulatorConfig
from soundscape.emulator.renderer import decode_counter, render
from soundscape.emulator.server import Emulator, serve

__all__ = ["Emulator", "EmulatorConfig", "decode_counter", "render", "serve"]
