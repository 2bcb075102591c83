"""Onset picking on a spectral-flux stream: adaptive threshold, minimum gap (pure, scalar).

Fires on the first frame whose flux rises above both its recent average plus a
multiple of its recent mean deviation, and a share of its slowly-decaying
peak. The deviation (not a multiple of the mean) keeps hats detectable over
steady noise, whose flux is high but stable. Firing on the rising edge,
rather than waiting for the peak to be confirmed by a lower next frame, keeps
the onset-to-event latency to about one block plus the analysis window.
"""

from __future__ import annotations

import math

from soundscape.audio.smoothing import DecayingPeak


class OnsetDetector:
    """Decides per frame whether an onset happened; keeps a 0..1 onset strength."""

    MEAN_TAU = 0.12  # s: time constant of the recent average and deviation
    PEAK_TAU = 4.0  # s: how fast the reference peak forgets a loud passage

    __slots__ = (
        "_k",
        "_k_dt",
        "dev",
        "last_onset",
        "mean",
        "min_gap",
        "peak",
        "prev",
        "sensitivity",
        "strength",
        "threshold",
    )

    def __init__(self, threshold: float, sensitivity: float, min_gap: float) -> None:
        self.threshold = threshold
        self.sensitivity = sensitivity
        self.min_gap = min_gap
        self.mean = 0.0
        self.dev = 0.0
        self.prev = 0.0
        self.peak = DecayingPeak(self.PEAK_TAU)
        self.strength = 0.0
        self.last_onset = -math.inf
        self._k_dt = -1.0  # the dt _k was computed for
        self._k = 0.0

    def update(self, flux: float, t: float, dt: float) -> bool:
        """Feed one frame's flux (at time ``t``, ``dt`` after the last); True on an onset."""
        peak = self.peak.update(flux, dt)
        self.strength = flux / peak if peak > 0.0 else 0.0
        level = self.mean + self.threshold * self.dev
        onset = (
            flux > level
            and flux > self.sensitivity * peak
            and flux > self.prev
            and t - self.last_onset >= self.min_gap
        )
        if onset:
            self.last_onset = t
        # Attacks raise the bar too, for about MEAN_TAU: that is what keeps a
        # kick's own falling pitch from reading as more onsets.
        if dt != self._k_dt:
            self._k = 1.0 - math.exp(-dt / self.MEAN_TAU)
            self._k_dt = dt
        k = self._k
        mean = self.mean
        self.dev += (abs(flux - mean) - self.dev) * k
        self.mean = mean + (flux - mean) * k
        self.prev = flux
        return onset
