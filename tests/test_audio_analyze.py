"""`soundscape analyze FILE`: the live tracker over a file, block by block, faster than live."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from soundscape.audio.synth import drum_loop, f_measure
from soundscape.cli import main


def test_analyze_prints_beats_downbeats_and_tempo_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = drum_loop(128, 16, pattern="house", seed=3)
    wav = loop.write_wav(tmp_path / "loop.wav")
    started = time.monotonic()
    assert main(["analyze", str(wav), "--json"]) == 0
    assert time.monotonic() - started < 16.0  # faster than real time
    out = json.loads(capsys.readouterr().out)
    beats = np.array(out["beats"])
    assert f_measure(loop.beats[loop.beats > 5], beats[beats > 5], 0.07) >= 0.95
    assert set(out["downbeats"]) <= set(out["beats"])
    bars = np.diff(out["downbeats"])
    assert np.allclose(bars, 4 * 60 / 128, atol=0.03)  # one bar line every four beats
    late = [bpm for t, bpm in out["tempo"] if t > 5]
    assert all(abs(bpm - 128) < 0.5 for bpm in late)
    # The bar length from the first beat on, and wherever it changes: four throughout.
    assert out["beats_per_bar"] == [[out["beats"][0], 4]]


def test_analyze_prints_a_readable_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = drum_loop(100, 8, seed=4).write_wav(tmp_path / "loop.wav")
    assert main(["analyze", str(wav)]) == 0
    text = capsys.readouterr().out
    assert "BPM" in text and "beats:" in text and "downbeats:" in text
    assert "bars:" in text and "4 beats" in text


def test_analyze_octaves_reads_the_file_with_the_prior_an_octave_either_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = drum_loop(128, 12, pattern="house", seed=5).write_wav(tmp_path / "loop.wav")
    assert main(["analyze", str(wav), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "octaves" not in plain  # the format without the flag is unchanged
    assert main(["analyze", str(wav), "--json", "--octaves"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["beats"] == plain["beats"] and out["tempo"] == plain["tempo"]
    for reading in out["octaves"]:  # each an octave from the main reading, and different
        assert abs(reading["prior_bpm"] - 64.0) < 1.0  # 256 is past max_bpm: not tried
        assert abs(reading["bpm"] / 128 - 1) > 0.1
    assert main(["analyze", str(wav), "--octaves"]) == 0
    assert "other reading" in capsys.readouterr().out


def test_analyze_a_missing_or_broken_file_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"not audio at all")
    assert main(["analyze", str(bad)]) == 1
    assert str(bad) in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing.wav")]) == 1
