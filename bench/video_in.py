"""Video in, glass to glass: a numbered NDI source → daemon → Scope (emulator
``passthrough``) → daemon → NDI out → an NDI receiver in another process.

One command::

    python bench/video_in.py [--seconds 10] [--write-docs]

At 576x320 and 1280x720, 30 fps. Every frame carries its number (the emulator's
barcode), so each one is timed at every hop (one monotonic clock, same machine):

* t0 the source's NDI sender writes frame n (this process, its own thread);
* t1 the daemon's NDI reader has it (feed);
* t2 the daemon's WebRTC track hands it to aiortc;
* t3 the daemon has it back from Scope (decoded, before the NDI output);
* t4 the receiver process has it from the daemon's NDI output.

Reported: glass to glass (t4 - t0) median and p99; the NDI transport alone (a
second receiver on the source itself: t_direct - t0); Scope's share (t3 - t2:
VP8 both ways and passthrough's 4-frame chunks); and what the daemon adds
beyond the two transports: (t2 - t1) + (t4 - t3) - NDI transport. CPU per frame
is this process's CPU (daemon, emulator and source together) over the frames.
Reading the numbers at t1 and t3 costs the daemon a little time itself.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import statistics
import sys
import threading
import time
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from soundscape.video.ndi_env import use_loopback

use_loopback()  # before cyndilib loads

import av  # noqa: E402
import structlog  # noqa: E402

from bench._docs import write_section  # noqa: E402
from soundscape.app import Daemon  # noqa: E402
from soundscape.config import load  # noqa: E402
from soundscape.emulator import Emulator, EmulatorConfig  # noqa: E402
from soundscape.emulator.peer import numbered_frame  # noqa: E402
from soundscape.emulator.renderer import decode_counter  # noqa: E402
from soundscape.video.config import ndi_output  # noqa: E402
from soundscape.video.frames import i420  # noqa: E402
from soundscape.video_in.track import OutgoingTrack  # noqa: E402

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

SIZES = [(576, 320), (1280, 720)]
FPS = 30
WARMUP = 3.0  # s after the receiver's first numbered frame, before measuring


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def number(frame: av.VideoFrame) -> int | None:
    return decode_counter(frame.to_ndarray(format="gray"))


class Source:
    """A numbered NDI source at FPS in its own thread; notes when each frame was written."""

    def __init__(self, name: str, width: int, height: int) -> None:
        import cyndilib

        self.sent: dict[int, float] = {}
        self._size = (width, height)
        self._stop = threading.Event()
        self._sender = cyndilib.Sender(name, clock_video=False)
        video = cyndilib.VideoSendFrame()
        video.set_fourcc(cyndilib.FourCC.I420)
        video.set_resolution(width, height)
        video.set_frame_rate(Fraction(FPS))
        self._sender.set_video_frame(video)
        self._sender.open()
        # Frames drawn beforehand: the drawing is not the daemon's cost.
        self._frames = [i420(numbered_frame(n, width, height)) for n in range(FPS * 4)]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n, next_at = 0, time.monotonic()
        while not self._stop.is_set():
            # Frame n carries n modulo the drawn set: distinct over any 4 s window.
            self._sender.write_video(self._frames[n % len(self._frames)])
            self.sent[n] = time.monotonic()
            n += 1
            next_at += 1 / FPS
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sender.close()


class Receiver:
    """``soundscape.video.ndi_probe`` in another process: (time, number) of each frame."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.frames: list[tuple[float, int]] = []
        self.first = asyncio.Event()  # a numbered frame arrived
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, name: str) -> Receiver:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "soundscape.video.ndi_probe", name, "--loopback",
            "--decode", "--seconds", "600",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            event = json.loads(line)
            if event["event"] == "frame" and event["counter"] is not None:
                self.frames.append((event["t"], event["counter"]))
                self.first.set()

    async def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await self.proc.wait()
        await self.task


def first_times(events: list[tuple[float, int]], since: float, until: float) -> dict[int, float]:
    """When each drawn number was first seen in [since, until) (a 4 s window: no reuse)."""
    seen: dict[int, float] = {}
    for t, n in events:
        if since <= t < until and n not in seen:
            seen[n] = t
    return seen


def latencies(later: dict[int, float], earlier: dict[int, float]) -> list[float]:
    """ms from ``earlier`` to ``later`` per drawn number."""
    return [1000 * (later[n] - earlier[n]) for n in later.keys() & earlier.keys()]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def run_size(width: int, height: int, seconds: float) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    source_name, out_name = f"bench-cam-{tag}", f"bench-out-{tag}"
    emulator = Emulator(EmulatorConfig(width=width, height=height, fps=FPS, load_time=0.1))
    await emulator.start(host="127.0.0.1", port=0)
    config = load(None)
    config = dataclasses.replace(
        config,
        scope=dataclasses.replace(config.scope, url=emulator.url),
        pipeline=dataclasses.replace(
            config.pipeline, pipeline_ids=["passthrough"], width=width, height=height
        ),
        video_in=dataclasses.replace(config.video_in, source=f"ndi:{source_name}", fps=FPS),
        outputs=[ndi_output(out_name, loopback_only=True)],
    )
    source = Source(source_name, width, height)
    daemon = Daemon(config)
    assert daemon.video_in is not None
    fed: list[tuple[float, int]] = []  # t1
    handed: list[tuple[float, int]] = []  # t2
    back: list[tuple[float, int]] = []  # t3
    by_seq: dict[int, int] = {}

    feed = daemon.video_in.feed
    put = feed.put

    def timed_put(frame: av.VideoFrame) -> None:
        n = number(frame)
        put(frame)
        if n is not None:
            fed.append((time.monotonic(), n))
            by_seq[feed.seq] = n

    feed.put = timed_put  # type: ignore[method-assign]
    recv = OutgoingTrack.recv

    async def timed_recv(self: OutgoingTrack) -> av.VideoFrame:
        frame = await recv(self)
        n = by_seq.get(self._seen)
        if n is not None:
            handed.append((time.monotonic(), n))
        return frame

    OutgoingTrack.recv = timed_recv  # type: ignore[method-assign]
    on_frame = daemon.video.on_frame

    def timed_on_frame(frame: av.VideoFrame) -> None:
        n = number(frame)
        if n is not None:
            back.append((time.monotonic(), n))
        on_frame(frame)

    daemon.video.on_frame = timed_on_frame  # type: ignore[method-assign]
    await daemon.start()
    out = await Receiver.start(out_name)
    direct = await Receiver.start(source_name)
    try:
        await asyncio.wait_for(out.first.wait(), 60)
        await asyncio.sleep(WARMUP)
        start, cpu0 = time.monotonic(), cpu_seconds()
        window = 2.5  # numbers repeat every 4 s: a window and 1 s before it fit
        spans: dict[str, list[float]] = {"total": [], "ndi": [], "scope": [], "daemon": []}
        frames = 0
        while time.monotonic() - start < seconds:
            a = time.monotonic()
            await asyncio.sleep(window)  # the measuring window itself
            b = time.monotonic()
            sent = {n % (FPS * 4): t for n, t in source.sent.items() if a - 1 <= t < b}
            t1 = first_times(fed, a - 1, b + 1)
            t2 = first_times(handed, a - 1, b + 1)
            t3 = first_times(back, a - 1, b + 1)
            t4 = first_times(out.frames, a, b + 1)
            td = first_times(direct.frames, a - 1, b + 1)
            frames += len(t4)
            spans["total"] += latencies(t4, sent)
            spans["ndi"] += latencies(td, sent)
            spans["scope"] += latencies(t3, t2)
            ndi = statistics.median(latencies(td, sent) or [0.0])
            spans["daemon"] += [
                1000 * ((t2[n] - t1[n]) + (t4[n] - t3[n])) - ndi
                for n in t4.keys() & t3.keys() & t2.keys() & t1.keys()
            ]
        wall, cpu = time.monotonic() - start, cpu_seconds() - cpu0
    finally:
        await out.close()
        await direct.close()
        await daemon.stop()
        source.close()
        await emulator.stop()
        OutgoingTrack.recv = recv  # type: ignore[method-assign]
    return {
        "size": f"{width}x{height}",
        "fps": frames / wall,
        "p50": statistics.median(spans["total"]),
        "p99": pct(spans["total"], 0.99),
        "ndi": statistics.median(spans["ndi"]),
        "scope": statistics.median(spans["scope"]),
        "daemon": statistics.median(spans["daemon"]),
        "daemon_p99": pct(spans["daemon"], 0.99),
        "cpu_ms": 1000 * cpu / max(1, frames),
    }


async def main(args: argparse.Namespace) -> str:
    rows = []
    for width, height in SIZES:
        row = await run_size(width, height, args.seconds)
        print(json.dumps(row), flush=True)
        rows.append(row)
    interval = 1000 / FPS
    lines = [
        f"Glass to glass at {FPS} fps, {args.seconds:g} s per size "
        "(`python bench/video_in.py --write-docs`): a numbered cyndilib NDI source → daemon "
        "(`--video-in ndi:…`) → emulator `passthrough` (VP8 both ways, 4-frame chunks like the "
        "real server) → daemon NDI out → receiver process. Medians unless marked; the daemon's "
        "share is its time between the NDI reader and the track plus between Scope's frame and "
        "the receiver, minus one NDI hop (measured by a second receiver on the source). CPU per "
        "frame is the whole process: daemon, emulator and source.",
        "",
        "| size | frames back | glass to glass p50 | p99 | NDI hop | Scope (WebRTC + "
        f"passthrough) | daemon adds p50 / p99 | goal ≤ {interval:.0f} ms | CPU per frame |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = "ok" if r["daemon"] <= interval else "MISSED"
        lines.append(
            f"| {r['size']} | {r['fps']:.1f} fps | {r['p50']:.0f} ms | {r['p99']:.0f} ms "
            f"| {r['ndi']:.1f} ms | {r['scope']:.0f} ms | {r['daemon']:.1f} / "
            f"{r['daemon_p99']:.1f} ms | {verdict} | {r['cpu_ms']:.1f} ms |"
        )
    table = "\n".join(lines)
    print()
    print(table)
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Video in, glass to glass (NDI → Scope → NDI).")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per size")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    arguments = parser.parse_args()
    markdown = asyncio.run(main(arguments))
    if arguments.write_docs:
        write_section("video-in", markdown)
        print("docs/benchmarks.md updated")
