"""Settings of one emulated Scope server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class EmulatorConfig:
    """What the emulated server looks like.

    ``width``/``height`` are the frame size when a load gives none; ``load_time`` is how
    long a pipeline load takes (a real one takes minutes); ``loras`` are files listed by
    ``/api/v1/lora/list`` (they need not exist); ``tempo_bpm`` turns on the server's
    tempo sync (``tempo_update`` messages and beat-quantized changes).
    """

    width: int = 576
    height: int = 320
    fps: float = 30.0
    load_time: float = 0.5
    loras: list[str | Path] = field(default_factory=list)
    tempo_bpm: float | None = None
    beats_per_bar: int = 4
    version: str = "0.2.4"
