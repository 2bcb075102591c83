"""Mapping rules as a pure function: synthetic features and a synthetic clock in, values out."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from soundscape.audio.features import Features, silent_features
from soundscape.mapping.config import LfoConfig, RuleConfig
from soundscape.mapping.lfo import Lfo, shape_value
from soundscape.mapping.rules import (
    Inputs,
    Rule,
    RuleSet,
    hand_weight,
    needs_write,
    shape_curve,
)
from soundscape.mapping.tempo import BeatClock, ClockState, Observation

BANDS = ("low", "mid", "high")


def features(t: float = 0.0, **values) -> Features:
    f = silent_features(t, BANDS)
    bands = {**f.bands, **values.pop("bands", {})}
    return dataclasses.replace(f, bands=bands, **values)


def clock_at(beats: float, bpm: float = 120.0, t: float = 0.0) -> ClockState:
    return ClockState(t, beats, bpm, 4, None)


def inputs(
    t: float = 0.0,
    beats: float = 0.0,
    bpm: float = 120.0,
    onset=False,
    controls=None,
    **feature_values,
) -> Inputs:
    return Inputs(t, features(t, **feature_values), clock_at(beats, bpm, t), onset, controls or {})


def rule(**kwargs) -> Rule:
    low = kwargs.pop("low", 0.0)
    high = kwargs.pop("high", 1.0)
    kwargs.setdefault("source", "energy")
    kwargs.setdefault("target", "noise_scale")
    return Rule(RuleConfig(**kwargs), low=low, high=high)


def value_of(r: Rule, base: float | None = None, weight: float = 1.0, **inp) -> float:
    ev = RuleSet([r]).evaluate(inputs(**inp), {r.target: base}, {r.target: weight})
    return ev.values[r.target]


# --------------------------------------------------------------------------- shaping


def test_curves_bend_the_middle_and_keep_the_ends():
    for name in ("linear", "exponential", "logarithmic", "s-curve", "stepped"):
        assert shape_curve(name, 0.0) == 0.0
        assert shape_curve(name, 1.0) == 1.0
    assert shape_curve("linear", 0.3) == pytest.approx(0.3)
    assert shape_curve("exponential", 0.5) < 0.3  # peaks stand out
    assert shape_curve("logarithmic", 0.5) > 0.7  # quiet parts lifted
    assert shape_curve("exponential", 0.5, amount=6) < shape_curve("exponential", 0.5, amount=2)
    levels = {shape_curve("stepped", x, steps=4) for x in np.linspace(0, 1, 101)}
    assert levels == {0.0, 1 / 3, 2 / 3, 1.0}
    assert shape_curve("linear", 1.7) == 1.0  # clamped


def test_range_maps_source_onto_target_units():
    r = rule(min=0.3, max=1.2, low=-10, high=10)
    assert value_of(r, energy=0.0) == pytest.approx(0.3)
    assert value_of(rule(min=0.3, max=1.2), energy=0.5) == pytest.approx(0.75)
    assert value_of(rule(min=0.3, max=1.2), energy=1.0) == pytest.approx(1.2)
    # Without min/max: the target's own range.
    assert value_of(rule(low=0.01, high=1.0), energy=1.0) == pytest.approx(1.0)


def test_input_range_and_invert():
    r = rule(input=[0.2, 0.6], min=0.0, max=1.0)
    assert value_of(r, energy=0.1) == 0.0
    assert value_of(rule(input=[0.2, 0.6]), energy=0.4) == pytest.approx(0.5)
    assert value_of(rule(input=[0.2, 0.6]), energy=0.9) == 1.0
    # Calm → high cache bias, loud → low (the seed's kv_cache_attention_bias idea).
    inv = dict(invert=True, min=0.15, max=0.85)
    assert value_of(rule(**inv), energy=0.0) == pytest.approx(0.85)
    assert value_of(rule(**inv), energy=1.0) == pytest.approx(0.15)


def test_attack_and_release_follow_their_time_constants():
    r = rule(attack=0.1, release=1.0)
    rs = RuleSet([r])
    dt = 1 / 30
    t = 0.0
    rs.evaluate(inputs(t, energy=0.0), {})
    while t < 0.1 - 1e-9:  # one attack time constant on a step up
        t += dt
        up = rs.evaluate(inputs(t, energy=1.0), {}).values["noise_scale"]
    assert up == pytest.approx(1 - math.exp(-1), abs=0.03)
    while t < 1.0:  # settle high
        t += dt
        rs.evaluate(inputs(t, energy=1.0), {})
    start = t
    while t < start + 1.0 - 1e-9:  # one release time constant on a step down
        t += dt
        down = rs.evaluate(inputs(t, energy=0.0), {}).values["noise_scale"]
    assert down == pytest.approx(math.exp(-1), abs=0.03)


def test_smoothing_starts_from_the_first_reading_not_from_zero():
    r = rule(attack=5.0, release=5.0)
    assert value_of(r, energy=0.8) == pytest.approx(0.8)


# --------------------------------------------------------------------------- meeting the hand


def test_replace_ignores_the_manual_value():
    assert value_of(rule(mode="replace", min=0.2, max=0.6), base=0.9, energy=0.5) == pytest.approx(
        0.4
    )


def test_max_lets_the_larger_win():
    r = dict(mode="max", min=0.0, max=1.0)
    assert value_of(rule(**r), base=0.7, energy=0.2) == pytest.approx(0.7)
    assert value_of(rule(**r), base=0.7, energy=0.9) == pytest.approx(0.9)


def test_base_modulates_around_the_manual_value_by_depth():
    around = dict(mode="base", depth=0.4, center=0.5, low=-10, high=10)
    assert value_of(rule(**around), base=0.8, energy=0.5) == pytest.approx(0.8)
    assert value_of(rule(**around), base=0.8, energy=1.0) == pytest.approx(1.0)
    assert value_of(rule(**around), base=0.8, energy=0.0) == pytest.approx(0.6)
    above = dict(mode="base", depth=0.4, low=-10, high=10)  # center 0: silence = the base
    assert value_of(rule(**above), base=0.8, energy=0.0) == pytest.approx(0.8)
    assert value_of(rule(**above), base=0.8, energy=1.0) == pytest.approx(1.2)
    clamped = dict(mode="base", depth=0.4, max=1.0, low=-10, high=10)
    assert value_of(rule(**clamped), base=0.8, energy=1.0) == pytest.approx(1.0)


def test_rules_on_one_target_chain_in_order():
    energy = rule(mode="replace", min=0.2, max=0.6)
    lfo = rule(source="lfo", mode="base", depth=0.2, center=0.5, low=0.0, high=1.0)
    ev = RuleSet([energy, lfo]).evaluate(inputs(beats=1.0, energy=0.5), {"noise_scale": 0.9})
    # energy gives 0.4; a quarter into its 4-beat cycle the sine LFO reads 0.5,
    # its center: it adds nothing. Half way (beat 2) it reads 1 and adds 0.1.
    assert ev.values["noise_scale"] == pytest.approx(0.4)
    ev = RuleSet([energy, lfo]).evaluate(inputs(beats=2.0, energy=0.5), {"noise_scale": 0.9})
    assert ev.values["noise_scale"] == pytest.approx(0.5)


def test_a_hand_on_the_knob_makes_hand_wins_rules_yield():
    r = rule(mode="replace", min=0.0, max=1.0)
    assert value_of(r, base=0.3, weight=0.0, energy=1.0) == pytest.approx(0.3)
    assert value_of(rule(min=0.0, max=1.0), base=0.3, weight=0.5, energy=1.0) == pytest.approx(0.65)
    stubborn = rule(min=0.0, max=1.0, hand_wins=False)
    assert value_of(stubborn, base=0.3, weight=0.0, energy=1.0) == pytest.approx(1.0)


def test_hand_weight_holds_then_fades_back():
    assert hand_weight(10.0, None, 2.0, 0.5) == 1.0
    assert hand_weight(10.0, 9.0, 2.0, 0.5) == 0.0  # touched a second ago
    assert hand_weight(11.25, 9.0, 2.0, 0.5) == pytest.approx(0.5)  # half way through the fade
    assert hand_weight(12.0, 9.0, 2.0, 0.5) == 1.0
    assert hand_weight(11.0, 9.0, 2.0, 0.0) == 1.0


def test_deadband_holds_back_wobbles_but_settles():
    assert needs_write(0.5, None, 0.01, since=0.0)
    assert not needs_write(0.505, 0.5, 0.01, since=0.1)
    assert needs_write(0.52, 0.5, 0.01, since=0.1)
    assert needs_write(0.505, 0.5, 0.01, since=0.6)  # held back long enough: send it
    assert not needs_write(0.5, 0.5, 0.01, since=10.0)


def test_deadband_scales_with_the_rules_swing():
    rs = RuleSet([rule(min=0.3, max=1.3, deadband=0.02, low=-10, high=10)])
    assert rs.deadband("noise_scale") == pytest.approx(0.02)
    rs = RuleSet([rule(mode="base", depth=0.5, deadband=0.02)])
    assert rs.deadband("noise_scale") == pytest.approx(0.01)


# --------------------------------------------------------------------------- sources


def test_sources_read_features_bands_controls_and_onsets():
    inp = inputs(
        energy=0.1,
        brightness=0.2,
        texture=0.3,
        onset_strength=0.4,
        bands={"low": 0.5},
        controls={"intensity": 0.6},
        onset=True,
    )
    for source, expected in [
        ("energy", 0.1),
        ("brightness", 0.2),
        ("texture", 0.3),
        ("onset_strength", 0.4),
        ("bands.low", 0.5),
        ("bands.mid", 0.0),
        ("control:intensity", 0.6),
        ("control:unknown", 0.0),
        ("onset", 1.0),
    ]:
        assert rule(source=source).read(inp) == pytest.approx(expected), source


def test_beat_and_bar_pulses_decay_over_the_beat_and_bar():
    beat, bar = rule(source="beat"), rule(source="bar")
    assert beat.read(inputs(beats=8.0)) == pytest.approx(1.0)
    assert beat.read(inputs(beats=8.5)) == pytest.approx(0.5)
    assert beat.read(inputs(beats=8.99)) == pytest.approx(0.01)
    assert bar.read(inputs(beats=8.0)) == pytest.approx(1.0)
    assert bar.read(inputs(beats=10.0)) == pytest.approx(0.5)


@pytest.mark.parametrize("shape", ["sine", "triangle", "saw", "square"])
def test_lfo_shapes_start_a_cycle_at_zero_or_high(shape: str):
    values = [shape_value(shape, p) for p in np.linspace(0, 0.999, 1000)]
    assert min(values) >= 0.0 and max(values) <= 1.0
    assert shape_value(shape, 0.0) == (1.0 if shape == "square" else 0.0)
    quarter = {"sine": 0.5, "triangle": 0.5, "saw": 0.25, "square": 1.0}[shape]
    assert shape_value(shape, 0.25) == pytest.approx(quarter)


def test_lfo_stays_locked_to_the_clock_through_tempo_and_source_changes():
    lfo = Lfo("sine", beats=8.0)  # two bars
    clock = BeatClock(default_bpm=120.0, now=0.0)
    r = rule(source="lfo", lfo=LfoConfig(shape="sine", beats=8.0))
    # Sampled at bar lines, whatever the tempo did in between, the LFO is at
    # its bottom every two bars and at its top on the bars in between.
    clock.observe("scope", Observation(3.0, 95.0, 0.0, bar_aligned=True), 3.0)
    for bar in range(2, 12):
        t = clock.time_at(bar * 4.0)
        state = clock.state(t)
        value = r.read(Inputs(t, features(t), state))
        assert value == pytest.approx(0.0 if bar % 2 == 0 else 1.0, abs=1e-6), bar
        assert lfo.value(state.beats) == pytest.approx(value)


# --------------------------------------------------------------------------- triggers


def trigger(**kwargs) -> Rule:
    kwargs.setdefault("target", "reset_cache")
    kwargs.setdefault("source", "bands.low")
    return rule(**kwargs)


def fire_times(r: Rule, signal, dt: float = 1 / 30, bpm: float = 120.0) -> list[float]:
    rs = RuleSet([r])
    fired = []
    for i, x in enumerate(signal):
        t = i * dt
        ev = rs.evaluate(inputs(t, beats=t * bpm / 60, bpm=bpm, bands={"low": x}), {})
        fired += [round(f.t, 6) for f in ev.fired]
    return fired


def test_trigger_fires_once_per_crossing_and_rearms_below_the_hysteresis():
    r = trigger(threshold=0.8, hysteresis=0.3, cooldown=0.0)
    # Up, wobble around the threshold (no re-arm), down below 0.5 (re-arm), up again.
    signal = [0.0, 0.9, 0.79, 0.85, 0.6, 0.9, 0.4, 0.95, 0.95]
    fired = fire_times(r, signal, dt=1.0)
    assert fired == [1.0, 7.0]


def test_cooldown_swallows_a_crossing_instead_of_firing_it_late():
    r = trigger(threshold=0.5, hysteresis=0.1, cooldown=2.0)
    # High at 0 s (fires); high again from 1 s to 3.5 s: it crossed during the
    # cooldown, so it must not fire when the cooldown ends at 2 s; low, then
    # high at 4 s: fires.
    signal = [1.0] + [0.0] * 9 + [1.0] * 25 + [0.0] * 5 + [1.0] * 5
    assert fire_times(r, signal, dt=0.1) == [0.0, 4.0]


def test_kicks_during_the_cooldown_are_dropped():
    r = trigger(threshold=0.5, hysteresis=0.1, cooldown=2.5)
    kicks = [1.0 if i % 10 == 0 else 0.0 for i in range(80)]  # a kick a second
    assert fire_times(r, kicks, dt=0.1) == [0.0, 3.0, 6.0]


def test_cooldown_in_beats_follows_the_tempo():
    r = trigger(threshold=0.5, cooldown=0.0, cooldown_beats=4)
    kicks = [1.0 if i % 5 == 0 else 0.0 for i in range(100)]  # every 0.5 s
    assert fire_times(r, kicks, dt=0.1, bpm=120.0) == [0.0, 2.0, 4.0, 6.0, 8.0]  # 4 beats = 2 s
    r = trigger(threshold=0.5, cooldown=0.0, cooldown_beats=4)
    assert fire_times(r, kicks, dt=0.1, bpm=240.0) == [
        0.0,
        1.0,
        2.0,
        3.0,
        4.0,
        5.0,
        6.0,
        7.0,
        8.0,
        9.0,
    ]


def test_triggers_are_not_continuous_values():
    ev = RuleSet([trigger(threshold=0.1)]).evaluate(inputs(bands={"low": 1.0}), {})
    assert ev.values == {}
    assert [f.rule.target for f in ev.fired] == ["reset_cache"]


def test_compile_reports_and_skips_a_bad_rule():
    errors = []

    def target_range(name: str):
        if name == "lora:missing":
            raise ValueError("lora:missing: not a loaded LoRA")
        return (0.0, 1.0)

    configs = [
        RuleConfig(source="energy", target="lora:missing"),
        RuleConfig(source="energy", target="noise_scale"),
        RuleConfig(source="energy", target="noise_scale", enabled=False),
        RuleConfig(source="bands.low", target="reset_cache"),
    ]
    rs = RuleSet.compile(configs, target_range, lambda c, e: errors.append((c.target, e)))
    assert [r.target for r in rs.rules] == ["noise_scale", "reset_cache"]
    assert errors == [("lora:missing", "lora:missing: not a loaded LoRA")]
    assert rs.targets == ["noise_scale"]
