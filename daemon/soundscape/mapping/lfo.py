"""LFOs locked to the beat clock: the value is a function of the clock's position.

No running phase of its own: an LFO reads the clock's position in beats, so
it stays locked through tempo changes and source changes, and a cycle of a
whole number of bars starts on a bar line (position 0 is a bar line). Values
are 0..1, like every other mapping source. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

SHAPES: dict[str, Callable[[float], float]] = {
    "sine": lambda p: 0.5 - 0.5 * math.cos(2.0 * math.pi * p),
    "triangle": lambda p: 2.0 * p if p < 0.5 else 2.0 - 2.0 * p,
    "saw": lambda p: p,
    "square": lambda p: 1.0 if p < 0.5 else 0.0,
}


def shape_value(shape: str, phase: float) -> float:
    """The value of ``shape`` at ``phase`` (cycles; only the fraction counts)."""
    return SHAPES[shape](phase % 1.0)


@dataclass(frozen=True, slots=True)
class Lfo:
    shape: str = "sine"
    beats: float = 4.0  # one cycle lasts this many beats
    phase: float = 0.0  # offset in cycles

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown LFO shape {self.shape!r} (one of {', '.join(SHAPES)})")
        if not self.beats > 0:
            raise ValueError("an LFO cycle needs a positive number of beats")

    def cycle_phase(self, beats: float) -> float:
        """Where in its cycle the LFO is at clock position ``beats`` (0..1)."""
        return (beats / self.beats + self.phase) % 1.0

    def value(self, beats: float) -> float:
        return shape_value(self.shape, self.cycle_phase(beats))
