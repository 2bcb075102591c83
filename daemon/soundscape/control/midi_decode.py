"""Decoding what controls send: relative encoder steps, 14-bit CC pairs, buttons.

Pure logic. Times are arguments (seconds, any monotonic clock) so tests drive
the 14-bit pairing with synthetic sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX7 = 127
MAX14 = 16383


def relative_steps(encoding: str, value: int) -> int:
    """Signed steps (clockwise positive) encoded in one relative CC value."""
    if encoding == "twos_complement":
        return value - 128 if value >= 64 else value
    if encoding == "binary_offset":
        return value - 64
    if encoding == "sign_magnitude":
        return -(value & 0x3F) if value & 0x40 else value
    raise ValueError(f"unknown relative encoding {encoding!r}")


def encode_relative(encoding: str, steps: int) -> int:
    """The CC value a device sends for ``steps`` (tests and the docs use it)."""
    steps = max(-63, min(63, steps))
    if encoding == "twos_complement":
        return steps & 0x7F
    if encoding == "binary_offset":
        return 64 + steps
    if encoding == "sign_magnitude":
        return 0x40 | -steps if steps < 0 else steps
    raise ValueError(f"unknown relative encoding {encoding!r}")


def button_pressed(value: int) -> bool:
    """A CC used as a button: the upper half of the range means pressed."""
    return value >= 64


def split14(unit: float) -> tuple[int, int]:
    """0..1 → (MSB, LSB) of a 14-bit value."""
    raw = round(min(1.0, max(0.0, unit)) * MAX14)
    return raw >> 7, raw & 0x7F


@dataclass
class Cc14Decoder:
    """Pairs the MSB (CC n) and LSB (CC n+32) halves of a 14-bit controller.

    Devices differ, so the decoder adapts instead of assuming the spec order:

    - A device that never sent an LSB is treated as 7-bit (MSB-only): each MSB
      applies at once and 127 reaches the top of the range.
    - MSB then LSB (the spec): an MSB waits up to ``window`` seconds for its
      LSB; if none comes it applies with LSB 0 (the spec resets the LSB). An
      LSB alone is a fine change under the last MSB and applies at once.
    - LSB then MSB: learnt from the first pair; then an LSB waits for its MSB,
      and applies alone (fine change) if none comes within ``window``.

    A late half never leaves a wrong value standing: the next half always
    combines with the latest of the other, so the end state is exact.
    """

    window: float = 0.02
    msb: int | None = None
    lsb: int = 0
    lsb_seen: bool = False
    order: str | None = None  # "msb_first" | "lsb_first" once learnt
    _msb_at: float | None = None  # a waiting MSB (or, in MSB-only mode, the last MSB's time)
    _msb_pending: bool = False
    _lsb_pending_at: float | None = None

    def _value(self) -> float:
        assert self.msb is not None
        return ((self.msb << 7) | self.lsb) / MAX14

    @property
    def deadline(self) -> float | None:
        """When :meth:`poll` has something to flush (None = nothing waiting)."""
        if self._msb_pending and self._msb_at is not None:
            return self._msb_at + self.window
        if self._lsb_pending_at is not None:
            return self._lsb_pending_at + self.window
        return None

    def feed_msb(self, value: int, now: float) -> float | None:
        """An MSB arrived; returns the unit value to apply now, or None (waiting)."""
        lsb_waiting = self._lsb_pending_at is not None and now - self._lsb_pending_at <= self.window
        self._lsb_pending_at = None
        self.msb = value
        self._msb_at = now
        if lsb_waiting:
            # LSB-first device: this MSB completes the pair.
            self.order = self.order or "lsb_first"
            return self._value()
        if not self.lsb_seen:
            return value / MAX7
        if self.order == "lsb_first":
            # Keep the last LSB: on these devices it came just before this MSB.
            return self._value()
        self.lsb = 0
        self._msb_pending = True
        return None

    def feed_lsb(self, value: int, now: float) -> float | None:
        """An LSB arrived; returns the unit value to apply now, or None (waiting)."""
        first = not self.lsb_seen
        self.lsb_seen = True
        self.lsb = value
        if self.order != "lsb_first" and self.msb is not None:
            recent_msb = self._msb_at is not None and now - self._msb_at <= self.window
            if self._msb_pending or recent_msb:
                # Completes the MSB just received (or corrects one applied alone).
                if self._msb_pending or first:
                    self.order = self.order or "msb_first"
                self._msb_pending = False
                return self._value()
            if self.order == "msb_first":
                return self._value()  # a fine change under the last MSB
        # Unknown order or LSB-first: wait a moment for the MSB.
        self._lsb_pending_at = now
        return None

    def poll(self, now: float) -> float | None:
        """Flush a half that waited past the window; returns a value to apply or None."""
        if self._msb_pending and self._msb_at is not None and now >= self._msb_at + self.window:
            self._msb_pending = False
            return self._value()
        if self._lsb_pending_at is not None and now >= self._lsb_pending_at + self.window:
            self._lsb_pending_at = None
            return self._value() if self.msb is not None else None
        return None
