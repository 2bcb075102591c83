"""Offline run of the live analyzer over a file: how the daemon will read a track.

:func:`analyze` feeds the file to :class:`AudioAnalyzer` block by block, with
the same block size, sample rate and settings the daemon uses, as fast as
the CPU allows — so the beats, bars and tempo it reports are exactly the
ones the show would see (file time, from 0 at the first sample).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from soundscape.audio.config import AudioConfig
from soundscape.audio.features import AudioAnalyzer

TEMPO_STEP = 0.5  # s between tempo readings in the report


class AnalyzeError(Exception):
    """The file cannot be opened or decoded."""


@dataclasses.dataclass
class Analysis:
    beats: list[float]
    downbeats: list[float]
    tempo: list[tuple[float, float]]  # (s, bpm), every TEMPO_STEP while a tempo is known
    seconds: float

    def as_json(self) -> dict[str, object]:
        return {
            "beats": [round(b, 4) for b in self.beats],
            "downbeats": [round(b, 4) for b in self.downbeats],
            "tempo": [[round(t, 3), round(bpm, 2)] for t, bpm in self.tempo],
        }

    def text(self) -> str:
        lines = [f"{self.seconds:.1f} s, {len(self.beats)} beats, {len(self.downbeats)} bars"]
        lines.append("tempo:")
        last = None
        for t, bpm in self.tempo:
            if last is None or abs(bpm - last) >= 0.5:
                lines.append(f"  {t:7.2f} s  {bpm:6.1f} BPM")
                last = bpm
        lines.append("downbeats: " + " ".join(f"{b:.2f}" for b in self.downbeats))
        lines.append("beats: " + " ".join(f"{b:.2f}" for b in self.beats))
        return "\n".join(lines)


def decode(path: Path, sample_rate: int) -> Iterator[np.ndarray]:
    """Mono float32 chunks of the file, resampled to ``sample_rate`` (PyAV)."""
    import av

    try:
        container = av.open(str(path))
    except (OSError, av.FFmpegError) as err:
        raise AnalyzeError(f"{path}: cannot open: {err}") from None
    with container:
        if not container.streams.audio:
            raise AnalyzeError(f"{path}: no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    yield out.to_ndarray().reshape(-1)
            for out in resampler.resample(None):
                yield out.to_ndarray().reshape(-1)
        except av.FFmpegError as err:
            raise AnalyzeError(f"{path}: decoding failed: {err}") from None


def analyze_samples(x: np.ndarray, config: AudioConfig | None = None) -> Analysis:
    """Run the analyzer over mono samples at ``config.sample_rate``."""
    config = config or AudioConfig()
    analyzer = AudioAnalyzer(config)
    sr, block = config.sample_rate, config.block_size
    beats: list[float] = []
    downbeats: list[float] = []
    tempo: list[tuple[float, float]] = []
    next_tempo = 0.0
    for i in range(0, len(x) - block + 1, block):
        t = i / sr
        f = analyzer.process(x[i : i + block], t)
        if f.beat_time is not None:
            beats.append(f.beat_time)
            if f.downbeat:
                downbeats.append(f.beat_time)
        if t >= next_tempo:
            next_tempo += TEMPO_STEP
            if f.bpm > 0:
                tempo.append((t, f.bpm))
    return Analysis(beats, downbeats, tempo, len(x) / sr)


def analyze(path: Path, config: AudioConfig | None = None) -> Analysis:
    """Decode ``path`` and run the live analyzer over it, block by block."""
    config = config or AudioConfig()
    chunks = list(decode(path, config.sample_rate))
    x = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return analyze_samples(x, config)
