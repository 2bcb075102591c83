"""Spout and Syphon outputs against FAKES of SpoutGL and syphon-python.

Neither library can be installed on Linux (Spout is Windows-only, Syphon
macOS-only), so these tests inject stand-ins that follow the libraries'
documented APIs and check what the outputs ask of them: names, buffer layout
and size, the calls' order and thread, resizing and clean shutdown. They do
not prove the real libraries behave the same; docs/outputs.md says so.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from soundscape.emulator.renderer import Renderer, decode_counter
from soundscape.video import OutputConfig, VideoFanout
from soundscape.video.outputs.ndi import NdiOutput
from soundscape.video.outputs.spout import SpoutOutput
from soundscape.video.outputs.syphon import SyphonOutput

W, H = 160, 96
GL_RGBA = 0x1908


def counter_of_rgba(rgba: np.ndarray) -> int | None:
    return decode_counter(np.asarray(Image.fromarray(rgba[..., :3]).convert("L")))


class Calls:
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self.threads: set[str] = set()
        self.cond = threading.Condition()

    def add(self, name: str, value: Any = None) -> None:
        with self.cond:
            self.log.append((name, value))
            self.threads.add(threading.current_thread().name)
            self.cond.notify_all()

    def names(self) -> list[str]:
        return [n for n, _ in self.log]

    async def wait(self, predicate: Callable[[Calls], bool], timeout: float = 10) -> None:
        def block() -> bool:
            with self.cond:
                return self.cond.wait_for(lambda: predicate(self), timeout)

        assert await asyncio.to_thread(block)


def fake_spoutgl(calls: Calls, send_ok: bool = True) -> SimpleNamespace:
    """SpoutGL's Python surface as documented (github.com/jlai/Python-SpoutGL)."""

    class SpoutSender:  # the library's method names
        def createOpenGL(self) -> bool:
            calls.add("createOpenGL")
            return True

        def setSenderName(self, name: str) -> bool:
            calls.add("setSenderName", name)
            return True

        def sendImage(self, buf, width, height, gl_format, invert, host_fbo) -> bool:
            # Like the wrapper: a C-contiguous buffer of at least width*height*4 bytes.
            view = memoryview(buf)
            assert view.c_contiguous and view.nbytes >= width * height * 4
            assert (gl_format, invert, host_fbo) == (GL_RGBA, False, 0)
            calls.add("sendImage", (np.array(buf, copy=True), width, height))
            return send_ok

        def setFrameSync(self, name: str) -> None:
            calls.add("setFrameSync", name)

        def releaseSender(self) -> None:
            calls.add("releaseSender")

        def closeOpenGL(self) -> None:
            calls.add("closeOpenGL")

    return SimpleNamespace(SpoutSender=SpoutSender, enums=SimpleNamespace(GL_RGBA=GL_RGBA))


class FakeTexture:
    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.pixels = np.zeros((height, width, 4), np.uint8)

    def width(self) -> int:
        return self.w

    def height(self) -> int:
        return self.h


def fake_syphon(calls: Calls) -> SimpleNamespace:
    """syphon-python's Metal surface as documented (github.com/cansik/syphon-python)."""

    class SyphonMetalServer:
        def __init__(self, name: str) -> None:
            calls.add("server", name)
            self.device = "metal-device"

        def publish_frame_texture(self, texture: FakeTexture) -> None:
            calls.add("publish", (texture, texture.pixels.copy()))

        def stop(self) -> None:
            calls.add("stop")

    def create_mtl_texture(device: str, width: int, height: int) -> FakeTexture:
        assert device == "metal-device"
        calls.add("texture", (width, height))
        return FakeTexture(width, height)

    def copy_image_to_mtl_texture(image: np.ndarray, texture: FakeTexture) -> None:
        assert image.shape == (texture.h, texture.w, 4) and image.dtype == np.uint8
        calls.add("copy")
        texture.pixels[:] = image

    return SimpleNamespace(
        SyphonMetalServer=SyphonMetalServer,
        utils=SimpleNamespace(
            raw=SimpleNamespace(create_mtl_texture=create_mtl_texture),
            numpy=SimpleNamespace(copy_image_to_mtl_texture=copy_image_to_mtl_texture),
        ),
    )


def runnable(cls: type, library: SimpleNamespace) -> type:
    """The real output class with the fake library injected and the platform check off."""

    class Injected(cls):  # type: ignore[misc, valid-type]
        @classmethod
        def unavailable_reason(cls, config: OutputConfig) -> str | None:
            return None

        def __init__(self, config: OutputConfig) -> None:
            super().__init__(config, library=library)

    return Injected


async def run_frames(fanout: VideoFanout, sizes: list[tuple[int, int, range]]) -> None:
    fanout.on_stream_state(True)
    for width, height, counters in sizes:
        renderer = Renderer(width, height)
        for n in counters:
            fanout.on_frame(renderer.frame(n))
            await asyncio.sleep(1 / 30)


# --------------------------------------------------------------------------- spout


async def test_spout_sends_rgba_frames_under_its_name_on_one_thread():
    calls = Calls()
    config = OutputConfig(type="spout", name="Soundscape Spout", hold="none")
    fanout = VideoFanout(
        [config], size=(W, H), backends={"spout": runnable(SpoutOutput, fake_spoutgl(calls))}
    )
    await fanout.start()
    try:
        await run_frames(fanout, [(W, H, range(10))])
        await calls.wait(lambda c: c.names().count("setFrameSync") == 10)
    finally:
        await fanout.stop()
    names = calls.names()
    assert names[:2] == ["createOpenGL", "setSenderName"]
    assert ("setSenderName", "Soundscape Spout") in calls.log
    assert names[2:-2] == ["sendImage", "setFrameSync"] * 10  # frame sync after every frame
    assert names[-2:] == ["releaseSender", "closeOpenGL"]
    sent = [v for n, v in calls.log if n == "sendImage"]
    assert all(buf.shape == (H, W, 4) and (w, h) == (W, H) for buf, w, h in sent)
    assert [counter_of_rgba(buf) for buf, _, _ in sent] == list(range(10))
    # The GL context is thread-bound: every call on the output's own thread.
    assert calls.threads == {"video-spout:Soundscape Spout"}


async def test_spout_restarts_on_resize_and_reports_a_failed_send():
    calls = Calls()
    fanout = VideoFanout(
        [OutputConfig(type="spout", name="S", hold="none")],
        size=(W, H),
        backends={"spout": runnable(SpoutOutput, fake_spoutgl(calls, send_ok=False))},
    )
    await fanout.start()
    try:
        await run_frames(fanout, [(W, H, range(1)), (320, 192, range(1, 2))])
        await calls.wait(lambda c: c.names().count("sendImage") == 2)
        await calls.wait(lambda c: c.names().count("releaseSender") == 1)
    finally:
        await fanout.stop()
    sends = [(w, h) for n, (_, w, h) in ((n, v) for n, v in calls.log if n == "sendImage")]
    assert sends == [(W, H), (320, 192)]
    assert fanout.counters()["spout:S"]["errors"] == 2  # sendImage said False twice


def test_spout_says_why_it_cannot_run(monkeypatch):
    config = OutputConfig(type="spout", name="S")
    if sys.platform != "win32":
        assert SpoutOutput.unavailable_reason(config) == "Spout needs Windows"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert SpoutOutput.unavailable_reason(config) == (
        "SpoutGL not installed: pip install 'soundscape[spout]'"
    )


# --------------------------------------------------------------------------- syphon


async def test_syphon_publishes_textures_and_keeps_its_server_across_a_resize():
    calls = Calls()
    fanout = VideoFanout(
        [OutputConfig(type="syphon", name="Soundscape Syphon", hold="none")],
        size=(W, H),
        backends={"syphon": runnable(SyphonOutput, fake_syphon(calls))},
    )
    await fanout.start()
    try:
        await run_frames(fanout, [(W, H, range(5)), (320, 192, range(5, 10))])
        await calls.wait(lambda c: c.names().count("publish") == 10)
    finally:
        await fanout.stop()
    assert calls.names().count("server") == 1  # clients stay connected through a resize
    assert ("server", "Soundscape Syphon") in calls.log
    assert [v for n, v in calls.log if n == "texture"] == [(W, H), (320, 192)]
    published = [v for n, v in calls.log if n == "publish"]
    assert [(t.w, t.h) for t, _ in published] == [(W, H)] * 5 + [(320, 192)] * 5
    assert [counter_of_rgba(px) for _, px in published] == list(range(10))
    assert calls.names()[-1] == "stop"
    assert calls.threads == {"video-syphon:Soundscape Syphon"}


async def test_syphon_held_frames_republish_without_copying_again():
    calls = Calls()
    fanout = VideoFanout(
        [OutputConfig(type="syphon", name="S")],
        size=(W, H),
        backends={"syphon": runnable(SyphonOutput, fake_syphon(calls))},
    )
    await fanout.start()
    try:
        await run_frames(fanout, [(W, H, range(3))])
        fanout.on_stream_state(False)
        await calls.wait(lambda c: sum(counter_of_rgba(px) == 2 for px in published(c)) >= 5)
    finally:
        await fanout.stop()
    blacks = any(counter_of_rgba(px) is None for px in published(calls))
    # One upload per distinct picture (black before the stream, frames 0-2), however
    # many times each was published.
    assert calls.names().count("copy") == 3 + blacks


def published(calls: Calls) -> list[np.ndarray]:
    with calls.cond:
        return [px for n, (_, px) in ((n, v) for n, v in calls.log if n == "publish")]


def test_syphon_and_ndi_say_why_they_cannot_run(monkeypatch):
    config = OutputConfig(type="syphon", name="S")
    if sys.platform != "darwin":
        assert SyphonOutput.unavailable_reason(config) == "Syphon needs macOS"
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert SyphonOutput.unavailable_reason(config) == (
        "syphon-python not installed: pip install 'soundscape[syphon]'"
    )
    assert NdiOutput.unavailable_reason(OutputConfig(type="ndi")) == (
        "cyndilib not installed: pip install 'soundscape[ndi]'"
    )


@pytest.mark.parametrize("cls", [SpoutOutput, SyphonOutput])
def test_closing_an_unopened_output_is_harmless(cls):
    out = cls(OutputConfig(type=cls.type, name="x"), library=SimpleNamespace())
    out.close()
    out.close()
