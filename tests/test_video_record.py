"""Recording with PyAV: real files, read back frame by frame."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import av
import pytest
import structlog

from soundscape.emulator.renderer import Renderer, decode_counter
from soundscape.video import OutputConfig, VideoFanout
from soundscape.video.outputs import record
from soundscape.video.outputs.base import frame_rate
from soundscape.video.outputs.record import RecordOutput, segment_path

W, H = 320, 192


def read_back(path: Path) -> tuple[str, list[tuple[int, int, int | None, float]]]:
    """Codec name and (width, height, counter, seconds) of every frame in the file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        frames = [
            (f.width, f.height, decode_counter(f.to_ndarray(format="gray")), float(f.time))
            for f in container.decode(stream)
        ]
    return codec, frames


def record_config(path: Path, **kw) -> OutputConfig:
    return OutputConfig(type="record", name="archive", path=str(path), **kw)


async def wait_sent(
    fanout: VideoFanout, label: str, n: int, key: str = "sent", timeout: float = 10
) -> None:
    # The record output's thread reports through counters; there is no event to await.
    deadline = time.monotonic() + timeout
    while fanout.counters()[label][key] < n:
        assert time.monotonic() < deadline, fanout.counters()[label]
        await asyncio.sleep(0.02)


async def stream(fanout: VideoFanout, renderer: Renderer, counters: range) -> None:
    fanout.on_stream_state(True)
    for n in counters:
        fanout.on_frame(renderer.frame(n))
        await asyncio.sleep(1 / 30)


async def test_a_recording_is_playable_h264_with_every_frame_in_order(tmp_path: Path):
    path = tmp_path / "show.mp4"
    fanout = VideoFanout([record_config(path, hold="none")], size=(W, H))
    await fanout.start()
    try:
        await stream(fanout, Renderer(W, H), range(45))
        await wait_sent(fanout, "record:archive", 45)
    finally:
        await fanout.stop()
    codec, frames = read_back(path)
    assert codec == "h264"
    assert [c for _, _, c, _ in frames] == list(range(45))
    assert {(w, h) for w, h, _, _ in frames} == {(W, H)}
    # Wall-clock timestamps: 45 frames at 30 fps span about 1.5 s.
    assert frames[-1][3] - frames[0][3] == pytest.approx(44 / 30, rel=0.25)
    assert fanout.counters()["record:archive"]["path"] == str(path)


async def test_held_frames_keep_the_timeline_through_an_outage(tmp_path: Path):
    path = tmp_path / "show.mkv"
    fanout = VideoFanout([record_config(path, hold="last", fps=10)], size=(W, H))
    await fanout.start()
    renderer = Renderer(W, H)
    try:
        await stream(fanout, renderer, range(10))
        await wait_sent(fanout, "record:archive", 10)
        fanout.on_stream_state(False)
        before = fanout.counters()["record:archive"]["held"]
        await wait_sent(fanout, "record:archive", before + 5, key="held")
        await stream(fanout, renderer, range(10, 15))
        await wait_sent(fanout, "record:archive", 15)
    finally:
        await fanout.stop()
    _, frames = read_back(path)
    counters = [c for _, _, c, _ in frames]
    lead = counters.index(0)  # black before Scope's first frame (hold = last, nothing yet)
    assert set(counters[:lead]) <= {None}
    assert counters[lead : counters.index(9)] == list(range(9))
    middle = counters[counters.index(9) : counters.index(10)]
    assert len(middle) >= 6 and set(middle) == {9}  # the held picture, in the file too
    assert counters[-5:] == list(range(10, 15))
    times = [t for *_, t in frames]
    assert times == sorted(times)


async def test_a_resolution_change_starts_a_new_segment(tmp_path: Path):
    path = tmp_path / "show.mp4"
    fanout = VideoFanout([record_config(path, hold="none")], size=(W, H))
    await fanout.start()
    try:
        await stream(fanout, Renderer(W, H), range(10))
        await stream(fanout, Renderer(480, 288), range(10, 20))
        await wait_sent(fanout, "record:archive", 20)
    finally:
        await fanout.stop()
    second = tmp_path / "show-1.mp4"
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, second.name])
    _, first_frames = read_back(path)
    _, second_frames = read_back(second)
    assert [(w, h, c) for w, h, c, _ in first_frames] == [(W, H, n) for n in range(10)]
    assert [(w, h, c) for w, h, c, _ in second_frames] == [(480, 288, n) for n in range(10, 20)]
    snap = fanout.counters()["record:archive"]
    assert (snap["segments"], snap["reopens"]) == (2, 1)


def test_segment_names_fill_strftime_and_never_overwrite(tmp_path: Path):
    template = str(tmp_path / "show-%Y.mkv")
    year = time.strftime("%Y")
    first = segment_path(template)
    assert first == tmp_path / f"show-{year}.mkv"
    first.write_bytes(b"taken")
    assert segment_path(template) == tmp_path / f"show-{year}-1.mkv"


def test_without_libx264_another_encoder_is_used_and_said_once(tmp_path, monkeypatch):
    monkeypatch.setattr(record, "_can_encode", lambda name: name == "mpeg4")
    record.choose_encoder.cache_clear()
    try:
        with structlog.testing.capture_logs() as logs:
            out = RecordOutput(record_config(tmp_path / "x.mp4"))
            out.open(W, H, frame_rate(30))
            renderer = Renderer(W, H)
            for n in range(5):
                out.send(renderer.frame(n))
            out.close()
            RecordOutput(record_config(tmp_path / "y.mp4")).open(W, H, frame_rate(30))
    finally:
        record.choose_encoder.cache_clear()
    fallback = [e for e in logs if e["event"] == "record_encoder_fallback"]
    assert fallback == [
        {
            "event": "record_encoder_fallback",
            "log_level": "warning",
            "wanted": "libx264",
            "using": "mpeg4",
        }
    ]
    codec, frames = read_back(tmp_path / "x.mp4")
    assert codec == "mpeg4" and [c for _, _, c, _ in frames] == list(range(5))


def test_close_is_idempotent_and_send_before_open_is_an_error(tmp_path: Path):
    out = RecordOutput(record_config(tmp_path / "x.mp4"))
    out.close()
    with pytest.raises(record.OutputError):
        out.send(Renderer(W, H).frame(0))
    out.open(W, H, frame_rate(30))
    out.send(Renderer(W, H).frame(3))
    out.close()
    out.close()
    _, frames = read_back(tmp_path / "x.mp4")
    assert [c for _, _, c, _ in frames] == [3]


async def test_an_unwritable_path_is_retried_and_does_not_stop_the_rest(tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    good = tmp_path / "good.mkv"
    fanout = VideoFanout(
        [
            OutputConfig(type="record", name="bad", path=str(blocker / "x.mp4"), hold="none"),
            record_config(good, hold="none"),
        ],
        size=(W, H),
    )
    await fanout.start()
    try:
        await stream(fanout, Renderer(W, H), range(10))
        await wait_sent(fanout, "record:archive", 10)
        bad = fanout.counters()["record:bad"]
        assert bad["state"] == "retrying" and bad["reason"].startswith("open failed")
        assert bad["sent"] == 0 and bad["errors"] >= 1
    finally:
        await fanout.stop()
    _, frames = read_back(good)
    assert [c for _, _, c, _ in frames] == list(range(10))
