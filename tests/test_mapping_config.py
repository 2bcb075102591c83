"""[mapping], [beat], [scenes]: every mistake reported with its key; the example show is valid."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from soundscape.audio.config import AudioConfig
from soundscape.config import Config
from soundscape.control.commands import CommandBus
from soundscape.control.midi_config import MidiConfig
from soundscape.control.osc_config import OscConfig
from soundscape.mapping import docs
from soundscape.mapping.config import (
    BeatConfig,
    MappingConfig,
    ScenesConfig,
    cross_check,
)
from soundscape.mapping.engine import MappingEngine
from soundscape.scope.params import ParameterStore
from soundscape.settings import Problem, build
from soundscape.video.config import OutputConfig

EXAMPLES = sorted((Path(__file__).parents[1] / "config" / "examples").glob("*.toml"))

# Sections and the classes that own them, until the root Config mounts them all.
SECTIONS: dict[str, Any] = {
    "osc": OscConfig,
    "midi": MidiConfig,
    "audio": AudioConfig,
    "mapping": MappingConfig,
    "beat": BeatConfig,
    "scenes": ScenesConfig,
}


def read_toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def problems_of(cls: type, data: dict[str, Any], path: str) -> list[str]:
    problems: list[Problem] = []
    build(cls, data, path, problems)
    return [str(p) for p in problems]


def test_a_good_section_has_no_problems_and_defaults_are_valid():
    assert problems_of(MappingConfig, {}, "mapping") == []
    assert problems_of(BeatConfig, {}, "beat") == []
    assert problems_of(ScenesConfig, {}, "scenes") == []


def test_rule_mistakes_are_reported_with_their_keys():
    data = {
        "rules": [
            {"source": "loudness", "target": "lora:ink"},
            {"source": "energy", "target": "brightness"},
            {"source": "energy", "target": "noise_scale", "mode": "base"},
            {"source": "energy", "target": "noise_scale", "curve": "wobbly"},
            {"source": "energy", "target": "transition"},
            {"source": "energy", "target": "noise_scale", "input": [0.5, 0.5]},
            {"source": "lfo", "target": "noise_scale", "lfo": {"shape": "sine", "beats": 0}},
            {"source": "energy", "target": "noise_scale", "treshold": 0.5},
        ]
    }
    problems = problems_of(MappingConfig, data, "mapping")
    text = "\n".join(problems)
    assert "mapping.rules[0].source: 'loudness' is not a source" in text
    assert "mapping.rules[1].target: 'brightness' is not a target" in text
    assert "mapping.rules[2].depth: base mode needs a depth" in text
    assert "mapping.rules[3].curve: 'wobbly' is not one of" in text
    assert "mapping.rules[4].prompts: expected a non-empty list of prompts" in text
    assert "mapping.rules[5].input: needs two different values" in text
    assert "mapping.rules[6].lfo.beats: 0.0 is outside" in text
    assert "mapping.rules[7].treshold: unknown key (did you mean 'threshold'?)" in text
    assert len(problems) == 8


def test_profiles_must_be_descending_steps():
    data = {"denoising_profiles": {"odd": [250, 500], "huge": [5000, 10]}}
    problems = problems_of(MappingConfig, data, "mapping")
    assert problems == [
        "mapping.denoising_profiles.odd: must be strictly descending",
        "mapping.denoising_profiles.huge: steps must be 1..1000",
    ]


def test_beat_mistakes():
    problems = problems_of(
        BeatConfig, {"sources": ["midi", "midi", "lnk"], "min_bpm": 200, "max_bpm": 100}, "beat"
    )
    assert any("beat.sources" in p and "'lnk'" in p for p in problems)
    problems = problems_of(BeatConfig, {"sources": ["midi", "midi"]}, "beat")
    assert problems == ["beat.sources: a source is named twice"]
    problems = problems_of(BeatConfig, {"min_bpm": 200, "max_bpm": 100}, "beat")
    assert problems == ["beat.max_bpm: must be above min_bpm"]


def test_scene_mistakes():
    data = {
        "list": [
            {"name": "a", "prompts": ["x"], "quantize": "3_bar"},
            {"name": "a", "prompts": []},
            {"name": "7", "prompts": ["y"], "variations": [{"name": "v", "prompts": ["z"]}] * 2},
        ],
        "safe": "nowhere",
        "rotate": ["a", "b"],
        "panic": "scream",
    }
    problems = problems_of(ScenesConfig, data, "scenes")
    text = "\n".join(problems)
    assert "scenes.list[0].quantize: '3_bar' is not one of" in text
    assert "scenes.list[1].prompts: expected a non-empty list of prompts" in text
    assert "scenes.list[2].name: '7' is reserved" in text
    assert "scenes.list[2].variations: variation 'v' is named twice" in text
    assert "scenes.panic: 'scream' is not one of" in text
    assert "scenes.safe: no scene 'nowhere'" in text
    assert "scenes.rotate[1]: no scene 'b'" in text


def test_cross_check_names_loras_bands_and_profiles():
    mapping = MappingConfig(
        rules=[
            build(
                MappingConfig, {"rules": [{"source": "bands.sub", "target": "lora:tape"}]}, "", []
            ).rules[0]
        ]
    )
    scenes = build(
        ScenesConfig,
        {"list": [{"name": "a", "prompts": ["x"], "lora": {"tape": 1.0}, "denoising": "turbo"}]},
        "",
        [],
    )
    problems = cross_check(mapping, scenes, loras=["ink"], bands=["low", "mid", "high"])
    assert problems == [
        ("mapping.rules[0].source", "no audio band 'sub'"),
        ("mapping.rules[0].target", "no LoRA 'tape' in [[pipeline.loras]]"),
        ("scenes.list[0].lora.tape", "not a LoRA in [[pipeline.loras]]"),
        ("scenes.list[0].denoising", "no profile 'turbo'"),
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
async def test_example_config_is_valid_and_runs(path: Path):
    data = read_toml(path)
    problems: list[Problem] = []
    root_keys = {f.name for f in dataclasses.fields(Config)}
    config = build(Config, {k: v for k, v in data.items() if k in root_keys}, "", problems)
    sections = {
        key: build(cls, data[key], key, problems) for key, cls in SECTIONS.items() if key in data
    }
    for i, output in enumerate(data.get("outputs", [])):
        build(OutputConfig, output, f"outputs[{i}]", problems)
    unknown = set(data) - root_keys - set(SECTIONS) - {"outputs"}
    assert not unknown, f"sections nobody owns: {unknown}"
    assert [str(p) for p in problems] == []
    audio = sections.get("audio", AudioConfig())
    assert (
        cross_check(
            sections["mapping"],
            sections["scenes"],
            loras=config.lora_paths(),
            bands=audio.band_names,
        )
        == []
    )
    # And the engine takes it: every rule compiles, every scene builds.
    store = ParameterStore(config.initial_parameters(), loras=config.lora_paths())
    engine = MappingEngine(
        sections["mapping"], sections["beat"], sections["scenes"], store, CommandBus()
    )
    assert len(engine.rules.rules) == len(sections["mapping"].rules)
    assert len(engine.director.book) == len(sections["scenes"].list)


def test_docs_reference_is_current():
    text = docs.DOC.read_text(encoding="utf-8")
    assert docs.update(text) == text, "run: python -m soundscape.mapping.docs --write"
