"""Streaming beat tracking on an onset-strength envelope (pure numpy).

Every frame the tracker stores one envelope value (the analyzer feeds it the
spectral flux below 3 kHz, weighted 1/sqrt(f): kicks and snares carry the
beat, hats subdivide it). Every ``update_interval`` seconds it re-estimates,
from the last ``window`` seconds:

1. **Tempo** — the autocorrelation of the envelope, scored on a fine BPM grid
   as a comb over the first few multiples of each candidate period
   (fractional lags, linear interpolation), so 128 BPM is told from 127.
2. **Metrical level** — a periodic signal is also periodic at twice its
   period, so the winner's octave family within ``min_bpm..max_bpm`` is
   resolved by accents: starting from the fastest member, the slower one is
   taken when the beats it would drop are clearly weaker than the ones it
   keeps (hats between kicks), and the faster one otherwise (snare between
   kicks). Strengths are measured above the envelope's median, so steady
   noise does not blur the difference; the ratio is averaged over a few
   seconds and decided with hysteresis.
3. **Phase** — the envelope is summed along a comb of that period at every
   phase; the best phase gives the last beat, from which the next beats are
   predicted.

Between estimations, beats are emitted as the stream passes each predicted
beat time, so a beat event costs no analysis delay. A different tempo is
adopted once it has persisted for TEMPO_CONFIRM seconds, a doubled or halved
one only after OCTAVE_CONFIRM (once the first window is full), and a phase
jump after two agreeing estimates, which keeps the beat steady through a fill.

Confidence = (comb score of the tempo, x2, clipped to 1) x (how much the best
phase stands out of the others); it drops to 0 when no onset came for
SILENCE_BEATS beats, and below ``min_confidence`` no beat events are emitted.
"""

from __future__ import annotations

import math

import numpy as np

from soundscape.audio.config import BeatSection

HARMONICS = 4  # comb teeth per tempo candidate
BPM_STEP = 0.1  # tempo grid resolution
ACCENT_RATIO = 0.44  # off-beats weaker than this share of on-beats -> slower level
ACCENT_HYSTERESIS = 0.04  # around ACCENT_RATIO, keep the level already chosen
ACCENT_TAU = 3.0  # s: time constant of the running accent ratio (spans a bar or two)
TEMPO_TOLERANCE = 0.04  # estimates this close (relative) are the same tempo
TEMPO_CONFIRM = 0.4  # s a different tempo must persist before it is adopted
OCTAVE_CONFIRM = 3.0  # s a doubled or halved tempo must persist (metrical level is sticky)
PHASE_DECAY = 0.8  # weight of each older beat in the phase comb
SILENCE_BEATS = 2.5  # no onset for this many beat periods -> no beats, zero confidence
SPREAD = 0.02  # seconds an onset's flux spreads over; the envelope is box-summed over it


class BeatTracker:
    """Tempo, phase and beat events from one envelope value per frame."""

    def __init__(self, config: BeatSection | None = None) -> None:
        self.config = config or BeatSection()
        self.hop = 0.0  # seconds per frame, learnt from the first update
        self.bpm = 0.0
        self.period = 0.0  # seconds
        self.confidence = 0.0
        self.last_beat: float | None = None
        self.next_beat: float | None = None
        self.last_onset = -math.inf
        self.tempo_score = 0.0
        self.phase_score = 0.0
        self._env = np.zeros(0)
        self._len = 0
        self._pos = 0
        self._count = 0
        self._t_newest = 0.0
        self._next_update = -math.inf
        self._pending_bpm = 0.0
        self._pending_since = 0.0
        self._first_estimate: float | None = None
        self._pending_beat: float | None = None
        self._family = 0.0  # fastest in-range member of the current tempo octave family
        self._ratios: dict[int, float] = {}  # running accent ratio per octave step
        self._accent_count: dict[int, int] = {}
        self._slower: dict[int, bool] = {}  # decision per octave step

    # ------------------------------------------------------------------ stream

    def _setup(self, hop: float) -> None:
        self.hop = hop
        self._len = n = max(math.ceil(self.config.window / hop), 16)
        self._env = np.zeros(2 * n)  # written twice so the last n frames are one slice
        self._pos = 0
        self._count = 0
        bpms = np.arange(self.config.min_bpm, self.config.max_bpm + BPM_STEP / 2, BPM_STEP)
        self._bpms = bpms
        self._kernel = np.ones(max(round(SPREAD / hop) + 1, 1))
        # Lags (in frames) of each comb tooth for each candidate.
        self._lags = (60.0 / bpms / hop)[:, None] * np.arange(1, HARMONICS + 1)[None, :]

    def update(self, value: float, t: float, now: float, dt: float, onset: bool = False) -> bool:
        """Add the envelope ``value`` of the frame at ``t``; True if a beat fell before ``now``.

        ``t`` is the frame's time on the audio timeline (already corrected for
        analysis delay); ``now`` is the end of the audio received so far.
        """
        if dt != self.hop:
            self._setup(dt)
            self.reset_tracking()
        n, p = self._len, self._pos
        self._env[p] = value
        self._env[p + n] = value
        self._pos = p + 1 if p + 1 < n else 0
        self._count += 1
        self._t_newest = t
        if onset:
            self.last_onset = t
        if now >= self._next_update and self._count * dt >= self._min_history():
            self._next_update = now + self.config.update_interval
            self._estimate()
        if self.period > 0 and now - self.last_onset > SILENCE_BEATS * self.period:
            self.confidence = 0.0
        nb = self.next_beat
        if nb is None or now <= nb:
            return False
        # Step the prediction past ``now``; emit the beat that fell in this block.
        while nb <= now - self.period * 0.5:  # beats long past (a stall) are dropped
            nb += self.period
        fired = False
        if nb <= now:
            self.last_beat = nb
            fired = self.confidence >= self.config.min_confidence
            nb += self.period
        self.next_beat = nb
        return fired

    def phase_at(self, t: float) -> float:
        """Position of ``t`` between the previous beat (0) and the next (1); 0 if unknown."""
        if self.next_beat is None or self.period <= 0:
            return 0.0
        x = 1.0 - (self.next_beat - t) / self.period
        return x - math.floor(x)

    def reset_tracking(self) -> None:
        self.bpm = 0.0
        self.period = 0.0
        self.confidence = 0.0
        self.last_beat = None
        self.next_beat = None
        self._pending_bpm = 0.0
        self._pending_beat = None
        self._first_estimate = None
        self._next_update = -math.inf
        self._family = 0.0
        self._ratios = {}
        self._accent_count = {}
        self._slower = {}

    def _min_history(self) -> float:
        # Two periods of the slowest tempo plus a bit, at most the window.
        return min(2.2 * 60.0 / self.config.min_bpm, self.config.window)

    # --------------------------------------------------------------- estimate

    def history(self) -> np.ndarray:
        """The stored envelope, oldest first (a view; do not modify)."""
        n, p = self._len, self._pos
        m = min(self._count, n)
        return self._env[p + n - m : p + n]

    def _estimate(self) -> None:
        env = self.history()
        # Box-sum over an onset's spread: a hit straddling two frames counts
        # as much as one falling in a single frame.
        env = np.convolve(env, self._kernel, mode="same")
        m = len(env)
        x = env - env.mean()
        nfft = 1 << math.ceil(math.log2(2 * m))
        spec = np.fft.rfft(x, nfft)
        acf = np.fft.irfft(spec.real**2 + spec.imag**2, nfft)[:m]
        if acf[0] <= 0:
            self.confidence = 0.0
            return
        acf = acf / (acf[0] * (m - np.arange(m)) / m)  # unbiased, 1 at lag 0

        # 1. tempo: comb score on the BPM grid (teeth whose lag has enough overlap)
        max_lag = m - 1.0 / self.hop  # keep at least one second of overlap
        lags = self._lags
        valid = lags < max_lag
        li = np.minimum(lags, m - 2)
        i0 = li.astype(np.intp)
        frac = li - i0
        teeth = acf[i0] * (1 - frac) + acf[i0 + 1] * frac
        counts = valid.sum(axis=1)
        scores = np.where(counts > 0, (teeth * valid).sum(axis=1) / np.maximum(counts, 1), -1.0)
        best = int(np.argmax(scores))
        bpm = float(self._bpms[best])
        if 0 < best < len(scores) - 1:  # parabolic refinement between grid points
            a, b, c = scores[best - 1], scores[best], scores[best + 1]
            den = a - 2 * b + c
            if den < 0:
                bpm += BPM_STEP * 0.5 * (a - c) / den
        self.tempo_score = float(scores[best])

        # 2. metrical level: walk down the octave family from the fastest member
        lo, hi = self.config.min_bpm, self.config.max_bpm
        fast = bpm
        while fast * 2 <= hi:
            fast *= 2
        if self._family <= 0 or abs(fast - self._family) > TEMPO_TOLERANCE * fast:
            self._family = fast
            self._ratios.clear()
            self._accent_count.clear()
            self._slower.clear()
        level = 0
        while fast / 2 >= lo:
            slow = fast / 2
            ratio = self._accent_ratio(env, 60.0 / slow / self.hop)
            avg = self._ratios.get(level)
            # A running mean at first (every early measurement counts alike),
            # then an exponential average over about ACCENT_TAU.
            n = self._accent_count.get(level, 0) + 1
            self._accent_count[level] = n
            alpha = max(1.0 / n, 1.0 - math.exp(-self.config.update_interval / ACCENT_TAU))
            avg = ratio if avg is None else avg + (ratio - avg) * alpha
            self._ratios[level] = avg
            # Hysteresis: an ambiguous accent pattern keeps the level already chosen.
            if avg < ACCENT_RATIO - ACCENT_HYSTERESIS:
                self._slower[level] = True
            elif avg > ACCENT_RATIO + ACCENT_HYSTERESIS:
                self._slower[level] = False
            if not self._slower.setdefault(level, avg < ACCENT_RATIO):
                break
            fast = slow
            level += 1
        bpm = fast

        # 3. phase along a comb of that period
        period_frames = 60.0 / bpm / self.hop
        phase_frames, phase_score = self._best_phase(env, period_frames)
        self.phase_score = phase_score
        beat = self._t_newest - phase_frames * self.hop
        self._adopt(bpm, beat, min(max(self.tempo_score * 2.0, 0.0), 1.0) * phase_score)

    def _comb(
        self, env: np.ndarray, period: float, decay: float = PHASE_DECAY
    ) -> tuple[np.ndarray, np.ndarray]:
        """Phase scores (index = frames back from the newest) along a comb of ``period``.

        Each older tooth weighs ``decay`` times the one after it.
        """
        m = len(env)
        n_beats = max(int((m - 1) / period), 1)
        phases = np.arange(math.ceil(period))
        back = phases[:, None] + period * np.arange(n_beats)[None, :]
        idx = (m - 1 - np.rint(back)).astype(np.intp)
        ok = idx >= 0
        weights = decay ** np.arange(n_beats)
        vals = np.where(ok, env[np.maximum(idx, 0)], 0.0) * weights
        return vals.sum(axis=1) / np.maximum((ok * weights).sum(axis=1), 1e-9), phases

    def _best_phase(self, env: np.ndarray, period: float) -> tuple[float, float]:
        scores, phases = self._comb(env, period)
        i = int(np.argmax(scores))
        top = float(scores[i])
        quality = (top - float(scores.mean())) / top if top > 0 else 0.0
        return float(phases[i]), quality

    def _accent_ratio(self, env: np.ndarray, slow_period: float) -> float:
        """Strength of the beats a slower level drops relative to those it keeps.

        Strengths are taken above the envelope's median (the floor between
        hits), so steady noise does not pull the ratio toward 1.
        """
        scores, _ = self._comb(env, slow_period, 1.0)  # the whole window counts alike
        floor = float(np.median(env))
        i = int(np.argmax(scores))
        on = float(scores[i]) - floor
        j = round(i + slow_period / 2) % len(scores)
        off = max(float(scores[j]) - floor, 0.0)
        return off / on if on > 0 else 1.0

    def _adopt(self, bpm: float, beat: float, confidence: float) -> None:
        """Take a new estimate, but let jumps in tempo or phase wait for confirmation."""
        self.confidence = confidence
        now = self._t_newest
        if self._first_estimate is None:
            self._first_estimate = now
        if self.bpm > 0 and abs(bpm - self.bpm) > TEMPO_TOLERANCE * self.bpm:
            ratio = bpm / self.bpm
            octave = abs(ratio - 2.0) < 2 * TEMPO_TOLERANCE or abs(ratio - 0.5) < TEMPO_TOLERANCE
            # While the first window fills, early (short-history) guesses may be
            # corrected quickly; after that the metrical level is sticky.
            settled = now - self._first_estimate >= self.config.window
            need = OCTAVE_CONFIRM if octave and settled else TEMPO_CONFIRM
            same = abs(bpm - self._pending_bpm) <= TEMPO_TOLERANCE * bpm
            if not same:
                self._pending_bpm = bpm
                self._pending_since = now
                return
            if now - self._pending_since < need:
                return
        self._pending_bpm = 0.0
        self.bpm = bpm
        self.period = period = 60.0 / bpm
        # First predicted beat after the last emitted one (never twice the same beat).
        after = self._t_newest if self.last_beat is None else self.last_beat + 0.5 * period
        k = math.ceil((after - beat) / period)
        nb = beat + k * period
        if self.next_beat is not None:
            err = (nb - self.next_beat + period / 2) % period - period / 2
            if abs(err) > 0.2 * period:  # a phase jump must be confirmed
                if (
                    self._pending_beat is not None
                    and abs(((nb - self._pending_beat + period / 2) % period) - period / 2)
                    < 0.1 * period
                ):
                    self._pending_beat = None
                else:
                    self._pending_beat = nb
                    return
        self._pending_beat = None
        self.next_beat = nb
