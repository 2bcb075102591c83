"""Live reload: SIGHUP applies a changed config without dropping the stream; a broken one
is refused with every error logged and the running config kept."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import av
import pytest
from pythonosc.udp_client import SimpleUDPClient
from structlog.testing import capture_logs

from soundscape import reload as live_reload
from soundscape.app import Daemon
from soundscape.audio.config import AudioConfig
from soundscape.audio.engine import AudioEngine
from soundscape.audio.synth import drum_loop
from soundscape.config import load
from soundscape.control.commands import CommandBus
from soundscape.control.midi import MidiControl
from soundscape.control.midi_config import MidiConfig, MidiMapping
from soundscape.emulator import Emulator, EmulatorConfig, decode_counter
from soundscape.mapping.tempo import BeatClock, Observation
from soundscape.scope.params import ParameterStore
from soundscape.video.config import OutputConfig
from soundscape.video.fanout import VideoFanout
from soundscape.video.outputs.base import Output

SHOW = """\
[scope]
url = "{url}"

[pipeline]
width = 320
height = 192

[osc]
enabled = {osc}
port = {port}

[parameters]
prompts = ["a lighthouse in fog"]
manage_cache = true

[[mapping.rules]]
name = "bias swing"
source = "lfo"
target = "kv_cache_attention_bias"
min = {low}
max = {high}
"""


def write_show(path: Path, url: str = "http://127.0.0.1:1", **kw: Any) -> Path:
    values = {"url": url, "osc": "false", "port": 0, "low": 0.1, "high": 0.11, **kw}
    path.write_text(SHOW.format(**values))
    return path


# --------------------------------------------------------------------------- the plan


def test_the_plan_applies_only_what_the_file_changed(tmp_path: Path) -> None:
    old = load(write_show(tmp_path / "a.toml"))
    same = live_reload.plan(old, load(write_show(tmp_path / "b.toml")))
    assert same.sections == [] and same.parameters == {} and not same.pipeline

    text = SHOW.replace("manage_cache = true", "manage_cache = false") + '[log]\nlevel = "debug"\n'
    (tmp_path / "c.toml").write_text(
        text.format(url="http://127.0.0.1:1", osc="false", port=0, low=0.5, high=0.6)
    )
    todo = live_reload.plan(old, load(tmp_path / "c.toml"))
    assert todo.sections == ["parameters", "log", "mapping"]
    assert todo.parameters == {"manage_cache": False}  # not the prompts: unchanged in the file
    assert todo.restart_needed == ["log"]
    assert not todo.pipeline

    for section, change in (("ndi", {"loopback": True}), ("http", {"listen": "127.0.0.1:8471"})):
        changed = dataclasses.replace(getattr(old, section), **change)
        todo = live_reload.plan(old, dataclasses.replace(old, **{section: changed}))
        assert todo.restart_needed == [section]  # said, never silently ignored

    bigger = dataclasses.replace(old.pipeline, width=640)
    todo = live_reload.plan(old, dataclasses.replace(old, pipeline=bigger))
    assert todo.pipeline and todo.sections == ["pipeline"]
    video = dataclasses.replace(old.parameters, input_mode="video")
    todo = live_reload.plan(old, dataclasses.replace(old, parameters=video))
    assert todo.pipeline and todo.parameters["input_mode"] == "video"
    patient = dataclasses.replace(old.pipeline, load_timeout=1200.0)
    assert not live_reload.plan(old, dataclasses.replace(old, pipeline=patient)).pipeline


async def test_live_values_stay_unless_the_file_changed_them(tmp_path: Path) -> None:
    path = write_show(tmp_path / "show.toml")
    daemon = Daemon(load(path))
    daemon.store.set("prompts", ["the performer's prompt"], source="osc:test")
    daemon.store.set("manage_cache", False, source="osc:test")
    daemon.store.set("kv_cache_attention_bias", 0.9, source="midi:cc:1:1")
    path.write_text(
        path.read_text().replace('prompts = ["a lighthouse in fog"]', 'prompts = ["x"]')
    )
    await live_reload.apply(daemon, load(path))
    assert daemon.store.get("prompts") == [{"text": "x", "weight": 1.0}]  # the file changed it
    assert daemon.store.get("manage_cache") is False  # the file did not: the live value stays
    assert daemon.store.get("kv_cache_attention_bias") == 0.9
    assert daemon.config.parameters.prompts == ["x"]


async def test_sections_that_need_a_restart_are_logged_and_kept(tmp_path: Path) -> None:
    path = write_show(tmp_path / "show.toml")
    daemon = Daemon(load(path))
    write_show(path, url="http://127.0.0.1:2")
    with capture_logs() as logs:
        await live_reload.apply(daemon, load(path))
    assert [e["section"] for e in logs if e["event"] == "config_restart_needed"] == ["scope"]
    assert daemon.config.scope.url == "http://127.0.0.1:1"  # what really runs
    with capture_logs() as logs:  # the next reload says so again
        await live_reload.apply(daemon, load(path))
    assert [e["section"] for e in logs if e["event"] == "config_restart_needed"] == ["scope"]


# --------------------------------------------------------------------------- OSC, outputs


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(predicate: Callable[[], bool], timeout: float = 5.0, poke: Any = None) -> None:
    """Wait for a state reached through real I/O (poking again for UDP's sake)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            if poke is not None:
                poke()
            await asyncio.sleep(0.02)


async def test_osc_moves_to_its_new_port_live(tmp_path: Path) -> None:
    first, second = free_udp_port(), free_udp_port()
    path = write_show(tmp_path / "show.toml", osc="true", port=first)
    daemon = Daemon(load(path))
    await daemon.osc.start()
    try:
        write_show(path, osc="true", port=second)
        await live_reload.apply(daemon, load(path))
        assert daemon.osc.address == ("127.0.0.1", second)
        client = SimpleUDPClient("127.0.0.1", second)
        await until(
            lambda: daemon.store.get("kv_cache_attention_bias") == 0.5,
            poke=lambda: client.send_message("/scope/kv_cache_attention_bias", 0.5),
        )
    finally:
        await daemon.osc.stop()


class _Out(Output):
    type = "test"

    def open(self, width: int, height: int, fps: Any) -> None:
        pass

    def send(self, frame: av.VideoFrame) -> None:
        pass

    def close(self) -> None:
        pass


async def test_unchanged_outputs_keep_running_through_a_reload() -> None:
    keep, change = OutputConfig(type="test", name="keep"), OutputConfig(type="test", name="b")
    fanout = VideoFanout([keep, change], size=(320, 192), backends={"test": _Out})
    await fanout.start()
    try:
        runners = {r.label: r for r in fanout._runners}
        changed = dataclasses.replace(change, fps=15.0)
        added = OutputConfig(type="test", name="new")
        await fanout.reload([keep, changed, added], size=(320, 192))
        now = {r.label: r for r in fanout._runners}
        assert now["test:keep"] is runners["test:keep"]  # untouched: receivers see no blink
        assert now["test:b"] is not runners["test:b"] and now["test:b"].config.fps == 15.0
        assert set(now) == {"test:keep", "test:b", "test:new"}
        await fanout.reload([keep], size=(640, 384))  # a new size: all of them again
        assert [r.label for r in fanout._runners] == ["test:keep"]
        assert fanout._runners[0] is not runners["test:keep"]
    finally:
        await fanout.stop()


# --------------------------------------------------------------------------- while streaming


class CountingSink:
    """A frame sink reading the emulator's frame counter off every picture."""

    def __init__(self) -> None:
        self.counters: list[int | None] = []
        self.changed = asyncio.Event()

    def on_frame(self, frame: av.VideoFrame) -> None:
        self.counters.append(decode_counter(frame.to_ndarray()[: frame.height]))
        self.changed.set()

    def on_stream_state(self, streaming: bool) -> None:
        pass

    async def wait(self, predicate: Callable[[list[int | None]], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self.counters):
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emu = Emulator(EmulatorConfig(width=320, height=192, fps=30, load_time=0.1))
    await emu.start(host="127.0.0.1", port=0)
    try:
        yield emu
    finally:
        await emu.stop()


def bias_in(low: float, high: float) -> Callable[[dict[str, Any]], bool]:
    def check(state: dict[str, Any]) -> bool:
        sessions = [s for s in state["sessions"] if s["open"] and s["frames_sent"] > 3]
        if len(sessions) != 1:
            return False
        bias = sessions[0]["parameters"].get("kv_cache_attention_bias")
        return bias is not None and low <= bias <= high

    return check


@pytest.fixture
async def streaming(
    emulator: Emulator, tmp_path: Path
) -> AsyncIterator[tuple[Daemon, CountingSink, Path]]:
    path = write_show(tmp_path / "show.toml", url=emulator.url)
    sink = CountingSink()
    daemon = Daemon(load(path), frame_sink=sink)
    daemon.load_config = lambda: load(path)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
    await daemon.start()
    try:
        await emulator.wait_for(bias_in(0.1, 0.11), timeout=20)
        await sink.wait(lambda c: len(c) >= 10, timeout=10)
        yield daemon, sink, path
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        await daemon.stop()


def contiguous(counters: list[int | None]) -> bool:
    numbers = [c for c in counters if c is not None]
    return len(numbers) == len(counters) and numbers == list(
        range(numbers[0], numbers[0] + len(numbers))
    )


async def test_sighup_with_a_changed_mapping_loses_no_frame(
    streaming: tuple[Daemon, CountingSink, Path], emulator: Emulator
) -> None:
    daemon, sink, path = streaming
    start = len(sink.counters)
    write_show(path, url=emulator.url, low=0.8, high=0.81)
    os.kill(os.getpid(), signal.SIGHUP)
    state = await emulator.wait_for(bias_in(0.8, 0.81), timeout=10)  # the new mapping, live
    reloaded = len(sink.counters)
    await sink.wait(lambda c: len(c) >= reloaded + 30, timeout=10)  # a second more of stream
    window = sink.counters[start - 5 :]
    assert contiguous(window), window  # every frame, in order, through the reload
    assert len(state["sessions"]) == 1  # the same session all along
    assert daemon.supervisor.status.reconnects == 0


async def test_a_broken_config_is_refused_with_every_error_and_the_show_goes_on(
    streaming: tuple[Daemon, CountingSink, Path], emulator: Emulator
) -> None:
    daemon, sink, path = streaming
    broken = (
        path.read_text()
        .replace("height = 192", "height = 190\nwidht = 320")
        .replace('source = "lfo"', 'source = "lfo"\ndepht = 2')
        .replace("manage_cache = true", "manage_cache = 3")
    )
    path.write_text(broken)
    start = len(sink.counters)
    with capture_logs() as logs:
        assert await daemon.reload() is False
    errors = [e["problem"] for e in logs if e["event"] == "config_reload_error"]
    assert len(errors) == 4, errors
    for key in ("pipeline.height", "pipeline.widht", "mapping.rules[0].depht", "manage_cache"):
        assert any(key in problem for problem in errors), (key, errors)
    assert [e["errors"] for e in logs if e["event"] == "config_reload_refused"] == [4]
    await sink.wait(lambda c: len(c) >= start + 30, timeout=10)
    assert contiguous(sink.counters[start - 5 :])
    assert bias_in(0.1, 0.11)(emulator.state())  # the old mapping still plays
    assert daemon.config.pipeline.height == 192


async def test_a_pipeline_change_loads_it_and_streams_again(
    streaming: tuple[Daemon, CountingSink, Path], emulator: Emulator
) -> None:
    daemon, _, path = streaming
    assert emulator.state()["pipeline"]["load_count"] == 1
    path.write_text(path.read_text().replace("height = 192", 'height = 192\nvae_type = "tae"'))
    assert await daemon.reload() is True

    def reloaded(state: dict[str, Any]) -> bool:
        live = [s for s in state["sessions"] if s["open"] and s["frames_sent"] >= 3]
        return state["pipeline"]["load_params"].get("vae_type") == "tae" and len(live) == 1

    state = await emulator.wait_for(reloaded, timeout=20)
    assert state["pipeline"]["load_count"] == 2
    assert len(state["sessions"]) == 2  # Scope has no renegotiation: a new session
    await emulator.wait_for(bias_in(0.1, 0.11), timeout=10)  # the show goes on as it was


def test_a_knob_kept_by_a_reload_keeps_its_soft_takeover() -> None:
    kept = MidiMapping(target="kv_cache_attention_bias", type="cc", number=7, channel=1)
    moved = MidiMapping(target="vace_context_scale", type="cc", number=8, channel=1)
    control = MidiControl(MidiConfig(mappings=[kept, moved]), ParameterStore(), CommandBus())
    for takeover in control.takeover_positions().values():
        takeover.restore(0.4, 0.4, True)  # both knobs in sync with their values
    retargeted = dataclasses.replace(moved, target="noise_scale")
    control.reload(MidiConfig(mappings=[kept, retargeted]))
    positions = control.takeover_positions()
    assert positions["cc:1:7>kv_cache_attention_bias"].position() == (0.4, 0.4, True)
    assert positions["cc:1:8>noise_scale"].position() == (None, None, False)  # picks up


# --------------------------------------------------------------------------- audio, beat


async def test_audio_takes_new_analysis_and_a_new_file_live(tmp_path: Path) -> None:
    first, second = tmp_path / "a.wav", tmp_path / "b.wav"
    drum_loop(120.0, 2.0).write_wav(first)
    drum_loop(140.0, 2.0).write_wav(second)
    config = AudioConfig(enabled=True, file=str(first))
    engine = AudioEngine(config)
    blocks: list[Any] = []
    engine.subscribe(blocks.append)
    await engine.start()
    try:
        await until(lambda: len(blocks) > 5)
        source = engine.source
        analysis = dataclasses.replace(config, fft_size=2048)
        await engine.reload(analysis)
        assert engine.source is source  # analysis only: the source plays on
        assert engine.analyzer.config.fft_size == 2048
        await engine.reload(dataclasses.replace(analysis, file=str(second)))
        assert engine.source is not source and not source.running
        seen = len(blocks)
        await until(lambda: len(blocks) > seen + 5)  # the new file flows
    finally:
        await engine.stop()


def test_beat_settings_change_without_losing_the_position() -> None:
    clock = BeatClock(["tap", "audio"], timeouts={"tap": None, "audio": 1.0})
    clock.observe("audio", Observation(0.0, 100.0), 0.0)
    assert clock.active == "audio"
    position = clock.position(0.5)
    same = {"timeouts": {"tap": None, "audio": 1.0}, "max_correction": 0.25}
    clock.reconfigure(["audio"], beats_per_bar=3, catch_up_beats=1.0, now=0.5, **same)
    assert clock.position(0.5) == pytest.approx(position)
    assert (clock.active, clock.beats_per_bar, clock.bpm) == ("audio", 3, pytest.approx(100.0))
    clock.reconfigure(["tap"], beats_per_bar=4, catch_up_beats=1.0, now=0.5, **same)
    assert clock.active is None  # nobody tapped: free-running at the last tempo
    assert clock.bpm == pytest.approx(100.0)
