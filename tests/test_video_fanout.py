"""The fan-out with in-process outputs: isolation, holding, resizing, failures, counters.

The outputs here are test backends implementing the real Output interface (one
records what it is sent, one is slow, one is stuck); the fan-out, its worker
threads, queues and hold timers are the real ones. Frames are the emulator's,
so each one's counter is read back from its pixels.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import structlog
from PIL import Image

from soundscape.emulator.renderer import Renderer, decode_counter
from soundscape.scope.supervisor import FrameSink
from soundscape.video import OutputConfig, VideoFanout
from soundscape.video.frames import BLACK_Y
from soundscape.video.outputs.base import Output

W, H = 160, 96


class Recorder:
    """What one test output was asked to do, readable from the test."""

    def __init__(self, delay: float = 0.0, fail_opens: int = 0, fail_sends: int = 0) -> None:
        self.delay = delay
        self.fail_opens = fail_opens
        self.fail_sends = fail_sends
        self.gate = threading.Event()  # cleared: send blocks until it is set
        self.gate.set()
        self.entered = threading.Event()  # set when a send has begun
        self.cond = threading.Condition()
        self.frames: list[tuple[float, av.VideoFrame]] = []
        self.opens: list[tuple[int, int, Fraction]] = []
        self.resizes: list[tuple[int, int]] = []
        self.closes = 0
        self.threads: set[str] = set()

    def backend(self) -> type[Output]:
        return backends(**{"*": self})

    def counters(self) -> list[int | None]:
        with self.cond:
            return [read_counter(f) for _, f in self.frames]

    async def wait(self, predicate: Callable[[Recorder], bool], timeout: float = 10.0) -> None:
        def block() -> bool:
            with self.cond:
                return self.cond.wait_for(lambda: predicate(self), timeout)

        assert await asyncio.to_thread(block), "condition not reached in time"


def backends(**recorders: Recorder) -> type[Output]:
    """A test Output class; each instance reports to the Recorder named like its output
    (or to ``*``)."""

    class TestOutput(Output):
        type = "test"

        def __init__(self, config: OutputConfig) -> None:
            super().__init__(config)
            self.rec = recorders.get(config.name) or recorders["*"]

        def open(self, width: int, height: int, fps: Fraction) -> None:
            rec = self.rec
            rec.threads.add(threading.current_thread().name)
            if rec.fail_opens:
                rec.fail_opens -= 1
                raise OSError("device busy")
            with rec.cond:
                rec.opens.append((width, height, fps))
                rec.cond.notify_all()

        def resize(self, width: int, height: int, fps: Fraction) -> None:
            self.rec.resizes.append((width, height))

        def send(self, frame: av.VideoFrame) -> None:
            rec = self.rec
            rec.threads.add(threading.current_thread().name)
            rec.entered.set()
            rec.gate.wait()
            if rec.delay:
                time.sleep(rec.delay)  # the slow host this test is about
            if rec.fail_sends:
                rec.fail_sends -= 1
                raise OSError("network unreachable")
            with rec.cond:
                rec.frames.append((time.monotonic(), frame))
                rec.cond.notify_all()

        def close(self) -> None:
            self.rec.closes += 1

    return TestOutput


def read_counter(frame: av.VideoFrame) -> int | None:
    return decode_counter(frame.to_ndarray()[: frame.height])


def after(rec: Recorder, counter: int) -> list[tuple[float, av.VideoFrame]]:
    """The frames sent after the first one carrying ``counter`` (hold frames come first
    too: before Scope's first frame an output sends black)."""
    counters = rec.counters()
    return rec.frames[counters.index(counter) + 1 :]


def is_black(frame: av.VideoFrame) -> bool:
    return bool(np.all(frame.to_ndarray()[: frame.height] == BLACK_Y))


def cfg(name: str, **kw: Any) -> OutputConfig:
    return OutputConfig(type=kw.pop("type", "test"), name=name, **kw)


class Fixture:
    def __init__(self) -> None:
        self.fanouts: list[VideoFanout] = []

    async def start(
        self, outputs: Sequence[OutputConfig], backends: dict[str, Any], **kw: Any
    ) -> VideoFanout:
        fanout = VideoFanout(outputs, size=(W, H), backends=backends, **kw)
        await fanout.start()
        self.fanouts.append(fanout)
        return fanout


@pytest.fixture
async def fanouts() -> AsyncIterator[Fixture]:
    fx = Fixture()
    try:
        yield fx
    finally:
        for fanout in fx.fanouts:
            await fanout.stop()


async def feed(sink: FrameSink, renderer: Renderer, counters: range, fps: float = 30) -> None:
    """Frames at a steady rate, like Scope's stream."""
    sink.on_stream_state(True)
    for n in counters:
        sink.on_frame(renderer.frame(n))
        await asyncio.sleep(1 / fps)


async def test_fanout_is_a_frame_sink_and_every_frame_reaches_the_output(fanouts):
    rec = Recorder()
    fanout = await fanouts.start([cfg("a", hold="none")], {"test": rec.backend()})
    assert isinstance(fanout, FrameSink)
    await feed(fanout, Renderer(W, H), range(30))
    await rec.wait(lambda r: len(r.frames) == 30)
    assert rec.counters() == list(range(30))
    assert rec.opens == [(W, H, Fraction(30))]
    assert rec.threads == {"video-test:a"}  # sends never run on the event loop
    snap = fanout.counters()["test:a"]
    assert (snap["frames_in"], snap["sent"], snap["dropped"], snap["held"]) == (30, 30, 0, 0)
    assert snap["latency_ms_p50"] is not None and snap["latency_ms_p99"] >= snap["latency_ms_p50"]
    assert snap["fps"] == pytest.approx(30, rel=0.3)


async def test_a_slow_output_delays_nothing_else(fanouts):
    fast, slow = Recorder(), Recorder(delay=0.2)
    fanout = await fanouts.start(
        [cfg("fast", hold="none"), cfg("slow", hold="none")],
        {"test": backends(fast=fast, slow=slow)},
    )
    await feed(fanout, Renderer(W, H), range(60))
    await fast.wait(lambda r: len(r.frames) == 60)
    assert fast.counters() == list(range(60))  # every frame, in order
    await slow.wait(lambda r: len(r.frames) >= 5)
    counts = fanout.counters()
    assert counts["test:fast"]["dropped"] == 0
    assert counts["test:slow"]["dropped"] > 0  # latest wins: it skipped stale frames
    slow_seen = slow.counters()
    assert slow_seen == sorted(slow_seen)  # what it did get was in order, and fresh
    await fanout.stop()
    assert slow.closes == 1 and fast.closes == 1
    for snap in fanout.counters().values():
        assert snap["state"] == "stopped"
        assert snap["frames_in"] == 60 == snap["sent"] + snap["dropped"]


async def test_a_stuck_output_never_blocks_on_frame_or_the_others(fanouts):
    stuck, other = Recorder(), Recorder()
    stuck.gate.clear()  # its first send blocks until released
    fanout = await fanouts.start(
        [cfg("stuck", hold="none"), cfg("other", hold="none")],
        {"test": backends(stuck=stuck, other=other)},
    )
    renderer = Renderer(W, H)
    await feed(fanout, renderer, range(1))
    assert await asyncio.to_thread(stuck.entered.wait, 10.0)  # frame 0 is stuck in send
    await feed(fanout, renderer, range(1, 40))  # on_frame returned every time
    await other.wait(lambda r: len(r.frames) == 40)
    assert other.counters() == list(range(40))
    stuck_counts = fanout.counters()["test:stuck"]
    # 1..39 went through the default eight-frame queue: 31 pushed out, 32 to 39 wait.
    assert (stuck_counts["sent"], stuck_counts["dropped"], stuck_counts["late"]) == (0, 31, 0)
    stuck.gate.set()
    await stuck.wait(lambda r: 39 in r.counters())  # the blocked frame, then the newest
    seen = stuck.counters()
    # Frames that waited longer than 0.1 s behind a newer one are skipped: no latency built.
    assert seen[0] == 0 and seen == sorted(seen) and set(seen[1:]) <= set(range(32, 40))
    await fanout.stop()
    snap = fanout.counters()["test:stuck"]
    assert snap["frames_in"] == 40 == snap["sent"] + snap["dropped"]


async def test_a_deeper_queue_keeps_more_frames_and_every_frame_is_accounted_for(fanouts):
    # 20 ms a send: frame 48 waits about two sends behind 49, well inside LIVE_MAX_AGE
    # (0.1 s). At 50 ms a send it waited about 95 ms, and a CI rehearsal under load
    # dropped it as late.
    slow = Recorder(delay=0.02)
    fanout = await fanouts.start([cfg("slow", hold="none", queue_size=3)], {"test": slow.backend()})
    await feed(fanout, Renderer(W, H), range(50), fps=200)
    await slow.wait(lambda r: 49 in r.counters())
    await fanout.stop()
    snap = fanout.counters()["test:slow"]
    assert snap["frames_in"] == 50 == snap["sent"] + snap["dropped"]
    assert snap["sent"] == len(slow.frames) and snap["dropped"] > 0
    seen = slow.counters()
    # The queue kept the newest three; one may still go by age on a starved machine,
    # and is then counted late, never lost.
    missing = {47, 48, 49} - set(seen)
    assert seen == sorted(seen) and seen[-1] == 49, seen
    assert len(missing) <= snap["late"], (sorted(missing), snap)


async def test_unavailable_backends_say_why_and_the_rest_runs(fanouts):
    rec = Recorder()
    with structlog.testing.capture_logs() as logs:
        fanout = await fanouts.start(
            [
                cfg("ok", hold="none"),
                cfg("Stage", type="spout"),
                cfg("Mac", type="syphon"),
                cfg("x", type="vga"),
            ],
            {
                "test": rec.backend(),
                "spout": "soundscape.video.outputs.spout:SpoutOutput",
                "syphon": "soundscape.video.outputs.syphon:SyphonOutput",
            },
        )
    counts = fanout.counters()
    assert counts["spout:Stage"] == {
        "type": "spout",
        "name": "Stage",
        "state": "unavailable",
        "reason": "Spout needs Windows",
    }
    assert counts["syphon:Mac"]["reason"] == "Syphon needs macOS"
    assert counts["vga:x"]["reason"].startswith("unknown output type 'vga'")
    warned = {e["output"]: e["reason"] for e in logs if e["event"] == "output_unavailable"}
    assert warned["spout:Stage"] == "Spout needs Windows"
    await feed(fanout, Renderer(W, H), range(10))
    await rec.wait(lambda r: len(r.frames) == 10)


async def test_an_output_that_fails_to_open_is_retried_while_others_run(fanouts):
    flaky, other = Recorder(fail_opens=2), Recorder()
    fanout = await fanouts.start(
        [cfg("flaky", hold="none"), cfg("other", hold="none")],
        {"test": backends(flaky=flaky, other=other)},
    )
    await feed(fanout, Renderer(W, H), range(20))
    await other.wait(lambda r: len(r.frames) == 20)
    await flaky.wait(lambda r: len(r.opens) == 1)  # third attempt: 0.5 s then 1 s later
    snap = fanout.counters()["test:flaky"]
    assert snap["errors"] == 2 and snap["state"] in ("running", "holding")


async def test_failing_sends_are_counted_and_the_output_recovers(fanouts):
    rec = Recorder(fail_sends=3)
    with structlog.testing.capture_logs() as logs:
        fanout = await fanouts.start([cfg("a", hold="none")], {"test": rec.backend()})
        await feed(fanout, Renderer(W, H), range(20))
        await rec.wait(lambda r: len(r.frames) >= 15)
    snap = fanout.counters()["test:a"]
    assert snap["errors"] == 3 and snap["dropped"] >= 3
    assert len(rec.opens) == 2  # three failures in a row: closed and opened again
    assert sum(e["event"] == "output_send_failed" for e in logs) == 1  # one line, not three


async def test_before_the_first_frame_the_output_sends_black_at_its_rate(fanouts):
    rec = Recorder()
    fanout = await fanouts.start([cfg("a", fps=20)], {"test": rec.backend()})
    await rec.wait(lambda r: len(r.frames) >= 10)
    frames = [f for _, f in rec.frames[:10]]
    assert all(is_black(f) and (f.width, f.height) == (W, H) for f in frames)
    times = [t for t, _ in rec.frames[:10]]
    assert np.median(np.diff(times)) == pytest.approx(1 / 20, rel=0.3)
    assert fanout.counters()["test:a"]["held"] >= 10


async def test_while_scope_is_away_the_last_frame_is_held_then_the_stream_resumes(fanouts):
    rec = Recorder()
    fanout = await fanouts.start([cfg("a")], {"test": rec.backend()})
    renderer = Renderer(W, H)
    await feed(fanout, renderer, range(10))
    await rec.wait(lambda r: 9 in r.counters())
    fanout.on_stream_state(False)
    await rec.wait(lambda r: len(after(r, 9)) >= 15)
    assert {read_counter(f) for _, f in after(rec, 9)} == {9}  # the last picture, again
    await feed(fanout, renderer, range(10, 20))
    await rec.wait(lambda r: 19 in r.counters())
    tail = [c for c in rec.counters() if c is not None and c >= 10]
    # Each new frame once, in order; after the last one the output may already hold it
    # again (a stream gone quiet is held: the next test), on a loaded machine before the
    # counters are read.
    last = tail.index(19)
    assert tail[: last + 1] == list(range(10, 20))
    assert set(tail[last:]) == {19}


async def test_a_stream_that_goes_quiet_is_held_without_a_state_change(fanouts):
    rec = Recorder()
    fanout = await fanouts.start([cfg("a")], {"test": rec.backend()})
    await feed(fanout, Renderer(W, H), range(10))  # stream stays "True"
    await rec.wait(lambda r: 9 in r.counters() and len(after(r, 9)) >= 10)
    assert [read_counter(f) for _, f in after(rec, 9)[:10]] == [9] * 10
    assert fanout.counters()["test:a"]["state"] == "holding"


async def test_hold_black_keeps_the_last_frame_through_a_hiccup_then_goes_black(fanouts):
    rec = Recorder()
    fanout = await fanouts.start([cfg("a", hold="black", hold_after=0.5)], {"test": rec.backend()})
    await feed(fanout, Renderer(W, H), range(5))  # then silence, the session still "up"
    await rec.wait(lambda r: 4 in r.counters() and is_black(r.frames[-1][1]))
    held = after(rec, 4)
    first_black = next(i for i, (_, f) in enumerate(held) if is_black(f))
    assert first_black >= 5  # short silence: still the picture, for about 0.5 s
    assert [read_counter(f) for _, f in held[:first_black]] == [4] * first_black


async def test_hold_black_goes_black_at_once_when_the_session_is_lost(fanouts):
    rec = Recorder()
    fanout = await fanouts.start([cfg("a", hold="black", hold_after=5)], {"test": rec.backend()})
    await feed(fanout, Renderer(W, H), range(5))
    fanout.on_stream_state(False)
    await rec.wait(lambda r: 4 in r.counters() and len(after(r, 4)) >= 3)
    assert all(is_black(f) for _, f in after(rec, 4))


async def test_hold_still_shows_the_image_fitted_to_the_output(fanouts, tmp_path: Path):
    still = tmp_path / "still.png"
    Image.new("RGB", (64, 64), (255, 255, 255)).save(still)
    rec = Recorder()
    fanout = await fanouts.start(
        [cfg("a", hold="still", still_image=str(still))], {"test": rec.backend()}
    )
    await rec.wait(lambda r: len(r.frames) >= 3)
    frame = rec.frames[-1][1]
    luma = frame.to_ndarray()[:H]
    assert (frame.width, frame.height) == (W, H)
    assert luma[H // 2, W // 2] > 200  # the white square in the middle
    assert luma[H // 2, 5] < 40  # letterbox bars left and right
    await fanout.stop()


async def test_an_unreadable_still_gives_one_log_line_and_black(fanouts, tmp_path: Path):
    bad = tmp_path / "still.png"
    bad.write_text("not an image")
    rec = Recorder()
    with structlog.testing.capture_logs() as logs:
        await fanouts.start([cfg("a", hold="still", still_image=str(bad))], {"test": rec.backend()})
        await rec.wait(lambda r: len(r.frames) >= 5)
    assert all(is_black(f) for _, f in rec.frames)
    assert [e["event"] for e in logs].count("still_image_unreadable") == 1


async def test_hold_none_sends_nothing_while_away(fanouts):
    rec = Recorder()
    fanout = await fanouts.start([cfg("a", hold="none")], {"test": rec.backend()})
    await feed(fanout, Renderer(W, H), range(5))
    await rec.wait(lambda r: len(r.frames) == 5)
    fanout.on_stream_state(False)
    other = Recorder()
    # A second output with hold = last proves time passed: it holds while "a" stays silent.
    await fanouts.start([cfg("b")], {"test": other.backend()})
    await other.wait(lambda r: len(r.frames) >= 10)
    assert len(rec.frames) == 5


async def test_a_resolution_change_resizes_the_output_in_place(fanouts):
    rec = Recorder()
    fanout = await fanouts.start([cfg("a", hold="none")], {"test": rec.backend()})
    await feed(fanout, Renderer(W, H), range(5))
    await feed(fanout, Renderer(320, 192), range(5, 10))
    await rec.wait(lambda r: len(r.frames) == 10)
    assert rec.resizes == [(320, 192)]
    assert [(f.width, f.height) for _, f in rec.frames] == [(W, H)] * 5 + [(320, 192)] * 5
    assert rec.counters() == list(range(10))
    snap = fanout.counters()["test:a"]
    assert (snap["reopens"], snap["width"], snap["height"]) == (1, 320, 192)


async def test_a_fixed_size_output_scales_and_never_resizes(fanouts):
    rec = Recorder()
    # A deep queue: this is about scaling, so a loaded machine must not turn it into drops.
    fanout = await fanouts.start(
        [cfg("a", hold="none", width=320, height=192, queue_size=16)], {"test": rec.backend()}
    )
    await feed(fanout, Renderer(W, H), range(5))
    await feed(fanout, Renderer(640, 384), range(5, 10))
    await rec.wait(lambda r: len(r.frames) == 10)
    assert rec.opens[0][:2] == (320, 192) and rec.resizes == []
    assert {(f.width, f.height) for _, f in rec.frames} == {(320, 192)}
    assert rec.counters() == list(range(10))  # the barcode survives the scaling


async def test_non_yuv420p_frames_are_converted_for_the_output(fanouts):
    rec = Recorder()
    fanout = await fanouts.start([cfg("a", hold="none")], {"test": rec.backend()})
    rgb = Renderer(W, H).frame(7).reformat(format="rgb24")
    fanout.on_stream_state(True)
    fanout.on_frame(rgb)
    await rec.wait(lambda r: len(r.frames) == 1)
    frame = rec.frames[0][1]
    assert frame.format.name == "yuv420p" and read_counter(frame) == 7


async def test_two_outputs_of_one_backend_get_their_own_threads(fanouts):
    a, b = Recorder(), Recorder()
    fanout = await fanouts.start(
        [cfg("a", hold="none"), cfg("b", hold="none")],
        {"test": backends(a=a, b=b)},
    )
    await feed(fanout, Renderer(W, H), range(5))
    await a.wait(lambda r: len(r.frames) == 5)
    await b.wait(lambda r: len(r.frames) == 5)
    assert a.threads == {"video-test:a"} and b.threads == {"video-test:b"}


async def test_disabled_outputs_start_nothing(fanouts):
    rec = Recorder()
    fanout = await fanouts.start([cfg("a", enabled=False)], {"test": rec.backend()})
    assert fanout.counters() == {}


async def test_stats_are_logged_one_line_per_output(fanouts):
    rec = Recorder()
    with structlog.testing.capture_logs() as logs:
        fanout = await fanouts.start(
            [cfg("a", hold="none")], {"test": rec.backend()}, stats_interval=0.2
        )
        await feed(fanout, Renderer(W, H), range(12))
        await rec.wait(lambda r: len(r.frames) == 12)

        async def stats_line() -> None:
            # No event to wait on: the periodic task only logs. Poll its output.
            while not any(e["event"] == "video_output_stats" and e["sent"] == 12 for e in logs):  # noqa: ASYNC110
                await asyncio.sleep(0.05)

        await asyncio.wait_for(stats_line(), 5)
        await fanout.stop()
    lines = [e for e in logs if e["event"] == "video_output_stats"]
    assert all(e["output"] == "test:a" and e["log_level"] == "info" for e in lines)
    final = [e for e in logs if e["event"] == "video_output_final"]
    assert len(final) == 1 and final[0]["frames_in"] == 12 and final[0]["sent"] == 12
