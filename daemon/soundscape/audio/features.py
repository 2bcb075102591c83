"""Per-block audio features: energy, bands, brightness, texture, onsets, beats (pure numpy).

:class:`AudioAnalyzer` takes one mono block and the capture time of its first
sample and returns a frozen :class:`Features`. The heavy work — a real FFT of
a sliding 1024-sample window every 256 samples — runs on preallocated
buffers; the rest is a few vector reductions (one matrix product gives every
band, the total and the centroid) and scalar arithmetic, so a 512-frame block
costs about 35-50 µs (see docs/benchmarks.md). Time only ever comes in as an
argument, so tests drive the analyzer with a synthetic clock.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import structlog

from soundscape.audio.beat import BeatTracker
from soundscape.audio.config import AudioConfig
from soundscape.audio.onsets import OnsetDetector
from soundscape.audio.smoothing import AdaptiveRange, AttackRelease

log = structlog.get_logger(__name__)

# Spectral flux is taken on log-compressed magnitudes relative to the running
# level, so a quiet set gives the same onset shapes as a loud one.
LOG_GAIN = 100.0
# Measured delay from an onset to the frame whose flux first reports it (the
# Hann taper hides an attack until it is well inside the window): about
# 0.625 hop + 0.125 window, for windows of 512 to 2048 on the synth loops.
ONSET_DELAY_HOPS = 0.625
ONSET_DELAY_WINDOWS = 0.125
# The beat tracker times the middle of each attack's flux, which comes this
# much later than the attack (measured, all window sizes): subtracted so
# beats land on the hits.
BEAT_LAG = 0.009
# Edges (Hz) of the beat tracker's low / mid / high onset bands.
BEAT_BANDS = (150.0, 3000.0)


@dataclasses.dataclass(frozen=True, slots=True)
class Features:
    """What one block sounded like. Levels are 0..1; times are monotonic seconds.

    ``t`` is the capture time of the block's first sample. ``energy`` and each
    of ``bands`` are adaptively normalised and smoothed; ``brightness`` is the
    spectral centroid on a log scale; ``texture`` the spectral flatness (0
    tonal, 1 noise). ``onset`` marks a detected attack in this block (its
    estimated time in ``onset_time``); ``beat`` marks a beat falling in this
    block (its time in ``beat_time``). ``bpm`` is 0 until a tempo is known;
    ``beat_phase`` is the position at ``t`` between the previous beat (0) and
    the next (1); ``next_beat`` the predicted time of the next beat.
    ``confidence`` (0..1) says how much the beat tracking can be trusted.
    ``level_db`` is the block's raw RMS in dBFS (before normalisation).
    """

    t: float
    energy: float
    bands: dict[str, float]
    brightness: float
    texture: float
    onset: bool
    onset_strength: float
    onset_time: float | None
    beat: bool
    beat_time: float | None
    bpm: float
    beat_phase: float
    next_beat: float | None
    confidence: float
    level_db: float
    downbeat: bool = False
    bar_phase: float = 0.0
    beats_per_bar: int = 4


def silent_features(t: float, band_names: list[str] | tuple[str, ...]) -> Features:
    """The neutral reading: silence, no tempo."""
    return Features(
        t=t,
        energy=0.0,
        bands=dict.fromkeys(band_names, 0.0),
        brightness=0.0,
        texture=0.0,
        onset=False,
        onset_strength=0.0,
        onset_time=None,
        beat=False,
        beat_time=None,
        bpm=0.0,
        beat_phase=0.0,
        next_beat=None,
        confidence=0.0,
        level_db=-math.inf,
    )


class AudioAnalyzer:
    """Streaming analysis of mono blocks; call :meth:`process` once per block, in order.

    Onsets and beats run on a fixed internal hop of ``HOP`` samples whatever
    the block size (a 512-frame block is analysed as two hops), so detection
    and timing do not depend on the capture's block size. Levels, bands,
    brightness and texture are read once per block from the latest spectrum.
    """

    HOP = 256

    def __init__(self, config: AudioConfig | None = None) -> None:
        self.config = config = config or AudioConfig()
        self.sample_rate = sr = config.sample_rate
        self.fft_size = n = config.fft_size
        self.hop = hop = min(self.HOP, n)
        self.band_names = tuple(config.band_names)
        self._buf = np.zeros(n)
        self._win = np.hanning(n + 1)[:n]  # periodic Hann
        self._mag = np.zeros(n // 2 + 1)
        self._power = np.empty(n // 2 + 1)
        self._prev_logmag = np.zeros(n // 2 + 1)
        self._tmp = np.empty(n // 2 + 1)
        self._pending = np.zeros(hop)  # samples waiting for a full hop
        self._fill = 0
        self._have_spectrum = False
        freqs = np.fft.rfftfreq(n, 1.0 / sr)
        # Raw FFT magnitudes times this read ~1 at the peak bin of a full-scale sine.
        self._mag_scale = mag_scale = 2.0 / self._win.sum()
        # One matrix product gives every band's power, the total and the
        # centroid numerator: columns = band masks, in-range mask, frequency.
        edges = config.bands
        in_range = (freqs >= edges[0]) & (freqs < edges[-1])
        cols = [((freqs >= a) & (freqs < b)).astype(float) for a, b in itertools.pairwise(edges)]
        cols += [in_range.astype(float), np.where(in_range, freqs, 0.0)]
        # Folding the magnitude scale in here saves a pass over the spectrum.
        self._stats_matrix = np.stack(cols, axis=1) * mag_scale**2
        self._n_bands = len(edges) - 1
        self._flat_mask = in_range
        self._flat_count = max(int(in_range.sum()), 1)
        # Beat envelopes: flux in three bands — low (kick), mid (snare, clap,
        # chords), high (hats) — so each instrument plays its own role in the
        # tracker (see beat.py). One matrix product gives all three.
        lo_hz, hi_hz = BEAT_BANDS
        cols = [(freqs > 20) & (freqs < lo_hz), (freqs >= lo_hz) & (freqs < hi_hz), freqs >= hi_hz]
        self._beat_weights = np.stack([c.astype(float) / max(c.sum(), 1) for c in cols], axis=1)
        b_lo, b_hi = config.brightness_range
        self._bright_lo = math.log(b_lo)
        self._bright_span = math.log(b_hi) - self._bright_lo
        norm = config.normalize
        self._energy_range = AdaptiveRange(norm.fall, norm.range_db, norm.floor_db)
        self._band_ranges = [
            AdaptiveRange(norm.fall, norm.range_db, norm.floor_db) for _ in range(self._n_bands)
        ]
        sm = config.smoothing
        self._energy_smooth = AttackRelease(sm.energy.attack, sm.energy.release)
        self._band_smooth = [
            AttackRelease(sm.bands.attack, sm.bands.release) for _ in range(self._n_bands)
        ]
        self._bright_smooth = AttackRelease(sm.brightness.attack, sm.brightness.release)
        self._texture_smooth = AttackRelease(sm.texture.attack, sm.texture.release)
        self._strength_smooth = AttackRelease(sm.onset_strength.attack, sm.onset_strength.release)
        on = config.onset
        self.onsets = OnsetDetector(on.threshold, on.sensitivity, on.min_gap)
        self.beats = BeatTracker(config.beat)
        self._onset_delay = (ONSET_DELAY_HOPS * hop + ONSET_DELAY_WINDOWS * n) / sr
        self._hop_dt = hop / sr
        self._floor_power = 10 ** (norm.floor_db / 10)
        self._warned_bad = False
        # Per-block results of the hops, read by process().
        self._onset_time: float | None = None
        self._beat = False
        self._strength = 0.0
        self.latest: Features = silent_features(0.0, self.band_names)

    def _analyse_hops(self, hops: list[np.ndarray], t_ends: list[float]) -> None:
        """Slide the hops into the window: spectra, flux, onsets, beats.

        All the hops of a block are transformed together (one ``rfft`` over a
        frames x window matrix): per-call overhead, not arithmetic, is what
        costs here.
        """
        n, hop = self.fft_size, self.hop
        k = len(hops)
        stream = np.concatenate([self._buf, *hops])
        frames = np.empty((k, n))
        for j in range(k):
            np.multiply(stream[(j + 1) * hop : (j + 1) * hop + n], self._win, out=frames[j])
        self._buf = stream[-n:]
        mag = np.abs(np.fft.rfft(frames))
        # Flux on log magnitudes relative to the running level: a quiet set
        # gives the same onset shapes as a loud one.
        peak_amp = 10 ** (self._energy_range.peak / 20)
        logmag = np.log1p(mag * (LOG_GAIN * self._mag_scale / peak_amp))
        diff = np.empty_like(logmag)
        np.subtract(logmag[0], self._prev_logmag, out=diff[0])
        if k > 1:
            np.subtract(logmag[1:], logmag[:-1], out=diff[1:])
        np.maximum(diff, 0.0, out=diff)
        fluxes = diff.sum(axis=1).tolist()
        beat_fluxes = (diff @ self._beat_weights).tolist()
        self._prev_logmag = logmag[-1]
        self._mag = mag[-1]
        dt = self._hop_dt
        beats = self.beats
        for flux, beat_flux, t_end in zip(fluxes, beat_fluxes, t_ends, strict=True):
            frame_t = t_end - self._onset_delay
            onset = self.onsets.update(flux, frame_t, dt)
            if onset:
                self._onset_time = frame_t
            if self.onsets.strength > self._strength:
                self._strength = self.onsets.strength
            if beats.update(beat_flux, frame_t - BEAT_LAG, t_end, dt, onset):
                self._beat = True
        self._have_spectrum = True

    def _mono(self, block: np.ndarray) -> np.ndarray:
        x = block
        if x.ndim != 1:
            x = x.mean(axis=1) if x.ndim == 2 else x.reshape(-1)
        if x.dtype != np.float32 and x.dtype != np.float64:
            x = x.astype(np.float64)
        return x

    def process(self, block: np.ndarray, t: float) -> Features:
        """Analyse one block of mono samples whose first sample was captured at ``t``.

        Samples are floats in -1..1; a 2-D block (frames x channels) is mixed
        down. Non-finite samples are replaced by silence (logged once).
        """
        x = self._mono(block)
        k = len(x)
        if k == 0:
            return self.latest
        sr = self.sample_rate
        dt = k / sr
        energy_sum = float(np.dot(x, x))
        if not math.isfinite(energy_sum):
            x = np.nan_to_num(x.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
            energy_sum = float(np.dot(x, x))
            if not self._warned_bad:
                self._warned_bad = True
                log.warning("audio_bad_samples", detail="NaN or infinite samples read as silence")

        # --- energy (dB, adaptively normalised, smoothed)
        mean_square = energy_sum / k
        level_db = 10.0 * math.log10(mean_square + 1e-20)
        energy = self._energy_range.update(level_db, dt)
        energy = self._energy_smooth.update(energy, dt)

        # --- hops: spectrum, flux, onsets, beats
        self._onset_time = None
        self._beat = False
        self._strength = 0.0
        self._have_spectrum = False
        hop = self.hop
        pos = 0
        fill = self._fill
        hops: list[np.ndarray] = []
        t_ends: list[float] = []
        if fill:
            need = hop - fill
            if k < need:
                self._pending[fill : fill + k] = x
                self._fill = fill + k
                pos = k
            else:
                self._pending[fill:] = x[:need]
                hops.append(self._pending.copy())
                t_ends.append(t + need / sr)
                self._fill = 0
                pos = need
        while pos + hop <= k:
            hops.append(x[pos : pos + hop])
            t_ends.append(t + (pos + hop) / sr)
            pos += hop
        if pos < k:
            rest = k - pos
            self._pending[:rest] = x[pos:]
            self._fill = rest
        if hops:
            self._analyse_hops(hops, t_ends)

        # --- bands, brightness, texture from the latest spectrum
        last = self.latest
        if self._have_spectrum:
            mag = self._mag
            power = np.multiply(mag, mag, out=self._power)
            stats = power @ self._stats_matrix
            nb = self._n_bands
            bands = {}
            for i in range(nb):
                # The band's share of the mean square, in dB.
                b_db = 10.0 * math.log10(float(stats[i]) * 0.5 + 1e-20)
                v = self._band_ranges[i].update(b_db, dt)
                bands[self.band_names[i]] = self._band_smooth[i].update(v, dt)
            total = float(stats[nb])
            if mean_square > self._floor_power and total > 0.0:
                centroid = float(stats[nb + 1]) / total
                b = (math.log(centroid) - self._bright_lo) / self._bright_span
                brightness = self._bright_smooth.update(min(max(b, 0.0), 1.0), dt)
                tmp = self._tmp
                # Flatness = geometric / arithmetic mean of the power spectrum.
                np.add(power, total / self._flat_count * 1e-9, out=tmp)
                np.log(tmp, out=tmp)
                log_geo = float(tmp[self._flat_mask].sum()) / self._flat_count
                flat_db = 4.342944819 * (log_geo - math.log(total / self._flat_count))
                texture = self._texture_smooth.update(min(max(1.0 + flat_db / 40.0, 0.0), 1.0), dt)
            else:  # silence: hold the last colour rather than report noise
                brightness = last.brightness
                texture = last.texture
        else:
            bands, brightness, texture = last.bands, last.brightness, last.texture

        strength = self._strength_smooth.update(min(self._strength, 1.0), dt)
        bt = self.beats
        features = Features(
            t=t,
            energy=energy,
            bands=bands,
            brightness=brightness,
            texture=texture,
            onset=self._onset_time is not None,
            onset_strength=strength,
            onset_time=self._onset_time,
            beat=self._beat,
            beat_time=bt.last_beat if self._beat else None,
            bpm=bt.bpm,
            beat_phase=bt.phase_at(t),
            next_beat=bt.next_beat,
            confidence=bt.confidence,
            level_db=level_db,
            downbeat=self._beat and bt.beat_in_bar == 0,
            bar_phase=bt.bar_phase_at(t),
            beats_per_bar=bt.beats_per_bar,
        )
        self.latest = features
        return features
