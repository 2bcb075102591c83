"""Mapping rules: inputs (audio features, the beat clock, control channels) → target values.

Pure logic. A :class:`Rule` reads one source, shapes it to 0..1 (input range,
attack/release smoothing, invert, curve) and either

- moves a continuous target (``replace``, ``max`` or ``base`` against the
  manual value), or
- fires a trigger (reset_cache, transition, variation, command:<name>) when the
  shaped value rises past a threshold — re-armed below ``threshold -
  hysteresis``, and not within its cooldown (a crossing during the cooldown is
  used up, so a held value never fires late).

Several rules on one target chain in order: the first meets the manual value,
each next one meets the previous result. While a hand is on a target's knob
(``weights[target] < 1``) every ``hand_wins`` rule on it fades out, so the
performer's value stands.

:meth:`RuleSet.evaluate` takes everything as arguments (``Inputs``, the manual
bases, the hand weights) and returns the values and the firings; the only
state is the smoothers and the trigger latches inside the rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from soundscape.audio.smoothing import AttackRelease
from soundscape.control.midi_curves import apply_curve
from soundscape.mapping.config import RuleConfig, is_trigger, valid_source, valid_target
from soundscape.mapping.lfo import Lfo
from soundscape.mapping.tempo import ClockState

FEATURE_SOURCES = ("energy", "brightness", "texture", "onset_strength")


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything rules read at one tick."""

    now: float
    features: Any  # soundscape.audio.features.Features (or anything with its fields)
    clock: ClockState
    onset: bool = False  # an onset since the previous tick
    controls: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Firing:
    """A trigger rule fired at ``t``."""

    rule: Rule
    t: float
    value: float


@dataclass(slots=True)
class Evaluation:
    values: dict[str, float] = field(default_factory=dict)  # continuous targets
    fired: list[Firing] = field(default_factory=list)
    shaped: dict[int, float] = field(default_factory=dict)  # rule index → 0..1 (for status)


def shape_curve(name: str, x: float, amount: float = 3.0, steps: int = 4) -> float:
    """0..1 → 0..1 through a response curve (``stepped`` quantises to ``steps`` levels)."""
    x = 0.0 if x <= 0.0 else 1.0 if x >= 1.0 else x
    if name == "stepped":
        return min(math.floor(x * steps), steps - 1) / (steps - 1)
    return apply_curve(name, x, amount)


def hand_weight(now: float, touched: float | None, hold: float, release: float) -> float:
    """How much rules may move a target: 0 while a hand is on it, back to 1 after.

    ``touched`` is the time of the last manual move; for ``hold`` seconds after
    it the rules yield completely, then fade back in over ``release`` seconds.
    """
    if touched is None:
        return 1.0
    since = now - touched - hold
    if since < 0:
        return 0.0
    if release <= 0 or since >= release:
        return 1.0
    return since / release


def needs_write(
    value: float, last: float | None, deadband: float, *, since: float, settle: float = 0.5
) -> bool:
    """Whether a new value is worth sending: beyond the deadband, or settled differently.

    Small wobbles inside the deadband are held back so the sender's messages
    carry real moves; a value that stays off by a little is still sent after
    ``settle`` seconds, so the picture ends where the rules say.
    """
    if last is None:
        return True
    diff = abs(value - last)
    return diff >= deadband or (diff > 1e-9 and since >= settle)


class Rule:
    """One compiled rule. ``low``/``high`` are its value range in target units."""

    def __init__(self, config: RuleConfig, *, low: float = 0.0, high: float = 1.0) -> None:
        if not valid_source(config.source):
            raise ValueError(f"{config.label()}: unknown source {config.source!r}")
        if not valid_target(config.target):
            raise ValueError(f"{config.label()}: unknown target {config.target!r}")
        self.config = config
        self.label = config.label()
        self.source = config.source
        self.target = config.target
        self.trigger = is_trigger(config.target)
        self.low = low if config.min is None else config.min
        self.high = high if config.max is None else config.max
        self.lfo = (
            Lfo(config.lfo.shape, config.lfo.beats, config.lfo.phase)
            if config.source == "lfo"
            else None
        )
        self._in_low, self._in_high = config.input
        self._smooth = AttackRelease(config.attack, config.release)
        self._started = False
        self.armed = True
        self.cooldown_until = -math.inf

    @property
    def swing(self) -> float:
        """How far the rule can move its target (for the deadband)."""
        if self.config.mode == "base":
            return abs(self.config.depth) or abs(self.high - self.low)
        return abs(self.high - self.low)

    # ----- reading

    def read(self, inputs: Inputs) -> float:
        """The raw source value."""
        source = self.source
        if source in FEATURE_SOURCES:
            return float(getattr(inputs.features, source))
        if source == "onset":
            return 1.0 if inputs.onset else 0.0
        if source == "beat":
            return 1.0 - inputs.clock.phase
        if source == "bar":
            return 1.0 - inputs.clock.bar_phase
        if source == "lfo":
            assert self.lfo is not None
            return self.lfo.value(inputs.clock.beats)
        if source.startswith("bands."):
            return float(inputs.features.bands.get(source[6:], 0.0))
        if source.startswith("control:"):
            return float(inputs.controls.get(source[8:].lower(), 0.0))
        raise AssertionError(source)  # valid_source() let something unknown through

    def shape(self, raw: float, dt: float) -> float:
        """Raw source → 0..1: input range, smoothing, invert, curve."""
        c = self.config
        x = (raw - self._in_low) / (self._in_high - self._in_low)
        x = 0.0 if not math.isfinite(x) or x <= 0.0 else 1.0 if x >= 1.0 else x
        if not self._started:
            self._smooth.value = x  # start where the source is, not at 0
            self._started = True
        else:
            x = self._smooth.update(x, dt)
        if c.invert:
            x = 1.0 - x
        return shape_curve(c.curve, x, c.curve_amount, c.steps)

    # ----- acting

    def apply(self, running: float, unit: float) -> float:
        """Continuous rules: the value given the value so far (the manual one first)."""
        low, high = self.low, self.high
        mode = self.config.mode
        if mode == "base":
            value = running + self.config.depth * (unit - self.config.center)
            lo, hi = min(low, high), max(low, high)
            return lo if value < lo else hi if value > hi else value
        value = low + (high - low) * unit
        return max(running, value) if mode == "max" else value

    def cooldown(self, clock: ClockState) -> float:
        return max(self.config.cooldown, self.config.cooldown_beats * clock.beat_seconds)

    def check_trigger(self, unit: float, now: float, clock: ClockState) -> bool:
        """Triggers: True when this reading fires."""
        c = self.config
        if not self.armed:
            if unit < c.threshold - c.hysteresis:
                self.armed = True
            return False
        if unit < c.threshold:
            return False
        self.armed = False
        if now < self.cooldown_until:
            return False  # crossing used up by the cooldown
        self.cooldown_until = now + self.cooldown(clock)
        return True


class RuleSet:
    """Rules in order; :meth:`evaluate` once per tick."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)
        self._last: float | None = None

    @classmethod
    def compile(
        cls,
        configs: Sequence[RuleConfig],
        target_range: Callable[[str], tuple[float, float]],
        on_error: Callable[[RuleConfig, str], None] | None = None,
    ) -> RuleSet:
        """Build the enabled rules; a rule that cannot be built is reported and skipped."""
        rules = []
        for config in configs:
            if not config.enabled:
                continue
            try:
                low, high = (0.0, 1.0) if is_trigger(config.target) else target_range(config.target)
                rules.append(Rule(config, low=low, high=high))
            except Exception as err:  # ParamError, ValueError: one bad rule, not a dead engine
                if on_error is not None:
                    on_error(config, str(err))
        return cls(rules)

    @property
    def targets(self) -> list[str]:
        """Continuous targets, in first-use order."""
        return list(dict.fromkeys(r.target for r in self.rules if not r.trigger))

    def deadband(self, target: str) -> float:
        return min(
            (
                r.config.deadband * r.swing
                for r in self.rules
                if r.target == target and not r.trigger
            ),
            default=0.0,
        )

    def evaluate(
        self,
        inputs: Inputs,
        bases: Mapping[str, float | None],
        weights: Mapping[str, float] | None = None,
    ) -> Evaluation:
        """Values for every continuous target and the triggers that fire now.

        ``bases`` are the manual values (None: unknown, the rule's low end is
        used); ``weights`` the hand weights (missing = 1, rules act fully).
        """
        weights = weights or {}
        now = inputs.now
        dt = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        result = Evaluation()
        for i, rule in enumerate(self.rules):
            unit = rule.shape(rule.read(inputs), dt)
            result.shaped[i] = unit
            if rule.trigger:
                if rule.check_trigger(unit, now, inputs.clock):
                    result.fired.append(Firing(rule, now, unit))
                continue
            if rule.target in result.values:
                running = result.values[rule.target]
            else:
                base = bases.get(rule.target)
                running = rule.low if base is None else base
            value = rule.apply(running, unit)
            weight = weights.get(rule.target, 1.0) if rule.config.hand_wins else 1.0
            result.values[rule.target] = running + weight * (value - running)
        return result
