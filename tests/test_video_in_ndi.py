"""Video in from a real NDI source: a cyndilib sender here, numbered frames, through the
daemon's NDI receiver, Scope's ``passthrough`` (the emulator) and back out of the
daemon's own NDI output to a receiver in another process (``soundscape.video.ndi_probe``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction
from typing import Any

import pytest

from soundscape.video.ndi_env import use_loopback

pytestmark = [
    pytest.mark.ndi,
    pytest.mark.skipif(
        importlib.util.find_spec("cyndilib") is None,
        reason="cyndilib not installed (pip install 'soundscape[ndi]')",
    ),
]

use_loopback()  # before anything in this process loads the NDI runtime

from soundscape.app import Daemon  # noqa: E402
from soundscape.emulator import Emulator, EmulatorConfig  # noqa: E402
from soundscape.emulator.peer import numbered_frame  # noqa: E402
from soundscape.video.config import ndi_output  # noqa: E402
from soundscape.video.frames import i420  # noqa: E402
from soundscape.video_in.sources import NDI_REFIND_AFTER  # noqa: E402
from test_video_in import FPS, Counters, H, W, make_config, open_sessions  # noqa: E402
from test_video_ndi import Probe  # noqa: E402


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


class NumberedSender:
    """An NDI source sending numbered frames at FPS from its own thread (a stage camera)."""

    def __init__(self, name: str, first: int = 0) -> None:
        import cyndilib

        self.name = name
        self.next = first
        self._stop = threading.Event()
        self._sender = cyndilib.Sender(name, clock_video=False)
        frame = cyndilib.VideoSendFrame()
        frame.set_fourcc(cyndilib.FourCC.I420)
        frame.set_resolution(W, H)
        frame.set_frame_rate(Fraction(FPS))
        self._sender.set_video_frame(frame)
        self._sender.open()
        self._thread = threading.Thread(target=self._run, name=f"ndi-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._sender.write_video(i420(numbered_frame(self.next, W, H)))
            self.next += 1
            next_at += 1 / FPS
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sender.close()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emu = Emulator(EmulatorConfig(width=W, height=H, fps=FPS, load_time=0.1))
    await emu.start(host="127.0.0.1", port=0)
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
async def probes() -> AsyncIterator[list[Probe]]:
    started: list[Probe] = []
    try:
        yield started
    finally:
        for probe in started:
            await probe.close()


@pytest.fixture
def senders() -> Iterator[list[NumberedSender]]:
    started: list[NumberedSender] = []
    try:
        yield started
    finally:
        for sender in started:
            sender.close()


def ndi_config(url: str, source: str, output: str | None = None) -> Any:
    config = make_config(url, f"ndi:{source}")
    if output is not None:
        config = dataclasses.replace(config, outputs=[ndi_output(output, loopback_only=True)])
    return config


async def test_ndi_source_comes_back_out_of_the_ndi_output(
    emulator: Emulator, senders: list[NumberedSender], probes: list[Probe]
) -> None:
    source, output = unique("cam"), unique("out")
    senders.append(NumberedSender(source))
    daemon = Daemon(ndi_config(emulator.url, source, output))
    await daemon.start()
    try:
        probe = await Probe.start(output)
        probes.append(probe)
        await probe.wait(lambda p: len(p.counters()) >= 10, timeout=30)
        start = time.monotonic()
        await asyncio.sleep(2.0)  # the measuring window itself
        counters = [
            e["counter"] for e in probe.frames() if e["counter"] is not None and e["t"] >= start
        ]
        rate = len(set(counters)) / (time.monotonic() - start)
        assert counters == sorted(counters), "NDI frames came back out of order"
        assert rate >= 25, f"only {rate:.1f} numbered frames per second reached the receiver"
        assert len(open_sessions(emulator.state())) == 1
    finally:
        await daemon.stop()


async def test_ndi_source_unplugged_and_replugged_keeps_the_session(
    emulator: Emulator, senders: list[NumberedSender]
) -> None:
    source = unique("cam")
    sender = NumberedSender(source)
    senders.append(sender)
    sink = Counters()
    daemon = Daemon(ndi_config(emulator.url, source), frame_sink=sink)
    await daemon.start()
    try:
        await sink.wait(lambda s: len(s.numbers()) >= 15, timeout=30)
        [session] = open_sessions(emulator.state())
        senders.remove(sender)
        sender.close()  # unplugged
        last = sender.next - 1
        gone = time.monotonic()
        # The track keeps sending the last frame: Scope's output never stops -- also once
        # the reader is looking the source up again (after NDI_REFIND_AFTER), which must not
        # hold up the event loop.
        start, end = gone + NDI_REFIND_AFTER + 0.5, gone + NDI_REFIND_AFTER + 2.5
        await sink.wait(lambda s: any(t >= end for t, _ in s.seen), timeout=20)
        away = [n for t, n in sink.seen if start <= t <= end]
        assert len(away) >= 20 * (end - start), f"{len(away)} frames in {end - start:g} s away"
        assert set(away) <= {last, last - 1, last - 2}
        replugged = NumberedSender(source, first=10_000)
        senders.append(replugged)
        await sink.wait(lambda s: any(n >= 10_000 for n in s.numbers()), timeout=30)
        back = time.monotonic()
        await asyncio.sleep(1.0)  # the measuring window itself
        assert sink.rate(back, time.monotonic()) >= 25
        state = emulator.state()
        assert [s["id"] for s in open_sessions(state)] == [session["id"]]
        assert state["offers"] == 1, "the session was rebuilt"
    finally:
        await daemon.stop()
