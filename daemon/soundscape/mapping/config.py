"""The ``[mapping]``, ``[beat]`` and ``[scenes]`` config sections.

Declared here (not in ``soundscape.config``) so the mapping package and its
tests need nothing else from the daemon; ``soundscape.config`` mounts them as
``Config.mapping``, ``Config.beat`` and ``Config.scenes``. Checks that need
other sections (is ``lora:ink`` loaded? is ``bands.sub`` an audio band?) are in
:func:`cross_check`, which the root config calls with those names.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from typing import Any

from soundscape.errors import ParamError
from soundscape.scope.params import check_prompts
from soundscape.settings import setting

BEAT_SOURCES: dict[str, str] = {
    "midi": "MIDI clock from the MIDI inputs (tempo, start = bar line).",
    "link": "Ableton Link ([beat] link = true), once a peer set the tempo or pressed play.",
    "scope": "Scope's own tempo sync (Ableton Link / MIDI clock on the Scope machine).",
    "tap": "Tap tempo (command `tap`): the first tap of a series is a bar line.",
    "audio": "The audio beat tracker (tempo, beat phase; bar lines when it hears beats_per_bar).",
}

QUANTIZE_MODES: dict[str, str] = {
    "none": "At once.",
    "beat": "On the next beat.",
    "bar": "On the next bar line.",
    "2_bar": "On the next line of a 2-bar phrase.",
    "4_bar": "On the next line of a 4-bar phrase.",
}

CURVES: dict[str, str] = {
    "linear": "Output follows the source evenly.",
    "exponential": "Little change for low values, most near the top (makes peaks stand out).",
    "logarithmic": "Fast rise for low values, fine control near the top (lifts quiet parts).",
    "s-curve": "Gentle at both ends, fast through the middle.",
    "stepped": "Quantised to `steps` levels (0, 1/(steps-1), ..., 1).",
}

MODES: dict[str, str] = {
    "replace": "The rule sets the value: min at source 0, max at source 1.",
    "max": "The larger of the manual value and the rule's min..max value wins.",
    "base": "The manual value is the base; the rule adds depth x (source - center), "
    "clamped to min..max.",
}

LFO_SHAPES: dict[str, str] = {
    "sine": "0 at the cycle start, 1 half way, smooth.",
    "triangle": "0 at the cycle start, 1 half way, straight lines.",
    "saw": "Rises from 0 to 1 over the cycle, then drops.",
    "square": "1 for the first half of the cycle, 0 for the second.",
}

SOURCES: dict[str, str] = {
    "energy": "Loudness, adaptively normalised (0 quiet .. 1 the loudest lately).",
    "brightness": "Spectral centroid on a log scale (0 dark .. 1 bright).",
    "texture": "Spectral flatness (0 tonal .. 1 noisy).",
    "onset": "1 at the tick after an onset (an attack), else 0.",
    "onset_strength": "How hard the latest attacks were (0..1, decays).",
    "bands.<name>": "Level of one audio band ([audio].band_names: low, mid, high).",
    "beat": "A pulse: 1 on each beat of the beat clock, falling to 0 at the next.",
    "bar": "A pulse: 1 on each bar line, falling to 0 at the next.",
    "lfo": "An LFO locked to the beat clock (see the rule's `lfo` table).",
    "control:<name>": "A control channel OSC or MIDI writes (0..1), e.g. control:intensity.",
}
CONTINUOUS_TARGETS = ("noise_scale", "vace_context_scale", "kv_cache_attention_bias")
TARGET_PREFIXES = ("lora:", "prompt_weight:", "denoising:", "control:", "command:")
TARGET_NAMES = ("lora:<name>", "prompt_weight:<i>", "denoising:profile", "control:<name>")

INTERPOLATION = ("auto", "linear", "slerp")
PANIC_MODES = ("scene", "pause", "both")


@dataclasses.dataclass
class LfoConfig:
    """An LFO locked to the beat clock (its cycles start on bar lines when ``beats`` fits)."""

    shape: str = setting("sine", "sine, triangle, saw or square.", choices=tuple(LFO_SHAPES))
    beats: float = setting(
        4.0, "Length of one cycle in beats (4 = one bar of 4/4, 16 = four bars).", low=0.0625
    )
    phase: float = setting(0.0, "Offset in cycles (0.25 = a quarter cycle later).", low=0, high=1)


@dataclasses.dataclass
class RuleConfig:
    """One ``[[mapping.rules]]`` entry: a source, shaped, drives a target."""

    source: str = setting(
        doc="energy, brightness, texture, onset, onset_strength, bands.<name>, beat, bar, "
        "lfo or control:<name>."
    )
    target: str = setting(
        doc="A control target (noise_scale, vace_context_scale, kv_cache_attention_bias, "
        "lora:<name>, prompt_weight:<i>, denoising:profile, control:<name>) or a trigger "
        "(reset_cache, transition, variation, command:<name>)."
    )
    name: str = setting("", "Label for logs (default: source->target).")
    enabled: bool = setting(True, "Off: the rule is skipped.")
    screen: str = setting(
        "", "The screen whose parameters it drives ('' = the main one, * = every screen)."
    )
    lfo: LfoConfig = setting(factory=LfoConfig)
    input: list[float] = setting(
        [0.0, 1.0], "Source values read as 0 and 1 (clamped); [0.2, 0.8] ignores the extremes."
    )
    attack: float = setting(0.0, "Seconds to follow a rising source (0 = at once).", low=0, high=60)
    release: float = setting(0.0, "Seconds to follow a falling source.", low=0, high=60)
    invert: bool = setting(False, "Read the (smoothed) source upside down: 1 - x.")
    curve: str = setting("linear", "Response curve.", choices=tuple(CURVES))
    curve_amount: float = setting(
        3.0, "Steepness of exponential, logarithmic and s-curve.", low=0.1, high=20
    )
    steps: int = setting(4, "Levels of the stepped curve.", low=2, high=128)
    mode: str = setting("replace", "How the rule meets the manual value.", choices=tuple(MODES))
    min: float | None = setting(None, "Value at source 0 (target units); default: target minimum.")
    max: float | None = setting(None, "Value at source 1; default: target maximum.")
    depth: float = setting(0.0, "base mode: swing in target units (negative = downwards).")
    center: float = setting(
        0.0, "base mode: source value that leaves the base unchanged (0.5 swings both ways).",
        low=0, high=1,
    )  # fmt: skip
    hand_wins: bool = setting(
        True, "Yield while a hand is on the target's knob (a recent OSC/MIDI move)."
    )
    deadband: float = setting(
        0.01, "Changes smaller than this share of the rule's swing are not sent.", low=0, high=0.5
    )
    # --- triggers
    threshold: float = setting(0.5, "Triggers fire when the shaped source rises past this.")
    hysteresis: float = setting(
        0.1, "…and re-arm once it falls this far below the threshold.", low=0, high=1
    )
    cooldown: float = setting(1.0, "Seconds after a firing during which it cannot fire.", low=0)
    cooldown_beats: float = setting(0.0, "Cooldown in beats (the longer of the two wins).", low=0)
    prompts: list[Any] = setting([], "transition: the target prompts (strings or {text, weight}).")
    variation: str = setting(
        "next", "variation: which one: next, previous, random, base, or a variation's name."
    )
    transition_steps: int | None = setting(
        None, "transition/variation: steps (default [scenes].variation_steps).", low=0, high=1000
    )
    method: str = setting(
        "auto", "transition/variation: auto (slerp for 2 prompts), linear or slerp.",
        choices=INTERPOLATION,
    )  # fmt: skip
    args: list[Any] = setting([], "command:<name>: the command's arguments.")

    def label(self) -> str:
        return self.name or f"{self.source}->{self.target}"

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not valid_source(self.source):
            known = ", ".join(SOURCES)
            problems.append(("source", f"{self.source!r} is not a source ({known})"))
        if not valid_target(self.target):
            known = ", ".join((*CONTINUOUS_TARGETS, *TARGET_NAMES, *TRIGGER_TARGETS))
            problems.append(("target", f"{self.target!r} is not a target ({known})"))
        if len(self.input) != 2 or self.input[0] == self.input[1]:
            problems.append(("input", "needs two different values [low, high]"))
        if self.mode == "base" and self.depth == 0 and not is_trigger(self.target):
            problems.append(("depth", "base mode needs a depth (how far the source moves it)"))
        if self.target == "transition":
            problems += _prompt_problems("prompts", self.prompts)
        return problems


TRIGGER_TARGETS: dict[str, str] = {
    "reset_cache": "Reset Scope's cache once.",
    "transition": "Transition to the rule's `prompts`.",
    "variation": "Bring in a variation of the current scene (`variation` says which).",
    "command:<name>": "Run a command (`args` are passed), e.g. command:scene with args = ['next'].",
}


def valid_source(source: str) -> bool:
    if source in SOURCES and "<" not in source:
        return True
    prefix, sep, arg = (
        source.partition(".") if source.startswith("bands.") else source.partition(":")
    )
    return bool(sep and arg and prefix in ("bands", "control"))


def valid_target(target: str) -> bool:
    if target in CONTINUOUS_TARGETS or target in ("reset_cache", "transition", "variation"):
        return True
    prefix, sep, arg = target.partition(":")
    return bool(sep and arg) and f"{prefix}:" in TARGET_PREFIXES


def is_trigger(target: str) -> bool:
    return target in ("reset_cache", "transition", "variation") or target.startswith("command:")


@dataclasses.dataclass
class MappingConfig:
    """``[mapping]``: how sources drive targets."""

    enabled: bool = setting(True, "Run the mapping rules (scenes and the beat clock run anyway).")
    tick_rate: float = setting(
        30.0, "Rule evaluations per second (match [session].max_messages_per_second).",
        low=1, high=240,
    )  # fmt: skip
    hand_wins: float = setting(
        2.0, "Seconds after a manual OSC/MIDI move during which rules leave that target alone.",
        low=0,
    )  # fmt: skip
    hand_release: float = setting(
        0.5, "Seconds over which a rule fades back in after the hand leaves.", low=0
    )
    hand_sources: list[str] = setting(
        ["osc:", "midi"], "Change sources (prefixes) that count as a hand on a knob."
    )
    audio_timeout: float = setting(
        0.5, "Seconds without audio features before the sources read as silence.", low=0.05
    )
    feedback_rate: float = setting(
        30.0, "Audio features sent to OSC feedback per second (0 = none).", low=0, high=240
    )
    denoising_profiles: dict[str, list[int]] = setting(
        {"quality": [1000, 750, 500, 250], "balanced": [1000, 500, 250], "fast": [1000, 250]},
        "Named denoising step lists; the target denoising:profile picks one by index, in order.",
    )
    rules: list[RuleConfig] = setting([], "The rules, evaluated in order.")

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if not self.denoising_profiles:
            problems.append(("denoising_profiles", "needs at least one profile"))
        for name, steps in self.denoising_profiles.items():
            if not steps or any(not 1 <= s <= 1000 for s in steps):
                problems.append((f"denoising_profiles.{name}", "steps must be 1..1000"))
            elif any(a <= b for a, b in itertools.pairwise(steps)):
                problems.append((f"denoising_profiles.{name}", "must be strictly descending"))
        return problems


@dataclasses.dataclass
class BeatConfig:
    """``[beat]``: one beat clock, fed by the most trusted live source."""

    sources: list[str] = setting(
        ["midi", "link", "scope", "tap", "audio"],
        "Sources in order of trust; the first live one drives the clock.",
        choices=tuple(BEAT_SOURCES),
    )
    beats_per_bar: int = setting(4, "Beats in a bar.", low=1, high=32)
    link: bool = setting(
        False,
        "Join the Ableton Link session (extra 'link'): follow a peer's tempo, phase and "
        "start/stop; publish ours when another source leads. Quantum = beats_per_bar.",
    )
    default_bpm: float = setting(120.0, "Tempo until a source speaks.", low=20, high=400)
    min_bpm: float = setting(40.0, "Slower taps or audio tempos are ignored.", low=20, high=400)
    max_bpm: float = setting(240.0, "Faster taps or audio tempos are ignored.", low=20, high=400)
    timeout: float = setting(
        1.0, "Seconds without news before Scope's tempo or the audio tracker counts as quiet.",
        low=0.1,
    )  # fmt: skip
    audio_confidence: float = setting(
        0.3, "The audio tracker counts as live only above this confidence.", low=0, high=1
    )
    tap_reset: float = setting(2.0, "A pause longer than this starts a new tap series.", low=0.3)
    tap_count: int = setting(8, "Taps averaged (the most recent).", low=2, high=64)
    tap_hold: float = setting(
        60.0, "Seconds the tapped tempo stays a live source after the last tap (0 = always).",
        low=0,
    )  # fmt: skip
    max_correction: float = setting(
        0.25, "While catching up with a source the clock runs at most this much faster/slower.",
        low=0.01, high=0.9,
    )  # fmt: skip
    catch_up_beats: float = setting(
        1.0, "Shortest catch-up, in beats (small corrections spread over this).", low=0, high=64
    )

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if len(set(self.sources)) != len(self.sources):
            problems.append(("sources", "a source is named twice"))
        if self.max_bpm <= self.min_bpm:
            problems.append(("max_bpm", "must be above min_bpm"))
        return problems


@dataclasses.dataclass
class VariationConfig:
    name: str = setting(doc="Name (for rules and the `variation` command).")
    prompts: list[Any] = setting(
        doc="Prompts (strings or {text, weight}); the scene's style is added."
    )


@dataclasses.dataclass
class SceneConfig:
    """One ``[[scenes.list]]`` entry: a look."""

    name: str = setting(doc="Name used by the `scene` command, OSC and MIDI.")
    prompts: list[Any] = setting(doc="Base prompts: strings or {text, weight} tables (1 to 4).")
    style: str = setting("", "Style modifiers appended to every prompt (', ' joined).")
    variations: list[VariationConfig] = setting([], "Alternative prompt sets.")
    transition_steps: int | None = setting(
        None, "Steps of the transition into this scene (default [scenes]).", low=0, high=1000
    )
    quantize: str = setting(
        "", "When a change to this scene lands ('' = [scenes].quantize).",
        choices=("", *QUANTIZE_MODES),
    )  # fmt: skip
    noise_scale: float | None = setting(None, "Preset noise (video mode).", low=0, high=1)
    kv_cache_attention_bias: float | None = setting(None, "Preset cache bias.", low=0.01, high=1)
    vace_context_scale: float | None = setting(None, "Preset VACE strength.", low=0, high=2)
    lora: dict[str, float] = setting({}, "Preset LoRA scales by name, e.g. {ink = 0.8}.")
    denoising: str = setting("", "Preset denoising profile ([mapping].denoising_profiles).")
    reference_image: str = setting(
        "", "Local image uploaded to Scope once and sent as vace_ref_images."
    )
    spike: float = setting(
        0.0, "Energy above this brings in the next variation (0 = off).", low=0, high=1
    )
    spike_cooldown: float | None = setting(
        None, "Seconds between spikes (default [scenes].spike_cooldown).", low=0
    )
    extra: dict[str, Any] = setting({}, "Other parameters set with the scene, as on the channel.")

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if not self.name.strip():
            problems.append(("name", "a scene needs a name"))
        if self.name.strip().isdigit() or self.name in ("next", "previous", "prev"):
            problems.append(("name", f"{self.name!r} is reserved (numbers, next, previous)"))
        problems += _prompt_problems("prompts", self.prompts)
        for i, variation in enumerate(self.variations):
            problems += _prompt_problems(f"variations[{i}].prompts", variation.prompts)
        names = [v.name for v in self.variations]
        for name in {n for n in names if names.count(n) > 1}:
            problems.append(("variations", f"variation {name!r} is named twice"))
        return problems


def _prompt_problems(key: str, prompts: Any) -> list[tuple[str, str]]:
    try:
        check_prompts(prompts, key)
    except ParamError as err:
        out = []
        for problem in err.problems:
            path, sep, message = problem.partition(": ")
            out.append((path, message) if sep else (key, problem))
        return out
    return []


@dataclasses.dataclass
class ScenesConfig:
    """``[scenes]``: the looks and how the show moves between them."""

    list: list[SceneConfig] = setting([], "The scenes, in order (numbers count from 0).")
    start: str = setting("", "Scene applied at start ('' = keep [parameters]).")
    safe: str = setting("", "Scene PANIC goes to ('' = the first).")
    panic: str = setting(
        "scene", "PANIC: go to the safe scene at once, pause, or both.", choices=PANIC_MODES
    )
    panic_stops_mapping: bool = setting(
        True, "PANIC also stops the mapping rules until the next scene change."
    )
    transition_steps: int = setting(6, "Steps of a scene change.", low=0, high=1000)
    variation_steps: int = setting(4, "Steps of a variation coming in.", low=0, high=1000)
    method: str = setting(
        "auto", "auto (slerp for exactly 2 prompts, else linear), linear or slerp.",
        choices=INTERPOLATION,
    )  # fmt: skip
    quantize: str = setting(
        "bar", "When a scene change lands, on the beat clock.", choices=tuple(QUANTIZE_MODES)
    )
    lookahead_ms: float = setting(
        0.0, "Send a quantized change this early (Scope's latency).", low=0, high=1000
    )
    grace_beats: float = setting(
        0.125,
        "A change asked this little after a boundary lands at once (it was meant for that "
        "one, e.g. an OSC message sent by a clip as it launches on the bar).",
        low=0,
        high=1,
    )
    spike_cooldown: float = setting(8.0, "Seconds between energy spikes.", low=0)
    rotate_bars: int = setting(0, "Move to the next scene every N bars (0 = off).", low=0)
    rotate: list[str] = setting([], "Scenes the rotation visits, in order ([] = all).")

    def check(self) -> list[tuple[str, str]]:
        problems = []
        names = [s.name for s in self.list]
        for name in {n for n in names if names.count(n) > 1}:
            problems.append(("list", f"scene {name!r} is named twice"))
        known = set(names)
        for key in ("start", "safe"):
            value = getattr(self, key)
            if value and value not in known:
                problems.append((key, f"no scene {value!r}"))
        for i, name in enumerate(self.rotate):
            if name not in known:
                problems.append((f"rotate[{i}]", f"no scene {name!r}"))
        return problems


def cross_check(
    mapping: MappingConfig,
    scenes: ScenesConfig,
    *,
    loras: Iterable[str] = (),
    bands: Iterable[str] = ("low", "mid", "high"),
) -> list[tuple[str, str]]:
    """Problems that need other sections: LoRA names, audio bands, profiles.

    Returns (dotted key, message) pairs ready for the root config's ``check``.
    """
    loras, bands = set(loras), set(bands)
    problems: list[tuple[str, str]] = []
    for i, rule in enumerate(mapping.rules):
        where = f"mapping.rules[{i}]"
        if rule.source.startswith("bands.") and rule.source[6:] not in bands:
            problems.append((f"{where}.source", f"no audio band {rule.source[6:]!r}"))
        if rule.target.startswith("lora:") and rule.target[5:] not in loras:
            problems.append(
                (f"{where}.target", f"no LoRA {rule.target[5:]!r} in [[pipeline.loras]]")
            )
    for i, scene in enumerate(scenes.list):
        where = f"scenes.list[{i}]"
        for name in scene.lora:
            if name not in loras:
                problems.append((f"{where}.lora.{name}", "not a LoRA in [[pipeline.loras]]"))
        if scene.denoising and scene.denoising not in mapping.denoising_profiles:
            problems.append((f"{where}.denoising", f"no profile {scene.denoising!r}"))
    return problems
