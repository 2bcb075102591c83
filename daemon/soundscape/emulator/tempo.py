"""The server's beat clock: where the beat is now and when a quantized change lands.

Pure: every function takes the time as an argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Beats per quantization unit, given the bar length.
_UNIT_BARS = {"bar": 1, "2_bar": 2, "4_bar": 4}


@dataclass(frozen=True)
class BeatClock:
    """A steady tempo that started (beat 0) at ``origin`` seconds."""

    bpm: float
    origin: float
    beats_per_bar: int = 4

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.bpm

    def beats(self, now: float) -> float:
        return max(0.0, now - self.origin) / self.beat_seconds

    def update(self, now: float) -> dict[str, float | int | bool]:
        """The fields of a ``tempo_update`` message at ``now``."""
        beats = self.beats(now)
        count = math.floor(beats)
        return {
            "bpm": self.bpm,
            "beat_phase": beats - count,
            "bar_position": beats % self.beats_per_bar,
            "beat_count": count,
            "is_playing": True,
        }

    def delay_to_boundary(self, now: float, mode: str, lookahead_ms: float = 0.0) -> float | None:
        """Seconds until a change quantized to ``mode`` applies; None if not quantized.

        The change applies ``lookahead_ms`` before the next boundary that is still
        at least that far away (the look-ahead compensates the pipeline's latency).
        """
        if mode == "beat":
            unit = 1
        elif mode in _UNIT_BARS:
            unit = _UNIT_BARS[mode] * self.beats_per_bar
        else:
            return None
        lead = max(0.0, lookahead_ms) / 1000.0
        beats = self.beats(now + lead)
        target = (math.floor(beats / unit) + 1) * unit
        return max(0.0, self.origin + target * self.beat_seconds - lead - now)
