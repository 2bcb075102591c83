"""A small JPEG of the latest output frame for the operator's page.

``on_frame`` only keeps a reference (it runs on the event loop for every
frame); the picture is scaled and encoded off the loop, at most once per
frame however many pages ask.
"""

from __future__ import annotations

import asyncio
import io

import av

from soundscape.scope.supervisor import FrameSink


class Preview:
    """A FrameSink that remembers the newest frame."""

    def __init__(self, width: int = 320, quality: int = 70) -> None:
        self.width = width
        self.quality = quality
        self.streaming = False
        self._frame: av.VideoFrame | None = None
        self._seq = 0
        self._cached: tuple[int, bytes] | None = None
        self._lock = asyncio.Lock()

    def on_frame(self, frame: av.VideoFrame) -> None:
        self._frame = frame
        self._seq += 1

    def on_stream_state(self, streaming: bool) -> None:
        self.streaming = streaming

    async def jpeg(self) -> bytes | None:
        """The newest frame as JPEG; None before the first frame."""
        async with self._lock:  # one encode at a time; the others reuse it
            frame, seq = self._frame, self._seq
            if frame is None:
                return None
            if self._cached is None or self._cached[0] != seq:
                self._cached = (seq, await asyncio.to_thread(self._encode, frame))
            return self._cached[1]

    def _encode(self, frame: av.VideoFrame) -> bytes:
        height = max(2, round(frame.height * self.width / frame.width) // 2 * 2)
        image = frame.reformat(width=self.width, height=height, format="rgb24").to_image()
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=self.quality)
        return out.getvalue()


class FrameTee:
    """One frame sink feeding several (the outputs and the preview)."""

    def __init__(self, *sinks: FrameSink) -> None:
        self.sinks = sinks

    def on_frame(self, frame: av.VideoFrame) -> None:
        for sink in self.sinks:
            sink.on_frame(frame)

    def on_stream_state(self, streaming: bool) -> None:
        for sink in self.sinks:
            sink.on_stream_state(streaming)
