"""Source readers: each runs in its own thread and hands every decoded frame to ``put``.

A reader returns when ``stop`` is set and raises when its source fails (a
file that cannot be opened, a camera unplugged); its owner restarts it with
a backoff (:func:`soundscape.tasks.supervise`) while the track keeps sending.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import structlog

from soundscape.video_in.spec import SourceSpec

log = structlog.get_logger(__name__)

Put = Callable[[av.VideoFrame], None]
Reader = Callable[[threading.Event, Put], None]

NDI_POLL = 0.002  # s between FrameSync polls: well under a frame interval at 60 fps
NDI_FIND_POLL = 0.25  # s between looks at the NDI runtime's source list
NDI_REFIND_AFTER = 2.0  # s disconnected before the source is looked up again (new address)


def test_pattern(width: int, height: int, fps: float) -> Reader:
    """Frame n carries n in the emulator's barcode (tests and benchmarks read it back)."""
    from soundscape.emulator.peer import numbered_frame

    def run(stop: threading.Event, put: Put) -> None:
        n, next_at = 0, time.monotonic()
        while not stop.is_set():
            put(numbered_frame(n, width, height))
            n += 1
            next_at += 1 / fps
            stop.wait(max(0.0, next_at - time.monotonic()))

    return run


def pyav_source(spec: SourceSpec, *, loop: bool = True) -> Reader:
    """A V4L2 device (live, not paced) or a file or URL (paced by its timestamps, looped)."""
    live = spec.kind == "v4l2" or "://" in spec.target
    options: dict[str, Any] = {"format": "v4l2"} if spec.kind == "v4l2" else {}

    def run(stop: threading.Event, put: Put) -> None:
        while not stop.is_set():
            with av.open(spec.target, **options) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                base: float | None = None
                for frame in container.decode(stream):
                    if stop.is_set():
                        return
                    t = frame.time
                    if not live and t is not None:
                        if base is None:
                            base = time.monotonic() - t
                        wait = base + t - time.monotonic()
                        if wait > 0 and stop.wait(wait):
                            return
                    put(frame)
            if live or not loop:
                if live:
                    raise OSError(f"{spec}: the stream ended")
                stop.wait()  # played once: the track holds the last frame
                return

    return run


def ndi_source(name: str, library: Any = None) -> Reader:
    """An NDI source by name (``NAME`` or the full ``HOST (NAME)``), through cyndilib.

    Frames are read with ``FrameSync.capture_video`` (the plain receive path loses
    frames) in the runtime's fastest format: UYVY (no conversion in the runtime; numpy
    slices it into I420 here), or BGRA/RGBA for a source with alpha.
    """

    def run(stop: threading.Event, put: Put) -> None:
        import importlib

        lib = library or importlib.import_module("cyndilib")
        from cyndilib.video_frame import VideoFrameSync

        finder = lib.Finder()
        finder.open()
        receiver = lib.Receiver(
            color_format=lib.RecvColorFormat.fastest, bandwidth=lib.RecvBandwidth.highest
        )
        video = VideoFrameSync()
        receiver.frame_sync.set_video_frame(video)
        try:
            _receive(lib, finder, receiver, video, name, stop, put)
        finally:
            receiver.disconnect()
            finder.close()

    return run


def _find(finder: Any, name: str, stop: threading.Event) -> Any:
    while not stop.is_set():
        # Not finder.wait_for_sources(t): cyndilib (0.1.3) waits in the NDI runtime with the
        # GIL held, which froze every other thread -- the event loop, so the outgoing track
        # and the session -- for the whole wait. Read the current list, sleep in Python.
        finder.update_sources()
        for full in finder.get_source_names():
            if full == name or full.endswith(f"({name})"):
                return finder.get_source(full)
        stop.wait(NDI_FIND_POLL)
    return None


def _receive(
    lib: Any, finder: Any, receiver: Any, video: Any, name: str, stop: threading.Event, put: Put
) -> None:
    last_stamp = None
    disconnected_at: float | None = None
    source = _find(finder, name, stop)
    if source is None:
        return
    log.info("video_in_ndi_found", source=source.name)
    receiver.set_source(source)
    while not stop.is_set():
        now = time.monotonic()
        if receiver.is_connected():
            disconnected_at = None
        elif disconnected_at is None:
            disconnected_at = now
        elif now - disconnected_at > NDI_REFIND_AFTER:
            # A sender that came back may have a new address: look it up again.
            source = _find(finder, name, stop)
            if source is None:
                return
            receiver.set_source(source)
            disconnected_at = None
        receiver.frame_sync.capture_video()
        stamp = video.get_timestamp_posix()
        if video.xres and stamp != last_stamp:
            last_stamp = stamp
            fourcc = lib.FourCC(video.fourcc).name
            data = np.asarray(video.get_array())
            put(ndi_frame(data, fourcc, video.xres, video.yres, video.get_line_stride()))
        stop.wait(NDI_POLL)


def ndi_frame(data: np.ndarray, fourcc: str, width: int, height: int, stride: int) -> av.VideoFrame:
    """A PyAV frame from a received NDI picture (UYVY → yuv420p by slicing, no scaling)."""
    rows = data[: height * stride].reshape(height, stride)
    if fourcc in ("UYVY", "UYVA"):
        packed = rows[:, : width * 2]
        # U Y V Y: chroma from every other row (4:2:2 → 4:2:0), luma every odd byte.
        out = np.empty((height * 3 // 2, width), np.uint8)
        out[:height] = packed[:, 1::2]
        quarter = (height // 2) * (width // 2)
        chroma = out[height:].reshape(-1)
        chroma[:quarter] = packed[0::2, 0::4][: height // 2, : width // 2].reshape(-1)
        chroma[quarter : 2 * quarter] = packed[0::2, 2::4][: height // 2, : width // 2].reshape(-1)
        return av.VideoFrame.from_ndarray(out, format="yuv420p")
    if fourcc in ("BGRA", "BGRX", "RGBA", "RGBX"):
        pixels = rows[:, : width * 4].reshape(height, width, 4)
        return av.VideoFrame.from_ndarray(pixels, format="bgra" if fourcc[0] == "B" else "rgba")
    raise ValueError(f"NDI FourCC {fourcc} is not handled")


def reader_for(spec: SourceSpec, size: tuple[int, int], fps: float, *, loop: bool) -> Reader:
    if spec.kind == "test":
        return test_pattern(*size, fps)
    if spec.kind == "ndi":
        return ndi_source(spec.target)
    return pyav_source(spec, loop=loop)
