"""Video in through the daemon to the emulator's ``passthrough`` and back (real aiortc).

The source frames carry their number in the emulator's barcode; the frames the
daemon receives from Scope are decoded, so every test sees which source frame
came back, how often and how fast.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest

from soundscape.app import Daemon
from soundscape.config import Config, load
from soundscape.emulator import Emulator, EmulatorConfig
from soundscape.emulator.peer import numbered_frame
from soundscape.emulator.renderer import decode_counter
from soundscape.video_in import parse_spec
from soundscape.web.status import inputs as status_inputs

W, H, FPS = 576, 320, 30
# Keys the server keeps that are not our state (its defaults; see test_session.py).
SERVER_DEFAULTS = {"prompt_interpolation_method", "vace_context_scale", "reset_cache", "transition"}


class Counters:
    """A frame sink: the number each frame from Scope carries, with its arrival time."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, int | None]] = []
        self.sizes: set[tuple[int, int]] = set()
        self._changed = asyncio.Event()

    def on_frame(self, frame: av.VideoFrame) -> None:
        luma = frame.to_ndarray(format="gray")
        self.sizes.add((frame.width, frame.height))
        self.seen.append((time.monotonic(), decode_counter(luma)))
        self._changed.set()

    def on_stream_state(self, streaming: bool) -> None:
        pass

    def numbers(self, since: float = 0.0) -> list[int]:
        return [n for t, n in self.seen if n is not None and t >= since]

    async def wait(self, predicate: Any, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    def rate(self, since: float, until: float) -> float:
        """New source frames per second that came back in [since, until) (repeats not counted;
        a looped file's frames count again on every pass)."""
        # A frame VP8 blurred past reading (a few per hundred) still came back: it counts.
        numbers = [n for t, n in self.seen if since <= t < until]
        new = sum(1 for a, b in itertools.pairwise(numbers) if b is None or a != b)
        return new / (until - since)


def make_config(url: str, source: str, pipeline: str = "passthrough", **video_in: Any) -> Config:
    config = load(None)
    return dataclasses.replace(
        config,
        scope=dataclasses.replace(config.scope, url=url),
        pipeline=dataclasses.replace(config.pipeline, pipeline_ids=[pipeline]),
        video_in=dataclasses.replace(config.video_in, source=source, fps=FPS, **video_in),
    )


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emu = Emulator(EmulatorConfig(width=W, height=H, fps=FPS, load_time=0.1))
    await emu.start(host="127.0.0.1", port=0)
    try:
        yield emu
    finally:
        await emu.stop()


async def run_daemon(config: Config) -> tuple[Daemon, Counters]:
    sink = Counters()
    daemon = Daemon(config, frame_sink=sink)
    await daemon.start()
    return daemon, sink


async def measure_rate(sink: Counters, seconds: float = 2.0) -> float:
    await sink.wait(lambda s: len(s.numbers()) >= 10)
    start = time.monotonic()
    await asyncio.sleep(seconds)  # the measuring window itself
    return sink.rate(start, time.monotonic())


def open_sessions(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in state["sessions"] if s["open"]]


def test_specs() -> None:
    assert str(parse_spec("test")) == "test"
    assert parse_spec("ndi:TD Out").target == "TD Out"
    assert parse_spec("/dev/video2").kind == "v4l2"
    assert parse_spec("rtsp://cam/stream").kind == "file"
    assert parse_spec("clip.mp4").target == "clip.mp4"
    assert parse_spec("scope-spout:TD").server_type == "spout"
    assert str(parse_spec("scope-ndi:Cam")) == "scope-ndi:Cam"
    for bad in ("", "ndi:", "v4l2: ", "scope-ndi:"):
        with pytest.raises(ValueError):
            parse_spec(bad)


async def test_test_pattern_comes_back_through_passthrough(emulator: Emulator) -> None:
    daemon, sink = await run_daemon(make_config(emulator.url, "test"))
    try:
        rate = await measure_rate(sink)
        state = emulator.state()
        [session] = open_sessions(state)
        assert session["input_mode"] == "video" and session["has_input_track"]
        assert session["frames_received"] > 0
        numbers = sink.numbers()
        assert numbers == sorted(numbers), "frames came back out of order"
        assert rate >= 25, f"only {rate:.1f} distinct source frames per second came back"
        assert sink.sizes == {(W, H)}
        # `soundscape status` and the operator's page show the source and its health.
        shown = status_inputs(daemon)["video_in"]
        assert shown["enabled"] and shown["health"] == "live" and shown["source"] == "test"
        assert shown["sent"] > 0
    finally:
        await daemon.stop()


def write_numbered_file(path: Path, frames: int) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for n in range(frames):
            frame = numbered_frame(n, W, H)
            frame.pts = None
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


async def test_a_file_is_played_at_its_rate_and_looped(emulator: Emulator, tmp_path: Path) -> None:
    clip = tmp_path / "numbered.mp4"
    write_numbered_file(clip, 45)  # 1.5 s: the measurement sees it loop
    daemon, sink = await run_daemon(make_config(emulator.url, str(clip)))
    try:
        rate = await measure_rate(sink, 2.5)
        assert rate >= 25, f"only {rate:.1f} distinct file frames per second came back"
        numbers = sink.numbers()
        assert max(numbers) <= 44
        looped = sum(1 for a, b in itertools.pairwise(numbers) if b < a)
        assert looped >= 1, "the file did not loop"
    finally:
        await daemon.stop()


async def test_a_failing_source_keeps_the_session_fed(emulator: Emulator, tmp_path: Path) -> None:
    """A file that cannot be read: black frames keep Scope's output going, one log line."""
    config = make_config(emulator.url, str(tmp_path / "missing.mp4"), when_away="black")
    daemon, sink = await run_daemon(config)
    try:
        await sink.wait(lambda s: len(s.seen) >= 30)
        [session] = open_sessions(emulator.state())
        assert session["frames_received"] >= 30
        assert not sink.numbers()  # black: nothing to decode
        assert daemon.supervisor.status.state == "streaming"
    finally:
        await daemon.stop()


async def test_live_switch_text_video_text_keeps_the_state(emulator: Emulator) -> None:
    # longlive draws in both modes (passthrough has nothing to return in text mode).
    config = make_config(emulator.url, "test", "longlive", input_mode="text")
    daemon, sink = await run_daemon(config)
    try:
        first = await emulator.wait_for(lambda s: len(open_sessions(s)) == 1, 10)
        [text] = open_sessions(first)
        assert text["input_mode"] == "text"
        # The performer's state, changed live before the switch.
        daemon.store.update({"prompts": [{"text": "a dancer of light", "weight": 1.0}]})
        daemon.store.set("kv_cache_attention_bias", 0.55)
        ids = {text["id"]}
        for mode in ("video", "text"):
            daemon.store.set("input_mode", mode, source="osc")

            def switched(state: dict[str, Any], mode: str = mode) -> bool:
                new = [s for s in open_sessions(state) if s["id"] not in ids]
                return len(new) == 1 and new[0]["input_mode"] == mode

            state = await emulator.wait_for(switched, 10)
            [session] = [s for s in open_sessions(state) if s["id"] not in ids]
            ids.add(session["id"])
            ours, theirs = daemon.store.wire_view(), session["parameters"]
            for key in SERVER_DEFAULTS - ours.keys():
                theirs.pop(key, None)
            assert theirs == ours
            since = time.monotonic()
            await sink.wait(lambda s, since=since: sum(t >= since for t, _ in s.seen) >= 5)
            [now] = [s for s in open_sessions(emulator.state()) if s["id"] == session["id"]]
            # Video: our camera reaches Scope; text: nothing is sent.
            assert (now["frames_received"] > 0) == (mode == "video")
        assert daemon.supervisor.backoff.failures == 0  # a switch is not a failure
    finally:
        await daemon.stop()


def test_chain_rules_follow_the_schemas() -> None:
    from soundscape.scope.api import PipelineSchema
    from soundscape.video_in.chain import chain_problems, for_mode

    schemas = {
        "longlive": PipelineSchema("longlive", "LongLive", ("text", "video")),
        "passthrough": PipelineSchema("passthrough", "Passthrough", ("video",)),
        "gray": PipelineSchema("gray", "Gray", ("video",), usage=("preprocessor",)),
        "rife": PipelineSchema("rife", "RIFE", ("video",), usage=("postprocessor",)),
    }
    assert chain_problems(["gray", "longlive", "rife"], "video", schemas) == []
    assert chain_problems(["longlive"], "text", schemas) == []
    assert "only in video mode" in chain_problems(["gray", "longlive"], "text", schemas)[0]
    assert "first" in chain_problems(["longlive", "gray"], "video", schemas)[0]
    assert "unknown" in chain_problems(["depth", "longlive"], "video", schemas)[0]
    assert "not text" in chain_problems(["passthrough"], "text", schemas)[0]
    assert for_mode(["longlive"], "video", ["gray"], schemas) == ["gray", "longlive"]
    assert for_mode(["gray", "longlive"], "text", ["gray"], schemas) == ["longlive"]


async def test_preprocessors_follow_the_mode_and_bad_chains_are_refused(
    emulator: Emulator,
) -> None:
    config = make_config(emulator.url, "test", "longlive")
    config = dataclasses.replace(
        config, pipeline=dataclasses.replace(config.pipeline, preprocessors=["gray"])
    )
    daemon, _ = await run_daemon(config)
    try:
        state = await emulator.wait_for(lambda s: len(open_sessions(s)) == 1, 10)
        [first] = open_sessions(state)
        assert first["parameters"]["pipeline_ids"] == ["gray", "longlive"]
        assert daemon.chain is not None
        await asyncio.wait_for(daemon.chain._part.wait_ended(), 10)  # schemas read
        daemon.store.set("input_mode", "text", source="osc")

        def text_session(s: dict[str, Any]) -> bool:
            sessions = [x for x in open_sessions(s) if x["id"] != first["id"]]
            return len(sessions) == 1 and sessions[0]["input_mode"] == "text"

        state = await emulator.wait_for(text_session, 10)
        [text] = [x for x in open_sessions(state) if x["id"] != first["id"]]
        assert text["parameters"]["pipeline_ids"] == ["longlive"]
        # A preprocessor in text mode, an unknown pipeline: refused, the good chain kept.
        for bad in (["gray", "longlive"], ["no-such-pipeline"]):
            daemon.store.set("pipeline_ids", bad, source="osc")
            assert daemon.store.get("pipeline_ids") == ["longlive"]
        assert daemon.chain.refused == 2
    finally:
        await daemon.stop()


@pytest.mark.parametrize("available", [True, False])
async def test_scope_input_source_only_where_the_server_has_it(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, available: bool
) -> None:
    from soundscape.emulator import catalog

    recorded = catalog.hardware_info()
    if available:
        ndi = {**recorded["ndi"], "available": True}
        monkeypatch.setattr(catalog, "hardware_info", lambda: {**recorded, "ndi": ndi})
    daemon, _ = await run_daemon(make_config(emulator.url, "scope-ndi:Stage Cam", "longlive"))
    try:
        assert daemon.server_input is not None and daemon.video_in is None
        await asyncio.wait_for(daemon.server_input._part.wait_ended(), 10)
        assert daemon.server_input.available is available
        wanted = {"enabled": True, "source_type": "ndi", "source_name": "Stage Cam"}
        offers = emulator.offers  # sessions offered from now on know the answer
        state = await emulator.wait_for(
            lambda s: s["offers"] > offers and bool(open_sessions(s)), 10
        )
        session = open_sessions(state)[-1]
        assert session["input_mode"] == "video"
        # What the offer carried (the emulator, like Scope without NDI, then drops the key).
        carried = emulator.sessions[session["id"]].input_source
        assert carried == (wanted if available else None)
        assert ("input_source" in daemon.store) is available
    finally:
        await daemon.stop()


async def test_scope_input_source_reaches_the_hot_standby_too(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only an offer carries input_source: the standby's session, open before the
    # server's answer, is rebuilt with it too (it used to wait for its next reconnect).
    from soundscape.config import parse
    from soundscape.emulator import catalog

    recorded = catalog.hardware_info()
    ndi = {**recorded["ndi"], "available": True}
    monkeypatch.setattr(catalog, "hardware_info", lambda: {**recorded, "ndi": ndi})
    standby = Emulator(EmulatorConfig(width=W, height=H, fps=FPS, load_time=0.1))
    await standby.start(host="127.0.0.1", port=0)
    from soundscape.scope.api import ScopeClient

    answer = ScopeClient.hardware_info

    async def answer_once_both_stream(self: ScopeClient) -> dict[str, Any]:
        # The server answers late, when both sessions are open (a slow pod).
        for emu in (emulator, standby):
            await emu.wait_for(lambda s: bool(open_sessions(s)), 10)
        return await answer(self)

    monkeypatch.setattr(ScopeClient, "hardware_info", answer_once_both_stream)
    config = parse(
        {
            "scope": [{"url": emulator.url}, {"url": standby.url, "role": "standby"}],
            "pipeline": {"pipeline_ids": ["longlive"]},
            "video_in": {"source": "scope-ndi:Stage Cam", "fps": FPS},
            "osc": {"enabled": False},
            "http": {"enabled": False},
        }
    )
    daemon, _ = await run_daemon(config)
    try:
        assert daemon.server_input is not None
        await asyncio.wait_for(daemon.server_input._part.wait_ended(), 10)
        assert daemon.server_input.available
        wanted = {"enabled": True, "source_type": "ndi", "source_name": "Stage Cam"}

        def carried(emu: Emulator) -> Any:
            return lambda s: any(
                getattr(emu.sessions.get(x["id"]), "input_source", None) == wanted
                for x in open_sessions(s)
            )

        await emulator.wait_for(carried(emulator), 10)
        await standby.wait_for(carried(standby), 10)
    finally:
        await daemon.stop()
        await standby.stop()


def test_the_video_in_flag_sets_the_source_and_video_mode() -> None:
    from soundscape.cli import _build_parser, _load_config
    from soundscape.errors import ConfigError

    args = _build_parser().parse_args(["run", "--video-in", "ndi:TD Out", "--ndi", "Back"])
    config = _load_config(args)
    assert config.video_in.source == "ndi:TD Out"
    assert config.initial_parameters()["input_mode"] == "video"
    bad = _build_parser().parse_args(["run", "--video-in", "ndi:"])
    with pytest.raises(ConfigError, match="--video-in"):
        _load_config(bad)


@pytest.mark.parametrize("when_away", ["last", "black"])
def test_a_vanished_source_sends_its_last_frame_or_black_and_says_so_once(
    when_away: str,
) -> None:
    from structlog.testing import capture_logs

    from soundscape.video_in import Feed

    now = [0.0]
    feed = Feed((W, H), when_away=when_away, away_after=0.5, clock=lambda: now[0])
    frame = numbered_frame(7, W, H)
    with capture_logs() as logs:
        feed.put(frame)
        assert feed.current() == (frame, 1)
        now[0] = 2.0  # the source went quiet
        for _ in range(3):
            sent, seq = feed.current()
            assert seq == 1
            luma = sent.to_ndarray(format="gray")
            assert decode_counter(luma) == (7 if when_away == "last" else None)
        feed.put(numbered_frame(8, W, H))
        assert decode_counter(feed.current()[0].to_ndarray(format="gray")) == 8
    events = [e["event"] for e in logs]
    assert events == ["video_in_live", "video_in_away", "video_in_back"]


@pytest.mark.parametrize("fourcc", ["UYVY", "BGRA", "RGBX"])
def test_received_ndi_pictures_keep_their_number_and_colour(fourcc: str) -> None:
    import numpy as np

    from soundscape.video_in.sources import ndi_frame

    original = numbered_frame(123, W, H)
    pyav_format = {"UYVY": "uyvy422", "BGRA": "bgra", "RGBX": "rgba"}[fourcc]
    packed = original.reformat(format=pyav_format)
    stride = packed.planes[0].line_size
    data = np.frombuffer(bytes(packed.planes[0]), np.uint8)
    frame = ndi_frame(data, fourcc, W, H, stride)
    assert (frame.width, frame.height) == (W, H)
    assert decode_counter(frame.to_ndarray(format="gray")) == 123
    red = frame.to_ndarray(format="rgb24")[H - 10, 10].astype(int)
    assert red[0] > 200 and red[1] < 40 and red[2] < 40
