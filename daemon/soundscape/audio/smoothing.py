"""Time-based smoothing and adaptive level normalisation (pure, scalar, per block).

Both take the elapsed time ``dt`` of each step, so a 256-frame and a 512-frame
block size give the same curves in seconds.
"""

from __future__ import annotations

import math


class AttackRelease:
    """One-pole smoother with separate rise (attack) and fall (release) time constants.

    A time constant is the time to close ~63% of a step; 0 follows instantly.
    """

    __slots__ = ("_down", "_dt", "_up", "attack", "release", "value")

    def __init__(self, attack: float, release: float, value: float = 0.0) -> None:
        self.attack = attack
        self.release = release
        self.value = value
        # Coefficients for the last dt (the block size rarely changes: exp() once per size).
        self._dt = -1.0
        self._up = self._down = 1.0

    def _coefs(self, dt: float) -> tuple[float, float]:
        if dt != self._dt:
            self._up = 1.0 - math.exp(-dt / self.attack) if self.attack > 0 else 1.0
            self._down = 1.0 - math.exp(-dt / self.release) if self.release > 0 else 1.0
            self._dt = dt
        return self._up, self._down

    def update(self, x: float, dt: float) -> float:
        if dt != self._dt:  # inline check: a call per update costs more than the maths
            self._coefs(dt)
        y = self.value
        y += (x - y) * (self._up if x > y else self._down)
        self.value = y
        return y


class AdaptiveRange:
    """Maps a level in dB to 0..1 against a running peak that rises at once and falls slowly.

    ``peak`` jumps to any louder level and otherwise falls ``fall`` dB per
    second, so after a while a quiet set's loudest moments read near 1 just as
    a loud set's do. ``range_db`` below the peak reads 0. Levels under
    ``floor_db`` are silence and read 0; near the floor the range shrinks to
    what lies between floor and peak (at least ``MIN_RANGE_DB``), so a very
    quiet set still spans 0..1 while silence is never amplified into noise.
    """

    MIN_RANGE_DB = 6.0
    __slots__ = ("_lowest", "fall", "floor_db", "peak", "range_db")

    def __init__(self, fall: float, range_db: float, floor_db: float) -> None:
        self.fall = fall
        self.range_db = range_db
        self.floor_db = floor_db
        self.peak = self._lowest = floor_db + self.MIN_RANGE_DB

    def update(self, level_db: float, dt: float) -> float:
        peak = self.peak - self.fall * dt
        if level_db > peak:
            peak = level_db
        lowest = self._lowest
        if peak < lowest:
            peak = lowest
        self.peak = peak
        if level_db <= self.floor_db:
            return 0.0
        span = peak - self.floor_db
        if span > self.range_db:
            span = self.range_db
        x = (level_db - peak + span) / span
        return 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)


class DecayingPeak:
    """Running maximum that decays exponentially with time constant ``tau`` seconds."""

    __slots__ = ("_dt", "_k", "tau", "value")

    def __init__(self, tau: float, value: float = 0.0) -> None:
        self.tau = tau
        self.value = value
        self._dt = -1.0
        self._k = 1.0

    def update(self, x: float, dt: float) -> float:
        if dt != self._dt:
            self._k = math.exp(-dt / self.tau)
            self._dt = dt
        v = self.value * self._k
        if x > v:
            v = x
        self.value = v
        return v
