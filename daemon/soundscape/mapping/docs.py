"""Generate the reference parts of ``docs/mapping.md`` from the config schema and tables.

``python -m soundscape.mapping.docs --write`` rewrites the generated sections
(between ``<!-- mapping-reference:begin/end -->`` and
``<!-- mapping-config:begin/end -->``); ``--check`` exits 1 when they are
stale. The rest of the page is written by hand.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from soundscape import docgen
from soundscape.mapping.config import (
    BEAT_SOURCES,
    CURVES,
    LFO_SHAPES,
    MODES,
    QUANTIZE_MODES,
    SOURCES,
    TRIGGER_TARGETS,
    BeatConfig,
    MappingConfig,
    RuleConfig,
    SceneConfig,
    ScenesConfig,
    VariationConfig,
)
from soundscape.mapping.feedback import ADDRESSES
from soundscape.settings import describe

DOC = Path(__file__).resolve().parents[3] / "docs" / "mapping.md"

CONTINUOUS_TARGETS: dict[str, str] = {
    "noise_scale": "Noise, 0–1 (video mode only).",
    "vace_context_scale": "VACE strength, 0–2.",
    "kv_cache_attention_bias": "Reliance on past frames, 0.01–1 (lower = fresher).",
    "lora:<name>": "Runtime scale of a LoRA from `[[pipeline.loras]]`, -10–10.",
    "prompt_weight:<i>": "Weight of prompt `i` (0-based), 0–1.",
    "denoising:profile": "Index into `[mapping].denoising_profiles` (0 = the first).",
    "control:<name>": "A control channel (0–1) other rules can read.",
}

COMMANDS: dict[str, str] = {
    "scene [name|number|next|previous] [quantize] [steps]": "Change scene; quantized as "
    "configured unless `quantize` says otherwise (`none` = now).",
    "panic": "Safe scene at once (no quantize, no steps), or pause, per `[scenes].panic`.",
    "tap": "Tap tempo; the first tap of a series is a bar line. Answers the tempo.",
    "downbeat": "The one is now: the audio beat clock puts its bar line at the press and "
    "holds it (no side flips) until the tempo changes. Answers the audio's tempo.",
    "downbeat_release": "The audio beat clock's grid and bar line are the tracker's again.",
    "tempo_half": "Half time: the audio tracker reads half its tempo, leaning there until "
    "a next track at another tempo. Answers the new tempo.",
    "tempo_double": "Double time: the audio tracker reads twice its tempo, leaning there "
    "until a next track at another tempo. Answers the new tempo.",
    "tempo_auto": "The audio tracker's octave is its own again (`beat.prior_bpm`).",
    "variation [next|previous|random|base|name]": "Bring in a variation of the current scene.",
    "mapping [on]": "Mapping rules on/off (toggle without an argument).",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _names(rows: Mapping[str, str], head: str) -> str:
    lines = [f"| {head} | Meaning |", "| --- | --- |"]
    lines += [f"| `{name}` | {_cell(doc)} |" for name, doc in rows.items()]
    return "\n".join(lines)


def render_reference() -> str:
    addresses = ["| Address | Types | When |", "| --- | --- | --- |"]
    addresses += [f"| `{a}` | `{t}` | {_cell(doc)} |" for a, (t, doc) in ADDRESSES.items()]
    return "\n\n".join(
        [
            "### Sources",
            _names(SOURCES, "Source"),
            "### Targets",
            _names(CONTINUOUS_TARGETS, "Continuous target"),
            _names(TRIGGER_TARGETS, "Trigger target"),
            "### Curves, modes, LFO shapes",
            _names(CURVES, "Curve"),
            _names(MODES, "Mode"),
            _names(LFO_SHAPES, "LFO shape"),
            "### Beat sources and quantize",
            _names(BEAT_SOURCES, "Beat source"),
            _names(QUANTIZE_MODES, "Quantize"),
            "### Commands",
            _names(COMMANDS, "Command"),
            "### OSC feedback",
            "\n".join(addresses),
        ]
    )


def _keys(cls: type, prefix: str) -> str:
    rows = ["| Key | Default | Meaning |", "| --- | --- | --- |"]
    for key, doc, default in describe(cls, prefix):
        shown = "—" if default is None and "[]" in key else f"`{_cell(json.dumps(default))}`"
        rows.append(f"| `{key}` | {shown} | {_cell(doc)} |")
    return "\n".join(rows)


def render_config() -> str:
    return "\n\n".join(
        [
            "### `[mapping]`",
            _keys(MappingConfig, "mapping"),
            "### `[[mapping.rules]]`",
            _keys(RuleConfig, "mapping.rules[]"),
            "### `[beat]`",
            _keys(BeatConfig, "beat"),
            "### `[scenes]`",
            _keys(ScenesConfig, "scenes"),
            "### `[[scenes.list]]`",
            _keys(SceneConfig, "scenes.list[]"),
            _keys(VariationConfig, "scenes.list[].variations[]"),
        ]
    )


SECTIONS = {"mapping-reference": render_reference, "mapping-config": render_config}


def update(text: str) -> str:
    """``text`` with every generated section replaced by its current rendering."""
    return docgen.update(text, SECTIONS)


def main(argv: Sequence[str] | None = None) -> int:
    return docgen.main(DOC, SECTIONS, "soundscape.mapping.docs", argv)


if __name__ == "__main__":
    sys.exit(main())
