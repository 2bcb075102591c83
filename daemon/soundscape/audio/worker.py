"""Capture worker process: PortAudio runs here, never in the daemon.

``python -m soundscape.audio.worker '<json options>'`` opens the input device,
and writes to stdout a stream of messages:

- ``b"I" + u32 length + JSON``: an event — ``started`` (device, channels, ...),
  ``error`` (could not open; ``reason``), ``lost`` (the device stopped).
- ``b"B" + f64 t + u32 n + n float32``: one mono block; ``t`` is the monotonic
  capture time of its first sample (CLOCK_MONOTONIC is system-wide, so the
  daemon can use it as is).

It exits when stdin closes (the daemon stopped it, or died), or right after
``error``/``lost`` with ``os._exit``: once a device has vanished under an open
stream, PortAudio's teardown calls hang (seen with JACK), so the process is
simply ended and a fresh one tried later. A segfault inside PortAudio ends
only this process too.
"""

from __future__ import annotations

import json
import os
import queue
import struct
import sys
import threading
import time
from typing import Any, BinaryIO

import numpy as np

from soundscape.audio.clock import SampleClock
from soundscape.audio.devices import CaptureError, new_pyaudio, open_input, pyaudio_module

BLOCK_HEADER = struct.Struct("<dI")
INFO_HEADER = struct.Struct("<I")
QUEUE_BLOCKS = 2000  # ~10 s at 256 frames: beyond that the daemon is not reading; drop


def info_message(event: str, **fields: Any) -> bytes:
    body = json.dumps({"event": event, **fields}).encode()
    return b"I" + INFO_HEADER.pack(len(body)) + body


def block_message(t: float, samples: np.ndarray) -> bytes:
    return b"B" + BLOCK_HEADER.pack(t, len(samples)) + samples.astype("<f4", copy=False).tobytes()


class _Writer:
    """Serialises every message through one thread so the audio callback never blocks."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_BLOCKS)
        self._drained = threading.Event()
        self.dropped = 0
        threading.Thread(target=self._run, name="writer", daemon=True).start()

    def put_block(self, message: bytes) -> None:
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self.dropped += 1

    def put_info(self, message: bytes) -> None:
        self._queue.put(message)

    def drain(self, timeout: float) -> None:
        self._queue.put(None)
        self._drained.wait(timeout)

    def _run(self) -> None:
        try:
            while True:
                message = self._queue.get()
                if message is None:
                    self._drained.set()
                    continue
                self._out.write(message)
                self._out.flush()
        except (BrokenPipeError, OSError, ValueError):  # the daemon is gone
            os._exit(0)


def _exit_on_stdin_eof() -> None:
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)


def run(options: dict[str, Any]) -> None:
    device_name = str(options.get("device", ""))
    rate = int(options.get("sample_rate", 48000))
    block = int(options.get("block_size", 512))
    max_channels = int(options.get("channels", 2))
    stall = max(0.5, 40 * block / rate)

    writer = _Writer(sys.stdout.buffer)
    threading.Thread(target=_exit_on_stdin_eof, name="stdin", daemon=True).start()
    pyaudio = pyaudio_module()
    clock = SampleClock(rate)
    started = threading.Event()
    last = [time.monotonic()]
    overflows = [0]

    def callback(in_data: bytes, frames: int, time_info: Any, status: int) -> tuple[None, int]:
        arrival = time.monotonic()
        last[0] = arrival
        if status & pyaudio.paInputOverflow:
            overflows[0] += 1
        t = clock.stamp(frames, arrival)
        if not started.is_set() or frames <= 0:
            return None, pyaudio.paContinue
        samples = np.frombuffer(in_data, dtype=np.float32)
        channels = len(samples) // frames
        if channels > 1:
            samples = (
                samples[: frames * channels]
                .reshape(frames, channels)
                .mean(axis=1, dtype=np.float32)
            )
        writer.put_block(block_message(t, samples))
        return None, pyaudio.paContinue

    try:
        pa = new_pyaudio()
        stream, device, channels = open_input(
            pa,
            device_name,
            sample_rate=rate,
            block_size=block,
            max_channels=max_channels,
            callback=callback,
        )
    except CaptureError as err:
        writer.put_info(info_message("error", reason=str(err)))
        writer.drain(2.0)
        os._exit(2)
    writer.put_info(
        info_message(
            "started",
            device=device.name,
            host_api=device.host_api,
            channels=channels,
            sample_rate=rate,
            block_size=block,
            pid=os.getpid(),
        )
    )
    last[0] = time.monotonic()
    started.set()
    # Watchdog: PortAudio has no reliable "device gone" event; a stream that
    # stops calling back, or reports itself inactive, is lost.
    while True:
        time.sleep(stall / 8)
        quiet = time.monotonic() - last[0]
        if quiet > stall or not stream.is_active():
            writer.put_info(
                info_message(
                    "lost",
                    device=device.name,
                    silent_for=round(quiet, 3),
                    overflows=overflows[0],
                    dropped=writer.dropped,
                )
            )
            writer.drain(2.0)
            os._exit(3)


def main() -> None:
    try:
        options = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    except json.JSONDecodeError as err:
        sys.stdout.buffer.write(info_message("error", reason=f"bad options: {err}"))
        sys.stdout.buffer.flush()
        os._exit(2)
    try:
        run(options)
    except Exception as err:  # report anything unexpected as one line, then go
        sys.stdout.buffer.write(info_message("error", reason=f"{type(err).__name__}: {err}"))
        sys.stdout.buffer.flush()
        os._exit(2)


if __name__ == "__main__":
    main()
