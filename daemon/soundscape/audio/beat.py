"""Streaming beat tracking that carries tempo and phase through time (pure numpy).

Input, every analysis frame: onset strength in three bands — low (kick,
bass), mid (snare, clap, chords) and high (hats) — and the drums' count (how
many bins of the upper mid jumped: a drum's click rises across them, a bass
note does not), each divided by its own running mean, so a soft kick counts as
much as a loud clap. Frames shorter
than ~8 ms are summed in pairs; the last ``window`` seconds are kept. Two
envelopes are derived: the *pulse* (all bands, hats at half weight) and the
*backbone* (low + mid: what carries beats and bars).

Every ``update_interval`` seconds:

1. **Tempo evidence.** The autocorrelation of the pulse envelope (recent
   seconds weighted most, so a ramp is followed), scored on a log-spaced BPM
   grid as a comb over the first four multiples of each period (fractional
   lags), damped (at most halved) where the subdivision — twice as fast —
   is weak: real beats are split in two, a 3:2 false tempo is not.
2. **Metrical level.** For the strongest peaks, the backbone is folded at
   twice the candidate period: when every other beat is much weaker (hats
   between kicks) the candidate is probably twice too fast. That ratio,
   raised to ``accent_weight``, multiplies the salience, and so does a
   log-normal tempo prior around ``prior_bpm``; with ``accent_weight``
   above 1 (the felt tempo) what a candidate loses that way goes to its
   slower octave. The hats then choose the
   octave: a beat is split by them (two 8ths, four 16ths, three in 6/8),
   so a candidate whose beats neither the high band nor the pulse splits
   is damped (hip-hop's 8th hats at 86 are not quarters at 172), and so is
   the slower of two octaves when the hats split the faster one's beats
   too (drum & bass's 8th hats at 174 are not 16ths at 87) — measured on
   the autocorrelations at half beats and thirds against whole beats. A
   peak that is a plain pulse (alternate beats alike, the pulse repeating
   strongly at one beat: a jazz waltz's quarters, the ride's skip notes
   soft; its slower octave on the grid) is damped neither for its weak
   subdivision nor for its beats left unsplit. With
   the prior this reads half-time styles (dubstep, trap, drum & bass) at
   their notated tempo. A tempo two thirds as fast as a peak wins when its
   beats gather the kicks and snares far more sharply (6/8: the dotted
   quarter, not two eighths), or more sharply with a compound beat's
   shape held for about a second (a 6/8 ballad's long-short: of the two 8ths inside
   each beat, one silent in the backbone and the other sounding; a binary
   groove's 2:3 has one of its own beats in every third). A tempo four
   thirds as fast as a peak is damped where the slower's bar (the pulse's
   autocorrelation at 3 or 4 of its beats) is clearly the stronger:
   afrobeat's dotted-8th bass and chords are no tempo, and 3 or 4 of their
   beats no bar.
3. **Tempo through time.** A forward (HMM) filter over the grid: the last
   belief, blurred by a small tempo drift and a rare jump, times the new
   evidence. A competing octave must win for a second or more to take over;
   a true tempo change does. The reported tempo is the filter's peak,
   refined between grid points, and on a steady ramp read two seconds
   ahead along a line fitted to the last four seconds (the window lags).
4. **Phase.** Each band is folded at the beat period (squared, recent beats
   weighted most) and standardised; the weighted sum scores every phase.
   The best phase near the predicted beat corrects it by half the error
   each update, at most ``PLL_MAX_STEP`` of a period (through a breakdown a
   chord stab a 16th early must not drag the clock there). A far-away best
   phase must persist ``JUMP_CONFIRM`` before the clock jumps to it (no
   flips on syncopation or a fill). Which of the two half-beat grids is the
   beat is the mid band's call (snare, clap and chords fall on beats; kick,
   bass and hats often sit off them): its fold on the clock's beats against
   half a beat off, summed over the last seconds; the clock moves half a
   beat when that sum turns clearly against it. The kick's and bass's upper
   partials leak into the mid band; where the low band marks neither grid on
   every beat (a syncopated kick: afrobeat's 1, "and" of 2, "and" of 3) that
   leak (the mid band's regression on the low band) is taken out of the vote
   (``LEAK_*``); where it marks both (a kick on the beats, a bass on the
   off-beats) the drums' count votes too (``SIDE_DRUMS``). A clock a quarter
   beat off a kick on every beat, its own beats silent in every band (a
   dembow's "a"), moves onto the kick (``QUARTER_*``), which the side's vote,
   half a beat away, cannot see. A tempo change of
   more than a few percent re-seeds the phase (from the full scores; the
   side's evidence starts afresh). A sudden tempo
   change (the next track cut in on a bar line) takes the autocorrelation
   seconds to show, and the loop, folding many beats at the old period, does
   not see it either; but each
   onset lands further from the clock's beat than the last. When the onsets
   of the last ``CHANGE_BEATS`` beats fall on one line of another period
   (each sought within ``CHANGE_WINDOW`` of a period of its clock beat, the
   newest on the line), the clock moves onto that line, the filter's belief
   to its tempo, and the tempo evidence's memory reaches back no further
   than the change (growing back to ``RECENCY``): about 1.7 s after a
   110 -> 124 step, where the evidence alone took 3.5 s. A fill or a
   syncopation moves one onset off the line, not each further. A change is
   from a tempo the clock has held for ``CHANGE_BEATS`` beats, and it empties
   the clock's beats: when more than one of them still sounds, the line is a
   walk along a syncopated groove's 16ths or a pad's sweep, not a new tempo.
5. **Bars.** Low and mid strength around each beat is accumulated per beat
   of the bar (kick on beat 1, snare or clap on the backbeats), and so is the
   harmonic change at each beat (the analyzer's pitch-class profile averaged
   per beat, compared across the boundary one and two beats a side: chords
   change on the one, which is what tells beat 1 from beat 3 when the kick
   is on every beat); the rotation that fits the templates best names the
   downbeat, and holds until another fits clearly better. A band votes in
   proportion to how much its beats differ, up to ``BAR_FULL`` (four on the
   floor's kick, alike on every beat but for fills and noise, has little
   say). The bar length is ``beats_per_bar``, or 2 when the beats divide in
   three (6/8 read in dotted quarters), else 3 vs 4 from how much the kick,
   the snare and the chord changes differ between beats (a bar of three once
   chosen is kept while it fits better at all).

The first estimate waits for ``FIRST_GUESS`` periods of the slowest tempo
(2.2 s); while the envelope is short the combs keep less than a second of
overlap, so a 90 BPM beat has two teeth from the start. Before it, from
``EARLY_GUESS`` (1.2 s), early guesses run the same steps on the short
envelope, ``EARLY_RATE`` times per update interval (each counting as an
update); their beats are emitted once a second guess
finds them where the clock has them, and go on until the clock is placed anew
(a re-seed, a jump, a side flip): on the short envelope the best phase strays
for an update now and then while the clock's beats are right. The first full
estimate starts afresh (no state of the early guesses carries over), so from
there on the clock is what it would be without them, with one exception: where
it finds the tempo of an early clock that a later guess confirmed and whose
side evidence does not lean to the other grid, but seeds another grid (more than
``EARLY_SAME_GRID`` of a period off: the full phase scores' best, which off-beat
hats win for seconds), the clock keeps the early clock's grid at the fresh tempo
(``_keep_early``). No beat is reported twice across that restart.

Beats are emitted as the stream passes each predicted beat, so a beat event
costs no analysis delay. Through a breakdown the clock flies on at the last
tempo: when the low band's raw strength over the last second falls below
``FLY_LEVEL`` of its usual strength (over the last ``FLY_SPAN``; the kick and
bass are gone) and the high band's below ``FLY_HATS`` of its usual (the hats
too: a kick-less section with hats and snare is still tracked, see below), the harmony's
onsets — chord stabs often a 16th off the beat — neither move the phase nor
vote on the side nor start a jump, and the tempo filter takes no evidence
(the pads' periodicity, and at the drop an autocorrelation holding both,
read 4:3). The flight lasts until the level is
back to ``FLY_BACK`` of the usual (the breakdown's stabs lift it over
``FLY_LEVEL`` now and then), and ``FLY_MAX_BEATS`` at most: then the quieter
level is the usual one (drums, or a next track, that came back much softer).
Meanwhile the usual level, the bands' running means and the confidence are
held at the drums' (sunk to the pads', the drop's first hits would be huge,
and its first beats withheld), and the first hits of the drop pull the phase
back within a beat or two. The
tempo's share of the confidence falls at most with ``SURE_TAU``: the drop's
first loud hits swamp the autocorrelation for a beat or two, and the beats
the clock has right there are not withheld.

While the kick and bass alone are gone — their level under ``KICKLESS_LEVEL`` of
the usual for ``KICKLESS_BARS`` (a missed kick, or the gap after a sparse one, is
not), until it is back to ``KICKLESS_BACK`` of it — and the high band is still up
(a lead or pads through a breakdown, a low cut with hats and snare), the clock
does not fly, but what plays says little of which grid is the beat: a saw lead's
3-3-2 dragged the clock a 16th early and flipped its side. The side's evidence is
held (not faded: what was left of the drums' call was outvoted at the drop), the
clock makes no far jumps (a re-seed on a tempo change still places it), and the
loop follows only a peak within ``KICKLESS_WINDOW`` of the beat (a drift, a DJ's
nudge); the tempo is followed as ever. A next track half a beat off under a low
cut is therefore taken when its kick comes in, not before.

Where the call is wrong anyway (a loud bass on every off-beat over a soft clap), a
performer marks the one (:meth:`BeatTracker.mark_downbeat`): the clock keeps its tempo,
puts a downbeat at the press, and holds that grid and bar line (no side flips, no far
jumps, no new bar line) until the tempo changes.
"""

from __future__ import annotations

import collections
import itertools
import math
import operator
import statistics

import numpy as np

from soundscape.audio.config import BeatSection
from soundscape.audio.fft import irfft_into, rfft_into

HARMONICS = 4  # comb teeth per tempo candidate
GRID_STEP = 0.003  # relative spacing of the tempo grid (0.3 %)
PEAK_WIDTH = max(int(0.03 / GRID_STEP), 1)  # grid steps a peak's evidence spans each side (3 %)
DRIFT = 0.004  # relative tempo drift per update allowed by the filter
JUMP = 1e-4  # share of belief that may jump anywhere per update (tempo changes)
PEAKS = 4  # salience peaks whose metrical accent is measured
SUB_DAMP = 0.5  # share of a tempo's salience that hangs on a strong subdivision
# A plain pulse escapes SUB_DAMP and TATUM_SPLIT (see _metrical): its alternate beats this
# alike in the backbone (the weaker over the stronger), the pulse's autocorrelation at one beat
# this high.
PLAIN_ALTERNATION = 0.8
PLAIN_PULSE = 0.7
TATUM_SPLIT = 0.5  # damping of a tempo whose beats nothing splits
TATUM_FAST = 0.4  # damping of the slower octave when the hats split the faster one's beats
SPLIT_FULL = 0.5  # half beats this strong (over whole beats) split them fully
# A split must sound on most beats (see _steady_splits): the median over the beats before the
# newest (OFFBEAT_BEATS - 1 at most, OFFBEAT_MIN - 1 at least) of an envelope's peak within
# OFFBEAT_WINDOW of a period of each half beat (or third), over the median on the beats; this
# share of it splits in full. A faster octave's split is read above the envelope's floor: the
# same median a quarter and three quarters of its beat on (the weaker), taken from both.
OFFBEAT_FULL = 0.15
OFFBEAT_BEATS = 16
OFFBEAT_MIN = 4
OFFBEAT_WINDOW = 0.12
# The points _offbeat_shares reads in each beat of a row, in periods after its strongest
# phase: on it, half a beat on, then the half again (a plain row), a third and two thirds
# (a row in thirds), or a quarter and three quarters (a floored row). A row's kind indexes it.
_PLAIN, _THIRDS, _FLOORED = 0, 1, 2
_OFFBEAT_POINTS = np.array([[0.0, 0.5, 0.5, 0.5], [0.0, 0.5, 1 / 3, 2 / 3], [0.0, 0.5, 0.25, 0.75]])
_OFFBEAT_POINTS.flags.writeable = False
TATUM_SURE = 0.3  # hat periodicity (autocorrelation at whole beats) for a full opinion
# Lags of the split test, in beats: whole beats, half beats, thirds (6/8).
SPLIT_TEETH = np.array([1.0, 2.0, 3.0, 4.0, 0.5, 1.5, 2.5, 3.5, 1 / 3, 2 / 3, 4 / 3, 5 / 3])
SPLIT_MIN_LAG = 0.08  # s: the hats' own period is sought above this (the onset's own lobe)...
SPLIT_MAX_LAG = 0.6  # s: ... and below this
CONC_32 = 1.7  # a 2:3 tempo whose fold is this much sharper takes over (6/8)
# A 2:3 tempo whose fold is sharper than the faster's and has the shape of a compound beat
# (6/8's long-short: of the two 8ths inside its beat one silent, the other sounding) is raised
# too, once that shape held at SIX_HELD of the last SIX_READINGS updates (see _three_two).
SIX_SILENT = 0.1  # the silent 8th: under this share of the fold's peak ...
SIX_SOUNDING = 0.4  # ... the sounding one: over this share
SIX_WINDOW = 0.1  # share of the slower's period around each 8th its peak is sought in
SIX_HELD, SIX_READINGS = 3, 4
SIX_GAIN = 2.0  # raised to this times the faster's evidence
BAR_BEATS = (3, 4)  # beats a bar may hold: the lags the bar test of a 4:3 pair reads
BAR_43_MARGIN = 0.1  # the slower's autocorrelation at a bar this much higher ...
BAR_43_DAMP = 0.5  # ... damps the faster's evidence by this (before it is squared)
BAR_43_SLACK = 3  # grid steps two peaks may be off an exact 4:3
PHASE_DECAY = 0.7  # weight of each older beat in the phase fold
PHASE_WINDOW = 0.22  # share of a period searched around the predicted beat
KICKLESS_WINDOW = 0.1  # ... while the kick is gone (see _track_phase)
KICKLESS_LEVEL = 0.6  # the low band's recent level this far below its usual ...
KICKLESS_BARS = 1.0  # ... for this many bars: the kick is gone (a missed or sparse kick is not) ...
KICKLESS_BACK = 0.8  # ... until the level is back to this share of the usual
PLL_PHASE_GAIN = 0.5  # share of the phase error corrected per update
PLL_MAX_STEP = 0.05  # share of a period the loop may move the clock per update
JUMP_CONFIRM = 1.0  # s a far-away phase must persist before the clock jumps to it
SIDE_DECAY = 0.9  # weight of each older beat in the mid band's fold that picks the side
SIDE_TAU = 4.5  # s, memory of the side evidence (the mid band on the beat over half a beat off)
SIDE_FLIP = 1.5  # accumulated evidence (z units x updates) for which the clock moves half a beat
SIDE_WINDOW = 0.1  # share of a period around each side's beat its mid band peak is sought in
# Weight of the drums' fold (the upper mid's broad rises, see update_bands) in the side's
# evidence, where the low band marks every beat of both grids at most of the last
# LEAK_READINGS updates (a kick on the beats, a bass on the off-beats: see _drums_vote).
SIDE_DRUMS = 2.0
SIDE_BACKBEAT = 2.0  # weight of the high band's two-beat alternation in the side's evidence
SIDE_BACKBEAT_SPANS = 2  # two-beat spans heard in each half of the bar before it counts
SIDE_ALT_FLOOR = 0.2  # a two-beat difference under this share of the strongest point is none
SIDE_BACKBEAT_LEVEL = 0.25  # a span with less of the band than this share of the loudest is silent
SIDE_KICK = 6.0  # weight of the kick's steady grid in the side's evidence (see _kick_grid) ...
KICK_MISSES = 1  # ... the last LEAK_BEATS beats of one grid sounding in the low band but this many
KICK_STEADY = 0.25  # (at this share of the loudest beat's power at least) ...
KICK_EMPTY = 0.03  # ... and more than KICK_MISSES of the other's under this share (-15 dB;
# shares of power: the comb rows are squared, PHASE_POWER 2)
LEAK_BEATS = 8  # the low band's last beats read for how steadily it marks a grid (see _leak_share)
LEAK_MISSES = 2  # ... of which a grid may miss this many and still be marked (one a bar)
LEAK_SOUNDING = 0.25  # a beat with less low band (squared) than this share of the loudest is silent
LEAK_READINGS = 9  # the steadiness is the median of this many updates' (about 2 s)
LEAK_STEADY = (0.1, 0.25)  # steadiness under the first: leak out in full; over the second: kept
LEAK_SCALE = 1.3  # the leak taken out: this times the mid band's regression on the low band ...
LEAK_RATIO_MAX = 2.0  # ... that regression held to 0..this (a window of noise can give anything)
RAMP_SPAN = 4.0  # s of tempo readings a ramp is fitted on
RAMP_LEAD = 2.0  # s ahead on a steady ramp the tempo is read (about the window's lag)
RESEED = 0.04  # filter tempo this far from the loop's: re-seed the loop
CHANGE_BEATS = 4  # beats whose onsets must fall on one line to show a new tempo (3 at least)
CHANGE_WINDOW = 0.4  # share of a period around each clock beat its onset is sought in
CHANGE_FIT = 0.1  # share of a period around the line's prediction the newest onset is sought in
CHANGE_RESID = 0.03  # share of a period: the largest miss of the line by any onset
CHANGE_Z = 3.0  # each of those onsets stands this far out of the recent envelope (z units)
CHANGE_EMPTY = 0.5  # z units: a clock beat with less onset strength near it is empty
CHANGE_TAU = 1.0  # s, the shortest memory of the tempo evidence after a change
FLY_FAST = 1.0  # s, time constant of the low band's recent level ...
FLY_SPAN = 16.0  # s, ... and of its usual level
FLY_LEVEL = 0.35  # the recent level this far below the usual: the drums are gone ...
FLY_HATS = 0.7  # ... with the hats this far below their usual too (a flight starts) ...
FLY_BACK = 0.6  # ... and back once it is up to this share of it again (see _track_phase)
FLY_MAX_BEATS = 128  # the longest flight (32 bars of 4): after it the quieter level is the usual
SILENCE_BEATS = 4.0  # no onset for this many beats: confidence starts to fall
FLY_BEATS = 64.0  # ... and reaches zero after this many (the clock flies on meanwhile)
SURE_TAU = 1.0  # s, time constant of the fall of the tempo's share of the confidence
PHASE_POWER = 2.0  # accents (kick, snare) over steady hats and bass
PHASE_W = (0.3, 1.0, 0.6)  # low, mid, high weights of the envelope the phase is read from
RECENCY = 4.0  # s, time constant of the weighting of the tempo evidence
FIRST_GUESS = 2.2  # periods of the slowest tempo heard before the first estimate
EARLY_GUESS = 1.2  # s heard before the first early (provisional) guesses
EARLY_RATE = 2.0  # early guesses per update interval (the first beats wait for the second)
EARLY_OVERLAP = 0.35  # share of the envelope the autocorrelation keeps while it is short
EARLY_SAME_GRID = 0.15  # share of a period: an early clock's beat this near the first full
# estimate's is on its grid (see _keep_early)
QUARTER_STEADY = 0.08  # a grid whose every beat (but KICK_MISSES) has this share of the low
# band's loudest beat's power (-11 dB), a quarter beat from a grid silent in every band, is a
# kick's (see _kick_beside; on the clock's grid, the kick vote's mark of its beats there) ...
QUARTER_HITS = 4  # ... and found at this many of the last QUARTER_READINGS updates (about
QUARTER_READINGS = 5  # 1.2 s), the clock moves onto it
QUARTER_GRIDS = ((1, 0.25), (2, -0.25))  # the grids beside the clock's (grid 0) in the quarter
# rule's peaks (BeatTracker._quarter_peaks): index, and periods before the clock's beat
SAME_BEAT = 0.15  # share of a period: a beat this near the last one reported is that beat
FRAME_TARGET = 0.0105  # s: input frames are summed to about this length
SPREAD = 0.02  # s an onset's flux spreads over; envelopes are box-summed over it
BAR_MARGIN = 0.3  # a new bar line must fit this much better (dot products of unit vectors,
# each band's scaled by its vote: see BAR_FULL)
BAR_TAU = 8.0  # s, memory of the chord changes per beat of the bar; the low and mid bands'
# decay by it only on the frames near a beat (about 60 s of memory at 126 BPM)
BAR_FULL = 0.1  # a band whose beats differ this much (std / mean) has a full vote on the one
METER_FOUR = 1.5  # bars of three must differ between beats this much more than of four ...
METER_HOLD = 1.0  # ... and, once chosen, are kept while they differ this much more
HARMONY_WEIGHT = 1.0  # weight of the chord changes in the bar line's choice
HARMONY_SPANS = (1, 2)  # beats each side of a boundary whose pitch classes are compared
BAND_TAU = 4.0  # s, running mean of each band's flux
DOWNBEAT_SNAP = 0.15  # share of a period: a performer's "the one is now" this near a beat of
# the clock's grid, or of the grid half a beat off, takes that beat (see mark_downbeat)
MARK_JUMP_CONFIRM = 2.0  # s a far-away phase must persist to end a performer's hold
LEAN_KEEP = 0.08  # a new tempo this near a performer's octave (or an octave of it) keeps it


class BeatTracker:
    """Tempo, phase, beats and bars from per-band onset strength, frame by frame."""

    def __init__(self, config: BeatSection | None = None) -> None:
        self.config = config or BeatSection()
        self.hop = 0.0  # seconds per (decimated) frame, learnt from the first update
        self._in_dt = 0.0
        self.bpm = 0.0
        self.period = 0.0  # seconds
        self.confidence = 0.0
        self.last_beat: float | None = None
        self.next_beat: float | None = None
        self.last_onset = -math.inf
        self.tempo_score = 0.0
        self.beats_per_bar = self.config.beats_per_bar or 4
        self.beat_in_bar = 0  # index in the bar of the last emitted beat (0 = downbeat)
        self.last_downbeat: float | None = None
        # The last beat reported, kept through every reset: a clock placed anew on the grid
        # of a beat just reported (the first full estimate's, which starts without the early
        # clock's last beat) must not report it twice. Only that beat (``SAME_BEAT``): a
        # fresh clock on another grid may beat sooner than half a period after it.
        self._last_fired = -math.inf
        self._next_update = -math.inf
        self._settled = False  # (set again by reset_tracking, at the first frame)
        self._pinned = False
        self._mark_count = 0
        self.lean_bpm: float | None = None

    # ------------------------------------------------------------------ stream

    def _setup(self, hop: float) -> None:
        cfg = self.config
        self.hop = hop
        self._len = n = max(math.ceil(cfg.window / hop), 16)
        # Low, mid, high and the drums (see update_bands); written twice so the last n
        # frames are one slice.
        self._bands = np.zeros((4, 2 * n))
        # Frames are written one float at a time: through a flat memoryview
        # that costs a third of a numpy item assignment.
        self._bands_flat = memoryview(self._bands).cast("B").cast("d")
        self._pos = 0
        self._count = 0
        self._band_mean = [0.0, 0.0, 0.0, 0.0]
        self._band_k = 1.0 - math.exp(-hop / BAND_TAU)
        # The low and high bands' raw levels over the last second and the last FLY_SPAN
        # (see _frame).
        self._low_level = [0.0, 0.0]
        self._high_level = [0.0, 0.0]
        self._low_k = (1.0 - math.exp(-hop / FLY_FAST), 1.0 - math.exp(-hop / FLY_SPAN))
        steps = int(math.log(cfg.max_bpm / cfg.min_bpm) / GRID_STEP) + 1
        self._bpms = cfg.min_bpm * np.exp(GRID_STEP * np.arange(steps))
        self._bpm_list = self._bpms.tolist()
        # The weighted salience between two -1 ends, for the peak picking (see _metrical).
        self._peak_buf = np.full(steps + 2, -1.0)
        self._metre = np.empty(steps)  # see _metrical
        # The salience grid reaches twice as fast, for the subdivision of each tempo.
        self._octave = round(math.log(2.0) / GRID_STEP)
        self._shift_43 = round(math.log(4.0 / 3.0) / GRID_STEP)  # grid steps of a 4:3
        self._shift_32 = round(math.log(1.5) / GRID_STEP)  # ... and of a 3:2
        ext = cfg.min_bpm * np.exp(GRID_STEP * np.arange(steps + self._octave))
        self._lags = (60.0 / ext / hop)[:, None] * np.arange(1, HARMONICS + 1)[None, :]
        self._recency = np.exp((np.arange(n) - n + 1) * hop / RECENCY)
        self._recency_tau = RECENCY  # its time constant (shorter just after a tempo change)
        self._taps = max(round(SPREAD / hop) + 1, 1)  # frames an onset spreads over
        self._comb: tuple | None = None  # see _make_comb
        self._max_lag = 0.0  # frames: the longest lag the combs read (see _make_comb)
        self._split_lags: np.ndarray | None = None  # see _tatum
        self._split_table: tuple | None = None  # see _tatum
        self._comb_parts: tuple | None = None  # see _make_comb
        # The high band's and the pulse's autocorrelation at the last estimate (see _tatum).
        self._acfs: np.ndarray | None = None
        # The pulse's alone: a view of the comb's buffer, valid until the next _salience.
        self._pulse_acf: np.ndarray | None = None  # (see _four_three)
        self._tatum_fresh = False  # the hat cue was measured at this update
        # The envelopes the hat cue was measured on (hats, pulse), for its per-beat test.
        self._split_envs: tuple[np.ndarray, np.ndarray] | None = None
        # Its factors (the beats' own split, the faster octave's), around the last peaks.
        self._tatum_last: list[tuple[float, float]] = [(1.0, 1.0)] * steps
        self._split_last: tuple = (None, (), ())  # the table, the last tempi, their parts
        self._grid_combs: dict[tuple[float, float], tuple] = {}  # see _grid_folds
        self._phase_w = np.array(PHASE_W)[:, None]
        # Reversed envelopes for the folds: one buffer per shape, each with a
        # strided view whose row o starts o frames back (see _reversed).
        width = math.ceil(2.0 * 60.0 / cfg.min_bpm / hop) + 1  # the longest comb period
        self._rev = {}
        for ndim, shape in ((1, (n + width,)), (2, (3, n + width))):
            buf = np.zeros(shape)
            step = buf.strides[-1]
            view = np.lib.stride_tricks.as_strided(
                buf, shape=(*shape[:-1], n + 1, width), strides=(*buf.strides[:-1], step, step)
            )
            self._rev[ndim] = (buf, view)
        # How far each buffer may hold non-zero frames (its tail is zeroed only up to there).
        self._rev_used = {1: 0, 2: 0}
        self._phase_rows: tuple | None = None  # see _comb_rows_of
        self._spread_buf = np.zeros((3, 0))  # see _spread
        self._phases = np.arange(width)  # phase indices, for the folds' valid masks
        self.lean_bpm = None  # a performer's octave (set_octave); None: the show's prior
        self._set_prior(cfg.prior_bpm)
        sigma = DRIFT / GRID_STEP
        half = max(int(3 * sigma), 1)
        drift = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
        self._drift = drift / drift.sum()
        self._drift_mass = np.convolve(np.ones(steps), self._drift, mode="same")
        self._belief = np.full(steps, 1.0 / steps)
        self._tempo_hist: collections.deque[tuple[float, float]] = collections.deque()
        # By beat count mod b; plain lists (a few floats, updated every frame near a beat).
        # The bar lengths told apart (2: 6/8 in dotted quarters), and one the show sets.
        lengths = sorted({2, 3, 4, max(self.config.beats_per_bar, 2)})
        self._meter_low = {b: [0.0] * b for b in lengths}
        self._meter_mid = {b: [0.0] * b for b in lengths}
        # Harmonic change at each beat (how unlike the last beat's pitch classes this
        # beat's are), by beat count mod b: chords change on the bar line.
        self._meter_harm = {b: [0.0] * b for b in lengths}
        # The (decayed) counts behind each sum: the statistics are read as means.
        self._meter_frames = {b: [0.0] * b for b in lengths}
        self._meter_bounds = {b: [0.0] * b for b in lengths}
        self._bars_forgotten = False  # at a tempo change (see _forget_old_bars)
        self._harm_acc = np.zeros(12)
        self._harm_n = 0
        self._harm_beats: collections.deque[np.ndarray] = collections.deque(
            maxlen=2 * max(HARMONY_SPANS)
        )
        self._beat_count = 0
        self._bar_k = 1.0 - math.exp(-hop / BAR_TAU)

    def update(
        self, value: float | np.ndarray, t: float, now: float, dt: float, onset: bool = False
    ) -> bool:
        """Add the frame at ``t``; True if a beat fell before ``now``.

        ``value`` is the onset strength of the frame in the low, mid and high
        bands (a scalar counts as all three). ``t`` is the frame's time on the
        audio timeline (already corrected for analysis delay); ``now`` is the
        end of the audio received so far.
        """
        if isinstance(value, float | int):
            return self.update_bands(value, value, value, t, now, dt, onset)
        return self.update_bands(value[0], value[1], value[2], t, now, dt, onset)

    def update_bands(
        self,
        lo: float,
        mid: float,
        hi: float,
        t: float,
        now: float,
        dt: float,
        onset: bool,
        drums: float = 0.0,
    ) -> bool:
        """:meth:`update` with the three bands as floats (the analyzer's path, per hop).

        ``drums``: how broadly the upper mid (1-3 kHz) rose (the analyzer's count of its
        bins rising by more than a step, ``features.DRUM_RISE``): a snare's, a clap's or
        a kick's click rises across it, a round bass note (its upper harmonics weak)
        does not. Left at 0 (a flat row) it never votes.
        """
        if dt != self._in_dt:
            self._in_dt = dt
            # Frames are summed to about FRAME_TARGET (pairs at 48 kHz): the
            # tempo and phase need no finer grid, and it halves the work.
            self._decimate = max(1, round(FRAME_TARGET / dt))
            self._acc = [0.0, 0.0, 0.0, 0.0]
            self._acc_n = 0
            self._acc_t = 0.0
            self._setup(dt * self._decimate)
            self.reset_tracking()
        if onset:
            self.last_onset = t
        acc = self._acc
        count = self._acc_n + 1
        if count < self._decimate:
            acc[0] += lo
            acc[1] += mid
            acc[2] += hi
            acc[3] += drums
            self._acc_t += t
            self._acc_n = count
        else:  # the last of the frames summed: straight to _frame, the sums reset
            self._frame(
                acc[0] + lo,
                acc[1] + mid,
                acc[2] + hi,
                acc[3] + drums,
                (self._acc_t + t) / count,
                now,
            )
            acc[0] = acc[1] = acc[2] = acc[3] = 0.0
            self._acc_t = 0.0
            self._acc_n = 0
        nb = self.next_beat
        if nb is None or now <= nb:  # the common case, without a call
            return False
        return self._emit(now)

    def _frame(self, lo: float, mid: float, hi: float, drums: float, t: float, now: float) -> None:
        """One (decimated) frame of band strengths (each the sum of its input frames)."""
        # Each band relative to its running mean (a plain mean while it fills).
        count = self._count + 1
        self._count = count
        inv = 1.0 / count
        # The kick and bass's raw level, fast and slow (plain means while they fill):
        # far below its usual, the drums are gone (a breakdown; see _track_phase).
        level, (k_fast, k_slow) = self._low_level, self._low_k
        hats = self._high_level
        k_fast = inv if inv > k_fast else k_fast
        level[0] += (lo - level[0]) * k_fast
        hats[0] += (hi - hats[0]) * k_fast
        m = self._band_mean
        if not self._flying:
            # Through a breakdown the usual levels are the drums', held: sunk to the
            # pads', they would make the drop's first hits huge (a false tempo).
            k_slow = inv if inv > k_slow else k_slow
            level[1] += (lo - level[1]) * k_slow
            hats[1] += (hi - hats[1]) * k_slow
            k = inv if inv > self._band_k else self._band_k
            m[0] += (lo - m[0]) * k
            m[1] += (mid - m[1]) * k
            m[2] += (hi - m[2]) * k
            m[3] += (drums - m[3]) * k
        lo, mid, hi = lo / (m[0] + 1e-9), mid / (m[1] + 1e-9), hi / (m[2] + 1e-9)
        drums /= m[3] + 1e-9
        n, p = self._len, self._pos
        flat = self._bands_flat  # rows of 2n: band b's frame p at b * 2n + p and + n
        flat[p] = flat[p + n] = lo
        flat[p + 2 * n] = flat[p + 3 * n] = mid
        flat[p + 4 * n] = flat[p + 5 * n] = hi
        flat[p + 6 * n] = flat[p + 7 * n] = drums
        self._pos = p + 1 if p + 1 < n else 0
        self._t_newest = t
        if self.last_beat is not None and abs(t - self.last_beat) < 0.12 * self.period:
            self._bar_frame(lo, mid)
        if now >= self._next_update or not self._settled:
            heard = self._count * self.hop
            if heard >= self._min_history():
                early = None
                if not self._settled:
                    # The first full estimate starts afresh: what the early
                    # guesses concluded (right or wrong) does not carry over,
                    # but for the grid of a clock they agreed on (see _keep_early).
                    early = self._early_clock()
                    self._restart()
                    self._settled = True
                self._next_update = now + self.config.update_interval
                self._estimate()
                if early is not None:
                    self._keep_early(*early)
            elif heard >= EARLY_GUESS and now >= self._next_update:
                # More often than updates: a guess's beats start once the next one agrees.
                # Each guess's evidence (the side, the tempo's sureness) counts as an
                # update's, so it builds twice as fast: early on a quick call is worth
                # more (about 0.5 s of lock on a few pieces), and the first full estimate
                # drops it all but the clock's grid (see _keep_early).
                self._next_update = now + self.config.update_interval / EARLY_RATE
                self._estimate()

    def _early_clock(self) -> tuple[float, float] | None:
        """The early guesses' clock (period, next beat) where a later guess confirmed it
        and the side's evidence does not lean to the other grid, else None."""
        if not self._confirmed or self.next_beat is None or self.period <= 0 or self._side < 0:
            return None
        return self.period, self.next_beat

    def _keep_early(self, period: float, next_beat: float) -> None:
        """After the first full estimate: where it found the early clock's tempo (within
        ``RESEED``) but another grid, the clock keeps the early clock's beats.

        The restart drops the side's evidence, and the fresh seed's grid is the full
        phase scores' best, which off-beat hats or bass win for seconds at a time (the
        side's evidence exists for that): three techno renders were put half a beat off
        there and flipped back 1-1.5 s later. Measured on the nine sets: 6 pieces lock
        earlier (by 0.9-3.3 s), one later (0.55 s), no beat F moved.
        """
        nb = self.next_beat
        if nb is None or self.period <= 0 or abs(math.log(self.period / period)) > RESEED:
            return
        if _grid_offset(next_beat, nb, self.period) < EARLY_SAME_GRID:
            return  # the same grid: the fresh clock stands
        self._place(self.period, next_beat)

    def _emit(self, now: float) -> bool:
        nb = self.next_beat
        if nb is None or now <= nb:
            return False
        while nb <= now - self.period * 0.5:  # beats long past (a stall) are dropped
            nb += self.period
            self._beat_count += 1  # counted still: the bars' statistics keep step
            self.beat_in_bar = (self.beat_in_bar + 1) % self.beats_per_bar
        fired = False
        if nb <= now:
            self.last_beat = nb
            self._close_harmony()
            self._beat_count += 1
            self.beat_in_bar = (self.beat_in_bar + 1) % self.beats_per_bar
            if self.beat_in_bar == 0:
                self._decide_bar()
            if self.beat_in_bar == 0:
                self.last_downbeat = nb
            # An early guess beats only once a second one agrees with it; a beat this near
            # the last one reported is that beat again (see _last_fired).
            fired = (
                self.confidence >= self.config.min_confidence
                and (self._settled or self._confirmed)
                and abs(nb - self._last_fired) >= SAME_BEAT * self.period
            )
            if fired:
                self._last_fired = nb
            nb += self.period
        self.next_beat = nb
        return fired

    def add_harmony(self, profile: np.ndarray) -> None:
        """The pitch-class profile (12 log magnitudes) of the latest audio, a few times
        per beat; averaged per beat, it tells where the chords change."""
        if self.hop <= 0:
            return
        np.add(self._harm_acc, profile, out=self._harm_acc)
        self._harm_n += 1

    def _close_harmony(self) -> None:
        """At a beat: how much the beats before each recent boundary differ from those
        after it, one beat a side and two (a chord stab in one beat and not the next
        weighs less against a new chord when two beats are compared)."""
        if not self._harm_n:
            return
        beats = self._harm_beats
        beats.append(self._harm_acc / self._harm_n)
        self._harm_acc = np.zeros(12)
        self._harm_n = 0
        if self.period <= 0:
            return
        keep = math.exp(-self.period / BAR_TAU)
        for acc in (*self._meter_harm.values(), *self._meter_bounds.values()):
            for i in range(len(acc)):
                acc[i] *= keep
        spans = [span for span in HARMONY_SPANS if len(beats) >= 2 * span]
        if not spans:
            return
        last = list(beats)
        # Before and after each boundary: each side's beats summed from its first
        # (the same as from zero: the profiles are never negative).
        sides = []
        for span in spans:
            before, after = last[-2 * span : -span], last[-span:]
            sides += [sum(before[1:], before[0]), sum(after[1:], after[0])]
        units = _units(np.array(sides))
        # Every before . after at once (a batch of dot products; see _units).
        dots = np.matmul(units[0::2, None, :], units[1::2, :, None])[:, 0, 0].tolist()
        for span, dot in zip(spans, dots, strict=True):
            change = 1.0 - dot  # 0 (the same chord) .. 2
            boundary = self._beat_count - span + 1  # the count of the first beat after it
            for b, acc in self._meter_harm.items():
                acc[boundary % b] += change
                self._meter_bounds[b][boundary % b] += 1.0

    def phase_at(self, t: float) -> float:
        """Position of ``t`` between the previous beat (0) and the next (1); 0 if unknown."""
        return self.phases_at(t)[0]

    def bar_phase_at(self, t: float) -> float:
        """Position of ``t`` in the bar (0 on the downbeat, rising to 1); 0 if unknown."""
        return self.phases_at(t)[1]

    def phases_at(self, t: float) -> tuple[float, float]:
        """Where ``t`` is between the previous beat (0) and the next (1), and in the bar
        (0 on the downbeat, rising to 1); both 0 while the beat is unknown."""
        nb, period = self.next_beat, self.period
        if nb is None or period <= 0:
            return 0.0, 0.0
        beats_to_next = (nb - t) / period
        x = 1.0 - beats_to_next
        bpb = self.beats_per_bar
        y = ((self.beat_in_bar + 1) % bpb - beats_to_next) / bpb
        return x - math.floor(x), y - math.floor(y)

    def mark_downbeat(self, t: float) -> bool:
        """A performer's "the one is now" (a press at ``t``, on the audio timeline).

        The clock keeps its tempo and puts a downbeat at the press, then holds that grid
        and bar line: the side is not put to the vote, the bar line is not re-chosen
        (the bar length still is: a waltz marked before it was heard in three) and a
        far-away phase must persist ``MARK_JUMP_CONFIRM`` before the clock jumps to it
        (a hard cut to the next track; the loop still follows the onsets near each
        beat). The hold ends there, at a tempo change of more than ``RESEED`` (a
        re-seed or a relock: a next track at another tempo, an octave put right), at
        :meth:`release_downbeat`, or at a new press. Where the tracker's own call is
        wrong (a loud bass on every off-beat outvoting a soft clap) this is the fix a
        performer reaches for, as on a DJ deck's beat grid. A press within
        ``DOWNBEAT_SNAP`` of a period of a beat of the clock's grid, or of the grid half
        a beat off, takes that beat (the tracker times a beat more finely than a hand);
        elsewhere the beat goes where the press is, and the loop pulls it onto the
        nearest onsets. False (nothing changes) until the first full estimate.
        """
        nb, period = self.next_beat, self.period
        if nb is None or period <= 0 or not self._settled or not math.isfinite(t):
            return False
        halves = 2.0 * (t - nb) / period  # half beats from the next beat
        k = round(halves)
        beat = nb + 0.5 * k * period if abs(halves - k) * 0.5 <= DOWNBEAT_SNAP else t
        if abs((beat - nb) / period - round((beat - nb) / period)) > 1e-9:
            # Off the clock's own grid: the next beat is the first of the marked grid the
            # stream has not passed (the marked beat itself when it is still to come; one
            # the stream has passed is not sounded late).
            nb = beat + math.ceil((self._t_newest - beat) / period) * period
            self.next_beat = nb
        # The marked beat is the one; the next beat is m beats after it, and its count
        # (``_beat_count`` once emitted) is one more than now.
        m = round((nb - beat) / period)
        self._mark_count = self._beat_count + 1 - m
        bpb = self.beats_per_bar
        self.beat_in_bar = (m - 1) % bpb  # the index of the last beat emitted
        self.last_downbeat = nb - ((m % bpb) or bpb) * period
        self._pinned = True
        self._side = 0.0
        self._pending_beat = None
        return True

    def release_downbeat(self) -> bool:
        """End a performer's hold (:meth:`mark_downbeat`): the side, the far jumps and the
        bar line are the tracker's again. False when nothing was held."""
        held, self._pinned = self._pinned, False
        return held

    @property
    def settled(self) -> bool:
        """True once the first full estimate is made (the early guesses' tempo before it is
        provisional: a performer's corrections wait for it)."""
        return self._settled

    @property
    def marked(self) -> bool:
        """True while a performer's downbeat holds the grid (:meth:`mark_downbeat`)."""
        return self._pinned

    def reset_tracking(self) -> None:
        self.bpm = 0.0
        self.period = 0.0
        self.confidence = 0.0
        self.last_beat = None
        self.next_beat = None
        self.last_downbeat = None
        self.beat_in_bar = 0
        self._next_update = -math.inf
        self._settled = False  # the first full estimate is made (early guesses before it)
        self._confirmed = False  # an estimate since the clock was placed found its beats
        self._pending_beat: float | None = None
        self._pending_since = 0.0
        # The beat of a kick's grid a quarter off the clock's (or None), at the last updates.
        self._quarter_kicks: collections.deque[float | None] = collections.deque(
            maxlen=QUARTER_READINGS
        )
        # At this update the clock is such a kick's grid (its grid a quarter off is silent):
        # the loop's search narrows, and the kick vote marks its beats from QUARTER_STEADY.
        self._on_quarter_kick = False
        self._side = 0.0  # summed evidence (mid band, backbeat) for the clock's side (< 0: off)
        self._kick_heard = -math.inf  # last marked every beat of the clock's grid (_kick_vote)
        self._pinned = False  # a performer marked the one: grid and bar line held (mark_downbeat)
        self._mark_count = 0  # the beat count of the marked one
        # The low band's last steadiness readings (see _leak_share).
        self._steadiness: collections.deque[float] = collections.deque(maxlen=LEAK_READINGS)
        # Whether the low band marked every beat of the clock's grid, at the last readings.
        self._clock_marks: collections.deque[bool] = collections.deque(maxlen=LEAK_READINGS)
        # Whether the low band marked every beat of both grids, at the last readings.
        self._both_marks: collections.deque[bool] = collections.deque(maxlen=LEAK_READINGS)
        # Whether a 2:3 tempo had a compound beat's shape, at the last updates (_three_two).
        self._compound_shapes: collections.deque[bool] = collections.deque(maxlen=SIX_READINGS)
        self._change_at = -math.inf  # time of the first onset at a detected tempo change
        self._kick_gone_since = math.inf  # the low band under KICKLESS_LEVEL since (or inf)
        self._kick_gone = False  # ... for a bar: the kick is gone (see _kickless)
        self._steady_since = math.inf  # since when the clock has held its tempo (see _retime)
        self._sure = 0.0  # the tempo's share of the confidence (see _estimate)
        self._flying = False  # the drums are gone: the clock flies on (see _track_phase)
        self._flight_start = 0.0
        if self.hop > 0:
            self._belief[:] = 1.0 / len(self._belief)
            self._tempo_hist.clear()
            self._forget_bars()

    def _forget_old_bars(self) -> None:
        """At a new tempo (a next track, a step): the beats counted at the old one no longer
        keep step with the bars, and their statistics would hold the old bar line for
        seconds. Only a tempo held for a while (``BAR_TAU``) has such statistics: an early
        octave or tempo put right keeps what its few beats have gathered."""
        if self._t_newest - self._steady_since >= BAR_TAU:
            self._forget_bars(changed=True)

    def _forget_bars(self, changed: bool = False) -> None:
        """The downbeat statistics start afresh; after a tempo change (``changed``) the bar
        line and length chosen are kept until every beat of a bar has been heard again."""
        self._bars_forgotten = changed
        meters = (*self._meter_low.values(), *self._meter_mid.values())
        counts = (*self._meter_frames.values(), *self._meter_bounds.values())
        for acc in (*meters, *self._meter_harm.values(), *counts):
            acc[:] = [0.0] * len(acc)
        self._harm_acc[:] = 0.0
        self._harm_n = 0
        self._harm_beats.clear()

    def _restart(self) -> None:
        """Tracking state as before any estimate (the envelopes are kept)."""
        self.reset_tracking()
        self.tempo_score = 0.0
        self._beat_count = 0
        self.beats_per_bar = self.config.beats_per_bar or 4

    def _min_history(self) -> float:
        # A first guess early (the filter and the phase loop correct it), at most the window.
        return min(FIRST_GUESS * 60.0 / self.config.min_bpm, self.config.window)

    def history(self) -> np.ndarray:
        """The stored band strengths (3 x frames), oldest first (a view; do not modify)."""
        n, p = self._len, self._pos
        m = min(self._count, n)
        return self._bands[:3, p + n - m : p + n]

    # --------------------------------------------------------------- estimate

    def _estimate(self) -> None:
        n, p = self._len, self._pos
        m = min(self._count, n)
        spread = self._spread(self._bands[:, p + n - m : p + n])
        phase_env, drums = spread[:3], spread[3]
        back = phase_env[0] + phase_env[1]
        pulse = back + 0.5 * phase_env[2]
        self._forget_before_change()
        # The hats' pattern changes slowly: once the window is full their
        # cue is measured every other update (the last factors hold between).
        fresh = m < n or not self._tatum_fresh
        salience = self._salience(pulse, phase_env[2] if fresh else None)
        if salience is None:  # a silent window: only the fade moves
            self._set_confidence()
            return
        self._tatum_fresh = fresh
        if not self._flying:
            self._filter(self._metrical(salience, back))
        # (Through a breakdown the pads' and chord stabs' periodicity says little of
        # the tempo, a 4:3 was read: the belief is held for the drop.)
        best = int(self._belief.argmax())
        bpm = float(self._bpms[best])
        salience = salience[: len(self._bpms)]
        if 0 < best < len(salience) - 1:  # parabolic refinement on the salience
            a, b, c = salience[best - 1], salience[best], salience[best + 1]
            den = a - 2 * b + c
            if den < 0:
                # At most a grid step: the belief's best need not be a peak of
                # the salience, and off a peak the parabola's vertex can be
                # octaves away (316 and 383 BPM were read); on a ramp the peak
                # is a step or so ahead of the belief, which the step keeps.
                shift = min(max(0.5 * (a - c) / den, -1.0), 1.0)
                bpm *= math.exp(GRID_STEP * shift)
        self.tempo_score = float(salience[best])
        bpm = self._in_lean_octave(self._lead(bpm))
        self._track_phase(bpm, phase_env, drums)
        # How sure of the tempo the salience makes us, held as it falls: at a drop
        # the first loud hits (the bands' running means sank through the
        # breakdown) swamp the autocorrelation for a beat or two, while the
        # clock, flown on, is on them.
        sure = min(max(self.tempo_score * 2.0, 0.0), 1.0)
        if not self._flying:
            self._sure = max(sure, self._sure * math.exp(-self.config.update_interval / SURE_TAU))
        self._set_confidence()

    def _set_confidence(self) -> None:
        """The tempo's share, faded from ``SILENCE_BEATS`` without an onset to zero at
        ``FLY_BEATS`` (the clock flies on meanwhile; also through a breakdown's flight)."""
        silent_beats = (self._t_newest - self.last_onset) / max(self.period, 1e-3)
        fade = min(max((silent_beats - SILENCE_BEATS) / (FLY_BEATS - SILENCE_BEATS), 0.0), 1.0)
        self.confidence = self._sure * (1.0 - fade)

    def _filter(self, obs: np.ndarray) -> None:
        """A step of the forward filter over the tempo grid: drift, rare jumps, evidence."""
        # Divided by the kernel mass inside the grid, so the slowest and fastest
        # tempi do not leak belief off the edge at every update.
        belief = np.convolve(self._belief, self._drift, mode="same")
        belief /= self._drift_mass
        belief *= 1.0 - JUMP
        belief += JUMP / len(belief)
        belief *= obs
        total = float(np.add.reduce(belief))
        if total > 0 and math.isfinite(total):
            self._belief = belief / total

    def _forget_before_change(self) -> None:
        """After a detected tempo change the evidence's memory reaches back no further
        than the change (at least ``CHANGE_TAU``), growing back to ``RECENCY``: the
        old tempo's seconds of autocorrelation must not outvote the new one's."""
        tau = min(max(self._t_newest - self._change_at, CHANGE_TAU), RECENCY)
        if tau != self._recency_tau:
            self._recency_tau = tau
            n = len(self._recency)
            np.exp((np.arange(n) - n + 1) * (self.hop / tau), out=self._recency)

    def _spread(self, bands: np.ndarray) -> np.ndarray:
        """Each band box-summed over ``SPREAD`` (centred, zero beyond the ends)."""
        taps = self._taps
        m = bands.shape[1]
        # A padded buffer kept while m holds (its zero ends are never written).
        padded = self._spread_buf
        if padded.shape != (len(bands), m + taps - 1):
            padded = self._spread_buf = np.zeros((len(bands), m + taps - 1))
        padded[:, taps // 2 : taps // 2 + m] = bands
        if taps == 1:
            return padded.copy()
        out = np.add(padded[:, :m], padded[:, 1 : 1 + m])
        for j in range(2, taps):
            out += padded[:, j : j + m]
        return out

    def _lead(self, bpm: float) -> float:
        """The filter's tempo moved ahead along a steady ramp, which the window lags.

        The log tempo of the last ``RAMP_SPAN`` seconds is fitted with a line;
        when the slope clearly stands out of the scatter (a ramp, not the
        wobble of a steady or live-played tempo) the tempo is read
        ``RAMP_LEAD`` seconds ahead on it. A jump is left to the phase re-seed.
        A few dozen points: plain floats are faster than arrays here.
        """
        hist = self._tempo_hist
        now = self._t_newest
        hist.append((now, math.log(bpm)))
        while hist[0][0] < now - RAMP_SPAN:
            hist.popleft()
        count = len(hist)
        if count < 6:
            return bpm
        ts, bs = zip(*hist, strict=True)
        if max(bs) - min(bs) > RESEED:
            return bpm
        t_mean = sum(ts) / count
        b_mean = sum(bs) / count
        # Each step over all points at C speed (map), the same float
        # operations in the same order as a loop would do them.
        ts = list(map(t_mean.__rsub__, ts))  # t - t_mean
        bs = list(map(b_mean.__rsub__, bs))
        slope = sum(map(operator.mul, ts, bs)) / sum(map(operator.mul, ts, ts))
        resid = list(map(operator.sub, bs, map(slope.__mul__, ts)))  # b - slope * t
        r_mean = sum(resid) / count
        ss = sum(map(pow, map(r_mean.__rsub__, resid), itertools.repeat(2)))  # (r - r_mean) ** 2
        scatter = math.sqrt(ss / count)
        if abs(slope) * RAMP_SPAN < 3.0 * scatter + 1e-3:
            return bpm
        return bpm * math.exp(slope * RAMP_LEAD)

    def _salience(self, env: np.ndarray, hats: np.ndarray | None = None) -> np.ndarray | None:
        """Comb score of the envelope's autocorrelation for every tempo of the grid.

        The autocorrelation is left in the second row of the comb's ``acfs``
        (``_pulse_acf`` is set to it); with ``hats``, theirs in the first, and
        ``_acfs`` set (see :meth:`_tatum`), and ``_split_envs`` to the two envelopes
        (see :meth:`_steady_splits`).
        """
        m = len(env)
        comb = self._comb if self._comb is not None and self._comb[0] == m else self._make_comb(m)
        acfs = comb[-1]
        found = self._acf([env] if hats is None else [hats, env])
        if not found[-1]:
            return None
        self._pulse_acf = acfs[-1]
        if hats is not None:
            self._acfs = acfs if found[0] else None
            self._split_envs = (hats, env)
        _, _, _, taps, weights, empty, *_ = comb
        # Each tempo: the mean of its comb teeth, read between lags (linear);
        # teeth x tempi, so the sum runs over whole rows.
        teeth = acfs[1].take(taps)  # (a third quicker than indexing)
        teeth *= weights
        out = np.add.reduce(teeth, axis=0)
        out[:empty] = -1.0
        return out

    def _acf(self, envs: list[np.ndarray]) -> list[bool]:
        """The envelopes' autocorrelations (recent frames weighted most), unbiased, 1 at lag 0.

        Written into the last rows of the comb's ``acfs`` (each as long as the
        envelopes; see :meth:`_make_comb`), all envelopes in one transform
        (each row's numbers are what a transform of it alone gives). Returns
        whether each has any power (else its row is left as it was).
        """
        k, m = len(envs), len(envs[-1])
        _, recency, unbias, _, _, _, frame, spec, power, acf, acfs = self._comb  # type: ignore[misc]
        rows = slice(len(acfs) - k, len(acfs))
        frame, spec, power, acf, out = frame[rows], spec[rows], power[rows], acf[rows], acfs[rows]
        x = frame[:, :m]  # the rest stays zero (padding)
        for row, env in zip(x, envs, strict=True):
            row[...] = env
        x -= (np.add.reduce(x, axis=1) / m)[:, None]
        # Recent frames weigh more, so a ramp is followed rather than averaged.
        x *= recency
        rfft_into(frame, spec)
        np.multiply(spec.real, spec.real, out=power)
        power += spec.imag * spec.imag
        irfft_into(power, acf)
        found = [not zero <= 0 for zero in acf[:, 0].tolist()]
        if all(found):
            np.divide(acf[:, :m], acf[:, :1] * unbias / m, out=out)
        else:
            for r in itertools.compress(range(k), found):
                np.divide(acf[r, :m], acf[r, 0] * unbias / m, out=out[r])
        return found

    def _make_comb(self, m: int) -> tuple:
        """What the salience needs for an envelope of ``m`` frames (cached while m holds).

        While the window fills m changes at every update: the parts that do
        not depend on it (each tooth's lags and weights, the FFT buffers of
        each length) are kept, and only which teeth are inside is redone.
        """
        if self._comb_parts is None:
            lags = self._lags
            i0 = lags.astype(np.intp)
            frac = lags - i0
            taps = np.ascontiguousarray(np.concatenate([i0, i0 + 1], axis=1).T)
            # Weights when the first c teeth of a comb are inside (c = 1..4),
            # each tooth 1/c of the comb, split between the two lags around it.
            weights = [np.zeros_like(taps, dtype=float)]
            for c in range(1, HARMONICS + 1):
                share = (np.arange(HARMONICS) < c) / c
                pair = np.concatenate([(1 - frac) * share, frac * share], axis=1)
                weights.append(np.ascontiguousarray(pair.T))
            unbias = self._len - np.arange(self._len, dtype=float)  # its tail: m, m-1 ... 1
            self._comb_parts = (taps, weights, unbias, {})
        taps_all, weights_all, unbias_all, ffts = self._comb_parts
        # Zero-padded to at least 2m - 1 (a linear, not circular,
        # autocorrelation), to a length pocketfft is quick at.
        nfft = min(
            size
            for size in (1 << math.ceil(math.log2(2 * m)), 3 << math.ceil(math.log2(2 * m / 3)))
            if size >= 2 * m - 1
        )
        buffers = ffts.get(nfft)
        if buffers is None:
            # Two rows: the hats' and the pulse's (see _acf).
            buffers = ffts[nfft] = (
                np.zeros((2, nfft)),
                np.empty((2, nfft // 2 + 1), dtype=complex),
                np.empty((2, nfft // 2 + 1)),
                np.empty((2, nfft)),
            )
        buffers[0][:, m:] = 0.0
        # Keep at least one second of overlap, less while the envelope is
        # short (the early guesses, and the first full estimates: a 90 BPM
        # comb gets its second tooth at 2.2 s).
        overlap = min(1.0, EARLY_OVERLAP * m * self.hop)
        max_lag = m - overlap / self.hop
        self._max_lag = max_lag
        # Lags fall along the grid and rise with the tooth: from bounds[c]
        # on, the first c + 1 teeth of every comb are inside.
        bounds = [*np.count_nonzero(self._lags >= max_lag, axis=0).tolist(), len(self._lags)]
        weights = np.zeros_like(weights_all[0])
        for c in range(HARMONICS):
            lo, hi = bounds[c], bounds[c + 1]
            weights[:, lo:hi] = weights_all[c + 1][:, lo:hi]
        self._comb = (
            m,
            self._recency[-m:],
            unbias_all[-m:],
            np.minimum(taps_all, m - 1),  # the teeth outside (weight 0) kept in range
            weights,
            bounds[0],  # tempi below have no tooth inside
            *buffers,
            np.empty((2, m)),
        )
        return self._comb

    def _metrical(self, salience: np.ndarray, back: np.ndarray) -> np.ndarray:
        """Evidence per tempo, judged at the strongest salience peaks.

        salience (halved at most where the subdivision is weak: real beats are
        split in two, a 3:2 false tempo is not) x prior x how weak every other
        beat is in the backbone (hats between kicks: probably twice too fast).

        A peak that is a plain pulse has its evidence undamped however weak its
        subdivision, and its beats need no split by the hats (see :meth:`_tatum`): where
        alternate beats are alike in the backbone (``PLAIN_ALTERNATION``) and the pulse
        repeats strongly at one beat (``PLAIN_PULSE``), little sounds between the beats,
        and its slower octave's "subdivision" is them (only where that octave is on the
        grid: else the damping guards against a 3:2 alone: a house groove's 2:3, 85 for
        128, is a plain pulse too). Not for a tempo the 3:2 rule raised: its evidence is
        the faster's, damped or not as that one's. A jazz waltz from 155 to 176 (kick on
        the one, bass and ride on the quarters, chords on 2 and 3, the ride's skip notes
        soft) was read at half that way; lo-fi and the one drop read at double (their
        pulse repeating at 0.3-0.6 at one 8th) are left as they were.
        """
        n = len(self._bpms)
        s = np.maximum(salience, 0.0)
        # Damped where the subdivision is weak (a 3:2 false tempo); never
        # raised, which would favour the slower of two octaves.
        sub = s[self._octave : self._octave + n]
        ratio = np.minimum(sub / np.maximum(s[:n], 1e-9), 1.0)
        sub_damp = 1.0 - SUB_DAMP + SUB_DAMP * ratio
        s = s[:n] * sub_damp
        top = float(np.maximum.reduce(s))
        if top <= 0:
            return np.ones(n)
        s = s / top
        # Local maxima, strongest first; the ends of the grid count (a 60 or
        # 180 BPM loop peaks there): a buffer with -1 at both ends.
        padded = self._peak_buf
        weighted = padded[1:-1]
        np.multiply(s, self._prior, out=weighted)
        peaks = ((weighted >= padded[:-2]) & (weighted > padded[2:])).nonzero()[0]
        peaks = peaks[weighted[peaks].argsort()[::-1][:PEAKS]].tolist()
        peaks, raised = self._three_two(peaks, weighted, back)
        cfg = self.config
        floor = 0.1**cfg.accent_weight
        metre = self._metre  # reused: refilled at every call (the caller may write it)
        metre.fill(floor)
        width = PEAK_WIDTH
        order = sorted(peaks, key=weighted.item)  # weakest first
        alternation = self._alternation(back, order)
        tatum = self._tatum(order)
        felt: list[tuple[int, float]] = []
        for i, alt, (unsplit, slower) in zip(order, alternation, tatum, strict=True):
            lo, hi = max(i - width, 0), i + width + 1
            # A plain pulse (see the docstring): neither damping of beats nothing splits.
            plain = (
                i >= self._octave
                and i not in raised
                and alt >= PLAIN_ALTERNATION
                and self._plain_pulse(i)
            )
            hats = slower / sub_damp[i] if plain else unsplit * slower
            metre[lo:hi] = max(alt, 0.1) ** cfg.accent_weight * hats
            if cfg.accent_weight > 1.0 and i >= self._octave:
                # Leaning to the felt tempo: what the weak beats take from a tempo goes
                # to its slower octave (else a two-thirds reading, nearer the prior,
                # takes it: dubstep 140 read 93, not 70).
                felt.append((i - self._octave, weighted[i] * (1.0 - min(alt, 1.0))))
        for j, evidence in felt:
            lo, hi = max(j - width, 0), j + width + 1
            if weighted[j] > 0:
                np.maximum(metre[lo:hi], evidence / weighted[j], out=metre[lo:hi])
        metre *= weighted
        self._four_three(peaks, metre)
        np.multiply(metre, metre, out=metre)
        metre += 1e-6
        return metre

    def _plain_pulse(self, i: int) -> bool:
        """The pulse's autocorrelation at one beat of the grid's tempo ``i`` is at
        least ``PLAIN_PULSE`` (every beat like the last); False without one reaching
        that lag."""
        acf = self._pulse_acf
        lag = 60.0 / self._bpm_list[i] / self.hop
        return acf is not None and lag + 1 < len(acf) and _acf_at(acf, lag) >= PLAIN_PULSE

    def _four_three(self, peaks: list[int], metre: np.ndarray) -> None:
        """Damp (in place) a peak four thirds as fast as another whose bar it lacks.

        Afrobeat's bass and chords on a dotted-8th grid (3 + 3 + 3 + 3 + 4
        16ths), and funk's and hip-hop's syncopations, make a tempo 4/3 as
        fast a strong peak, and near the prior (afrobeat at 104 was read at
        139 for 12 s). The bar tells them apart: the music repeats every bar,
        3 or 4 beats of the true tempo, while 3 or 4 beats of the 4:3 one
        are 2.25 or 3 of the true, not a bar. So the pulse's autocorrelation
        at 3 and 4 beats of each is compared (the better of the two); where
        the slower's is ``BAR_43_MARGIN`` above the faster's, the faster's
        evidence is damped (once, however many pairs ask). Only the faster:
        4 beats of a true tempo are 3 of its slower 4:3 rival (a waltz
        reading), whose bar test therefore cannot lose. Both need 4 beats of
        the slower inside the window (from about 3.5 s at 100 BPM).
        """
        acf = self._pulse_acf
        if acf is None or len(peaks) < 2:
            return
        limit = self._max_lag - 1.0
        bpms = self._bpm_list
        shift = self._shift_43
        width = PEAK_WIDTH
        bars: dict[int, float | None] = {}
        damped: set[int] = set()  # each grid tempo once (peaks repeat, or lie a step apart)
        for slow, fast in itertools.permutations(set(peaks), 2):
            if abs(fast - slow - shift) > BAR_43_SLACK:
                continue
            for i in (slow, fast):
                if i not in bars:
                    period = 60.0 / bpms[i] / self.hop
                    bars[i] = _bar_acf(acf, period, limit)
            bar_slow, bar_fast = bars[slow], bars[fast]
            if bar_slow is None or bar_fast is None or bar_slow - bar_fast <= BAR_43_MARGIN:
                continue
            damped.update(range(max(fast - width, 0), min(fast + width + 1, len(metre))))
        if damped:
            metre[list(damped)] *= BAR_43_DAMP

    def _tatum(self, tempi: list[int]) -> list[tuple[float, float]]:
        """How well the hats make each tempo the beat: two factors per tempo (1: no
        objection), for its own beats' split and for the faster octave's (a plain pulse
        keeps the second only, see :meth:`_metrical`).

        Hats, shakers and rides mark the fastest regular pulse, and a beat
        is split by them: two 8ths, four 16ths, three in 6/8. A tempo whose
        beats nothing splits is damped (hip-hop's 8th hats at 86 read as
        quarters at 172; a 4:3 false tempo); so is the slower of two octaves
        when the hats split the faster one's beats too (drum & bass: 8th
        hats at 174, not 16ths at 87). Read from the autocorrelation of the
        high band at half beats (or thirds) against whole beats; the whole
        pulse's counts for the split too (off-beat hats between kicks do not
        split the hats' own period, but they split the beat). A split shows
        at every half-beat lag, a syncopation only at some: where one can
        play (the pulse, and the hats at the faster octave) the weakest half
        beat is the split, not their mean.
        """
        if not self._tatum_fresh:
            last = self._tatum_last
            return [last[i] for i in tempi]
        last = self._tatum_last = [(1.0, 1.0)] * len(self._tatum_last)
        acfs = self._acfs
        k = len(tempi)
        limit = self._max_lag
        lo = max(int(SPLIT_MIN_LAG / self.hop), 1)
        hi = min(int(SPLIT_MAX_LAG / self.hop), int(limit))
        if acfs is None or not k or hi <= lo:
            return [(1.0, 1.0)] * k
        if self._split_lags is None:
            # Lags (frames) of whole beats, half beats and thirds of every
            # tempo of the grid reaching an octave faster (index + octave).
            ext = self.config.min_bpm * np.exp(GRID_STEP * np.arange(len(self._lags)))
            self._split_lags = (60.0 / ext / self.hop)[:, None] * SPLIT_TEETH
        # Every tempo and its double, in both envelopes at once: (2k, 2, 12).
        rows = tempi + [i + self._octave for i in tempi]
        m = acfs.shape[1]
        table = self._split_table
        if table is not None and table[0] == (limit, m):
            last_table, last_rows, parts = self._split_last
            if last_table is not table or last_rows != rows:  # else the last update's tempi
                _, idx, frac, valid, counts = table
                parts = idx.take(rows, 0), frac.take(rows, 0), valid.take(rows, 0)
                parts = (*parts, [counts[r] for r in rows])
                self._split_last = (table, rows, parts)
            idx, frac, valid, counts = parts
        else:
            idx, frac, valid, counts = self._split_parts(self._split_lags[rows], limit, m)
            if m == self._len:  # the window is full: the same for every tempo from now on
                self._split_table = ((limit, m), *self._split_parts(self._split_lags, limit, m))
        around = acfs.take(idx)  # each lag's two neighbours, in each envelope
        below = around[:, :, 0]
        values = below + (around[:, :, 1] - below) * frac  # linear between lags
        values *= valid
        # Per tempo and envelope: the sums over whole beats, half beats and
        # thirds (and, in counts, how many of each are inside the window).
        teeth = values.reshape(2 * k, 2, 3, 4)
        sums = np.add.reduce(teeth, axis=3).tolist()
        # The weakest of the three nearest half beats inside the window, per tempo and
        # envelope. A figure of 3 + 3 + 2 16ths (the dembow's, a tresillo) lines up at
        # 1.5 and 2.5 beats of the double tempo but not at 0.5: on the mean a dembow at
        # 88-90 had its beats split by the pulse at 176-180, and its 16ths "split by the
        # hats" (read at double). The fourth (3.5 beats) is left out: on the short window
        # of the first estimates it is the noisiest (with it drum & bass locked a second
        # later on more pieces, measured).
        # (Half beats rise along the row: where any is inside, 0.5 is, and the minimum is
        # finite wherever it is read, behind the count check below.)
        inside = valid.reshape(2 * k, 1, 3, 4)[:, :, 1, :3] > 0
        weakest = np.where(inside, teeth[:, :, 1, :3], np.inf).min(axis=2).tolist()
        top = np.maximum.reduce(acfs[:, lo:hi], axis=1).tolist()  # each envelope at its own period
        # Sure as far as the hats are periodic at all (none: no opinion).
        sure = min(max(top[0] / TATUM_SURE, 0.0), 1.0)
        # How well each envelope splits each tempo's beats: the hats and the
        # pulse for the tempi themselves, the hats for their doubles (only
        # those are used).
        good = [[0.0] * (2 * k), [0.0] * k]
        for e, stop in ((0, 2 * k), (1, k)):
            peak = top[e]
            if peak <= 0:
                continue
            row_good = good[e]
            for r in range(stop):
                nb, nh, n3 = counts[r]
                if not (nb and nh):
                    continue
                b_sum, h_sum, t_sum = sums[r][e]
                whole = b_sum / nb
                if whole <= 0:
                    continue
                # The hats' split of a tempo's own beats stays the mean: hats that skip a
                # half beat (a two-step's gaps) still split them (the weakest of four there cost
                # two-step drum & bass 1.0 -> 0.95 and UK drill 0.96 -> 0.87, measured).
                split = h_sum / nh if e == 0 and r < k else weakest[r][e]
                # A tempo's own beats may split in three in the hats (6/8);
                # the faster octave's in two only, and the pulse's (with
                # 16th notes in it, any false tempo on the 16th grid, 4:3,
                # splits in three).
                if e == 0 and r < k and n3:
                    split = max(split, t_sum / n3)
                fit = min(whole / peak, 1.0)
                row_good[r] = fit * min(max(split / whole / SPLIT_FULL, 0.0), 1.0)
        bpms = self._bpm_list
        fastest = self.config.max_bpm * (1.0 + GRID_STEP)  # the end of the grid counts
        # Which factors are read: a tempo's own split (whole and half beats inside the
        # window), its faster octave's (the same, and that octave on the grid).
        own_read = [bool(counts[r][0] and counts[r][1]) for r in range(k)]
        fast_read = [
            bool(counts[k + r][0] and counts[k + r][1]) and 2.0 * bpms[i] <= fastest
            for r, i in enumerate(tempi)
        ]
        # The splits read beat by beat where they decide a factor: a tempo's own (by the
        # hats and the pulse), its faster octave's (by the hats).
        split_rows = [(e, r) for e in (0, 1) for r in range(k) if own_read[r] and good[e][r] > 0]
        split_rows += [(0, k + r) for r in range(k) if fast_read[r] and good[0][k + r] > 0]
        if split_rows and sure > 0:
            self._steady_splits(good, split_rows, tempi, [bool(c[2]) for c in counts[:k]])
        width = PEAK_WIDTH
        out = []
        for r, i in enumerate(tempi):
            unsplit = slower = 1.0  # the damping of beats nothing splits, of a slower octave
            if own_read[r]:
                own = max(good[0][r], good[1][r])
                unsplit = 1.0 - TATUM_SPLIT * sure * (1.0 - own)
            if fast_read[r]:
                slower = 1.0 - TATUM_FAST * sure * good[0][k + r]
            start, stop = max(i - width, 0), min(i + width + 1, len(last))
            last[start:stop] = [(unsplit, slower)] * (stop - start)
            out.append((unsplit, slower))
        return out

    def _steady_splits(
        self,
        good: list[list[float]],
        rows: list[tuple[int, int]],
        tempi: list[int],
        thirds: list[bool],
    ) -> None:
        """Scale (in place) how well the hats (``good[0]``) and the pulse (``good[1]``) split
        each tempo's beats, and the hats its faster octave's (at ``len(tempi)`` on), at the
        ``rows`` asked (envelope, row), by how steadily they sound beat by beat
        (``OFFBEAT_FULL``).

        The autocorrelation hears a figure of 3 + 3 + 2 16ths as a split: the dembow's rim
        (on the 4th and 7th 16ths of each beat pair) lines up with the kick and hats at every
        half-beat lag of the double tempo, so for a dembow at 89 the hats "split" 178's
        beats (damping 89 as the slower octave) and 178 was read. Beat by beat, the
        double's off-beats are silent but one in four (the hats' median: 0.02-0.07 of their
        beats'), where a real split sounds on most of them (drum & bass's 8ths at 174, 0.45
        and up). The thirds count where the hats' do (6/8): the stronger of the half and
        the thirds. A row with too few beats in the window yet (a slow tempo in the first
        seconds) keeps its factor.

        The hats' split of a faster octave is read above the envelope's floor (the weaker of
        the faster octave's quarter beats': 32nds of the candidate, where hardly anything
        plays). Under noise the hats' envelope peaks near as high everywhere: lo-fi hip hop
        at 79 at 16 dB SNR, its hats' half beats at 158 read 0.76-0.97 of its beats', and 79
        was damped as the slower octave; above the floor, 0.00-0.14. A tempo's own quarters
        are its 16ths, which a shaker plays as loud as its 8ths, so its own split is read
        without a floor (floored too, liquid drum & bass at 174 lost its split and was read
        at 87). A row also keeps its factor where nothing sounds on its phase (above the
        floor, where read) at most beats.
        """
        k = len(tempi)
        if self._split_envs is None:
            return
        bpms, hop = self._bpm_list, self.hop
        # A faster octave's row (r >= k) has half its tempo's period.
        periods = [60.0 / bpms[tempi[r % k]] / hop / (2.0 if r >= k else 1.0) for _, r in rows]
        # The hats read their own rows in thirds where they split in three, and their
        # faster octave's above the floor; the rest plainly.
        kinds = [
            _PLAIN if e else _FLOORED if r >= k else _THIRDS if thirds[r] else _PLAIN
            for e, r in rows
        ]
        shares = _offbeat_shares(self._split_envs, [e for e, _ in rows], periods, kinds)
        for (e, r), share in zip(rows, shares, strict=True):
            if share is not None:
                good[e][r] *= min(max(share, 0.0) / OFFBEAT_FULL, 1.0)

    @staticmethod
    def _split_parts(lags: np.ndarray, limit: float, m: int) -> tuple:
        """What :meth:`_tatum` reads at ``lags`` (rows x 12) from ``acfs`` (2 x m).

        The flat indices of the lags below and above each (rows x envelope x
        2 x 12), the fractions between them and the valid teeth (rows x 1 x
        12, inside ``limit``), and the valid whole / half / third beats per row.
        """
        valid = lags < limit
        x = np.minimum(lags, limit - 1.0)
        i0 = x.astype(np.intp)
        idx = i0[:, None, None, :] + np.array([[0, 1], [m, m + 1]])[None, :, :, None]
        counts = np.add.reduce(valid.reshape(-1, 3, 4), axis=2).tolist()
        return idx, (x - i0)[:, None, :], valid[:, None, :].astype(float), counts

    def _three_two(
        self, peaks: list[int], weighted: np.ndarray, back: np.ndarray
    ) -> tuple[list[int], set[int]]:
        """Raise (in place) a tempo two thirds as fast as a peak whose beats gather the accents.

        Returns the peaks with the tempi raised added, and the tempi raised.

        In 6/8 the quarter-note reading (two eighths) is subdivided in two and
        close to the prior, so it outscores the dotted quarter; but the snare
        on the fourth eighth falls between its beats, while on the dotted
        quarter every kick and snare lands on a beat: the backbone's fold
        peaks far more sharply (measured: 2.2-2.4x in the dev and grooves sets'
        6/8 and 12/8, while binary grooves' 3:2 reach 1.3-1.6x at the 90th
        percentile of their updates: hence ``CONC_32``). A ballad's kick on the
        one and cross-stick on the four, with bass and piano on the 8ths
        between, gathers only 1.0-1.3x more; its dotted quarter is told by its
        shape instead (:func:`_compound_beat`), once that held for a second.
        """
        shift = self._shift_32
        width = max(int(0.02 / GRID_STEP), 1)
        out = list(peaks)
        pairs = [(i, i - shift) for i in out[:2] if i >= shift]  # the two strongest
        raised: set[int] = set()
        if not pairs:
            self._compound_shapes.append(False)  # an update without a pair shows no shape
            return out, raised
        # How sharply the accents gather on one phase of each period: the
        # fold's peak over its mean (all four folds at once, of the squared backbone).
        folds, periods, beyond = self._grid_folds(
            back, [i for p in pairs for i in p], 1.0, 0.85, squared=True
        )
        folds[beyond] = 0.0  # phases past a tempo's period are not its own
        sums = np.add.reduce(folds, axis=1).tolist()
        means = [total / math.ceil(p) for total, p in zip(sums, periods, strict=True)]
        folds[beyond] = -np.inf
        tops = np.maximum.reduce(folds, axis=1).tolist()
        conc = [t / mean if mean > 0 else 1.0 for t, mean in zip(tops, means, strict=True)]
        compound = []
        for k, (i, j) in enumerate(pairs):
            ci, cj = conc[2 * k], conc[2 * k + 1]
            if cj > CONC_32 * ci:
                lo, hi = max(j - width, 0), j + width + 1
                # Squared: just past the threshold the slower only about ties, and on
                # a live 6/8 the filter sat on the quarters for seconds (1.1x the
                # threshold raises it to 1.21x the faster's, not 1.1x).
                gain = min((cj / (CONC_32 * ci)) ** 2, 2.0)
                weighted[lo:hi] = np.maximum(weighted[lo:hi], weighted[i] * gain)
                out.append(j)
                raised.add(j)
            if cj > ci and _compound_beat(folds[2 * k + 1], periods[2 * k + 1]):
                compound.append((i, j))
        # A shape held for about a second (3 of 4 updates at the default interval), not one
        # update's: a binary groove's 2:3 shows it now and then (a hip-hop beat with a gap),
        # and once at a first estimate set an afrobeat on its 2:3 (measured). The hold is
        # the updates', whichever pair showed it (the pairs are the same two peaks' as a rule).
        self._compound_shapes.append(bool(compound))
        if sum(self._compound_shapes) >= SIX_HELD:
            for i, j in compound:
                lo, hi = max(j - width, 0), j + width + 1
                weighted[lo:hi] = np.maximum(weighted[lo:hi], weighted[i] * SIX_GAIN)
                raised.add(j)
                if j not in out:
                    out.append(j)
        return out, raised

    def _phase_scores(self, bands: np.ndarray, period: float, decay: float) -> np.ndarray:
        """Phase scores from the three bands, each standardised over the phases.

        Each band votes with the shape of its own fold, not its loudness: a
        soft kick on the beat counts against loud hats or a bass off it.
        Returns the weighted sum.
        """
        return _standardised_sum(_fold(self._comb_rows_of(bands, period), decay), self._phase_w)

    def _grid_folds(
        self, env: np.ndarray, tempi: list[int], scale: float, decay: float, squared: bool = False
    ) -> tuple[np.ndarray, tuple[float, ...], np.ndarray]:
        """:func:`_folds` at ``scale`` times the periods of grid tempi (indices), from tables.

        The tables hold every grid tempo's comb for the whole window, so they
        are built once (not at every update while the window fills): a
        shorter envelope uses fewer of each comb's beats (the rest weigh
        zero). Returns the folds, the periods in frames (plain floats: a
        handful of tempi) and a mask of the phases at and beyond each
        tempo's ceiling (not part of its fold; read only).
        """
        m = env.shape[-1]
        table = self._grid_combs.get((scale, decay))
        if table is None:
            table = self._grid_table(scale, decay)
        known = table[-1]
        if known[0] != m:  # per tempo at this length (only changes while the window fills)
            known[0] = m
            known[1].clear()
            known[2] = None
        # The same tempi as at the last update (a steady piece's peaks often are):
        # the same combs.
        combs = known[2]
        if combs is None or combs[0] != tempi:
            combs = known[2] = (list(tempi), *self._grid_combs_of(table, tempi, m))
        _, ps, weights, offsets, width, mass, beyond = combs
        view = self._reversed(env, squared)
        folds = np.matmul(weights, view[..., offsets, :width])[..., 0, :]
        folds /= mass
        return folds, ps, beyond

    def _grid_combs_of(self, table: tuple, tempi: list[int], m: int) -> tuple:
        """What :meth:`_grid_folds` reads for ``tempi`` at length ``m``: their
        periods, comb weights and offsets, the width, the weights' sums and the
        phases beyond each tempo's ceiling (all read only)."""
        _, _, offsets, weights, _, known = table
        info = known[1]
        rows = [info.get(i) or self._grid_row(table, i, m) for i in tempi]
        ps, beats, cs, mass = map(list, zip(*rows, strict=True))
        used = max(beats)
        width = max(cs)
        phases = self._phases if width <= len(self._phases) else np.arange(width)
        out = (
            weights[beats, :used][:, None, :],
            offsets.take(tempi, 0)[:, :used],
            np.array(mass)[:, None],
            phases[:width] >= np.array(cs)[:, None],
        )
        for a in out:
            a.flags.writeable = False
        w, idx, mass_col, beyond = out
        return tuple(ps), w, idx, width, mass_col, beyond

    def _grid_row(self, table: tuple, i: int, m: int) -> tuple[float, int, int, float]:
        """Grid tempo ``i``'s period, beat count, ceiling and comb weight at length ``m``."""
        periods, ceil, _, weights, masses, known = table
        p = periods[i]
        b = max(int((m - 1) / p), 1)
        # The comb's weights are summed as in a table of every tempo's combs
        # for this length, each row as long as the fastest tempo's.
        longest = max(int((m - 1) / periods[-1]), 1)
        total = masses.get((b, longest))
        if total is None:
            total = masses[b, longest] = float(np.add.reduce(weights[b, :longest]))
        row = known[1][i] = (p, b, ceil[i], total)
        return row

    def _grid_table(self, scale: float, decay: float) -> tuple:
        """The combs of every grid tempo at ``scale`` times its period, for the whole window."""
        n = self._len
        periods = scale * 60.0 / self._bpms / self.hop
        most = max(int((n - 1) / float(periods.min())), 1)
        ks = np.arange(most)
        # Beat k of each comb, frames back (an offset past the window only
        # ever has weight zero: it is kept inside the buffer).
        offsets = np.rint(periods[:, None] * ks).astype(np.intp)
        offsets[offsets > n - 1] = 0
        # Row b: the weights of a comb of b beats (zero beyond).
        weights = np.where(ks < np.arange(most + 1)[:, None], decay**ks, 0.0)
        ceil = np.ceil(periods).astype(np.intp).tolist()
        # known: the length the per-tempo rows are for, the rows, the last combs.
        table = (periods.tolist(), ceil, offsets, weights, {}, [0, {}, None])
        self._grid_combs[scale, decay] = table
        return table

    def _reversed(self, env: np.ndarray, squared: bool = False) -> np.ndarray:
        """``env`` (frames, or bands x frames) newest first, zero beyond, as overlapping rows.

        Row ``o`` of the result (a view) starts ``o`` frames before the newest
        frame: a comb is a gather of rows (see :func:`_folds`). ``squared``:
        of ``env * env`` (squared as it is copied, a pass less).
        """
        m = env.shape[-1]
        buf, rows = self._rev[env.ndim]
        if squared:
            np.multiply(env[..., ::-1], env[..., ::-1], out=buf[..., :m])
        else:
            buf[..., :m] = env[..., ::-1]
        used = self._rev_used[env.ndim]
        if used > m:  # only while the window fills is m ever shorter than before
            buf[..., m:used] = 0.0
        self._rev_used[env.ndim] = m
        return rows

    def _alternation(self, back: np.ndarray, tempi: list[int]) -> list[float]:
        """How strong the weaker of alternate beats is, relative to the stronger (0..1).

        For each tempo (index in the grid). Measured above the fold's quietest
        phase (the floor between hits), so steady noise does not pull the
        ratio toward 1.
        """
        folds, periods, beyond = self._grid_folds(back, tempi, 2.0, 1.0)
        width = folds.shape[1]
        folds[beyond] = np.inf  # phases past a tempo's period are not its own
        floor = np.minimum.reduce(folds, axis=1).tolist()
        folds[beyond] = -np.inf
        best = folds.argmax(axis=1).tolist()
        # Half a period on (rounded half to even, as np.rint does).
        other = [round(b + 0.5 * p) % math.ceil(p) for b, p in zip(best, periods, strict=True)]
        k = len(tempi)
        # Each row's best phase, then the phase half a period on (one flat gather).
        flat = [r * width + b for r, b in enumerate(best)] + [
            r * width + o for r, o in enumerate(other)
        ]
        at = folds.ravel().take(flat).tolist()
        out = []
        for r in range(k):
            on = at[r] - floor[r]
            off = max(at[k + r] - floor[r], 0.0)
            out.append(off / on if on > 0 else 1.0)
        return out

    def _kickless(self) -> bool:
        """The kick and bass are gone: their recent level below ``KICKLESS_LEVEL`` of their
        usual for a bar (a missed kick, or the gap after a slow or sparse one, is not), until
        it is back to ``KICKLESS_BACK`` of it (the stabs' low end hovers near the mark), for at
        most ``FLY_MAX_BEATS``: then the quieter level is the usual one."""
        level, now = self._low_level, self._t_newest
        if self._kick_gone:
            if level[0] >= KICKLESS_BACK * level[1]:
                self._kick_gone, self._kick_gone_since = False, math.inf
            elif now - self._kick_gone_since > FLY_MAX_BEATS * self.period:
                level[1] = level[0]
                self._kick_gone, self._kick_gone_since = False, math.inf
        elif level[0] < KICKLESS_LEVEL * level[1]:
            since = self._kick_gone_since = min(self._kick_gone_since, now)
            self._kick_gone = now - since >= KICKLESS_BARS * self.beats_per_bar * self.period
        else:
            self._kick_gone_since = math.inf
        return self._kick_gone

    def _track_phase(self, bpm: float, back: np.ndarray, drums: np.ndarray) -> None:
        """Place or correct the clock at ``bpm`` from the bands ``back`` (3 x frames) and
        the drums' count ``drums`` (frames; spread as they are)."""
        period = 60.0 / bpm
        now = self._t_newest
        if self.period <= 0:
            self._seed(period, back)
            return
        level, hats = self._low_level, self._high_level
        was = self._flying
        if not was:  # kick and hats gone (a kick-less section with hats: see _kickless)
            flying = level[0] < FLY_LEVEL * level[1] and hats[0] < FLY_HATS * hats[1]
            self._flight_start = now
        elif now - self._flight_start > FLY_MAX_BEATS * self.period:
            # A flight is a breakdown's length at most: after that, what plays (a
            # quieter section, a next track with a softer kick) is the music.
            level[1], hats[1] = level[0], hats[0]
            flying = False
        else:
            flying = level[0] < FLY_BACK * level[1]
        self._flying = flying
        if flying:
            # The drums are gone (a breakdown): the clock flies on at its tempo, and
            # the harmony's onsets (a chord stab a 16th early) neither pull its
            # phase nor vote on its side, nor start a jump.
            self._pending_beat = None
            self._quarter_kicks.clear()  # the quarter rule's readings: of before the flight
            return
        if abs(math.log(period / self.period)) > RESEED:
            # A new tempo (a next track, a step, an octave put right): the beats counted
            # since the old one no longer keep step with the bars, and the old beats'
            # statistics would hold the old bar line for seconds.
            self._forget_old_bars()
            self._seed(period, back)
            return
        # Predicted beat nearest to the newest frame, then the fold's best phase near it.
        frames = self.period / self.hop
        scores = self._phase_scores(back, frames, PHASE_DECAY)
        nb = self.next_beat if self.next_beat is not None else now
        predicted = (nb - now) % self.period  # s after now of the next beat
        pred_back = (self.period - predicted) / self.hop  # frames back of the previous beat
        if self._retime(back, pred_back):
            return
        n = len(scores)
        # Without the kick (a breakdown whose pads or lead keep the high band up, so the
        # clock does not fly, or a low cut), what plays says little of which grid is the
        # beat: a lead's stabs a 16th early would drag the clock onto them, and flip its
        # side or make it jump. The side's evidence is held, the clock makes no far jump
        # (see below), and the loop follows only a peak close to the beat (a drift).
        kickless = self._kickless()
        # Where the clock is the kick's grid a quarter from a grid silent in every band
        # (see _to_quarter_kick), the stronger peak there (a dembow's "a") is not to be
        # drifted onto either: the loop follows only a peak close to the beat.
        quarters = None if kickless else self._quarter_peaks(back, frames, pred_back)
        self._on_quarter_kick = quarters is not None and any(
            _kick_beside(quarters, silent=grid, kick=0) for grid, _ in QUARTER_GRIDS
        )
        narrow = kickless or self._on_quarter_kick
        reach = KICKLESS_WINDOW if narrow else PHASE_WINDOW
        # A few frames around the prediction: plain floats, gathered once (round is
        # np.rint's half to even; index of the max is np.argmax's first one).
        offsets = range(-int(reach * frames), int(reach * frames) + 1)
        values = scores.tolist()
        near = [values[round(pred_back + o) % n] for o in offsets]
        local = max(near)
        k = near.index(local)
        err_frames = float(offsets[k])
        if 0 < k < len(near) - 1:
            a, b, c = near[k - 1], local, near[k + 1]
            den = a - 2 * b + c
            if den < 0:
                err_frames += 0.5 * (a - c) / den
        elif narrow:  # the best is beyond the window's edge: no peak near the beat
            err_frames = 0.0
        # The side of the beat: evidence summed over updates (see _side_margin); held
        # without the kick (faded, what was left of the drums' call was outvoted at the drop
        # by the stabs still in the fold).
        # A grid the performer marked (mark_downbeat) is not put to the vote.
        if not kickless and not self._pinned:
            self._side = self._side * math.exp(
                -self.config.update_interval / SIDE_TAU
            ) + self._side_margin(back, drums, frames, pred_back)
        if self._side < -SIDE_FLIP:
            self._side = -self._side
            self._pending_beat = None
            self._place(self.period, now - (pred_back + 0.5 * frames) * self.hop)
            return
        # A kick on every beat a quarter off a clock whose beats are silent (see
        # _to_quarter_kick): the side's vote is for half a beat only.
        if quarters is None or self._pinned:
            self._quarter_kicks.append(None)  # a reading each update: none here
        elif self._to_quarter_kick(quarters, frames, pred_back):
            return
        glob = int(np.argmax(scores))
        # On a quarter kick, a peak past the narrowed search may be jumped to (but not onto
        # the grid the kick is a quarter from: see _clock_is_kick_of).
        far_reach = KICKLESS_WINDOW if self._on_quarter_kick else PHASE_WINDOW
        far = abs(((glob - pred_back + n / 2) % n) - n / 2) > far_reach * frames
        # An early guess is trusted once a later one finds its beats where the clock has
        # them, and stays trusted until the clock is placed anew (see _place): on the short
        # envelope the best phase strays for an update now and then (most often half a beat
        # off: the side's to decide), while the clock's beats are still where they were.
        self._confirmed = self._confirmed or not far
        # A best phase about half a beat off is the side's to decide (hats, a
        # rolling bass or a fill often peak there for a while).
        half = abs(((glob - pred_back) / frames) % 1.0 - 0.5) < 0.15
        if (
            far
            and not half
            and not kickless
            and scores[glob] > local + 0.3 * sum(PHASE_W)
            and not self._clock_is_kick_of(back, frames, glob, pred_back)
        ):
            beat = now - glob * self.hop
            same = (
                self._pending_beat is not None
                and _grid_offset(beat, self._pending_beat, self.period) < 0.1
            )
            if not same:
                self._pending_beat, self._pending_since = beat, now
            # A performer's hold gives way only to a far phase that stays (a hard cut).
            if now - self._pending_since >= (MARK_JUMP_CONFIRM if self._pinned else JUMP_CONFIRM):
                self._pending_beat = None
                self._place(self.period, beat)
                return
        else:
            self._pending_beat = None
        # The previous beat is err_frames *earlier* than predicted when err > 0.
        err = -err_frames * self.hop
        self.period = 60.0 / bpm
        self.bpm = bpm
        if self.next_beat is not None:
            step = PLL_MAX_STEP * self.period
            self.next_beat += min(max(PLL_PHASE_GAIN * err, -step), step)

    def _retime(self, bands: np.ndarray, back: float) -> bool:
        """Relock at once to a sudden tempo change that the latest beats' onsets show.

        A new tempo on a bar line takes the tempo evidence (an autocorrelation
        over seconds) two or three seconds to follow, and the loop, folding
        many beats at the old period, does not see it either. The onsets do:
        each lands further from the clock's beat than the last. The onset of
        each of the last clock beats is sought around it (the envelope's peak
        within ``CHANGE_WINDOW`` of a period), the newest one on the line
        through the others; when all are clear onsets on one line whose period
        is more than ``RESEED`` from the clock's, the clock moves onto that
        line, the filter's belief to its tempo, and the tempo evidence forgets
        what came before the change (see :meth:`_forget_before_change`). A
        fill or a syncopation moves one onset off the line, not each further.
        """
        frames = self.period / self.hop
        w = CHANGE_WINDOW * frames
        margin = SPREAD / self.hop  # an onset's flux spreads this far: its window must be past
        m = bands.shape[1]
        seg = int(back + CHANGE_BEATS * frames + w) + 2
        if seg >= m:
            return False
        # The recent frames squared, each band voting with its shape as in the phase
        # scores; frames back, newest first.
        z = _standardised_sum(bands[:, m - seg :] ** 2, self._phase_w)[::-1]
        # The newest onset is the one after the clock's previous beat's, or, while
        # that is not all heard yet, the previous beat's own.
        for last in (back - frames, back):
            at = self._onsets_on_line(z, last, frames, w, margin)
            if at is not None:
                break
        else:
            return False
        # The line through the onsets (least squares, plain floats: four points),
        # beat index against frames back.
        i_mean = 0.5 * (CHANGE_BEATS - 1)
        a_mean = sum(at) / CHANGE_BEATS
        di = [i - i_mean for i in range(CHANGE_BEATS)]
        slope = sum(d * (a - a_mean) for d, a in zip(di, at, strict=True)) / sum(d * d for d in di)
        icept = a_mean - slope * i_mean
        period = -slope * self.hop
        resid = max(abs(a - icept - slope * i) for i, a in enumerate(at)) * self.hop
        if not period > 0 or abs(math.log(period / self.period)) <= RESEED:
            return False
        if not self.config.min_bpm <= 60.0 / period <= self.config.max_bpm:
            return False  # a walk out of the tempo range is no tempo of this show
        if resid > CHANGE_RESID * period:
            return False
        # The music has left the clock's tempo: its beats since the first of those
        # onsets are all but one empty (nothing within CHANGE_RESID of a period). In a
        # steady groove a walk along the 16ths, or a pad's sweep, can line up four
        # onsets too, but the clock's beats still sound.
        near = max(round(CHANGE_RESID * frames), 1)
        sounding = 0
        for j in range(CHANGE_BEATS - 1):
            centre = round(last + j * frames)
            if centre < near:
                continue  # not heard yet
            if float(z[centre - near : centre + near + 1].max()) > CHANGE_EMPTY:
                sounding += 1
        if sounding > 1:
            return False
        now = self._t_newest
        if now - at[0] * self.hop < self._steady_since + CHANGE_BEATS * self.period:
            return False  # a change is from a tempo the clock has held for a while
        self._forget_old_bars()  # (see _track_phase), before the new tempo's steady time
        self._change_at = self._steady_since = now - at[0] * self.hop
        bpm = 60.0 / period
        self._believe(bpm)
        self._pending_beat = None
        self._side = 0.0  # a new tempo's side evidence starts afresh, as at a re-seed
        self._place(period, now - (icept + slope * (CHANGE_BEATS - 1)) * self.hop)
        return True

    @staticmethod
    def _onsets_on_line(
        z: np.ndarray, last: float, frames: float, w: float, margin: float
    ) -> list[float] | None:
        """Frames back of the onsets of the clock beats before ``last`` (frames back,
        oldest first), then of the one on the line through them; None where one is not
        a clear onset or the newest is not all heard yet (see :meth:`_retime`)."""
        at: list[float] = []
        for j in range(CHANGE_BEATS - 1, -1, -1):
            if j:
                centre, half = last + j * frames, w
            else:
                step = (at[0] - at[-1]) / (len(at) - 1)
                centre, half = at[-1] - step, CHANGE_FIT * step
            if centre < half + margin:
                return None
            lo, hi = math.ceil(centre - half), min(math.floor(centre + half), len(z) - 1)
            if hi < lo:
                return None
            k = lo + int(np.argmax(z[lo : hi + 1]))
            if z[k] < CHANGE_Z:
                return None
            at.append(float(k))
        return at

    def _side_margin(
        self, bands: np.ndarray, drums: np.ndarray, frames: float, back: float
    ) -> float:
        """How much more the mid band (of ``bands``) gathers on the beat ``back`` frames
        ago than half a beat from it (standardised fold, older beats weighing ``SIDE_DECAY``).

        Which of two half-beat grids carries the beat: the snare, clap and
        chords mostly fall on beats, while the kick, the bass and the hats
        often sit on the off-beats (house and techno hats, a dubstep or
        afro kick, an off-beat bass) and outvote them in the full phase
        scores for seconds at a time. Measured on the three tuning sets, the
        mid band alone picks the right grid at 82 % or more of the updates
        of every piece but one, the full scores at 54 % in the worst. The
        high band's backbeat (see :meth:`_backbeat`) is added where the mid
        band's kick and bass outweigh the snare, the low band's leak into
        the mid band is taken out where the kick is syncopated (see
        :meth:`_leak_share`), a kick on every beat of one grid with beats of
        the other silent votes for its grid (see :func:`_kick_grid`), and where
        the low band marks both grids the drums' count votes (see
        :meth:`_drums_vote`).
        """
        w = int(SIDE_WINDOW * frames)
        # A few frames each side: plain floats (round is np.rint's half to even).
        on = [back + j for j in range(-w, w + 1)]
        half = 0.5 * frames
        rows = self._comb_rows_of(bands, frames)
        n = rows.shape[-1]  # the fold's length too
        at_beat = [round(x) % n for x in on]
        off_beat = [round(x + half) % n for x in on]
        mid = rows[1]
        # The low band's last beats, each beat's peak near either grid: read by the leak
        # rule and by the kick's vote.
        ons, offs = _grid_peaks(rows[0][:LEAK_BEATS], at_beat, off_beat)
        share = self._leak_share(ons, offs)
        if share > 0:
            # The part of the mid band the low band predicts (least squares over the
            # window's squared rows), scaled, taken out.
            low = rows[0]
            den = float(np.vdot(low, low))
            if den > 0:
                ratio = min(max(float(np.vdot(mid, low)) / den, 0.0), LEAK_RATIO_MAX)
                mid = np.maximum(mid - (LEAK_SCALE * share * ratio) * low, 0.0)
        margin = _fold_margin(_fold(mid, SIDE_DECAY), at_beat, off_beat)
        if margin is None:
            return 0.0
        shares = _grid_shares(ons, offs)  # read by the drums' vote and the kick's
        drums_vote = self._drums_vote(drums, frames, at_beat, off_beat, shares)
        backbeat = self._backbeat(bands[2], frames, on)
        kick = self._kick_vote(shares)
        return margin + SIDE_DRUMS * drums_vote + SIDE_BACKBEAT * backbeat + SIDE_KICK * kick

    def _to_quarter_kick(self, quarters: QuarterPeaks, frames: float, back: float) -> bool:
        """Move the clock (its last beat ``back`` frames back) onto a kick's grid a quarter
        beat off it (see :func:`_kick_beside`; ``quarters``: :meth:`_quarter_peaks` at the
        clock) found at ``QUARTER_HITS`` of the last ``QUARTER_READINGS`` updates; True if
        it moved. Not every update: the low band's peak near a beat wavers as the comb's
        window slides.

        A dembow's rim, bass and chords on the "a" of 1 and of 3 (and its rim on the
        "and" of 2 and 4) outweigh a kick on every beat in the phase scores, where the
        mid band weighs most, and the clock settles a quarter before the beat: the
        side's vote, half a beat away, never sees it (reggaeton on the rim, FluidR3 and
        TimGM6mb, F 0.0). A clock on the beat has something on every beat, the hats,
        a snare or the kick, even where its low band is silent on some (a breakbeat's,
        whose bass may mark a quarter grid); on the dembow's quarter grid beats 2 and 4
        fall on nothing at all.
        """
        beat = None
        for grid, shift in QUARTER_GRIDS:
            if _kick_beside(quarters, silent=0, kick=grid):
                beat = self._t_newest - (back + shift * frames) * self.hop
                break
        seen = self._quarter_kicks
        seen.append(beat)
        if beat is None:
            return False
        hits = sum(b is not None and _grid_offset(beat, b, self.period) < 0.1 for b in seen)
        if hits < QUARTER_HITS:
            return False
        self._side = 0.0  # the side's evidence was for the old grid
        self._pending_beat = None
        self._place(self.period, beat)
        return True

    def _clock_is_kick_of(
        self, bands: np.ndarray, frames: float, target: float, back: float
    ) -> bool:
        """Whether the clock (its last beat ``back`` frames back) is the kick's grid a
        quarter off a silent grid (see :func:`_kick_beside`) of a beat ``target`` frames
        back: a clock jumped there (to the dembow's "a", the phase scores' best) would only
        be moved back. Read also where a performer holds the clock (a far jump ends the
        hold): a hard cut to another grid is not the kick's grid a quarter off."""
        quarters = self._quarter_peaks(bands, frames, target)
        return any(
            _grid_offset(target + shift * frames, back, frames) < 0.1
            and _kick_beside(quarters, silent=0, kick=grid)
            for grid, shift in QUARTER_GRIDS
        )

    def _quarter_peaks(self, bands: np.ndarray, frames: float, back: float) -> QuarterPeaks:
        """Each of the last ``LEAK_BEATS`` beats' peak near a beat ``back`` frames back
        (grid 0) and near the grids ``QUARTER_GRIDS`` beside it (1: a quarter beat before,
        2: a quarter after), per band: ``[band][grid][beat]``, newest beat first (plain
        floats from one gather, as :func:`_grid_peaks` gives them)."""
        w = int(SIDE_WINDOW * frames)
        rows = self._comb_rows_of(bands, frames)
        # The three grids' phases (take wraps them at the fold's length; round(c) + k for
        # _side_margin's round(c + k), the same but at an exact half).
        centres = [back] + [back + shift * frames for _, shift in QUARTER_GRIDS]
        starts = [round(c) - w for c in centres]
        phases = np.arange(2 * w + 1) + np.array(starts)[:, None]
        near = rows[:, :LEAK_BEATS].take(phases, axis=-1, mode="wrap")  # ... x grids x phases
        return np.maximum.reduce(near, axis=3).transpose(0, 2, 1).tolist()  # type: ignore[no-any-return]

    def _drums_vote(
        self,
        drums: np.ndarray,
        frames: float,
        at_beat: list[int],
        off_beat: list[int],
        shares: tuple[float, float] | None,
    ) -> float:
        """How much more the drums' count gathers on the clock's beat (phases ``at_beat``)
        than half a beat off (``off_beat``), as the mid band's margin is read; 0 unless the
        low band marks every beat of both grids (``shares``, as :func:`_grid_shares` gives
        them) at a majority of the last ``LEAK_READINGS`` updates.

        There the low band cannot tell the kick from the bass and the kick's vote
        abstains, and a bright bass on the off-beats outvotes the kick and the clap in the
        mid band (tech house on TimGM6mb was read on the off-beat); their clicks rise
        across the upper mid, the bass's notes do not. A majority, not one reading: as the
        low band filled both grids for an update (a 3-3-2 kick) it once flipped a baile funk.
        """
        both = self._both_marks
        both.append(shares is not None and min(shares) >= KICK_STEADY)
        if 2 * sum(both) <= both.maxlen:
            return 0.0
        rows = self._powered_comb_rows(drums, frames)  # as the bands' rows are
        return _fold_margin(_fold(rows, SIDE_DECAY), at_beat, off_beat) or 0.0

    def _kick_vote(self, shares: tuple[float, float] | None) -> float:
        """:func:`_kick_grid` of the low band's last beats (``shares``: as
        :func:`_grid_shares` gives them), but never against the clock's grid once the low
        band has marked every one of its beats (at most of the last ``LEAK_READINGS``
        updates) since the clock was placed.

        A house kick dropping out under a bass on every off-beat leaves the clock's
        grid silent and the bass's steady, the very pattern of a clock half a beat off a
        dancehall's kick; but there the clock's grid never sounded on every beat. So
        the kick's silence on a grid it marked (within a flight's length,
        ``FLY_MAX_BEATS``) is a kick-out, and only the other cues decide.
        """
        # A kick a quarter from a silent grid holds the clock's grid from a softer level.
        steady = QUARTER_STEADY if self._on_quarter_kick else KICK_STEADY
        vote, clock_steady = _kick_grid(shares, steady)
        now = self._t_newest
        # Marked at most of the last readings (about 2 s), not once: a dancehall's bass
        # and rim fill the off-beats' beats now and then.
        marks = self._clock_marks
        marks.append(clock_steady)
        if 2 * sum(marks) > marks.maxlen:
            self._kick_heard = now
        if vote < 0 and now - self._kick_heard < FLY_MAX_BEATS * self.period:
            return 0.0
        return vote

    def _leak_share(self, ons: list[float], offs: list[float]) -> float:
        """How much of the low band's leak to take out of the mid band's side vote (0..1).

        The kick's and the bass's upper partials reach into the mid band (150-3000
        Hz), so the mid band votes where they fall as well as where the snare does.
        Where the low band marks every beat of one grid (four on the floor, a bass on
        every off-beat) that vote is sound, and with a soft clap under off-beat hats
        it is what holds the clock on the kick. Where it does not (afrobeat's kick on
        1, the "and" of 2 and of 3), the leak votes the kick's syncopation over the
        snare or rim on 2 and 4, and is taken out.

        The steadiness: of the last ``LEAK_BEATS`` beats, those the low band sounds in
        (4 at least), each beat's peak near the clock's beat and near half a beat off
        (``ons``, ``offs``: as :func:`_grid_peaks` gives them, newest beat first); of
        each grid the weakest but ``LEAK_MISSES`` (a one drop's empty beat 1, a fill's
        moved kick: one a bar; the weakest while fewer beats are heard), the steadier
        grid's over the median beat's peak. Each call adds that reading to the last
        ``LEAK_READINGS``, and their median maps linearly through ``LEAK_STEADY`` to the
        share.
        """
        if len(ons) < 4:
            return 0.0
        peaks = list(map(max, ons, offs))
        silent = LEAK_SOUNDING * max(peaks)
        sounding = [i for i, p in enumerate(peaks) if p > silent]
        if len(sounding) < 4:
            return 0.0
        top = statistics.median([peaks[i] for i in sounding])
        if not top > 0:
            return 0.0
        k = LEAK_MISSES if len(sounding) >= LEAK_BEATS else 0
        steadiest = max(
            sorted([ons[i] for i in sounding])[k], sorted([offs[i] for i in sounding])[k]
        )
        readings = self._steadiness
        readings.append(steadiest / top)
        steady = statistics.median(readings)
        lo, hi = LEAK_STEADY
        return min(max((hi - steady) / (hi - lo), 0.0), 1.0)

    def _backbeat(self, hi: np.ndarray, frames: float, on: list[float]) -> float:
        """How much more the high band alternates from beat to beat on the clock's
        grid than on the grid half a beat off (-1..1; ``on``: frames back around
        the clock's beat).

        The backbeat: a snare or clap on 2 and 4 but not on 1 and 3 makes
        neighbouring beats differ, while what plays on the off-beats (closed
        hats, a shaker) plays on every one. Where the mid band is torn (a
        bass or kick on the off-beats under the snare), the snare's noise
        above them still alternates. The band is folded at two beats, the
        spans of each half of a four-beat bar apart (each older span of a half
        weighing ``SIDE_DECAY`` squared: the memory of a few bars, like the
        side's own fold). In each half, a grid's alternation is the
        second beat's point less the first's, relative to the half's strongest
        point, so a loud snare outweighs an open hat on the "and" of 1 and 3.
        A backbeat falls on the same beat of both halves (2 and 4): a grid
        alternates by the geometric mean of its two halves when they agree,
        and not at all when they differ in sign, as an accent, a gap or a fill
        once a bar (techno's rim on the "and" of 3) or off-beat kicks on the
        "and" of 2 and of 3 do.
        """
        view = self._reversed(hi, squared=True)
        if math.ceil(2.0 * frames) > view.shape[-1]:
            return 0.0  # a tempo led below the range's floor (a ramp): two beats do not fit
        rows = _comb_rows(view, hi.shape[-1], 2.0 * frames)
        # Only the spans where the band sounds (an instrument coming in alternates
        # for a span or two by chance).
        energy = np.add.reduce(rows, axis=1)
        sounding = energy > SIDE_BACKBEAT_LEVEL * float(energy.max())
        halves = []
        for k in (0, 1):
            half = rows[k::2][sounding[k::2]]
            if len(half) < SIDE_BACKBEAT_SPANS:
                return 0.0
            fold = _fold(half, SIDE_DECAY * SIDE_DECAY)
            n = len(fold)
            values = (fold - float(fold.min())).tolist()
            a, b, c, d = (
                max([values[round(x + s * frames) % n] for x in on]) for s in (0.0, 0.5, 1.0, 1.5)
            )
            top = max(a, b, c, d)
            if not top > 0:
                return 0.0
            halves.append(((c - a) / top, (d - b) / top))
        (on_1, off_1), (on_2, off_2) = halves
        return _backbeat_agreement(on_1, on_2) - _backbeat_agreement(off_1, off_2)

    def _comb_rows_of(self, bands: np.ndarray, period: float) -> np.ndarray:
        """:func:`_comb_rows` of ``bands`` to the ``PHASE_POWER`` at ``period``.

        The phase scores and the side's fold read the same rows at each
        update: gathered once (the last bands and period are remembered).
        """
        last = self._phase_rows
        if last is not None and last[0] is bands and last[1] == period:
            return last[2]  # type: ignore[no-any-return]
        rows = self._powered_comb_rows(bands, period)
        self._phase_rows = (bands, period, rows)
        return rows

    def _powered_comb_rows(self, env: np.ndarray, period: float) -> np.ndarray:
        """:func:`_comb_rows` of ``env`` (frames, or bands x frames) to the ``PHASE_POWER``
        at ``period``, gathered afresh (:meth:`_comb_rows_of` keeps the bands')."""
        if PHASE_POWER == 2.0:  # squared as copied, a pass less
            view = self._reversed(env, squared=True)
        else:
            view = self._reversed(env**PHASE_POWER)
        return _comb_rows(view, env.shape[-1], period)

    def _believe(self, bpm: float) -> None:
        """The tempo filter's belief moved to ``bpm`` (the drift kernel around it), and the
        ramp's readings forgotten: a tempo known from elsewhere (a relock, a performer)."""
        belief = np.zeros_like(self._belief)
        i = int(np.argmin(np.abs(self._bpms - bpm)))
        half_k = len(self._drift) // 2
        lo, hi = max(i - half_k, 0), min(i + half_k + 1, len(belief))
        belief[lo:hi] = self._drift[lo - i + half_k : hi - i + half_k]
        self._belief = belief / belief.sum()
        self._tempo_hist.clear()

    def _set_prior(self, bpm: float) -> None:
        """The log-normal tempo prior, centred on ``bpm`` (the show's, or a performer's lean)."""
        octaves = np.log2(self._bpms / bpm) / self.config.prior_octaves
        self._prior = np.exp(-0.5 * octaves**2)

    def _lean_octaves(self, bpm: float) -> int | None:
        """Whole octaves from ``bpm`` up to the performer's lean (set_octave) where ``bpm``
        is within ``LEAN_KEEP`` of its tempo or an octave of it; None otherwise, or with
        no lean."""
        if self.lean_bpm is None:
            return None
        octaves = math.log2(self.lean_bpm / bpm)
        k = round(octaves)
        return k if abs(octaves - k) <= math.log2(1.0 + LEAN_KEEP) else None

    def _end_lean(self, bpm: float) -> None:
        """At a new tempo: a performer's octave lean ends unless ``bpm`` is its tempo or an
        octave of it: a next track at another tempo is read with the show's prior again."""
        if self.lean_bpm is not None and self._lean_octaves(bpm) is None:
            self.end_octave()

    def set_octave(self, factor: float) -> bool:
        """A performer's "half time" (``factor`` 0.5) or "double time" (2): the tempo
        read at that octave from now on.

        The filter's belief moves to the new tempo and the clock to the new period, from
        the current bar line (halving keeps every other beat); from then on the tempo is
        read in that octave (``lean_bpm``: an estimate an octave away is taken at the
        lean's octave, and the tempo prior leans there too), so that where two octaves
        fit the music about as well (lo-fi under noise, a dembow, a one drop) the
        performer's is kept. Which beats are the beat at the new tempo (every other
        beat: the ones or the twos) is the side vote's to find, as at any new tempo (a
        held downbeat ends: mark the one anew where it needs it); the bar keeps its
        length in beats. The lean ends at a tempo change to a tempo not an octave of it
        (the next track), at :meth:`end_octave`, or with a fresh tracker. False (nothing
        changes) until the first full estimate, or when the new tempo is outside
        ``min_bpm``..``max_bpm``.
        """
        cfg = self.config
        if self.period <= 0 or not self._settled or not factor > 0:
            return False
        bpm = self.bpm * factor
        if not cfg.min_bpm <= bpm <= cfg.max_bpm:
            return False
        self.lean_bpm = bpm
        self._set_prior(bpm)
        self._believe(bpm)
        self._forget_bars(changed=True)  # the beats counted no longer keep step with bars
        self._pinned = False
        self._side = 0.0
        self._pending_beat = None
        self._steady_since = self._t_newest
        # The current bar line (last_downbeat lags a bar line _decide_bar moves).
        last = self.last_beat if self.last_beat is not None else self._t_newest
        anchor = last - self.beat_in_bar * self.period
        period = 60.0 / bpm
        # The next beat: the first of the new grid the stream has not passed, and not the
        # beat just sounded again.
        after = max(self._t_newest, last + 0.25 * period)
        nb = anchor + math.ceil((after - anchor) / period) * period
        self.period, self.bpm, self.next_beat = period, bpm, nb
        # The anchor stays a bar line: the next beat is m beats of the new tempo after it.
        m = round((nb - anchor) / period)
        self.beat_in_bar = (m - 1) % self.beats_per_bar
        return True

    def _in_lean_octave(self, bpm: float) -> float:
        """``bpm`` moved to the octave of the performer's lean (set_octave), where it is
        within ``LEAN_KEEP`` of an octave of it; as it is otherwise."""
        k = self._lean_octaves(bpm)
        return bpm * 2.0**k if k else bpm

    def end_octave(self) -> bool:
        """The show's ``prior_bpm`` again; False when no octave lean was set."""
        if self.lean_bpm is None:
            return False
        self.lean_bpm = None
        self._set_prior(self.config.prior_bpm)
        return True

    def _seed(self, period: float, back: np.ndarray) -> None:
        frames = period / self.hop
        scores = self._phase_scores(back, frames, PHASE_DECAY)
        best = int(np.argmax(scores))
        self._side = 0.0  # the side's evidence starts afresh (see _track_phase)
        beat = self._t_newest - best * self.hop
        self._pending_beat = None
        self._steady_since = self._t_newest
        self._place(period, beat)

    def _place(self, period: float, beat: float) -> None:
        """Set the period and the next beat from a known beat (never repeating one).

        A clock placed anew (a seed, a jump, a side flip, a tempo change) beats before
        the first full estimate only once a later estimate agrees with it. It is the
        tracker's: a performer's held downbeat ends (a side flip cannot happen while it
        holds), and so does an octave lean unless the period is of its octaves.
        """
        self._confirmed = False
        self._pinned = False
        self._quarter_kicks.clear()
        self._kick_heard = -math.inf  # last marked every beat of the clock's grid (_kick_vote)
        self._clock_marks.clear()
        self._end_lean(60.0 / period)
        self.period = period
        self.bpm = 60.0 / period
        after = self._t_newest if self.last_beat is None else self.last_beat + 0.5 * period
        k = math.ceil((after - beat) / period)
        self.next_beat = beat + k * period

    # ------------------------------------------------------------------- bars

    def _bar_frame(self, lo: float, mid: float) -> None:
        """Add a frame near the last beat to that beat's statistics, for each bar length."""
        keep = 1.0 - self._bar_k
        count = self._beat_count
        mids = self._meter_mid
        frames = self._meter_frames
        for b, lows in self._meter_low.items():
            j = count % b
            mb = mids[b]
            fb = frames[b]
            for i in range(b):
                lows[i] *= keep
                mb[i] *= keep
                fb[i] *= keep
            lows[j] += lo
            mb[j] += mid
            fb[j] += 1.0

    def _decide_bar(self) -> None:
        """At a bar line: choose the bar length (if automatic) and which beat is the one."""
        if self.config.beats_per_bar == 1:  # every beat is a bar line
            self.beats_per_bar, self.beat_in_bar = 1, 0
            return
        if self._bars_forgotten:
            if not all(all(counts) for counts in self._meter_frames.values()):
                return  # not every beat of a bar heard since the tempo changed: no say yet
            self._bars_forgotten = False
        beats = self.config.beats_per_bar
        if not beats and self._compound():
            beats = 2  # 6/8: two dotted-quarter beats a bar
        low_means, mid_means, harm_means = self._meter_means()
        if not beats:
            # How much the beats of a bar differ in drums and in chord changes, per bar
            # length: counted in the true bar length, the kick, the backbeats and the
            # chord changes gather on a few of its beats; in the wrong one they spread
            # (a jazz waltz's kick is soft and its bass on every beat, but its chords
            # change every other bar: every sixth beat, on one beat of three and on
            # two of four).
            contrast = {
                b: _contrast(low_means[b])
                + _contrast(mid_means[b])
                + HARMONY_WEIGHT * _contrast(harm_means[b])
                for b in (3, 4)
            }
            # Four unless three fits clearly better; a bar of three already chosen is
            # kept while it fits better at all (a flip and back loses the bar lines).
            favour = METER_HOLD if self.beats_per_bar == 3 else METER_FOUR
            beats = 3 if contrast[3] > favour * contrast[4] else 4
        if self._pinned:  # the performer's one stays beat 1, whatever the bar's length
            self.beats_per_bar = beats
            self.beat_in_bar = (self._beat_count - self._mark_count) % beats
            return
        stats = (low_means[beats], mid_means[beats], harm_means[beats])
        units = _units(np.array(stats))
        # A band that barely differs between beats (four on the floor's kick) has little
        # to say: its few percent of fills and noise, scaled to unit length, would vote
        # as loud as a backbeat.
        units *= np.array([[min(_contrast(x) / BAR_FULL, 1.0)] for x in stats])
        # The rotation r: beat count c is beat (c - r) % beats of the bar.
        # (x[rolls[r]] is np.roll(x, -r).) Every rotation of every
        # band against its template, as a batch of dot products: (3, rotations).
        rolls, templates = _bar_templates(beats)
        rotated = units[:, rolls][:, :, None, :]
        lows, mids, harm = np.matmul(rotated, templates)[..., 0, 0].tolist()
        scores = [
            lo + mid + HARMONY_WEIGHT * h for lo, mid, h in zip(lows, mids, harm, strict=True)
        ]
        r = scores.index(max(scores))  # np.argmax's first
        if beats == self.beats_per_bar:
            # Keep the bar line already chosen unless another fits clearly better.
            current = (self._beat_count - self.beat_in_bar) % beats
            if scores[r] < scores[current] + BAR_MARGIN:
                r = current
        self.beats_per_bar = beats
        self.beat_in_bar = (self._beat_count - r) % beats

    def _meter_means(self) -> tuple[dict[int, list[float]], ...]:
        """The low band, mid band and harmonic change per beat of the bar, per bar length,
        as means over each beat's own frames (or boundaries). As sums they were uneven: at
        a bar line the beat just heard has a bar fewer of frames in its sum (about 53
        against 59 at 126 BPM), and the chord changes, decayed at every beat, weigh the
        last beats up to a sixth more at 125 BPM; either leans the one."""
        out = []
        for sums, counts in (
            (self._meter_low, self._meter_frames),
            (self._meter_mid, self._meter_frames),
            (self._meter_harm, self._meter_bounds),
        ):
            out.append(
                {
                    b: [v / c if c > 0 else 0.0 for v, c in zip(acc, counts[b], strict=True)]
                    for b, acc in sums.items()
                }
            )
        return tuple(out)

    def _compound(self) -> bool:
        """Beats divided in three (6/8), not two: over the last beats, the snare, chords
        and hats gather a third and two thirds into the beat and leave its half empty
        (swing fills only the two thirds, so it does not count)."""
        hist = self.history()
        m = hist.shape[1]
        if self.last_beat is None or self.period <= 0 or m < 16:
            return False
        env = hist[1] + hist[2]
        starts = self.last_beat - self.period * np.arange(1, COMPOUND_BEATS + 1)
        times = starts[:, None] + COMPOUND_AT[None, :] * self.period
        idx = np.rint(m - 1 - (self._t_newest - times) / self.hop).astype(np.intp)
        idx = idx[(idx >= 1).all(axis=1) & (idx < m - 1).all(axis=1)]
        if len(idx) < COMPOUND_BEATS // 2:
            return False
        # The strongest of three frames around each point (the grid is not exact).
        near = np.maximum(np.maximum(env[idx - 1], env[idx]), env[idx + 1]).mean(axis=0)
        third, half, two_thirds = near.tolist()
        return min(third, two_thirds) > COMPOUND_RATIO * half


COMPOUND_BEATS = 8  # beats looked back on for the subdivision
COMPOUND_AT = np.array([1.0 / 3.0, 0.5, 2.0 / 3.0])  # points of the beat compared
COMPOUND_RATIO = 2.0  # the thirds this much stronger than the half: compound

# Templates per bar length (low band, mid band), beat 1 first: the kick leans on
# the one, the snare or clap on the backbeats.
TEMPLATES = {
    2: (np.array([1.0, -1.0]), np.array([-1.0, 1.0])),
    3: (np.array([1.0, -0.5, -0.5]), np.zeros(3)),  # chords on 2 and 3 and bass on 1 cancel
    4: (np.array([1.0, -0.6, 0.2, -0.6]), np.array([-0.5, 0.5, -0.5, 0.5])),
}


def _bar_acf(acf: np.ndarray, period: float, limit: float) -> float | None:
    """The autocorrelation at the likelier bar of ``period`` (the better of
    ``BAR_BEATS`` beats, read between lags), or None while a lag is past ``limit``."""
    best = -math.inf
    for beats in BAR_BEATS:
        lag = beats * period
        if lag >= limit:
            return None
        best = max(best, _acf_at(acf, lag))
    return best


def _offbeat_shares(
    envs: tuple[np.ndarray, ...],
    which: list[int],
    periods: list[float],
    kinds: list[int],
) -> list[float | None]:
    """Per row (envelope ``envs[which]`` at a period in frames): the median over its last
    beats of the envelope's peak around half a beat after its strongest phase (of kind
    ``_THIRDS``, the strongest of that and a third and two thirds on), over the median of
    its peak on that phase. Of kind ``_FLOORED``, both are read above the envelope's floor,
    the weaker of the medians a quarter and three quarters on (the half beat's at least 0);
    of kind ``_PLAIN``, as they are.

    Each row's phase is its fold's peak over the last ``OFFBEAT_BEATS`` beats its window
    holds; the medians are over those beats but the newest (its half beat may be to come).
    None where that is under ``OFFBEAT_MIN`` beats, or nothing sounds on the phase (above
    the floor, where read) at most beats (a loud accent on few). One gather for all rows
    (a handful of tempi, not none): the beats a row lacks sort last, out of its median.
    """
    m = len(envs[0])
    env = np.concatenate(envs)  # one flat gather: a row reads from its envelope's base on
    base = (np.array(which) * m)[:, None, None]
    p = np.array(periods)
    counts = np.minimum((m - 1) // p - 1, OFFBEAT_BEATS).astype(np.intp)
    most = int(counts.max())
    if most < OFFBEAT_MIN:
        return [None] * len(periods)
    starts = (m - 1) - (np.arange(1, most + 1) * p[:, None])  # rows x beats, newest first
    lacking = np.arange(most) >= counts[:, None]  # beats before a row's window
    width = math.ceil(float(p.max()))
    # (Indices past the envelope's ends, for lacking beats only, are clipped.)
    idx = np.rint(starts[:, :, None] + np.arange(width)).astype(np.intp)
    values = env.take(np.clip(idx, 0, m - 1, out=idx) + base)
    np.copyto(values, 0.0, where=lacking[:, :, None])
    folds = np.add.reduce(values, axis=1)
    np.copyto(folds, -np.inf, where=np.arange(width) >= np.ceil(p)[:, None])  # past its period
    phase = folds.argmax(axis=1)
    # The points read per beat (see _OFFBEAT_POINTS); the newest beat is left out (its half
    # may be to come).
    at = _OFFBEAT_POINTS[kinds]
    centres = starts[:, None, 1:] + (phase[:, None] + at * p[:, None])[:, :, None]
    reach = np.maximum((OFFBEAT_WINDOW * p).astype(np.intp), 1)[:, None]
    far = np.arange(-int(reach.max()), int(reach.max()) + 1)
    around = np.minimum(np.maximum(far, -reach), reach)
    idx = np.rint(centres).astype(np.intp)[..., None] + around[:, None, None, :]
    np.clip(idx, 0, m - 1, out=idx)
    peaks = np.maximum.reduce(env.take(idx + base[..., None]), axis=3)
    np.copyto(peaks, np.inf, where=lacking[:, None, 1:])
    peaks.sort(axis=2)
    n = counts - 1  # beats read per row
    r = np.arange(len(p))[:, None]
    points = np.arange(4)
    medians = 0.5 * (
        peaks[r, points, np.maximum((n - 1) // 2, 0)[:, None]]
        + peaks[r, points, np.maximum(n // 2, 0)[:, None]]
    )
    out: list[float | None] = []
    for count, kind, (on, half, x, y) in zip(counts.tolist(), kinds, medians.tolist(), strict=True):
        if count < OFFBEAT_MIN:  # (its medians may be inf)
            out.append(None)
            continue
        if kind == _FLOORED:  # x, y: a quarter and three quarters on; the weaker is the floor
            floor = min(x, y)
            on, off = on - floor, max(half - floor, 0.0)
        else:  # x, y: the thirds, or the half again
            off = max(half, x, y)
        out.append(off / on if on > 0 else None)
    return out


def _acf_at(acf: np.ndarray, lag: float) -> float:
    """The autocorrelation at a fractional ``lag`` (linear between frames; ``lag + 1``
    inside it)."""
    j = int(lag)
    below = float(acf[j])
    return below + (float(acf[j + 1]) - below) * (lag - j)


def _harmony_template(b: int) -> np.ndarray:
    """Chords change on the one (bars of two or more)."""
    return np.array([1.0] + [-1.0 / (b - 1)] * (b - 1))


def _folds(
    view: np.ndarray, m: int, periods: np.ndarray, decay: float
) -> tuple[np.ndarray, np.ndarray]:
    """Scores per phase along a comb of each period, all periods at once.

    ``view`` is a :meth:`BeatTracker._reversed` envelope of ``m`` frames.
    ``out[..., f, p]``: the mean of the envelope ``p`` frames before the
    newest and every ``periods[f]`` frames further back, each older beat
    weighted ``decay`` times the next. Phases run to the longest period;
    ``valid[f, p]`` marks the phases of period f (p below its ceiling). Every
    beat of a period is inside the envelope for its own phases (there are
    ``(m - 1) // period`` of them), so each phase has the same weight. One
    gather of rows and one matrix product for every period and band.
    """
    beats = np.maximum(((m - 1) / periods).astype(np.intp), 1)
    width = math.ceil(float(periods.max()))
    ks = np.arange(int(beats.max()))
    inside = ks < beats[:, None]
    weights = np.where(inside, decay**ks, 0.0)  # (periods, beats)
    offsets = np.where(inside, np.rint(periods[:, None] * ks), 0).astype(np.intp)
    rows = view[..., offsets, :width]  # (..., periods, beats, phases)
    total = np.matmul(weights[:, None, :], rows)[..., 0, :]
    valid = np.arange(width) < np.ceil(periods)[:, None]
    return total / weights.sum(axis=1)[:, None], valid


# Comb weights of _fold per (decay, beats): few distinct values, as _folds computes them.
_FOLD_WEIGHTS: dict[tuple[float, int], tuple[np.ndarray, np.ndarray]] = {}

# Each recent beat's peak per band near three grids (BeatTracker._quarter_peaks).
QuarterPeaks = list[list[list[float]]]  # [band][grid][beat]


def _comb_rows(view: np.ndarray, m: int, period: float) -> np.ndarray:
    """The rows of a :meth:`BeatTracker._reversed` envelope of ``m`` frames at each
    beat of one period, as :func:`_folds` gathers them (..., beats, phases); every
    phase is the period's own (the width is its ceiling). Plain integers for the
    few offsets (``round`` is ``np.rint``'s half to even)."""
    beats = max(int((m - 1) / period), 1)
    return view[..., [round(period * k) for k in range(beats)], : math.ceil(period)]


def _compound_beat(fold: np.ndarray, period: float) -> bool:
    """Whether a fold (phases of one beat) has a compound beat's shape: 6/8's long-short.

    In 6/8 the dotted-quarter beat holds three 8ths; a ballad's kick, bass and
    piano sound on the first and third and leave the second to the hats (not
    in the backbone): read from the fold's peak, of the two phases a third and
    two thirds of a period away (the 8ths between two of its beats, whichever
    the peak is) one is silent (under ``SIX_SILENT`` of the peak) and the other
    sounds (over ``SIX_SOUNDING``). A binary groove read at two thirds of its
    tempo has one of its own beats in each third of the slower's (beats 1, 2
    and 3 fall on its first, third and second), so no third is silent there.
    Phases wrap at the fold's length (its period rounded up; under a frame off).
    """
    n = math.ceil(period)
    top = int(np.argmax(fold[:n]))
    peak = float(fold[top])
    if peak <= 0:
        return False
    w = max(int(SIX_WINDOW * period), 1)
    row = fold[:n].tolist()
    thirds = [
        max(row[round(top + period * q + d) % n] for d in range(-w, w + 1)) / peak
        for q in (1 / 3, 2 / 3)
    ]
    return min(thirds) < SIX_SILENT and max(thirds) > SIX_SOUNDING


def _fold(rows: np.ndarray, decay: float) -> np.ndarray:
    """:func:`_folds` of one period from its :func:`_comb_rows` (..., phases), the
    same numbers: the weights and their sum come from a table."""
    beats = rows.shape[-2]
    key = (decay, beats)
    entry = _FOLD_WEIGHTS.get(key)
    if entry is None:
        ks = np.arange(beats)
        weights = np.where(ks < np.array([beats])[:, None], decay**ks, 0.0)
        entry = (weights, weights.sum(axis=1)[:, None])
        for a in entry:  # shared by every tracker: read only
            a.flags.writeable = False
        if len(_FOLD_WEIGHTS) < 4096:
            _FOLD_WEIGHTS[key] = entry
    weights, mass = entry
    return np.matmul(weights, rows)[..., 0, :] / mass[0]


# Per bar length: index arrays rotating a bar's beats r to the left (np.roll(x, -r) is
# x[rolls[r]]), and the low, mid and harmony templates shaped for a batch of dot
# products with the rotations (see _decide_bar). A bar length the show sets beyond
# four (5/4, 7/8) has the kick on the one and the chords changing there, no backbeat.
_BAR_TEMPLATES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _bar_templates(b: int) -> tuple[np.ndarray, np.ndarray]:
    entry = _BAR_TEMPLATES.get(b)
    if entry is None:
        low, mid = TEMPLATES.get(b) or (_harmony_template(b), np.zeros(b))
        rolls = np.array([np.roll(np.arange(b), -r) for r in range(b)])
        rows = np.array([low, mid, _harmony_template(b)])[:, None, :, None]
        entry = _BAR_TEMPLATES[b] = (rolls, rows)
    return entry


def _standardised_sum(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each row standardised over its last axis (as np.mean and np.std compute it; a
    flat row is left as it is), weighted by ``weights`` (a column) and summed: each
    band votes with its shape, not its loudness."""
    count = rows.shape[1]
    dev = rows - np.add.reduce(rows, axis=1, keepdims=True) / count
    # The root of each row's mean square, as plain floats (a handful of rows).
    roots = [math.sqrt(v / count) for v in np.add.reduce(dev * dev, axis=1).tolist()]
    sd = np.array([[r if not r <= 0 else 1.0] for r in roots])
    return np.add.reduce(dev / sd * weights, axis=0)


def _units(rows: np.ndarray) -> np.ndarray:
    """Each row less its mean, to unit length (left as it is when all equal).

    As numpy computes it row by row (sum, mean, the dot product with itself,
    root), in a few calls for all rows: a batch of dot products is each row's
    own dot product, to the last bit or so (a BLAS dot product's last bit
    depends on where its operands lie in memory; the tracker's output is the
    same on every piece of the four sets).
    """
    d = rows - (np.add.reduce(rows, axis=1) / rows.shape[1])[:, None]
    norm = np.sqrt(np.matmul(d[:, None, :], d[:, :, None])[:, 0])
    return d / np.where(norm > 0, norm, 1.0)


def _grid_peaks(
    low: np.ndarray, at_beat: list[int], off_beat: list[int]
) -> tuple[list[float], list[float]]:
    """Each beat's peak of ``low`` (comb rows, newest beat first) near the clock's beat
    (the phases ``at_beat``) and near half a beat off (``off_beat``)."""
    # One gather for both grids; a few beats: plain floats from there.
    m = len(at_beat)
    near = low[:, at_beat + off_beat]
    return (
        np.maximum.reduce(near[:, :m], axis=1).tolist(),
        np.maximum.reduce(near[:, m:], axis=1).tolist(),
    )


def _kick_beside(quarters: QuarterPeaks, silent: int, kick: int) -> bool:
    """Whether, of the grids of :meth:`BeatTracker._quarter_peaks` (``quarters``), the low
    band marks every beat of grid ``kick`` (each of the last ``LEAK_BEATS`` but
    ``KICK_MISSES`` at ``QUARTER_STEADY`` of the loudest beat of the two grids) while
    grid ``silent`` is silent in every band, the low band too, on more than
    ``KICK_MISSES`` of them (see :func:`_silent_beats`)."""
    shares = _grid_shares(quarters[0][silent], quarters[0][kick])
    if shares is None or shares[1] < QUARTER_STEADY:
        return False
    return _silent_beats([(band[silent], band[kick]) for band in quarters]) > KICK_MISSES


def _silent_beats(bands: list[tuple[list[float], list[float]]]) -> int:
    """How many beats are silent in every band: each band's beats' peaks on one grid
    and on another (as :func:`_grid_peaks` gives them), a beat silent where on the first
    grid each band is under ``KICK_EMPTY`` of its loudest beat on either grid."""
    loudest = [0.0] * len(bands[0][0])
    for ons, offs in bands:
        top = max(max(ons), max(offs))
        if top > 0:
            loudest = [max(a, v / top) for a, v in zip(loudest, ons, strict=True)]
    return sum(v < KICK_EMPTY for v in loudest)


def _kick_grid(
    shares: tuple[float, float] | None, steady: float = KICK_STEADY
) -> tuple[float, bool]:
    """Which grid the low band marks on every beat while leaving the other's silent: 1
    the clock's, -1 the other, 0 neither; and whether it marks every beat of the clock's
    (``shares``: :func:`_grid_shares` of the low band's peak in each of the last beats
    near the clock's beat and half a beat off; squared, as the phase scores' rows are at
    ``PHASE_POWER`` 2, so the thresholds are shares of power). ``steady``: the share
    that marks a beat of the clock's grid (``KICK_STEADY``; lower where the clock is the
    kick's grid a quarter from a silent one, see :meth:`BeatTracker._track_phase`).

    A kick on every beat sounds in all of the last ``LEAK_BEATS`` beats of its grid (but
    ``KICK_MISSES``: a fill); a bass or rim line on some off-beats (a dembow's, a
    dancehall's) leaves more of the other's silent, though in the mid and high bands its
    notes outvote the kick. A bass on every off-beat (tech house) sounds on both grids
    while the kick plays, a syncopated kick (afrobeat, drum & bass) on neither steadily: no
    vote. Until ``LEAK_BEATS`` beats are heard, none either. The band cannot tell a kick
    from a bass: see :meth:`BeatTracker._kick_vote` for a kick dropping out.
    """
    if shares is None:
        return 0.0, False
    on, off = shares
    if on >= steady and off < KICK_EMPTY:
        return 1.0, True
    if off >= KICK_STEADY and on < KICK_EMPTY:
        return -1.0, False
    return 0.0, on >= steady


def _grid_offset(a: float, b: float, period: float) -> float:
    """How far apart the grids of beats at ``a`` and at ``b`` lie, in periods (0..0.5)."""
    return abs(((a - b) / period + 0.5) % 1.0 - 0.5)


def _grid_shares(ons: list[float], offs: list[float]) -> tuple[float, float] | None:
    """The (``KICK_MISSES`` + 1)-th weakest of the last ``LEAK_BEATS`` beats of each grid
    (``ons``: the clock's, ``offs``: half a beat off, as :func:`_grid_peaks` gives them),
    relative to the loudest; None while fewer beats are heard or all are silent."""
    if len(ons) < LEAK_BEATS:
        return None
    top = max(max(ons), max(offs))
    if not top > 0:
        return None
    return sorted(ons)[KICK_MISSES] / top, sorted(offs)[KICK_MISSES] / top


def _fold_margin(fold: np.ndarray, at_beat: list[int], off_beat: list[int]) -> float | None:
    """How much higher a fold peaks near the beat (phases ``at_beat``) than half a beat
    off (``off_beat``), in its standard deviations over the phases (None: a flat fold)."""
    dev = fold - np.add.reduce(fold) / len(fold)
    sd = math.sqrt(float(np.dot(dev, dev)) / len(fold))
    if not sd > 0:
        return None
    values = dev.tolist()
    return (max([values[i] for i in at_beat]) - max([values[i] for i in off_beat])) / sd


def _backbeat_agreement(first: float, second: float) -> float:
    """A grid's two-beat alternation, 0..1, from its two halves' (each -1..1): their
    geometric mean where they agree in sign, less ``SIDE_ALT_FLOOR`` (a level's drift
    is no backbeat); none where they differ."""
    if first * second <= 0:
        return 0.0
    return max(math.sqrt(first * second) - SIDE_ALT_FLOOR, 0.0) / (1.0 - SIDE_ALT_FLOOR)


def _contrast(x: list[float]) -> float:
    """``std / mean`` of a few values (a bar's beats), as numpy computes it: below 8
    values its sums run in order, so plain floats give the same numbers."""
    n = len(x)
    m = sum(x) / n
    if not m > 0:
        return 0.0
    return math.sqrt(sum([(v - m) * (v - m) for v in x]) / n) / m
