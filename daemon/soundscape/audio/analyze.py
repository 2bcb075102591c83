"""Offline run of the live analyzer over a file: how the daemon will read a track.

:func:`analyze` feeds the file to :class:`AudioAnalyzer` block by block, with
the same block size, sample rate and settings the daemon uses, as fast as
the CPU allows — so the beats, bars and tempo it reports are exactly the
ones the show would see (file time, from 0 at the first sample).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from soundscape.audio.config import AudioConfig
from soundscape.audio.features import AudioAnalyzer

TEMPO_STEP = 0.5  # s between tempo readings in the report
OTHER_READING = 0.1  # a settled tempo this far (relative) from the main one is another reading


class AnalyzeError(Exception):
    """The file cannot be opened or decoded."""


@dataclasses.dataclass
class Reading:
    """How the track reads with the tempo prior (``beat.prior_bpm``) set to ``prior_bpm``."""

    prior_bpm: float
    bpm: float


@dataclasses.dataclass
class Analysis:
    beats: list[float]
    downbeats: list[float]
    tempo: list[tuple[float, float]]  # (s, bpm), every TEMPO_STEP while a tempo is known
    seconds: float
    # With ``octaves``: the other readings with the prior an octave either way (else None).
    others: list[Reading] | None = None
    # (s, beats per bar) at the first beat and at every beat where the bar length changes
    # (2: beats divided in three, 6/8 in dotted quarters).
    meter: list[tuple[float, int]] = dataclasses.field(default_factory=list)

    def settled(self) -> float | None:
        """The median tempo over the second half of the file (None: no tempo there)."""
        late = [bpm for t, bpm in self.tempo if t >= self.seconds / 2]
        return statistics.median(late) if late else None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "beats": [round(b, 4) for b in self.beats],
            "downbeats": [round(b, 4) for b in self.downbeats],
            "tempo": [[round(t, 3), round(bpm, 2)] for t, bpm in self.tempo],
            "beats_per_bar": [[round(t, 4), n] for t, n in self.meter],
        }
        if self.others is not None:
            out["octaves"] = [
                {"prior_bpm": round(r.prior_bpm, 1), "bpm": round(r.bpm, 2)} for r in self.others
            ]
        return out

    def text(self) -> str:
        lines = [f"{self.seconds:.1f} s, {len(self.beats)} beats, {len(self.downbeats)} bars"]
        lines.append("tempo:")
        last = None
        for t, bpm in self.tempo:
            if last is None or abs(bpm - last) >= 0.5:
                lines.append(f"  {t:7.2f} s  {bpm:6.1f} BPM")
                last = bpm
        if self.meter:
            lines.append("bars:")
            lines += [f"  {t:7.2f} s  {_bar_name(n)}" for t, n in self.meter]
        if self.others is not None:
            if self.others:
                lines += [
                    f"other reading: {r.bpm:.1f} BPM with beat.prior_bpm = {r.prior_bpm:.0f}"
                    for r in self.others
                ]
            else:
                lines.append("other reading: none (the prior an octave either way reads the same)")
        lines.append("downbeats: " + " ".join(f"{b:.2f}" for b in self.downbeats))
        lines.append("beats: " + " ".join(f"{b:.2f}" for b in self.beats))
        return "\n".join(lines)


def _bar_name(beats: int) -> str:
    if beats == 2:
        return "2 beats (or 6/8 in dotted quarters)"
    return f"{beats} beats" if beats != 1 else "1 beat"


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
    analyzer = AudioAnalyzer(config, timbre=False)  # beats as the daemon's, levels unused
    sr, block = config.sample_rate, config.block_size
    beats: list[float] = []
    downbeats: list[float] = []
    tempo: list[tuple[float, float]] = []
    meter: list[tuple[float, int]] = []
    next_tempo = 0.0
    for i in range(0, len(x) - block + 1, block):
        t = i / sr
        f = analyzer.process(x[i : i + block], t)
        if f.beat_time is not None:
            beats.append(f.beat_time)
            if f.downbeat:
                downbeats.append(f.beat_time)
            if not meter or meter[-1][1] != f.beats_per_bar:
                meter.append((f.beat_time, f.beats_per_bar))
        if t >= next_tempo:
            next_tempo += TEMPO_STEP
            if f.bpm > 0:
                tempo.append((t, f.bpm))
    return Analysis(beats, downbeats, tempo, len(x) / sr, meter=meter)


def other_readings(x: np.ndarray, config: AudioConfig, main: Analysis) -> list[Reading]:
    """The readings of ``x`` with the tempo prior an octave either way of ``main``'s settled
    tempo, where they differ from it: the track's metrical level is ambiguous (a dembow at 86
    that reads 172, half-time read at the felt tempo), and ``beat.prior_bpm`` picks."""
    bpm = main.settled()
    if bpm is None:
        return []
    beat = config.beat
    out = []
    for prior in (bpm / 2.0, bpm * 2.0):
        if not beat.min_bpm <= prior <= beat.max_bpm:
            continue  # the other octave is outside the range: never reported
        alt = dataclasses.replace(config, beat=dataclasses.replace(beat, prior_bpm=prior))
        other = analyze_samples(x, alt).settled()
        if other is not None and abs(math.log(other / bpm)) > math.log1p(OTHER_READING):
            out.append(Reading(prior, other))
    return out


def analyze(path: Path, config: AudioConfig | None = None, octaves: bool = False) -> Analysis:
    """Decode ``path`` and run the live analyzer over it, block by block; with
    ``octaves``, also with the tempo prior an octave either way (see :func:`other_readings`)."""
    config = config or AudioConfig()
    chunks = list(decode(path, config.sample_rate))
    x = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    result = analyze_samples(x, config)
    if octaves:
        result.others = other_readings(x, config, result)
    return result
