"""The [[outputs]] schema: defaults, every rule, cross-entry checks, the --ndi helper."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from fractions import Fraction
from pathlib import Path

import pytest

from soundscape.settings import Problem, build, describe, setting
from soundscape.video.config import OutputConfig, ndi_output, validate_outputs
from soundscape.video.ndi_env import default_config_dir, use_loopback
from soundscape.video.outputs.base import frame_rate


def parse(data: dict) -> tuple[OutputConfig | None, list[str]]:
    problems: list[Problem] = []
    try:
        config = build(OutputConfig, data, "outputs[0]", problems)
    except Exception:
        config = None
    return config, [str(p) for p in problems]


def test_minimal_ndi_entry_takes_the_documented_defaults():
    config, problems = parse({"type": "ndi"})
    assert problems == []
    assert config is not None
    assert (config.name, config.hold, config.fps) == ("Soundscape", "last", 30)
    assert (config.queue_size, config.queue_depth, config.max_age) == (0, 8, 0.1)
    assert OutputConfig(type="record", path="a.mkv").queue_depth == 16
    assert OutputConfig(type="ndi", queue_size=1).queue_depth == 1
    assert config.fixed_size is None
    assert config.label == "ndi:Soundscape"


def test_every_field_is_documented():
    rows = describe(OutputConfig)
    assert {key for key, _, _ in rows} >= {"type", "name", "hold", "still_image", "path"}
    assert all(doc for _, doc, _ in rows)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"type": "vga"}, "outputs[0].type: 'vga' is not one of"),
        ({"type": "ndi", "hold": "freeze"}, "outputs[0].hold: 'freeze' is not one of"),
        ({"type": "ndi", "hold": "still"}, "outputs[0].still_image: hold = 'still' needs"),
        ({"type": "record"}, "outputs[0].path: a record output needs a file path"),
        ({"type": "record", "path": "show.avi"}, "outputs[0].path: 'show.avi' should end"),
        ({"type": "ndi", "path": "x.mp4"}, "outputs[0].path: only record outputs take a path"),
        ({"type": "ndi", "width": 1280}, "outputs[0].width: set both width and height"),
        ({"type": "ndi", "width": 641, "height": 360}, "outputs[0].width: 641 is odd"),
        ({"type": "ndi", "fps": 0}, "outputs[0].fps: 0.0 is outside"),
        ({"type": "ndi", "queue_size": -1}, "outputs[0].queue_size: -1 is outside"),
        ({"type": "ndi", "name": " "}, "outputs[0].name: must not be empty"),
        ({"type": "record", "path": "a.mkv", "loopback_only": True}, "loopback_only: only"),
        ({"type": "ndi", "nmae": "x"}, "outputs[0].nmae: unknown key (did you mean 'name'?)"),
    ],
)
def test_bad_entries_are_reported_with_their_key(data, expected):
    _, problems = parse(data)
    assert any(expected in p for p in problems), problems


def test_two_outputs_with_one_name_are_refused_but_not_across_types():
    outputs = [ndi_output("Main"), ndi_output("Main"), OutputConfig(type="spout", name="Main")]
    problems = validate_outputs(outputs)
    assert problems == [
        ("[0].name", "two enabled ndi outputs are named 'Main'"),
        ("[1].name", "two enabled ndi outputs are named 'Main'"),
    ]
    outputs[1].enabled = False
    assert validate_outputs(outputs) == []


def test_loopback_must_be_set_on_all_ndi_outputs_or_none():
    outputs = [ndi_output("A", loopback_only=True), ndi_output("B")]
    ((key, message),) = validate_outputs(outputs)
    assert key == "[0].loopback_only" and "per process" in message
    assert (
        validate_outputs([ndi_output("A", loopback_only=True), ndi_output("B", loopback_only=True)])
        == []
    )


def test_ndi_output_builds_what_the_cli_flag_means():
    config = ndi_output("Stage Left")
    assert (config.type, config.name, config.enabled, config.hold) == (
        "ndi",
        "Stage Left",
        True,
        "last",
    )
    assert config.check() == []


@pytest.mark.parametrize(
    ("fps", "expected"),
    [
        (30, Fraction(30)),
        (29.97, Fraction(30000, 1001)),
        (59.94, Fraction(60000, 1001)),
        (25.1, Fraction(25)),
        (12.5, Fraction(25, 2)),
        (17.3, Fraction(173, 10)),
    ],
)
def test_frame_rate_is_a_tidy_fraction(fps, expected):
    assert frame_rate(fps) == expected


def test_docs_list_every_output_key():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "outputs.md").read_text()
    for key, _, _ in describe(OutputConfig):
        assert f"`{key}`" in doc, f"docs/outputs.md does not document {key}"


def test_use_loopback_writes_the_ndi_config_and_points_the_runtime_at_it(tmp_path, monkeypatch):
    monkeypatch.delenv("NDI_CONFIG_DIR", raising=False)
    directory = use_loopback(tmp_path / "ndi")
    assert os.environ["NDI_CONFIG_DIR"] == str(directory)
    written = json.loads((directory / "ndi-config.v1.json").read_text())
    assert written == {"ndi": {"networks": {"ips": "127.0.0.1", "discovery": ""}}}


def test_the_default_ndi_config_dir_is_private_to_the_user(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_config_dir() == tmp_path / "soundscape-ndi"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_config_dir().name.startswith("soundscape-ndi-")


@dataclasses.dataclass
class Root:
    """How the daemon's Config holds the outputs (the lead wires the real one)."""

    outputs: list[OutputConfig] = setting([], "Video outputs.")

    def check(self) -> list[tuple[str, str]]:
        return [(f"outputs{key}", message) for key, message in validate_outputs(self.outputs)]


def test_outputs_parse_from_toml_tables_with_every_problem_keyed():
    text = """
[[outputs]]
type = "ndi"
name = "Main"

[[outputs]]
type = "record"
path = "archive/show-%Y%m%d.mkv"
hold = "none"

[[outputs]]
type = "ndi"
name = "Main"
hold = "sepia"
"""
    problems: list[Problem] = []
    build(Root, tomllib.loads(text), "", problems)
    assert [str(p) for p in problems] == [
        "outputs[2].hold: 'sepia' is not one of 'last', 'black', 'still', 'none'"
    ]
    # Fixed entry by entry, the rule across entries speaks next.
    problems = []
    root = build(Root, tomllib.loads(text.replace('"sepia"', '"black"')), "", problems)
    assert [str(p) for p in problems] == [
        "outputs[0].name: two enabled ndi outputs are named 'Main'",
        "outputs[2].name: two enabled ndi outputs are named 'Main'",
    ]
    assert [o.label for o in root.outputs] == ["ndi:Main", "record:Soundscape", "ndi:Main"]
    assert root.outputs[1].path == "archive/show-%Y%m%d.mkv"
