"""Response curves and value ranges: knob position (0..1) ↔ target value.

Every curve has an exact inverse, because soft takeover, relative encoders and
feedback all work on the *knob's* scale: where would the knob have to be to
show the current value? Pure functions, no state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

Curve = Callable[[float, float], float]


def _clamp(x: float) -> float:
    return 0.0 if x <= 0.0 else 1.0 if x >= 1.0 else x


def _exp(x: float, k: float) -> float:
    return math.expm1(k * x) / math.expm1(k)


def _exp_inv(y: float, k: float) -> float:
    return math.log1p(y * math.expm1(k)) / k


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _s(x: float, k: float) -> float:
    # A logistic rescaled so 0 -> 0 and 1 -> 1; k sets the steepness mid-travel.
    lo, hi = _sigmoid(-k / 2), _sigmoid(k / 2)
    return (_sigmoid(k * (x - 0.5)) - lo) / (hi - lo)


def _s_inv(y: float, k: float) -> float:
    lo, hi = _sigmoid(-k / 2), _sigmoid(k / 2)
    p = lo + y * (hi - lo)
    return 0.5 + math.log(p / (1.0 - p)) / k


CURVES: dict[str, tuple[Curve, Curve]] = {
    "linear": (lambda x, k: x, lambda y, k: y),
    "exponential": (_exp, _exp_inv),
    "logarithmic": (_exp_inv, _exp),
    "s-curve": (_s, _s_inv),
}


def apply_curve(name: str, x: float, amount: float = 3.0) -> float:
    """Knob position 0..1 → curved 0..1."""
    return _clamp(CURVES[name][0](_clamp(x), amount))


def invert_curve(name: str, y: float, amount: float = 3.0) -> float:
    """Curved 0..1 → the knob position that gives it."""
    return _clamp(CURVES[name][1](_clamp(y), amount))


@dataclass(frozen=True)
class ValueRange:
    """A mapping's span in target units plus its curve; ``low > high`` inverts."""

    low: float
    high: float
    curve: str = "linear"
    amount: float = 3.0

    def to_value(self, unit: float) -> float:
        """Knob position 0..1 → target value."""
        return self.low + (self.high - self.low) * apply_curve(self.curve, unit, self.amount)

    def to_unit(self, value: float) -> float:
        """Target value → knob position 0..1 (clamped when the value lies outside)."""
        span = self.high - self.low
        if span == 0:
            return 0.0
        return invert_curve(self.curve, (value - self.low) / span, self.amount)
