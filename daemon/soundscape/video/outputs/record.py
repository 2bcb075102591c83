"""Recording for the show's archive: H.264 in MP4, Matroska or QuickTime, by extension.

Timestamps are the wall clock of arrival (milliseconds), so the file keeps
the show's real timing, including held frames during outages (or a gap, with
``hold = "none"``). A resolution change starts a new segment file rather
than scaling: the archive keeps every frame at the size Scope made it, and
MP4 cannot change size mid-stream. ``close`` flushes the encoder and writes
the index, so a stopped recording is always playable; for crash-safety
prefer ``.mkv``, which stays readable up to the last written cluster.
"""

from __future__ import annotations

import functools
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import structlog

from soundscape.video.config import OutputConfig
from soundscape.video.outputs.base import Output, OutputError

log = structlog.get_logger(__name__)

PREFERRED_ENCODER = "libx264"
FALLBACK_ENCODERS = ("libopenh264", "mpeg4")
X264_OPTIONS = {"preset": "veryfast", "crf": "20"}
TIME_BASE = Fraction(1, 1000)


def _can_encode(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


@functools.cache
def choose_encoder() -> str:
    """libx264 when PyAV's FFmpeg has it; otherwise a fallback, said once in the log."""
    if _can_encode(PREFERRED_ENCODER):
        return PREFERRED_ENCODER
    for name in FALLBACK_ENCODERS:
        if _can_encode(name):
            log.warning("record_encoder_fallback", wanted=PREFERRED_ENCODER, using=name)
            return name
    raise OutputError("no H.264 or MPEG-4 encoder in PyAV's FFmpeg build")


def segment_path(template: str, now: float | None = None) -> Path:
    """The template with strftime codes filled, made unique with -1, -2... if taken."""
    base = Path(time.strftime(template, time.localtime(now)))
    candidate, n = base, 0
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.stem}-{n}{base.suffix}")
    return candidate


class RecordOutput(Output):
    type = "record"

    def __init__(self, config: OutputConfig) -> None:
        super().__init__(config)
        self._container: Any = None
        self._stream: Any = None
        self._t0: float | None = None
        self._last_pts = -1
        self.path: Path | None = None
        self.files: list[Path] = []

    def open(self, width: int, height: int, fps: Fraction) -> None:
        codec = choose_encoder()
        path = segment_path(self.config.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(path), mode="w")
        try:
            options = X264_OPTIONS if codec == "libx264" else {}
            stream = container.add_stream(codec, rate=fps, options=dict(options))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.time_base = TIME_BASE
        except Exception:
            container.close()
            raise
        self._container, self._stream, self.path = container, stream, path
        self._t0, self._last_pts = None, -1
        self.files.append(path)
        log.info(
            "record_segment_open",
            output=self.config.label,
            path=str(path),
            width=width,
            height=height,
            codec=codec,
        )

    def send(self, frame: av.VideoFrame) -> None:
        if self._stream is None:
            raise OutputError("recording is not open")
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        pts = max(round((now - self._t0) * 1000), self._last_pts + 1)
        # A copy: the decoded frame is shared with other outputs, and pts is ours to set.
        copy = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
        copy.pts, copy.time_base = pts, TIME_BASE
        self._last_pts = pts
        for packet in self._stream.encode(copy):
            self._container.mux(packet)

    def close(self) -> None:
        container, stream = self._container, self._stream
        self._container = self._stream = None
        if container is None:
            return
        try:
            for packet in stream.encode(None):
                container.mux(packet)
        finally:
            container.close()
            log.info("record_segment_closed", output=self.config.label, path=str(self.path))

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path) if self.path else None, "segments": len(self.files)}
