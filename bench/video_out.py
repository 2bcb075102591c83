"""Video out cost: decoded frame in (on_frame) to NDI send done, per frame size.

One command::

    python bench/video_out.py [--frames 150] [--repeats 3] [--write-docs]

For 576x320, 1280x720 and 1920x1080 at 30 fps, decoded yuv420p frames (the
emulator's pictures, rendered beforehand: no VP8 in the loop) go through a
real VideoFanout into a real NDI sender (cyndilib, loopback), with a real NDI
receiver connected in another process so the sender really compresses and
sends. Reported, as medians over the repeats:

* latency: on_frame to NDI send done, median and p99 (the daemon's counters);
* CPU per frame: this process's CPU time (os.times) with the NDI output,
  minus the same run with no output, divided by the frames;
* CPU share: this process's CPU time over wall time, with the NDI output;
* on_frame: time the event loop spends handing one frame over (microseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from soundscape.video.ndi_env import use_loopback

use_loopback()  # before cyndilib loads

import structlog  # noqa: E402

from bench._docs import write_section  # noqa: E402
from soundscape.emulator.renderer import Renderer  # noqa: E402
from soundscape.video import VideoFanout, ndi_output  # noqa: E402

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

SIZES = [(576, 320), (1280, 720), (1920, 1080)]
TARGETS_MS = {(576, 320): 1.0, (1920, 1080): 5.0}
FPS = 30
WARMUP = 30  # frames sent before measuring (receiver connection settling)
LATENCY_WINDOW = 300  # the counters' latency window: a run must not exceed it


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


async def start_receiver(name: str) -> tuple[asyncio.subprocess.Process, asyncio.Task[None]]:
    """An NDI receiver process (ndi_probe), once it is connected to ``name``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "soundscape.video.ndi_probe", name, "--loopback",
        "--seconds", "600", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    connected = asyncio.Event()

    async def drain() -> None:
        # Read everything (a full pipe would stall the receiver); note when it connects.
        assert proc.stdout is not None
        async for line in proc.stdout:
            if b'"connected": true' in line:
                connected.set()

    reader = asyncio.create_task(drain())
    await asyncio.wait_for(connected.wait(), 30)
    return proc, reader


async def feed(fanout: VideoFanout, frames: list, count: int) -> tuple[float, float, list[int]]:
    """Feed ``count`` frames at 30 fps; (wall seconds, CPU seconds, on_frame ns each)."""
    loop = asyncio.get_running_loop()
    fanout.on_stream_state(True)
    handover: list[int] = []
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    start = loop.time()
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i / FPS - loop.time()))
        t = time.perf_counter_ns()
        fanout.on_frame(frames[i % len(frames)])
        handover.append(time.perf_counter_ns() - t)
    await asyncio.sleep(0.2)  # let the last sends finish inside the measured window
    return time.perf_counter() - wall0, cpu_seconds() - cpu0, handover


async def run_size(width: int, height: int, count: int, repeats: int) -> list[dict[str, float]]:
    """``repeats`` runs of ``count`` frames through one NDI sender with a receiver attached."""
    renderer = Renderer(width, height)
    frames = [renderer.frame(n) for n in range(30)]
    baseline = VideoFanout([], size=(width, height))
    await baseline.start()
    _, cpu_base, _ = await feed(baseline, frames, count)
    await baseline.stop()

    name = f"bench-{width}x{height}-{uuid.uuid4().hex[:4]}"
    # hold = "none": only Scope's frames are measured, no hold frames in between.
    config = ndi_output(name, loopback_only=True)
    config.hold = "none"
    fanout = VideoFanout([config], size=(width, height))
    await fanout.start()
    receiver, reader = await start_receiver(name)
    results = []
    try:
        await feed(fanout, frames, WARMUP)
        for _ in range(repeats):
            before = fanout.counters()[config.label]
            wall, cpu, handover = await feed(fanout, frames, count)
            snap = fanout.counters()[config.label]  # its latency window is these frames
            sent = snap["sent"] - before["sent"]
            if sent != count:
                print(
                    f"  warning: {sent} of {count} sent, "
                    f"{snap['dropped'] - before['dropped']} dropped"
                )
            results.append({
                "p50": snap["latency_ms_p50"],
                "p99": snap["latency_ms_p99"],
                "cpu_ms": max(0.0, (cpu - cpu_base) / count * 1000),
                "share": cpu / wall * 100,
                "handover_us": statistics.median(handover) / 1000,
            })  # fmt: skip
    finally:
        await fanout.stop()
        if receiver.stdin is not None:
            receiver.stdin.close()  # the probe stops when its stdin closes
        await asyncio.wait_for(receiver.wait(), 10)
        await reader
    return results


async def main(args: argparse.Namespace) -> str:
    rows = []
    for width, height in SIZES:
        runs = await run_size(width, height, args.frames, args.repeats)
        for r, result in enumerate(runs):
            print(
                f"{width}x{height} run {r + 1}: latency p50 {result['p50']:.2f} ms, "
                f"p99 {result['p99']:.2f} ms, CPU {result['cpu_ms']:.2f} ms/frame, "
                f"share {result['share']:.0f}%, on_frame {result['handover_us']:.1f} us"
            )
        med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        target = TARGETS_MS.get((width, height))
        verdict = "" if target is None else ("ok" if med["p50"] <= target else "MISSED")
        rows.append((f"{width}x{height}", med, target, verdict))

    lines = [
        f"NDI out (cyndilib {cyndilib_version()}, I420, loopback, a receiver process "
        f"connected), {args.frames} frames at {FPS} fps per run, medians of {args.repeats} "
        f"runs (`python bench/video_out.py --write-docs`). Latency is on_frame to NDI send "
        "done; CPU per frame is this process's CPU with the output minus without; share is "
        "this process's CPU over wall time (2 cores = 200%).",
        "",
        "| size | latency p50 | latency p99 | CPU per frame | CPU share | on_frame | "
        "target (p50) |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, med, target, verdict in rows:
        goal = f"≤ {target:g} ms {verdict}" if target else "-"
        lines.append(
            f"| {size} | {med['p50']:.2f} ms | {med['p99']:.2f} ms | {med['cpu_ms']:.2f} ms "
            f"| {med['share']:.0f}% | {med['handover_us']:.1f} µs | {goal} |"
        )
    table = "\n".join(lines)
    print()
    print(table)
    return table


def cyndilib_version() -> str:
    from importlib.metadata import version

    return version("cyndilib")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Video out cost per frame (NDI).")
    parser.add_argument(
        "--frames",
        type=int,
        default=LATENCY_WINDOW,
        help=f"frames per run (at most {LATENCY_WINDOW})",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    arguments = parser.parse_args()
    if not 0 < arguments.frames <= LATENCY_WINDOW:
        parser.error(f"--frames must be 1..{LATENCY_WINDOW}")
    markdown = asyncio.run(main(arguments))
    if arguments.write_docs:
        write_section("video", markdown)
        print("docs/benchmarks.md updated")
