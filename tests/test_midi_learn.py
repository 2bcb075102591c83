"""MIDI learn: classifying the moved control, and saving it into the TOML file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import mido
import pytest

from soundscape.control.midi_config import MidiConfig, MidiMapping
from soundscape.control.midi_decode import encode_relative
from soundscape.control.midi_learn import LearnCapture, save_mapping
from soundscape.settings import Problem, build


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


def capture_ccs(messages: list[mido.Message], **kwargs) -> MidiMapping | None:
    capture = LearnCapture("noise_scale", settle=0.4, **kwargs)
    for i, msg in enumerate(messages):
        used, mapping = capture.feed(msg, i * 0.01)
        assert used
        assert mapping is None
    return capture.poll(1.0)


def test_note_and_program_are_decided_at_once() -> None:
    capture = LearnCapture("command:panic")
    used, mapping = capture.feed(mido.Message("note_on", channel=9, note=36, velocity=90), 0.0)
    assert used and mapping is not None
    assert (mapping.type, mapping.channel, mapping.number, mapping.button_mode) == (
        "note",
        10,
        36,
        "trigger",
    )
    scene = LearnCapture("command:scene")
    _, pc = scene.feed(mido.Message("program_change", program=3), 0.0)
    assert pc is not None and pc.type == "program" and pc.number is None


def test_absolute_knob() -> None:
    mapping = capture_ccs([cc(21, v, channel=2) for v in (40, 42, 45, 47)])
    assert mapping is not None
    assert (mapping.type, mapping.channel, mapping.number, mapping.mode) == ("cc", 3, 21, "")


def test_fourteen_bit_fader_in_either_order() -> None:
    msb_first = capture_ccs([cc(1, 64), cc(33, 3), cc(1, 65), cc(33, 9)])
    assert msb_first is not None and (msb_first.type, msb_first.number) == ("cc14", 1)
    lsb_first = capture_ccs([cc(33, 3), cc(1, 64), cc(33, 9), cc(1, 65)])
    assert lsb_first is not None and (lsb_first.type, lsb_first.number) == ("cc14", 1)


@pytest.mark.parametrize(
    "encoding,steps",
    [
        ("twos_complement", [-1, -1, -1]),
        ("sign_magnitude", [-1, -1, 1, 1]),
        ("binary_offset", [1, 1, 1]),
    ],
)
def test_relative_encoders(encoding: str, steps: list[int]) -> None:
    mapping = capture_ccs([cc(16, encode_relative(encoding, s)) for s in steps])
    assert mapping is not None
    assert (mapping.type, mapping.mode) == ("relative", encoding)


def test_button_cc_and_forced_type() -> None:
    button = capture_ccs([cc(64, 127), cc(64, 0)])
    assert button is not None and button.button_mode == "toggle"
    forced = capture_ccs([cc(16, 1)], kind="relative", mode="sign_magnitude")
    assert forced is not None and (forced.type, forced.mode) == ("relative", "sign_magnitude")


def test_other_controls_are_not_swallowed_during_capture() -> None:
    capture = LearnCapture("noise_scale")
    assert capture.feed(cc(21, 10), 0.0) == (True, None)
    assert capture.feed(cc(22, 10), 0.01) == (False, None)
    assert capture.feed(mido.Message("note_off", note=3), 0.02) == (False, None)


CONFIG = """\
# Show config for the Tuesday gig
[scope]
url = "http://127.0.0.1:8000"  # local Scope

[midi]
enabled = true  # MIDI on
inputs = ["x-touch"]

# The big fader on the right
[[midi.mappings]]
type = "cc"
number = 9
target = "noise_scale"  # keep this comment

[[midi.mappings]]
type = "note"
number = 8
target = "command:panic"

[log]
level = "info"
"""


def reload(path: Path) -> MidiConfig:
    problems: list[Problem] = []
    config = build(MidiConfig, tomllib.loads(path.read_text())["midi"], "midi", problems)
    assert problems == []
    return config


def test_save_keeps_comments_and_reloads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "soundscape.toml"
    path.write_text(CONFIG)
    learnt = MidiMapping(target="vace_context_scale", type="cc14", number=1, channel=11)
    save_mapping(path, learnt)
    text = path.read_text()
    for comment in (
        "# Show config for the Tuesday gig",
        "# local Scope",
        "# MIDI on",
        "# The big fader on the right",
        "# keep this comment",
    ):
        assert comment in text
    config = reload(path)
    assert [(m.type, m.channel, m.number, m.target) for m in config.mappings] == [
        ("cc", None, 9, "noise_scale"),
        ("note", None, 8, "command:panic"),
        ("cc14", 11, 1, "vace_context_scale"),
    ]
    assert tomllib.loads(text)["log"] == {"level": "info"}


def test_save_replaces_the_same_control(tmp_path: Path) -> None:
    path = tmp_path / "soundscape.toml"
    path.write_text(CONFIG)
    save_mapping(path, MidiMapping(target="kv_cache_attention_bias", type="cc", number=9))
    config = reload(path)
    assert [(m.number, m.target) for m in config.mappings] == [
        (8, "command:panic"),
        (9, "kv_cache_attention_bias"),
    ]
    assert "# Show config for the Tuesday gig" in path.read_text()


def test_save_into_a_file_without_midi_and_with_inline_mappings(tmp_path: Path) -> None:
    empty = tmp_path / "a.toml"
    empty.write_text("# only a comment\n")
    save_mapping(
        empty,
        MidiMapping(
            target="noise_scale", type="relative", number=16, mode="binary_offset", sensitivity=2.0
        ),
    )
    (mapping,) = reload(empty).mappings
    assert (mapping.type, mapping.mode, mapping.sensitivity) == ("relative", "binary_offset", 2.0)
    assert empty.read_text().startswith("# only a comment")
    inline = tmp_path / "b.toml"
    inline.write_text('[midi]\nmappings = [{type = "cc", number = 1, target = "noise_scale"}]\n')
    save_mapping(inline, MidiMapping(target="noise_scale", type="note", number=2))
    assert [m.number for m in reload(inline).mappings] == [1, 2]
