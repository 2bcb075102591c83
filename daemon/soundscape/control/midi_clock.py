"""MIDI clock in: tempo from 24-per-quarter-note ticks, transport, song position.

Tick arrival times are rough: JACK hands MIDI over once per period (5.3 ms at
256 frames / 48 kHz), so a single tick interval at 128 BPM (19.5 ms) can be
off by a quarter. :class:`TempoEstimator` fits a straight line through the
tick times of the last couple of seconds (least squares: tick index → time,
refitted without outliers so a stalled sender's late burst cannot tilt it);
the slope is the tick period, and the fitted line gives jitter-free beat times.
A short fit over the last beat watches for real tempo changes and restarts the
window when it keeps disagreeing, so a new tempo settles within about a beat.

Pure logic: every method takes the arrival time, so tests feed synthetic,
jittered sequences. :class:`MidiClock` adds transport state and listeners for
the beat clock (``subscribe(cb(event, bpm, t))``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import structlog

log = structlog.get_logger(__name__)

PPQN = 24
SIXTEENTH_TICKS = 6  # song position pointer counts sixteenths ("MIDI beats")
OUTLIER_FLOOR = 0.0015  # seconds: residuals below this are jitter, never outliers
CHANGE_CONFIRM = 12  # ticks the last beat must disagree before the window restarts
REALIGN_CONFIRM = 4  # flat ticks a whole period off the line that count as a loss
SNAP = 0.35  # periods: how near a whole number of periods a residual must be
_TAIL_X = np.arange(REALIGN_CONFIRM, dtype=float)

# Events passed to listeners, with what they mean (docs/midi.md is generated from this).
CLOCK_EVENTS: dict[str, str] = {
    "start": "Start received: position back to 0; the next tick is beat 0.",
    "stop": "Stop received (tempo keeps being tracked while ticks come).",
    "continue": "Continue received: running again from the current position.",
    "position": "Song position pointer received (see `MidiClock.ticks`).",
    "tempo": "The tempo estimate moved by at least `tempo_step` BPM (or first settled); "
    "`t` is the de-jittered time of the tick that moved it.",
    "beat": "A quarter note while running; `t` is the de-jittered time of its tick.",
    "lost": "No tick for `timeout` seconds: tempo unknown until ticks return.",
}

Listener = Callable[[str, float | None, float], None]


class TempoEstimator:
    """Tick times in, BPM out (least-squares over a sliding window)."""

    def __init__(
        self,
        *,
        window: float = 2.0,
        max_ticks: int = 4 * PPQN * 2,
        min_ticks: int = PPQN // 2,
        timeout: float = 0.5,
        change_ratio: float = 0.02,
    ) -> None:
        self.window = window
        self.max_ticks = max_ticks
        self.min_ticks = min_ticks
        self.timeout = timeout
        self.change_ratio = change_ratio
        self._ticks: deque[tuple[int, float]] = deque()
        self._index = 0
        self.period: float | None = None  # seconds per tick
        self._intercept = 0.0
        self._disagree = 0
        self.resets = 0
        self.realigned = 0

    @property
    def bpm(self) -> float | None:
        return None if self.period is None else 60.0 / (PPQN * self.period)

    @property
    def last_tick(self) -> float | None:
        return self._ticks[-1][1] if self._ticks else None

    def reset(self) -> None:
        self._ticks.clear()
        self._index = 0
        self._disagree = 0
        self.period = None

    def fitted_time(self) -> float | None:
        """The newest tick's time on the fitted line (jitter removed)."""
        if self.period is None or not self._ticks:
            return self.last_tick
        return self._intercept + self.period * self._ticks[-1][0]

    def tick(self, t: float) -> float | None:
        """Add one tick arriving at ``t``; returns the BPM estimate (None until settled)."""
        last = self.last_tick
        if last is not None and t - last > self.timeout:
            self.reset()
        self._index += 1
        self._ticks.append((self._index, t))
        while len(self._ticks) > self.max_ticks or (
            len(self._ticks) > self.min_ticks and t - self._ticks[0][1] > self.window
        ):
            self._ticks.popleft()
        if len(self._ticks) < self.min_ticks:
            return self.bpm if self.period is not None and len(self._ticks) > 2 else None
        x, y = _arrays(self._ticks)
        slope, intercept = _robust_fit(x, y)
        if slope <= 0:
            return self.bpm
        if self._realign(x, y, slope, intercept):
            x, y = _arrays(self._ticks)
            slope, intercept = _robust_fit(x, y)
        # A real tempo change: the last beat's own fit keeps disagreeing with the
        # window. One stalled burst of ticks disagrees only briefly; a new tempo
        # disagrees on every tick after it.
        if len(x) >= 2 * PPQN:
            short, short_intercept = _robust_fit(x[-PPQN:], y[-PPQN:])
            if short > 0 and abs(short - slope) > self.change_ratio * slope:
                self._disagree += 1
            else:
                self._disagree = 0
            if self._disagree >= CHANGE_CONFIRM:
                self._ticks = deque(list(self._ticks)[-PPQN:])
                slope, intercept = short, short_intercept
                self._disagree = 0
                self.resets += 1
        self.period, self._intercept = slope, intercept
        return self.bpm

    def _realign(self, x: np.ndarray, y: np.ndarray, slope: float, intercept: float) -> bool:
        """Renumber after lost (or doubled) ticks; True when it did.

        Ticks are numbered by count, which a stalled sender's late burst cannot
        upset, but a tick lost on the way (a JACK xrun drops that cycle's MIDI)
        would shift every later one by a period and bend the tempo. After
        losses the newest ticks sit whole numbers of periods off the line,
        never fewer as time goes on, and flat at the end; a stall's burst comes
        back towards the line instead, and a tempo change ramps away.
        """
        if len(x) < 4 * REALIGN_CONFIRM:
            return False
        periods = (y - (intercept + slope * x)) / slope
        steps = np.rint(periods)
        tail = periods[-REALIGN_CONFIRM:]
        if (
            steps[-1] == 0
            or np.any(steps[-REALIGN_CONFIRM:] != steps[-1])
            or np.any(np.abs(tail - steps[-1]) > SNAP)
            or abs(_fit(_TAIL_X, tail)[0]) > 0.03
        ):
            return False
        start = len(periods) - REALIGN_CONFIRM
        while (
            start > 0
            and abs(periods[start - 1] - steps[start - 1]) <= SNAP
            and steps[start - 1] <= steps[start]
            and steps[start - 1] * steps[-1] >= 0
        ):
            start -= 1
        ticks = list(self._ticks)
        shifted = [(i + int(k), t) for (i, t), k in zip(ticks[start:], steps[start:], strict=True)]
        self._ticks = deque(ticks[:start] + shifted)
        self._index += int(steps[-1])
        self._disagree = 0  # the disagreement was the loss, not a new tempo
        self.realigned += 1
        return True


def _median(a: np.ndarray) -> float:
    # np.median's generality costs ~20 µs a call; this runs several times per tick.
    k = len(a) // 2
    if len(a) % 2:
        return float(np.partition(a, k)[k])
    part = np.partition(a, (k - 1, k))
    return float(0.5 * (part[k - 1] + part[k]))


def _arrays(ticks: deque[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    x = np.fromiter((i for i, _ in ticks), dtype=float, count=len(ticks))
    y = np.fromiter((t for _, t in ticks), dtype=float, count=len(ticks))
    return x, y


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares y = intercept + slope * x."""
    xm = x.mean()
    # Centre the times too: absolute monotonic seconds are large, and the
    # squares would lose the milliseconds we are after.
    y0 = y[0]
    ym = (y - y0).mean()
    dx = x - xm
    slope = float(np.dot(dx, (y - y0) - ym) / np.dot(dx, dx))
    return slope, float(y0 + ym - slope * xm)


def _robust_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """A line through the ticks that ignores the ones far off it.

    A stalled sender (or a JACK xrun) delivers a few ticks late and then in a
    burst; lost ticks shift the ones after them. Those sit well off the line
    and would tilt a plain least-squares fit, most of all at the window's end.
    So: start from a robust line (median slope over half-window spans, median
    intercept), keep the ticks within 3 robust standard deviations (MAD) of it
    — never less than 1.5 ms, so ordinary JACK jitter is always kept — and fit
    those by least squares (twice).
    """
    half = len(x) // 2
    slope = float(_median((y[half:] - y[: len(x) - half]) / (x[half:] - x[: len(x) - half])))
    intercept = float(_median(y - slope * x))
    keep = np.ones(len(x), dtype=bool)
    for _ in range(2):
        residual = y - (intercept + slope * x)
        centre = _median(residual[keep])
        spread = 1.4826 * _median(np.abs(residual[keep] - centre))
        inside = np.abs(residual - centre) <= max(3.0 * spread, OUTLIER_FLOOR)
        if inside.sum() >= max(3, len(x) // 2):
            keep = inside
        slope, intercept = _fit(x[keep], y[keep])
    return slope, intercept


class MidiClock:
    """Transport and tempo from MIDI clock; listeners get ``(event, bpm, t)``."""

    def __init__(
        self,
        *,
        window: float = 2.0,
        timeout: float = 0.5,
        tempo_step: float = 0.1,
    ) -> None:
        self.estimator = TempoEstimator(window=window, timeout=timeout)
        self.tempo_step = tempo_step
        self.timeout = timeout
        self.running = False
        self.ticks = 0  # ticks played since start / song position (24 per quarter note)
        self.beat = -1  # index of the latest quarter note since start (-1: none yet)
        self.last_beat_time: float | None = None
        self._published: float | None = None
        self._lost = True
        self._listeners: list[Listener] = []
        self.received = 0

    @property
    def bpm(self) -> float | None:
        return None if self._lost else self.estimator.bpm

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event, bpm, t)`` for every event (see CLOCK_EVENTS)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def feed(self, kind: str, t: float, position: int | None = None) -> None:
        """One realtime message: clock, start, stop, continue or songpos (``position``)."""
        self.received += 1
        if kind == "clock":
            self._tick(t)
        elif kind == "start":
            self.running = True
            self.ticks = 0
            self.beat = -1
            self._emit("start", t)
        elif kind == "stop":
            self.running = False
            self._emit("stop", t)
        elif kind == "continue":
            self.running = True
            self._emit("continue", t)
        elif kind == "songpos" and position is not None:
            self.ticks = position * SIXTEENTH_TICKS
            self.beat = (self.ticks - 1) // PPQN  # the beat that tick belongs to, if any
            self._emit("position", t)

    def check(self, now: float) -> None:
        """Call now and then: notices that ticks stopped coming."""
        last = self.estimator.last_tick
        if not self._lost and last is not None and now - last > self.timeout:
            self._lost = True
            self._published = None
            self.estimator.reset()
            log.info("midi_clock_lost")
            self._emit("lost", now)

    def _tick(self, t: float) -> None:
        bpm = self.estimator.tick(t)
        if bpm is not None:
            if self._lost:
                self._lost = False
                log.info("midi_clock_locked", bpm=round(bpm, 2))
            if self._published is None or abs(bpm - self._published) >= self.tempo_step:
                self._published = bpm
                self._emit("tempo", self.estimator.fitted_time() or t)
        if self.running:
            if self.ticks % PPQN == 0:
                self.beat = self.ticks // PPQN
                self.last_beat_time = self.estimator.fitted_time() or t
                self._emit("beat", self.last_beat_time)
            self.ticks += 1

    def _emit(self, event: str, t: float) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, self.bpm, t)
            except Exception:  # one broken listener must not stop the clock
                log.exception("midi_clock_listener_failed", clock_event=event)
