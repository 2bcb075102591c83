"""An NDI receiver that reports what it sees, one JSON line per event.

Used by the tests (as a separate process, the way a media server on stage
would receive) and handy on a show machine to check a source::

    python -m soundscape.video.ndi_probe "Soundscape" --seconds 10 --loopback

Events on stdout: ``found`` (the full source name), ``frame`` (monotonic
time, size, FourCC and the emulator's frame counter when ``--decode`` reads
one), ``connection`` (whenever the receiver's connected state changes),
``late`` (the probe itself polled late, so it may have missed a frame) and
``done`` with totals. Frames are read through ``FrameSync.capture_video``:
cyndilib's plain ``receive()`` path loses most frames.
The probe stops after ``--seconds`` or when its stdin closes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

Decoder = Callable[[np.ndarray], int | None]
POLL = 0.002  # seconds between capture_video calls: well under a frame at 60 fps
# FrameSync keeps only the newest frame: a poll later than about one frame interval
# may have missed one. Such moments are reported, so a missed frame can be told
# apart from a lost one (the probe starved of CPU, not the sender failing).
LATE = 0.030


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


def luma_plane(data: np.ndarray, fourcc: str, width: int, height: int, stride: int) -> np.ndarray:
    """The H×W luma plane of a received frame, for the formats NDI hands receivers."""
    if fourcc in ("UYVY", "UYVA"):
        return data[: height * stride].reshape(height, stride)[:, 1 : 2 * width : 2]
    if fourcc in ("I420", "YV12", "NV12"):
        return data[: height * stride].reshape(height, stride)[:, :width]
    if fourcc in ("BGRA", "BGRX", "RGBA", "RGBX"):
        rows = data[: height * stride].reshape(height, stride)
        px = rows[:, : width * 4].reshape(height, width, 4)
        r, b = (px[..., 2], px[..., 0]) if fourcc.startswith("B") else (px[..., 0], px[..., 2])
        y = 0.257 * r + 0.504 * px[..., 1] + 0.098 * b + 16  # BT.601 studio range
        return y.astype(np.uint8)
    raise ValueError(f"unsupported FourCC {fourcc}")


def load_decoder(spec: str | None) -> Decoder | None:
    if not spec:
        return None
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def find_source(finder: Any, name: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finder.wait_for_sources(min(0.5, max(0.0, deadline - time.monotonic())))
        for full in finder.get_source_names():
            # Full NDI names are "HOST (NAME)".
            if full == name or full.endswith(f"({name})"):
                return finder.get_source(full)
    return None


def run(name: str, seconds: float, decoder: Decoder | None, find_timeout: float) -> int:
    from cyndilib import Finder, FourCC, Receiver, RecvBandwidth, RecvColorFormat
    from cyndilib.video_frame import VideoFrameSync

    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    # The finder stays open while receiving: its Source objects point into it.
    finder = Finder()
    finder.open()
    source = find_source(finder, name, find_timeout)
    if source is None:
        emit("not_found", name=name, sources=finder.get_source_names())
        finder.close()
        return 2
    emit("found", source=source.name)
    receiver = Receiver(color_format=RecvColorFormat.fastest, bandwidth=RecvBandwidth.highest)
    video = VideoFrameSync()
    receiver.frame_sync.set_video_frame(video)
    receiver.set_source(source)
    frames, decoded, connected = 0, 0, None
    last_stamp = None
    deadline = time.monotonic() + seconds
    next_conn_check = 0.0
    previous = time.monotonic()
    while not stop.is_set() and time.monotonic() < deadline:
        now = time.monotonic()
        if now - previous > LATE:
            emit("late", since=previous, gap=round(now - previous, 4))
        previous = now
        if now >= next_conn_check:
            next_conn_check = now + 0.05
            state = bool(receiver.is_connected())
            if state != connected:
                connected = state
                emit("connection", connected=state)
        receiver.frame_sync.capture_video()
        if video.xres and video.get_timestamp_posix() != last_stamp:
            last_stamp = video.get_timestamp_posix()
            frames += 1
            fourcc = FourCC(video.fourcc).name
            counter = None
            if decoder is not None:
                data = video.get_array()
                try:
                    luma = luma_plane(data, fourcc, video.xres, video.yres, video.get_line_stride())
                    counter = decoder(luma)
                except ValueError:
                    counter = None
                decoded += counter is not None
            emit("frame", n=frames, w=video.xres, h=video.yres, fourcc=fourcc, counter=counter)
        time.sleep(POLL)
    emit("done", frames=frames, decoded=decoded)
    receiver.disconnect()
    finder.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="NDI source name (the part in brackets) or full name")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--find-timeout", type=float, default=15.0)
    parser.add_argument("--loopback", action="store_true", help="NDI on 127.0.0.1 only")
    parser.add_argument(
        "--decode",
        nargs="?",
        const="soundscape.emulator.renderer:decode_counter",
        default=None,
        help="read frame counters with module:function (default: the emulator's barcode)",
    )
    args = parser.parse_args(argv)
    if args.loopback:
        from soundscape.video.ndi_env import use_loopback

        use_loopback()
    return run(args.name, args.seconds, load_decoder(args.decode), args.find_timeout)


if __name__ == "__main__":
    sys.exit(main())
