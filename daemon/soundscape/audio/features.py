"""Per-block audio features: energy, bands, brightness, texture, onsets, beats (pure numpy).

:class:`AudioAnalyzer` takes one mono block and the capture time of its first
sample and returns a frozen :class:`Features`. The heavy work — a real FFT of
a sliding 1024-sample window every 256 samples — runs on preallocated
buffers with no per-block allocation or copy; the rest is a few vector
operations (one matrix product gives every flux and band sum) and scalar
arithmetic, so a 512-frame block costs about 33 µs at the median, plus about
0.35 ms four times a second for the tempo and phase (see docs/benchmarks.md).
Time only ever comes in as an argument, so tests drive the analyzer with a
synthetic clock.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import structlog

from soundscape.audio.beat import BeatTracker
from soundscape.audio.config import AudioConfig
from soundscape.audio.fft import rfft_kernel
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
# Hops the sample stream and the log spectra are kept for before they are
# compacted (a copy every RING_HOPS hops instead of every block).
RING_HOPS = 64
# The pitch-class profile the bar lines are read from (chords change on them): the
# spectrum between these frequencies, folded onto 12 semitones, every HARMONY_EVERY
# blocks (a few times per beat is plenty for a per-beat average, and it costs little).
HARMONY_RANGE = (250.0, 5000.0)
HARMONY_EVERY = 4
# The drums' cue for the beat tracker's side rule (see BeatTracker.update_bands): how many
# bins of DRUM_BAND (Hz) rose by more than DRUM_RISE from one hop to the next, in the flux's
# units (log(1 + LOG_GAIN x magnitude / running peak): a factor e, 8.7 dB, for bins well
# above the peak's -40 dB, more below). A snare's, a clap's or a kick's click rises across
# the band; a round bass's upper harmonics are weak there (a bright sawtooth entering over
# silence rises across it too). Tried from 150 Hz, the band voted for an off-beat bass:
# its harmonics fill the low mid.
DRUM_RISE = 1.0
DRUM_BAND = (1000.0, 3000.0)
# The flux sums of each row of the analyzer's one matrix product: all bins, the beat
# tracker's low, mid and high bands, the drums' band; the power sums follow.
DRUMS_SUM, FLUX_SUMS = 4, 5


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


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


# Features built unfrozen, then given the frozen class (the same slots): the
# frozen __init__ sets each of the 18 fields through object.__setattr__, which
# costs about 2 µs a block; this costs a tenth of that. The result is an
# ordinary Features in every way (frozen, equal, repr, pickle).
_FeaturesBuilder = dataclasses.make_dataclass(
    "_FeaturesBuilder",
    [
        (f.name, f.type, dataclasses.field(default=f.default))
        if f.default is not dataclasses.MISSING
        else (f.name, f.type)
        for f in dataclasses.fields(Features)
    ],
    slots=True,
    eq=False,
    repr=False,
)


class AudioAnalyzer:
    """Streaming analysis of mono blocks; call :meth:`process` once per block, in order.

    Onsets and beats run on a fixed internal hop of ``HOP`` samples whatever
    the block size (a 512-frame block is analysed as two hops), so detection
    and timing do not depend on the capture's block size. Levels, bands,
    brightness and texture are read once per block from the latest spectrum.
    """

    HOP = 256

    def __init__(self, config: AudioConfig | None = None, *, timbre: bool = True) -> None:
        """``timbre=False``: onsets, beats and downbeats only (``soundscape analyze``);
        the levels of the bands, brightness and texture are not computed and stay at
        silence's. Nothing of those feeds the beats: they are the same to the last bit
        when a block holds two hops or more (block 512 and up), within rounding (1e-14 s)
        with one hop a block, where the block's sums are a product of other shapes."""
        self.config = config = config or AudioConfig()
        self._with_timbre = timbre
        self.sample_rate = sr = config.sample_rate
        self.fft_size = n = config.fft_size
        self.hop = hop = min(self.HOP, n)
        self.band_names = tuple(config.band_names)
        self._win = np.hanning(n + 1)[:n]  # periodic Hann
        self._fill = 0  # samples of an unfinished hop, at the end of the stream
        # The sample stream and the log magnitudes of past frames live in long
        # buffers that are appended to and compacted only when full: frames
        # are slices of a strided view, and no per-block copies are made.
        # Every per-block array is preallocated per hop count (_hop_buffers):
        # per-call overhead, not arithmetic, is what costs in a 512-frame block.
        self._hop_cache: dict[int, tuple[np.ndarray, ...]] = {}
        self._last_hops = (0, ())  # the hop count of the last block, its buffers
        self._rfft = rfft_kernel()
        self._zero = np.zeros(())  # a 0-d array: a ufunc converts a Python 0.0 at every call
        self._alloc_stream(RING_HOPS * hop, RING_HOPS)
        # The flux sums, band powers, in-range total and centroid numerator of
        # the last frame, on the scaled spectrum the flux is taken from, and
        # the factor back to the unscaled spectrum.
        self._power_sums: list[float] = []
        self._unscale = 1.0
        self._power_flat = np.zeros(0)  # the last frame's in-range power (a view, _hop_buffers)
        freqs = np.fft.rfftfreq(n, 1.0 / sr)
        # Raw FFT magnitudes times this read ~1 at the peak bin of a full-scale sine.
        self._mag_scale = 2.0 / self._win.sum()
        # One matrix product over the block's flux rows, their rising bins and the
        # last frame's power gives every per-block sum (see _analyse_hops). Flux
        # columns: all bins (onsets), then the beat tracker's low (kick, bass), mid
        # (snare, clap, chords) and high (hats) bands, so each instrument plays its
        # own role in the tracker (see beat.py), then the drums' band (read on the
        # rising bins: their count).
        lo_hz, hi_hz = BEAT_BANDS
        cols = [(freqs > 20) & (freqs < lo_hz), (freqs >= lo_hz) & (freqs < hi_hz), freqs >= hi_hz]
        flux_cols = [np.ones(len(freqs)), *(c.astype(float) / max(c.sum(), 1) for c in cols)]
        flux_cols.append(((freqs >= DRUM_BAND[0]) & (freqs < DRUM_BAND[1])).astype(float))
        assert len(flux_cols) == FLUX_SUMS
        # Power columns: each band, the in-range total and the centroid
        # numerator; the magnitude scale is folded in (a pass over the spectrum less).
        edges = config.bands
        in_range = (freqs >= edges[0]) & (freqs < edges[-1])
        cols = [((freqs >= a) & (freqs < b)).astype(float) for a, b in itertools.pairwise(edges)]
        cols += [in_range.astype(float), np.where(in_range, freqs, 0.0)]
        # Stored as rows (sums x bins): BLAS takes that product about twice as fast.
        self._weights = np.stack(flux_cols + cols, axis=0)
        self._flux_weights = np.ascontiguousarray(self._weights[: len(flux_cols)])
        self._rise = np.full((), DRUM_RISE)  # a 0-d array, as _zero
        self._n_bands = len(edges) - 1
        self._pitch_classes = _pitch_class_weights(freqs, *HARMONY_RANGE)
        self._profile = np.zeros(12)
        self._harmony_wait = 0
        # Flatness is taken over the in-range bins, a contiguous run.
        inside = np.flatnonzero(in_range)
        self._flat_bins = slice(int(inside[0]), int(inside[-1]) + 1) if len(inside) else slice(0)
        self._flat_count = max(len(inside), 1)
        self._tmp = np.empty(max(len(inside), 1))
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
        self._band_state = list(
            zip(self.band_names, self._band_ranges, self._band_smooth, strict=True)
        )
        on = config.onset
        self.onsets = OnsetDetector(on.threshold, on.sensitivity, on.min_gap)
        self.beats = BeatTracker(config.beat)
        self._onset_delay = (ONSET_DELAY_HOPS * hop + ONSET_DELAY_WINDOWS * n) / sr
        self._hop_dt = hop / sr
        self._floor_power = 10 ** (norm.floor_db / 10)
        self._warned_bad = False
        # Per-block results of the hops, read by process().
        self._onset_time: float | None = None
        # A beat's time and bar position are taken as it fires: a later hop of the same
        # block may place the clock anew (the first full estimate resets the tracker).
        self._beat_time: float | None = None
        self._downbeat = False
        self._strength = 0.0
        self.latest: Features = silent_features(0.0, self.band_names)

    def _alloc_stream(self, room: int, rows: int) -> None:
        """(Re)allocate the stream with ``room`` samples after the window, and ``rows`` log rows.

        The window is ``stream[start : start + n]``; the samples of an
        unfinished hop follow it. ``frames[i]`` is ``stream[i * hop : i * hop + n]``.
        The log magnitudes of the last frame analysed are ``logmag[row]``.
        """
        n, hop = self.fft_size, self.hop
        old = getattr(self, "_stream", None)
        stream = np.zeros(n + room)
        logmag = np.zeros((rows + 1, n // 2 + 1))
        if old is not None:  # a longer block than the buffers hold: keep the state
            keep = n + self._fill
            stream[:keep] = old[self._start : self._start + keep]
            logmag[0] = self._logmag[self._row]
        self._stream, self._logmag = stream, logmag
        self._start = self._row = 0
        step = stream.strides[0]
        self._frames = np.lib.stride_tricks.as_strided(
            stream, shape=(room // hop + 1, n), strides=(hop * step, step), writeable=False
        )

    def _hop_buffers(self, k: int) -> tuple[np.ndarray, ...]:
        """Windowed frames, spectra, magnitudes, flux rows for ``k`` hops, and views of them.

        Views: the flux rows, their rising bins, the last frame's magnitudes, its
        power row (and the in-range part of it), all rows transposed (each view
        costs a little, made once here rather than every block).
        """
        bufs = self._hop_cache.get(k)
        if bufs is None:
            n = self.fft_size
            m = n // 2 + 1
            # Rows: the flux of each hop, its rising bins (1.0 or 0.0), then the power of
            # the last frame.
            rows = np.empty((2 * k + 1, m))
            spec = np.empty((k, m), dtype=complex)
            mag = np.empty((k, m))
            power = rows[2 * k]
            # Without the timbre only the flux rows are summed, on the flux columns.
            rows_t = rows.T if self._with_timbre else rows[: 2 * k].T
            views = (rows[:k], rows[k : 2 * k], mag[-1], power, power[self._flat_bins], rows_t)
            bufs = (np.empty((k, n)), spec, mag, rows, *views)
            self._hop_cache[k] = bufs
        return bufs

    def _analyse_hops(self, k: int, t: float, fill: int) -> None:
        """Analyse the ``k`` hops waiting in the stream: spectra, flux, onsets, beats.

        All the hops of a block are transformed together (one ``rfft`` over a
        frames x window matrix), and one matrix product gives every sum:
        per-call overhead, not arithmetic, is what costs here. ``t`` is the
        time of the block's first sample, ``fill`` how many samples of the
        first hop came before it.
        """
        hop, sr = self.hop, self.sample_rate
        last_k, bufs = self._last_hops
        if k != last_k:
            bufs = self._hop_buffers(k)
            self._last_hops = (k, bufs)
        frames, spec, mag, _, flux, rising, last, power, self._power_flat, rows_t = bufs
        first = self._start // hop + 1  # the frame that ends with the first new hop
        np.multiply(self._frames[first : first + k], self._win, out=frames)
        # Flux on log magnitudes relative to the running level: a quiet set
        # gives the same onset shapes as a loud one. The spectrum comes out
        # scaled for that (by the transform, a pass less).
        peak_amp = 10 ** (self._energy_range.peak / 20)
        self._rfft(frames, LOG_GAIN * self._mag_scale / peak_amp, out=spec)  # fft_size is even
        np.abs(spec, out=mag)
        row = self._row
        logmag = self._logmag[row : row + k + 1]  # the previous frame's, then these
        new_logmag = logmag[1:]
        np.log1p(mag, out=new_logmag)
        self._row = row + k
        np.subtract(new_logmag, logmag[:-1], out=flux)
        np.maximum(flux, self._zero, out=flux)
        # The drums' cue: the bins whose level jumped (counted on the drums' band below).
        np.greater(flux, self._rise, out=rising)
        if self._with_timbre:
            np.multiply(last, last, out=power)
            sums = np.dot(self._weights, rows_t).T.tolist()
            # Power sums back to the unscaled spectrum, magnitude scale included (in _timbre).
            self._unscale = (peak_amp / LOG_GAIN) ** 2
            self._power_sums = sums[2 * k]
        else:
            sums = np.dot(self._flux_weights, rows_t).T.tolist()
        dt = self._hop_dt
        beats = self.beats
        onsets = self.onsets
        delay = self._onset_delay
        for j in range(k):
            total, lo, mid, hi = sums[j][:4]
            end = t + ((j + 1) * hop - fill) / sr
            frame_t = end - delay
            onset = onsets.update(total, frame_t, dt)
            if onset:
                self._onset_time = frame_t
            if onsets.strength > self._strength:
                self._strength = onsets.strength
            drums = sums[k + j][DRUMS_SUM]  # how many bins of the drums' band rose
            if beats.update_bands(lo, mid, hi, frame_t - BEAT_LAG, end, dt, onset, drums):
                self._beat_time = beats.last_beat
                self._downbeat = beats.beat_in_bar == 0

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
        x = block if block.ndim == 1 and block.dtype in _FLOATS else self._mono(block)
        k = len(x)
        if k == 0:
            return self.latest
        dt = k / self.sample_rate
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
        energy = self._energy_smooth.update(self._energy_range.update(level_db, dt), dt)

        # --- hops: spectrum, flux, onsets, beats
        self._onset_time = None
        self._beat_time = None
        self._downbeat = False
        self._strength = 0.0
        hop, n = self.hop, self.fft_size
        fill = self._fill
        total = fill + k
        hops = total // hop
        # New samples go after the window and the samples of an unfinished
        # hop; when the buffers are full, what is still needed moves to the front.
        start = self._start
        if start + n + total > len(self._stream) or self._row + hops >= len(self._logmag):
            if n + total > len(self._stream) or hops >= len(self._logmag):
                self._alloc_stream(max(2 * total, RING_HOPS * hop), max(2 * hops, RING_HOPS))
            else:
                stream = self._stream
                stream[: n + fill] = stream[start : start + n + fill]
                self._logmag[0] = self._logmag[self._row]
                self._start = self._row = start = 0
        self._stream[start + n + fill : start + n + total] = x
        last = self.latest
        if hops:
            self._analyse_hops(hops, t, fill)
            self._start = start + hops * hop
        if hops and self._with_timbre:
            bands, brightness, texture = self._timbre(mean_square, dt, last)
        else:  # no new frame, or no timbre wanted: the last levels stand
            bands, brightness, texture = last.bands, last.brightness, last.texture
        self._fill = total - hops * hop
        if hops:
            self._harmony_wait -= 1
            if self._harmony_wait <= 0:
                self._harmony_wait = HARMONY_EVERY
                np.dot(self._logmag[self._row], self._pitch_classes, out=self._profile)
                self.beats.add_harmony(self._profile)

        strength = self._strength_smooth.update(min(self._strength, 1.0), dt)
        bt = self.beats
        beat = self._beat_time is not None
        beat_phase, bar_phase = bt.phases_at(t)
        features = _FeaturesBuilder(  # positional, in field order: keywords cost a microsecond
            t,
            energy,
            bands,
            brightness,
            texture,
            self._onset_time is not None,
            strength,
            self._onset_time,
            beat,
            self._beat_time,
            bt.bpm,
            beat_phase,
            bt.next_beat,
            bt.confidence,
            level_db,
            self._downbeat,
            bar_phase,
            bt.beats_per_bar,
        )
        features.__class__ = Features  # type: ignore[assignment]  # see _FeaturesBuilder
        self.latest = features
        return features  # type: ignore[return-value]

    def _timbre(
        self, mean_square: float, dt: float, last: Features
    ) -> tuple[dict[str, float], float, float]:
        """Bands, brightness, texture of the last frame (from the sums of _analyse_hops)."""
        sums = self._power_sums  # FLUX_SUMS flux sums, then the power columns
        unscale = self._unscale
        log10 = math.log10
        bands = {}
        for (name, rng, smooth), power in zip(self._band_state, sums[FLUX_SUMS:], strict=False):
            # The band's share of the mean square, in dB.
            b_db = 10.0 * log10(power * unscale * 0.5 + 1e-20)
            bands[name] = smooth.update(rng.update(b_db, dt), dt)
        nb = self._n_bands + FLUX_SUMS
        total = sums[nb] * unscale
        if mean_square <= self._floor_power or total <= 0.0:
            # Silence: hold the last colour rather than report noise.
            return bands, last.brightness, last.texture
        centroid = sums[nb + 1] * unscale / total
        b = (math.log(centroid) - self._bright_lo) / self._bright_span
        brightness = self._bright_smooth.update(min(max(b, 0.0), 1.0), dt)
        # Flatness = geometric / arithmetic mean of the power spectrum (on
        # the scaled spectrum: the scale cancels out).
        tmp = self._tmp
        mean_power = sums[nb] / self._flat_count
        np.add(self._power_flat, mean_power * 1e-9, out=tmp)
        np.log(tmp, out=tmp)
        log_geo = float(np.add.reduce(tmp)) / self._flat_count
        flat_db = 4.342944819 * (log_geo - math.log(mean_power))
        texture = self._texture_smooth.update(min(max(1.0 + flat_db / 40.0, 0.0), 1.0), dt)
        return bands, brightness, texture


def _pitch_class_weights(freqs: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(bins x 12): how much each spectrum bin says about each pitch class.

    A bin spreads over the semitones it spans (a Gaussian around its centre, as wide as
    the bin), and says less the more semitones it spans: at 1024 points and 48 kHz a
    bin is a semitone wide only from about 800 Hz up, where the chords' harmonics are.
    """
    out = np.zeros((len(freqs), 12))
    step = float(freqs[1] - freqs[0]) if len(freqs) > 1 else 1.0
    classes = np.arange(12)
    for i, f in enumerate(freqs):
        if not lo <= f < hi:
            continue
        semitone = 12.0 * math.log2(f / 440.0)  # A = 0
        width = 12.0 * math.log2((f + step / 2) / max(f - step / 2, 1e-9))
        sigma = max(0.5, width / 2)
        d = (classes - semitone) % 12
        d = np.minimum(d, 12 - d)
        row = np.exp(-0.5 * (d / sigma) ** 2)
        out[i] = row / row.sum() / max(1.0, width)
    return out
