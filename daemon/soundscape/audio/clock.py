"""Block timestamps from the sample count, anchored to the monotonic clock (pure)."""

from __future__ import annotations


class SampleClock:
    """Timestamps blocks by counting samples, anchored to the monotonic clock.

    The first block is anchored to its arrival time minus its duration. After
    that a block's time is ``anchor + samples_so_far / rate``, so callback
    jitter never reaches the timestamps. Arrival times still steer the anchor
    slowly, so drift between the sound card's clock and the system's is
    followed: an arrival earlier than predicted means the anchor is late
    (callbacks can only be delayed, never early) and pulls it back quickly; a
    later one nudges it forward by a small share. A gap larger than
    ``resync`` seconds (an overrun, a stalled device) re-anchors.
    """

    EARLY_GAIN = 0.05  # share of an early arrival taken per block

    def __init__(self, sample_rate: float, *, gain: float = 0.001, resync: float = 0.1) -> None:
        self.rate = float(sample_rate)
        self.gain = gain
        self.resync = resync
        self.resyncs = 0
        self._anchor: float | None = None
        self._samples = 0

    def reset(self) -> None:
        self._anchor = None
        self._samples = 0

    def stamp(self, frames: int, arrival: float) -> float:
        """Time of the first sample of a block of ``frames`` that arrived at ``arrival``."""
        duration = frames / self.rate
        if self._anchor is None:
            self._anchor = arrival - duration
            self._samples = 0
        t = self._anchor + self._samples / self.rate
        err = arrival - (t + duration)
        if abs(err) > self.resync:
            self.resyncs += 1
            self._anchor = arrival - duration - self._samples / self.rate
            t = arrival - duration
        else:
            # Small bounded steps: timestamps stay smooth and increasing.
            step = err * (self.EARLY_GAIN if err < 0 else self.gain)
            limit = 0.02 * duration
            step = min(max(step, -limit), limit)
            self._anchor += step
            t += step
        self._samples += frames
        return t
