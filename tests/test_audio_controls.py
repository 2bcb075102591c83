"""The performer's corrections of the audio beat clock as commands on the bus: a real
AudioEngine reading a WAV file through PyAV (as fast as it decodes, on a timeline that ends
now), the commands called as OSC, MIDI and the operator page call them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from soundscape.audio.capture import FileSource
from soundscape.audio.config import AudioConfig
from soundscape.audio.controls import AudioClockControls
from soundscape.audio.engine import AudioEngine
from soundscape.audio.synth import drum_loop
from soundscape.control.commands import CommandBus
from soundscape.errors import ParamError

SECONDS = 12.0


async def _engine_after(path: Path) -> AudioEngine:
    """An engine that has heard ``path`` to the end, its last block ending about now."""
    config = AudioConfig(block_size=512)
    engine = AudioEngine(
        config,
        source_factory=lambda cfg, on_block: FileSource(
            path, on_block, realtime=False, loop=False, start_time=time.monotonic() - SECONDS
        ),
    )
    await engine.start()
    try:
        assert isinstance(engine.source, FileSource)
        await engine.source.finished.wait()
    finally:
        await engine.stop()
    return engine


def _bus(engine: AudioEngine | None) -> CommandBus:
    bus = CommandBus()
    AudioClockControls(lambda: engine, lambda: "audio").register(bus)
    return bus


async def test_the_corrections_act_on_the_engine_and_are_handed_back(tmp_path: Path) -> None:
    wav = drum_loop(140, SECONDS, seed=3).write_wav(tmp_path / "loop.wav")
    engine = await _engine_after(wav)
    assert abs(engine.latest.bpm - 140.0) < 1.0
    bus = _bus(engine)
    beats = engine.analyzer.beats

    assert await bus.call("downbeat") == pytest.approx(140.0, abs=1.0)
    assert beats.marked
    assert await bus.call("downbeat", False) is None  # a button's release does nothing
    assert await bus.call("downbeat_release") is True and not beats.marked
    assert await bus.call("downbeat_release") is False  # nothing held any more

    assert await bus.call("tempo_half") == pytest.approx(70.0, abs=0.5)
    assert beats.lean_bpm == pytest.approx(70.0, abs=0.5)
    with pytest.raises(ParamError, match="out of the tempo range"):
        await bus.call("tempo_half")  # 35: below the tracker's 60
    assert await bus.call("tempo_auto") is True and beats.lean_bpm is None
    assert await bus.call("tempo_auto") is False


async def test_without_audio_or_a_tempo_the_corrections_are_refused(tmp_path: Path) -> None:
    for name in ("downbeat", "tempo_half", "tempo_double"):
        with pytest.raises(ParamError, match="no audio input"):
            await _bus(None).call(name)
    assert await _bus(None).call("downbeat_release") is False
    silent = drum_loop(120, 1.0, seed=4, level_db=-120).write_wav(tmp_path / "silence.wav")
    bus = _bus(await _engine_after(silent))
    for name in ("downbeat", "tempo_half", "tempo_double"):
        with pytest.raises(ParamError, match="no tempo yet"):
            await bus.call(name)
