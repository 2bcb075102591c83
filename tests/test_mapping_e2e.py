"""The music drives the picture, end to end: daemon + mapping engine against the Scope emulator.

1. A synthesised drum loop with a loud/quiet envelope goes through the real
   audio analyzer, fed in real time; a rule maps energy onto a LoRA scale. The
   scales the emulator's session receives must follow the loop's energy.
2. The emulator runs Scope's tempo sync (``tempo_update`` at 15 Hz); the beat
   clock locks to it; a scene change asked mid-bar must reach the emulator at
   the next bar line of Scope's own clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from soundscape.app import Daemon
from soundscape.audio.features import AudioAnalyzer, Features
from soundscape.audio.synth import drum_loop
from soundscape.config import Config, LoraEntry, load
from soundscape.emulator import Emulator, EmulatorConfig
from soundscape.mapping.config import (
    BeatConfig,
    MappingConfig,
    RuleConfig,
    SceneConfig,
    ScenesConfig,
)
from soundscape.mapping.engine import MappingEngine

INK = "/models/lora/ink.safetensors"
BLOCK = 512


def daemon_config(url: str) -> Config:
    config = load(None)
    pipeline = dataclasses.replace(
        config.pipeline, loras=[LoraEntry(name="ink", path=INK, scale=0.5)]
    )
    return dataclasses.replace(
        config, scope=dataclasses.replace(config.scope, url=url), pipeline=pipeline
    )


async def run_daemon(
    emulator: Emulator, mapping: MappingConfig, beat: BeatConfig, scenes: ScenesConfig
) -> tuple[Daemon, MappingEngine]:
    """What the lead's composition root does: build, wire, add as a component."""
    daemon = Daemon(daemon_config(emulator.url))
    engine = MappingEngine(
        mapping, beat, scenes, daemon.store, daemon.commands, client=daemon.client
    )
    daemon.supervisor.on_message("tempo_update", engine.tempo_update)
    daemon.components.append(engine)
    await daemon.start()
    return daemon, engine


def streaming(state: dict[str, Any]) -> bool:
    sessions = [s for s in state["sessions"] if s["open"]]
    return len(sessions) == 1 and sessions[0]["frames_sent"] >= 3


@pytest.fixture
async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    tempo = getattr(request, "param", None)
    emu = Emulator(EmulatorConfig(width=320, height=192, fps=30, load_time=0.1, tempo_bpm=tempo))
    await emu.start(host="127.0.0.1", port=0)
    try:
        yield emu
    finally:
        await emu.stop()


def analysed_loop(seconds: float) -> tuple[list[Features], float]:
    """Features of a 128 BPM loop whose level swells and fades (0 to -30 dB, 0.6 Hz)."""
    loop = drum_loop(128.0, seconds + 1.0, pattern="house", seed=3)
    sr = loop.sample_rate
    t = np.arange(len(loop.audio)) / sr
    swell = -30.0 * (0.5 - 0.5 * np.cos(2 * np.pi * 0.6 * t))  # dB
    audio = (loop.audio * 10 ** (swell / 20)).astype(np.float32)
    analyzer = AudioAnalyzer()
    # The first second only warms up the adaptive normalisation.
    features = [
        analyzer.process(audio[i : i + BLOCK], i / sr) for i in range(0, len(audio) - BLOCK, BLOCK)
    ]
    return [f for f in features if f.t >= 1.0], BLOCK / sr


async def test_a_lora_scale_follows_the_music(emulator: Emulator) -> None:
    rule = RuleConfig(source="energy", target="lora:ink", min=0.2, max=1.2, deadband=0.005)
    daemon, engine = await run_daemon(
        emulator, MappingConfig(rules=[rule]), BeatConfig(), ScenesConfig()
    )
    try:
        await emulator.wait_for(streaming, timeout=15)
        features, block_seconds = analysed_loop(4.0)
        loop = asyncio.get_running_loop()
        received: list[tuple[float, float]] = []
        done = asyncio.Event()

        def record(state: dict[str, Any]) -> bool:
            for session in state["sessions"]:
                if session["open"]:
                    for entry in session["parameters"].get("lora_scales", []):
                        if entry["path"] == INK:
                            received.append((loop.time(), entry["scale"]))
            return done.is_set()

        recorder = asyncio.create_task(emulator.wait_for(record, timeout=20))
        fed: list[tuple[float, float]] = []
        start = loop.time() + 0.1 - features[0].t
        for f in features:
            # A real-time source: each block is handed over when it has been "captured".
            await asyncio.sleep(max(0.0, start + f.t + block_seconds - loop.time()))
            f = dataclasses.replace(f, t=start + f.t)
            engine.feed(f)
            fed.append((loop.time(), f.energy))
        done.set()
        await recorder
    finally:
        await daemon.stop()

    fed_t, energy = np.array(fed).T
    got_t, scale = np.array(received).T
    assert scale.max() - scale.min() > 0.5, "the LoRA scale hardly moved"
    window = (got_t > fed_t[0] + 0.3) & (got_t < fed_t[-1])
    best = (-1.0, 0.0, 0.0)
    for lag in np.arange(0.0, 0.25, 0.01):  # the path: tick, sender slot, data channel
        expected = 0.2 + np.interp(got_t[window] - lag, fed_t, energy)
        corr = float(np.corrcoef(expected, scale[window])[0, 1])
        if corr > best[0]:
            best = (corr, lag, float(np.mean(np.abs(expected - scale[window]))))
    corr, lag, error = best
    print(f"\nlora vs energy: r={corr:.3f} at lag {lag * 1000:.0f} ms, mean error {error:.3f}")
    assert corr > 0.9
    assert error < 0.08


@pytest.mark.parametrize("emulator", [120.0], indirect=True)
async def test_a_quantized_scene_change_lands_on_scopes_bar_line(emulator: Emulator) -> None:
    scenes = ScenesConfig(
        list=[
            SceneConfig(name="intro", prompts=["a quiet shore at dawn"]),
            SceneConfig(name="drop", prompts=["a neon storm", "shattered glass"]),
        ],
        quantize="bar",
        transition_steps=4,
    )
    beat = BeatConfig(max_correction=0.5)  # lock on quickly: this test waits for it
    daemon, engine = await run_daemon(emulator, MappingConfig(), beat, scenes)
    scope_clock = emulator.clock
    assert scope_clock is not None
    loop = asyncio.get_running_loop()
    wall = time.time() - loop.time()  # the emulator's beat clock runs on time.time()
    try:
        await emulator.wait_for(streaming, timeout=15)
        # Wait, beat by beat, until our clock agrees with Scope's on the bar position.
        locked = asyncio.Event()

        def check(_event: Any) -> None:
            now = loop.time()
            ours = engine.clock.position(now) % 4
            theirs = scope_clock.beats(now + wall) % 4
            error = (ours - theirs + 2) % 4 - 2
            if engine.clock.active == "scope" and abs(error) < 0.05:
                locked.set()

        engine.runner.on_beat(check)
        await asyncio.wait_for(locked.wait(), 15)
        await asyncio.sleep(0.25)  # let time pass: ask half way into a beat, not on one

        arrived: list[float] = []

        def landed(state: dict[str, Any]) -> bool:
            for session in state["sessions"]:
                transition = session.get("transition") or {}
                if session["open"] and transition.get("to", [{}])[0].get("text") == "a neon storm":
                    arrived.append(time.time())
                    return True
            return False

        asked = time.time()
        await daemon.commands.call("scene", "drop", source="osc-command:127.0.0.1:9000")
        planned = engine.director.pending
        assert planned is not None, "the change was applied at once instead of on the bar"
        await emulator.wait_for(landed, timeout=5)
    finally:
        await daemon.stop()

    beat_s = 60.0 / scope_clock.bpm
    bar_s = 4 * beat_s
    arrival = arrived[0]
    # Scope's first bar line after the request:
    next_bar = scope_clock.origin + (np.floor((asked - scope_clock.origin) / bar_s) + 1) * bar_s
    ours = planned.when + wall  # our beat clock's bar time
    print(
        f"\nscene change: bar line at +{next_bar - asked:.3f} s, our clock's bar "
        f"{(ours - next_bar) * 1000:+.1f} ms, arrival {(arrival - next_bar) * 1000:+.1f} ms"
    )
    assert abs(arrival - next_bar) < beat_s, "not within one beat of Scope's bar line"
    assert abs(ours - next_bar) < 0.05, "our beat clock's bar line is not Scope's"
    assert arrival >= ours - 0.005, "the change went out before our own bar time"
