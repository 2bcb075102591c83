"""The ``[audio]`` config section: capture, analysis and beat tracking settings.

Declared here (not in ``soundscape.config``) so the audio package, its tests
and its benchmark need nothing else from the daemon. ``soundscape.config``
mounts :class:`AudioConfig` as ``Config.audio``.
"""

from __future__ import annotations

import dataclasses
import itertools

from soundscape.settings import setting


@dataclasses.dataclass
class Smoothing:
    """Rise and fall times (seconds to close ~63% of a step); 0 = follow instantly."""

    attack: float = setting(0.01, "Seconds to rise toward a higher value.", low=0, high=60)
    release: float = setting(0.25, "Seconds to fall toward a lower value.", low=0, high=60)


@dataclasses.dataclass
class EnergySmoothing(Smoothing):
    attack: float = setting(0.01, "Seconds to rise toward a higher value.", low=0, high=60)
    release: float = setting(0.25, "Seconds to fall toward a lower value.", low=0, high=60)


@dataclasses.dataclass
class BandSmoothing(Smoothing):
    attack: float = setting(0.01, "Seconds to rise toward a higher value.", low=0, high=60)
    release: float = setting(0.2, "Seconds to fall toward a lower value.", low=0, high=60)


@dataclasses.dataclass
class BrightnessSmoothing(Smoothing):
    attack: float = setting(0.05, "Seconds to rise toward a higher value.", low=0, high=60)
    release: float = setting(0.3, "Seconds to fall toward a lower value.", low=0, high=60)


@dataclasses.dataclass
class TextureSmoothing(Smoothing):
    attack: float = setting(0.1, "Seconds to rise toward a higher value.", low=0, high=60)
    release: float = setting(0.5, "Seconds to fall toward a lower value.", low=0, high=60)


@dataclasses.dataclass
class OnsetSmoothing(Smoothing):
    attack: float = setting(0.0, "Seconds to rise toward a higher value.", low=0, high=60)
    release: float = setting(0.15, "Seconds to fall toward a lower value.", low=0, high=60)


@dataclasses.dataclass
class SmoothingSection:
    """Per feature smoothing; time based, so the block size does not change behaviour.

    One class per feature so a partial table (only ``attack``) keeps that
    feature's own default for the other key.
    """

    energy: EnergySmoothing = setting(factory=EnergySmoothing)
    bands: BandSmoothing = setting(factory=BandSmoothing)
    brightness: BrightnessSmoothing = setting(factory=BrightnessSmoothing)
    texture: TextureSmoothing = setting(factory=TextureSmoothing)
    onset_strength: OnsetSmoothing = setting(factory=OnsetSmoothing)


@dataclasses.dataclass
class NormalizeSection:
    """Adaptive level normalisation: energy and bands span 0..1 on quiet and loud sets alike."""

    fall: float = setting(
        1.0, "dB per second the running peak falls when the music gets quieter.", low=0.01, high=60
    )
    range_db: float = setting(36.0, "dB below the running peak that map to 0.", low=6, high=90)
    floor_db: float = setting(
        -72.0,
        "Silence gate in dBFS: levels below it read 0 and do not move the peak.",
        low=-140,
        high=-20,
    )


@dataclasses.dataclass
class OnsetSection:
    threshold: float = setting(
        3.0,
        "Onset when spectral flux exceeds its recent average by this many mean deviations.",
        low=0.5,
        high=20.0,
    )
    sensitivity: float = setting(
        0.1,
        "Also require flux above this share of its slowly-decaying peak (ignores noise).",
        low=0.0,
        high=1.0,
    )
    min_gap: float = setting(0.04, "Shortest time between two onsets, seconds.", low=0.005, high=1)


@dataclasses.dataclass
class BeatSection:
    min_bpm: float = setting(60.0, "Slowest tempo reported.", low=30, high=300)
    max_bpm: float = setting(180.0, "Fastest tempo reported.", low=30, high=300)
    window: float = setting(
        8.0, "Seconds of onset history used to estimate tempo and phase.", low=2, high=20
    )
    update_interval: float = setting(
        0.25, "Seconds between tempo and phase re-estimations.", low=0.05, high=5
    )
    min_confidence: float = setting(
        0.15, "Below this confidence no beat events are emitted.", low=0, high=1
    )
    prior_bpm: float = setting(
        140.0,
        "The tempo the show expects: ambiguous octaves lean toward it. 140 reads drum & bass, "
        "dubstep and trap at their notated tempi; a dembow below about 88 BPM (now and then at "
        "90) can then read at double tempo: for such a set, set it near the set's tempo "
        "(e.g. 100).",
        low=30,
        high=300,
    )
    prior_octaves: float = setting(
        0.7, "Width of the tempo prior, in octaves (larger: weaker pull).", low=0.1, high=4
    )
    accent_weight: float = setting(
        0.2,
        "Metrical preference: how much a weak every-other beat pushes toward half tempo. "
        "0.2 reads half-time styles (dubstep, trap, drum & bass) at their notated tempo; "
        "1.2 at the felt one (dubstep and trap at 70, drum & bass at 87; four-on-the-floor "
        "stays where it is).",
        low=0,
        high=4,
    )
    beats_per_bar: int = setting(
        0,
        "Beats per bar for downbeats from the audio (0 = detect: 2 when beats divide in "
        "three, as 6/8 in dotted quarters; else 3 or 4). Any other length is taken as "
        "given (5 for 5/4): the kick and the chord changes find its one.",
        low=0,
        high=12,
    )

    def check(self) -> list[tuple[str, str]]:
        if self.max_bpm < 1.5 * self.min_bpm:
            return [("max_bpm", "must be at least 1.5 x min_bpm (tempo octaves need room)")]
        return []


@dataclasses.dataclass
class AudioConfig:
    """``[audio]``: where the sound comes from and how it is analysed."""

    enabled: bool = setting(False, "Capture and analyse audio.")
    device: str = setting(
        "", "Input device: case-insensitive part of its name ('' = the default input)."
    )
    file: str = setting(
        "", "Analyse this audio file (looped, in real time) instead of a device; '' = off."
    )
    sample_rate: int = setting(48000, "Capture rate in Hz.", choices=(44100, 48000, 96000))
    block_size: int = setting(
        512, "Frames per block: 256 = lower latency, 512 = less CPU.", choices=(256, 512)
    )
    fft_size: int = setting(1024, "Analysis window in samples.", choices=(512, 1024, 2048))
    channels: int = setting(
        2, "Mix down at most this many input channels of the device.", low=1, high=64
    )
    bands: list[float] = setting(
        [20.0, 250.0, 2000.0, 16000.0],
        "Band edges in Hz, ascending (n edges = n-1 bands).",
        low=0,
        high=48000,
    )
    band_names: list[str] = setting(["low", "mid", "high"], "One name per band.")
    brightness_range: list[float] = setting(
        [150.0, 8000.0],
        "Spectral centroid in Hz mapped to brightness 0 and 1 (log scale).",
        low=1,
        high=48000,
    )
    retry_initial: float = setting(0.5, "First retry delay after a device failure, s.", low=0.01)
    retry_max: float = setting(10.0, "Longest retry delay, s.", low=0.1)
    normalize: NormalizeSection = setting(factory=NormalizeSection)
    smoothing: SmoothingSection = setting(factory=SmoothingSection)
    onset: OnsetSection = setting(factory=OnsetSection)
    beat: BeatSection = setting(factory=BeatSection)

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if len(self.bands) < 2 or any(b <= a for a, b in itertools.pairwise(self.bands)):
            problems.append(("bands", "needs at least 2 strictly ascending edges"))
        elif self.bands[-1] > self.sample_rate / 2:
            problems.append(("bands", f"top edge is above Nyquist ({self.sample_rate / 2:g} Hz)"))
        if len(self.band_names) != max(len(self.bands) - 1, 0):
            problems.append(("band_names", "needs exactly one name per band"))
        elif len(set(self.band_names)) != len(self.band_names):
            problems.append(("band_names", "names must be unique"))
        lo_hi = self.brightness_range
        if len(lo_hi) != 2 or lo_hi[1] <= lo_hi[0]:
            problems.append(("brightness_range", "needs [low, high] with low < high"))
        if self.fft_size < self.block_size:
            problems.append(("fft_size", "must be at least block_size"))
        if self.retry_max < self.retry_initial:
            problems.append(("retry_max", "must be at least retry_initial"))
        return problems
