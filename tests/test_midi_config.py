"""The [midi] config section, and docs/midi.md kept true to the code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from soundscape.control.midi_config import (
    MidiConfig,
    MidiMapping,
    screen_names_used,
    screen_problems,
)
from soundscape.control.midi_docs import render
from soundscape.control.midi_mapping import MidiMapper
from soundscape.scope.params import ParameterStore
from soundscape.settings import Problem, build

DOC = Path(__file__).resolve().parent.parent / "docs" / "midi.md"


def problems_of(data: dict) -> list[str]:
    problems: list[Problem] = []
    build(MidiConfig, data, "midi", problems)
    return [str(p) for p in problems]


def test_defaults_are_valid_and_off() -> None:
    problems: list[Problem] = []
    config = build(MidiConfig, {}, "midi", problems)
    assert problems == []
    assert not config.enabled and config.takeover == "pickup" and config.mappings == []


def test_every_mistake_is_reported_with_its_path() -> None:
    found = problems_of(
        {
            "inputz": ["x"],
            "takeover": "sometimes",
            "mappings": [
                {"type": "cc14", "number": 40, "target": "noise_scale"},
                {"type": "relative", "number": 1, "mode": "toggle", "target": "noise_scale"},
                {"type": "note", "target": "command:panic"},
                {"type": "cc", "number": 1},
                {"type": "cc", "number": 2, "channel": 17, "target": "noise_scale"},
                {"type": "relative", "number": 3, "target": "command:tap"},
            ],
        }
    )
    expected = [
        "midi.inputz: unknown key (did you mean 'inputs'?)",
        "midi.takeover: 'sometimes' is not one of",
        "midi.mappings[0].number: cc14 takes the MSB controller",
        "midi.mappings[1].mode: 'toggle' does not fit type 'relative'",
        "midi.mappings[2].number: a note mapping needs a number",
        "midi.mappings[3].target: a mapping needs a target",
        "midi.mappings[4].channel: 17 is outside 1..16",
        "midi.mappings[5].target: a relative control cannot run a command",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in found), (start, found)


def test_duplicate_mappings_are_reported() -> None:
    mapping = {"type": "cc", "number": 1, "target": "noise_scale"}
    assert problems_of({"mappings": [mapping, mapping]}) == [
        "midi.mappings[1]: same control, target and screen as mappings[0]"
    ]
    # The same control and target on two screens is two mappings, not a duplicate.
    assert problems_of({"mappings": [mapping, {**mapping, "screen": "left"}]}) == []


def test_screens_named_by_mappings_are_cross_checked_by_the_root_config() -> None:
    config = MidiConfig(
        mappings=[
            MidiMapping(target="noise_scale", number=1),
            MidiMapping(target="noise_scale", number=2, screen="left"),
            MidiMapping(target="noise_scale", number=3, screen="*"),
            MidiMapping(target="noise_scale", number=4, screen="lft"),
        ]
    )
    assert screen_names_used(config) == {"left", "lft"}
    assert screen_problems(config, ["main", "left"]) == [
        (
            "midi.mappings[3].screen",
            "no screen 'lft' (screens: 'left', 'main'; \"\" = the main screen, "
            '"*" = every screen)',
        )
    ]
    assert screen_problems(config, ["main", "left", "lft"]) == []


def test_docs_tables_are_generated_from_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert render(text) == text, "run: python -m soundscape.control.midi_docs"


def _toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("block", _toml_blocks())
def test_docs_examples_are_valid_configs(block: str) -> None:
    data = tomllib.loads(block)
    problems: list[Problem] = []
    config = build(MidiConfig, data.get("midi", {}), "midi", problems)
    assert problems == []

    def store() -> ParameterStore:
        return ParameterStore(
            {"prompts": [{"text": "a", "weight": 1.0}, {"text": "b", "weight": 0.0}]},
            loras={"ink": "/loras/ink.safetensors"},
        )

    # A multi-screen example lists its screens as [[scope]] entries (the first: main).
    entries = data.get("scope", [])
    names = [
        entry.get("name") or "main"
        for i, entry in enumerate(entries)
        if i == 0 or entry.get("role") == "screen"
    ]
    assert screen_problems(config, names or ["main"]) == []
    mapper = MidiMapper(config.mappings, store(), screens={n: store() for n in names[1:]})
    assert mapper.problems == []
    assert len(mapper.mappings()) == len(config.mappings)
