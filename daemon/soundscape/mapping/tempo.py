"""The beat clock: one musical time for the show, fed by the most trusted live source.

Sources — MIDI clock, Scope's ``tempo_update``, tap tempo, the audio beat
tracker — send :class:`Observation`\\ s (a tempo, and where the beat was at a
time). :class:`BeatClock` keeps one position in beats, a piecewise-linear
function of time, and follows the first *live* source in the configured order
of trust; when that source goes quiet it falls back down the list, and with no
live source at all it runs on at the last tempo (a flywheel).

A new source, or a new reading from the same one, never makes the position
jump: the clock keeps its position and catches up with the source by running
a little faster or slower (at most ``max_correction``) for a while — so the
picture never sees a beat twice or a bar line move backwards. A source that
knows bar lines (MIDI start, Scope's bar position, the first tap of a series)
also aligns the clock's bars; so does the audio tracker when the bar length it
hears is the clock's (its downbeats come from the kick and the backbeat).

Pure logic: every method takes the time. :class:`BeatClockRunner` puts it on
the event loop: beat and bar listeners fire at the right moment (``call_at``,
re-timed whenever the clock is corrected), and :meth:`BeatClockRunner.call_at_beat`
schedules an action for a musical position.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)

DEFAULT_ORDER = ("midi", "link", "scope", "tap", "audio")
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Observation:
    """What a source knows at time ``t``: the tempo and, if known, the position.

    ``beats`` is the position in beats at ``t`` (None: tempo only). With
    ``bar_aligned`` the position counts from a bar line (a multiple of the bar
    length falls on a bar line); otherwise only its fraction (the beat phase)
    is meaningful.
    """

    t: float
    bpm: float
    beats: float | None = None
    bar_aligned: bool = False


@dataclass(frozen=True, slots=True)
class ClockState:
    """The clock read at time ``t``."""

    t: float
    beats: float
    bpm: float
    beats_per_bar: int
    source: str | None

    @property
    def beat(self) -> int:
        """Index of the current beat (0-based, since the clock started)."""
        return math.floor(self.beats + EPSILON)

    @property
    def bar(self) -> int:
        return self.beat // self.beats_per_bar

    @property
    def beat_in_bar(self) -> int:
        return self.beat % self.beats_per_bar

    @property
    def phase(self) -> float:
        """0 on a beat, rising to 1 at the next."""
        return max(0.0, self.beats - self.beat)

    @property
    def bar_phase(self) -> float:
        """0 on a bar line, rising to 1 at the next."""
        return (self.beat_in_bar + self.phase) / self.beats_per_bar

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.bpm


@dataclass(frozen=True, slots=True)
class BeatEvent:
    """A beat the clock passed; ``t`` is the moment of the beat."""

    beat: int
    beats_per_bar: int
    t: float
    bpm: float

    @property
    def bar(self) -> int:
        return self.beat // self.beats_per_bar

    @property
    def beat_in_bar(self) -> int:
        return self.beat % self.beats_per_bar

    @property
    def is_bar(self) -> bool:
        return self.beat_in_bar == 0


@dataclass(frozen=True, slots=True)
class _Line:
    """Position(t) = l0 + rate·(t - t0) + off0·max(0, 1 - (t - t0)/span).

    The target line of the source plus a catch-up offset that shrinks to zero
    over ``span`` seconds; continuous, and increasing while off0/span < rate.
    """

    t0: float
    l0: float
    rate: float  # beats per second
    off0: float = 0.0
    span: float = 0.0

    def target(self, t: float) -> float:
        """The source's line, without the catch-up offset."""
        return self.l0 + self.rate * (t - self.t0)

    def at(self, t: float) -> float:
        dt = t - self.t0
        off = self.off0 * (1.0 - dt / self.span) if self.span > 0 and dt < self.span else 0.0
        if dt < 0 and self.span > 0:
            off = self.off0  # before the catch-up began: extrapolate with its start value
        return self.l0 + self.rate * dt + off

    def time_at(self, beats: float) -> float:
        """When the position reaches ``beats`` (the inverse of :meth:`at`)."""
        if self.span > 0:
            slope = self.rate - self.off0 / self.span
            end = self.l0 + self.rate * self.span  # position when the catch-up ends
            if beats <= end:
                return self.t0 + (beats - self.l0 - self.off0) / slope
        return self.t0 + (beats - self.l0) / self.rate


@dataclass
class _Source:
    timeout: float | None  # None: live until silenced
    latest: Observation | None = None
    seen: float = -math.inf
    silenced: bool = True

    def live(self, now: float) -> bool:
        if self.silenced or self.latest is None:
            return False
        return self.timeout is None or now - self.seen <= self.timeout


class BeatClock:
    """One position in beats, following the first live source in ``order``."""

    def __init__(
        self,
        order: Sequence[str] = DEFAULT_ORDER,
        *,
        beats_per_bar: int = 4,
        default_bpm: float = 120.0,
        timeouts: Mapping[str, float | None] | None = None,
        max_correction: float = 0.25,
        catch_up_beats: float = 1.0,
        now: float = 0.0,
    ) -> None:
        self.order = tuple(order)
        self.beats_per_bar = beats_per_bar
        self.max_correction = max_correction
        self.catch_up_beats = catch_up_beats
        timeouts = dict(timeouts or {})
        self._sources = {name: _Source(timeouts.get(name, 1.0)) for name in self.order}
        self._line = _Line(now, 0.0, default_bpm / 60.0)
        self.active: str | None = None
        self.emitted = 0  # the last beat index reported by crossed()
        self.corrections = 0

    # ----- reading

    @property
    def bpm(self) -> float:
        return self._line.rate * 60.0

    def position(self, now: float) -> float:
        return self._line.at(now)

    def state(self, now: float) -> ClockState:
        return ClockState(now, self.position(now), self.bpm, self.beats_per_bar, self.active)

    def time_at(self, beats: float) -> float:
        """When the clock will reach ``beats`` (if nothing corrects it meanwhile)."""
        return self._line.time_at(beats)

    def live_sources(self, now: float) -> list[str]:
        return [name for name, s in self._sources.items() if s.live(now)]

    def reconfigure(
        self,
        order: Sequence[str],
        *,
        beats_per_bar: int,
        timeouts: Mapping[str, float | None],
        max_correction: float,
        catch_up_beats: float,
        now: float,
    ) -> None:
        """New ``[beat]`` settings (a reload) without losing the position or what the
        sources last said; the trusted source is chosen again."""
        self.order = tuple(order)
        self.beats_per_bar = beats_per_bar
        self.max_correction = max_correction
        self.catch_up_beats = catch_up_beats
        sources = {}
        for name in self.order:
            entry = self._sources.get(name) or _Source(timeouts.get(name, 1.0))
            entry.timeout = timeouts.get(name, 1.0)
            sources[name] = entry
        self._sources = sources
        if self.active not in sources:
            self.active = None
        self._select(now)

    def set_tempo(self, bpm: float, now: float) -> None:
        """Run freely at ``bpm`` from ``now`` (a restored tempo) until a source says otherwise."""
        self._line = _Line(now, self._line.at(now), bpm / 60.0)

    def rebase(self, now: float) -> None:
        """Start counting from here: position 0 (a bar line) at ``now``, same tempo."""
        self._line = _Line(now, 0.0, self._line.rate)
        self.emitted = 0

    # ----- feeding

    def observe(self, source: str, obs: Observation, now: float) -> bool:
        """A reading from ``source``; returns True when the clock was corrected by it.

        Readings from sources not in ``order`` are ignored; those from a live
        but less trusted source are kept for when it takes over.
        """
        entry = self._sources.get(source)
        if entry is None or not (obs.bpm > 0 and math.isfinite(obs.bpm)):
            return False
        entry.latest = obs
        entry.seen = now
        entry.silenced = False
        if self._select(now):
            return True  # a new active source: already steered by its latest reading
        if self.active == source:
            self._steer(obs, now)
            return True
        return False

    def silence(self, source: str, now: float) -> bool:
        """``source`` says it has nothing (MIDI clock lost, Scope not playing)."""
        entry = self._sources.get(source)
        if entry is None or entry.silenced:
            return False
        entry.silenced = True
        return self._select(now)

    def update(self, now: float) -> bool:
        """Notice sources that went quiet; returns True when the active source changed."""
        return self._select(now)

    def crossed(self, now: float) -> list[int]:
        """Beat indices passed since the last call (each reported once, in order)."""
        current = math.floor(self.position(now) + EPSILON)
        if current <= self.emitted:
            return []
        beats = list(range(self.emitted + 1, current + 1))
        self.emitted = current
        return beats

    # ----- internals

    def _select(self, now: float) -> bool:
        active = next((n for n in self.order if self._sources[n].live(now)), None)
        if active == self.active:
            return False
        previous, self.active = self.active, active
        log.info("beat_source", source=active or "none", previous=previous or "none")
        latest = self._sources[active].latest if active is not None else None
        if latest is not None:
            self._steer(latest, now)
        return True

    def _steer(self, obs: Observation, now: float) -> None:
        rate = obs.bpm / 60.0
        here = self._line.at(now)
        if obs.beats is None:
            # Tempo only: keep following the current line's phase at the new tempo.
            target = self._line.target(now)
        else:
            source_now = obs.beats + (now - obs.t) * rate
            unit = self.beats_per_bar if obs.bar_aligned else 1
            # The source's position shifted by whole bars (or beats) to lie nearest
            # ours: phase (and bar lines) from the source, the count from us.
            target = source_now + round((here - source_now) / unit) * unit
        offset = here - target
        span = 0.0
        if abs(offset) > EPSILON:
            span = max(self.catch_up_beats / rate, abs(offset) / (self.max_correction * rate))
            self.corrections += 1
        self._line = _Line(now, target, rate, offset, span)


class TapTempo:
    """Taps in, tempo and phase out: a straight line through the recent taps.

    A pause longer than ``reset_after`` starts a new series whose first tap is
    a bar line; a tap faster than ``max_bpm`` allows is a bounce and ignored.
    """

    def __init__(
        self,
        *,
        reset_after: float = 2.0,
        count: int = 8,
        min_bpm: float = 40.0,
        max_bpm: float = 240.0,
    ) -> None:
        self.reset_after = reset_after
        self.min_interval = 60.0 / max_bpm
        self.max_interval = min(60.0 / min_bpm, reset_after)
        self._taps: deque[tuple[int, float]] = deque(maxlen=count)
        self._index = 0

    @property
    def taps(self) -> int:
        """Taps in the current series (as far as they are kept)."""
        return len(self._taps)

    def tap(self, t: float) -> Observation | None:
        """Add a tap at ``t``; returns the reading once the series has two taps."""
        if self._taps:
            gap = t - self._taps[-1][1]
            if gap < self.min_interval:
                return None
            if gap > self.max_interval:
                self._taps.clear()
        if not self._taps:
            self._index = 0
        else:
            self._index += 1
        self._taps.append((self._index, t))
        if len(self._taps) < 2:
            return None
        # Least squares over the kept taps: the average period, jitter spread out.
        period, intercept = statistics.linear_regression(
            [float(i) for i, _ in self._taps], [tt for _, tt in self._taps]
        )
        if period <= 0:
            return None
        return Observation(t, 60.0 / period, (t - intercept) / period, bar_aligned=True)


# --------------------------------------------------------------------------- adapters


def from_tempo_update(message: Mapping[str, Any], now: float) -> Observation | None:
    """Scope's ``tempo_update`` → an observation (None when not playing).

    Raises ValueError when the message is malformed.
    """
    if message.get("is_playing") is False:
        return None
    bpm = _number(message, "bpm")
    if bpm <= 0:
        raise ValueError(f"bpm {bpm!r} is not positive")
    phase = _number(message, "beat_phase")
    if "bar_position" in message:
        # Beats since the last bar line: all the clock needs (it only uses the
        # position modulo the bar length; the count stays its own).
        return Observation(now, bpm, _number(message, "bar_position"), bar_aligned=True)
    beats = _number(message, "beat_count") + phase if "beat_count" in message else phase
    return Observation(now, bpm, beats, bar_aligned=False)


def from_features(
    features: Any, min_confidence: float, beats_per_bar: int | None = None
) -> Observation | None:
    """The audio tracker's reading (Features.bpm/beat_phase/confidence), if trusted.

    When the tracker's bar length (``Features.beats_per_bar``) is the clock's
    ``beats_per_bar``, the reading is its position in the bar, so the clock's
    bar lines follow the audio's downbeats; otherwise only the beat phase.
    """
    bpm = float(features.bpm)
    if bpm <= 0 or float(features.confidence) < min_confidence:
        return None
    bar = getattr(features, "beats_per_bar", None)
    if beats_per_bar and bar == beats_per_bar:
        beats = float(features.bar_phase) * beats_per_bar
        return Observation(float(features.t), bpm, beats, bar_aligned=True)
    return Observation(float(features.t), bpm, float(features.beat_phase), bar_aligned=False)


def _number(message: Mapping[str, Any], key: str) -> float:
    value = message.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key}: expected a number, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- on the loop


class MidiClockLike(Protocol):
    beat: int

    def subscribe(
        self, listener: Callable[[str, float | None, float], None]
    ) -> Callable[[], None]: ...


BeatListener = Callable[[BeatEvent], None]


class _BeatTimer:
    """An action due at a musical position; re-timed when the clock is corrected."""

    def __init__(
        self, runner: BeatClockRunner, beats: float, lead: float, callback: Callable[[], None]
    ) -> None:
        self.runner = runner
        self.beats = beats
        self.lead = lead
        self.callback = callback
        self.handle: asyncio.TimerHandle | None = None
        self.when = math.nan

    def arm(self) -> None:
        when = self.runner.clock.time_at(self.beats) - self.lead
        if self.handle is not None and abs(when - self.when) < 0.0005:
            return
        if self.handle is not None:
            self.handle.cancel()
        self.when = when
        self.handle = self.runner.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self.handle = None
        now = self.runner.loop.time()
        if self.runner.clock.position(now + self.lead) < self.beats - 1e-6:
            self.arm()  # the clock slowed since: not there yet
            return
        self.runner._timers.discard(self)
        try:
            self.callback()
        except Exception:  # one broken action must not stop the clock
            log.exception("beat_timer_failed")

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.runner._timers.discard(self)


class BeatClockRunner:
    """The beat clock on the event loop: sources in, beat/bar events out on time."""

    def __init__(
        self, clock: BeatClock, tap: TapTempo | None = None, *, audio_confidence: float = 0.3
    ) -> None:
        self.clock = clock
        self.tapper = tap or TapTempo()
        self.audio_confidence = audio_confidence
        self._loop: asyncio.AbstractEventLoop | None = None
        self._announced: str | None = None
        self._beat_listeners: list[BeatListener] = []
        self._source_listeners: list[Callable[[str | None, float], None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = math.nan
        self._timers: set[_BeatTimer] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self._running = False
        self.bad_messages = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # ----- lifecycle

    async def start(self) -> None:
        self._running = True
        if self.clock.active is None and not self.clock.corrections:
            self.clock.rebase(self.loop.time())  # bar 1 starts now
        self.clock.crossed(self.loop.time())  # beats before the start are not news
        self._arm()

    async def stop(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for timer in list(self._timers):
            timer.cancel()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    # ----- listeners

    def on_beat(self, listener: BeatListener) -> Callable[[], None]:
        """``listener(event)`` on every beat, at the beat (``event.is_bar`` on bar lines)."""
        self._beat_listeners.append(listener)
        return lambda: self._beat_listeners.remove(listener)

    def on_source(self, listener: Callable[[str | None, float], None]) -> None:
        """``listener(source, bpm)`` when the driving source changes."""
        self._source_listeners.append(listener)

    # ----- reading

    def now(self) -> float:
        return self.loop.time()

    def state(self) -> ClockState:
        return self.clock.state(self.loop.time())

    def call_at_beat(
        self, beats: float, callback: Callable[[], None], *, lead: float = 0.0
    ) -> _BeatTimer:
        """Run ``callback`` when the clock reaches ``beats`` (``lead`` seconds early)."""
        timer = _BeatTimer(self, beats, lead, callback)
        self._timers.add(timer)
        timer.arm()
        return timer

    # ----- sources

    def observe(self, source: str, obs: Observation | None) -> None:
        now = self.loop.time()
        if obs is None:
            changed = self.clock.silence(source, now)
        else:
            changed = self.clock.observe(source, obs, now)
        self._after(changed, now)

    def tap(self) -> ClockState:
        """Tap tempo; the first tap of a series marks a bar line."""
        now = self.loop.time()
        obs = self.tapper.tap(now)
        if obs is not None:
            self._after(self.clock.observe("tap", obs, now), now)
        return self.clock.state(now)

    def tempo_update(self, message: Mapping[str, Any]) -> None:
        """Scope's ``tempo_update`` (connect to ``supervisor.on_message``)."""
        now = self.loop.time()
        try:
            obs = from_tempo_update(message, now)
        except ValueError as err:
            self.bad_messages += 1
            if self.bad_messages == 1 or self.bad_messages % 100 == 0:
                log.warning("tempo_update_refused", error=str(err), count=self.bad_messages)
            return
        self.observe("scope", obs)

    def feed_features(self, features: Any) -> None:
        obs = from_features(features, self.audio_confidence, self.clock.beats_per_bar)
        if obs is None:
            return  # an unsure tracker ages out; silencing on one block would flap
        self.observe("audio", obs)

    def attach_midi(self, midi_clock: MidiClockLike) -> None:
        """Follow a :class:`~soundscape.control.midi_clock.MidiClock` (beats, tempo, lost)."""

        def listener(event: str, bpm: float | None, t: float) -> None:
            if event == "lost":
                self.observe("midi", None)
            elif bpm is None:
                return
            elif event == "beat":
                self.observe("midi", Observation(t, bpm, float(midi_clock.beat), bar_aligned=True))
            elif event == "tempo":
                self.observe("midi", Observation(t, bpm))

        self._unsubscribe.append(midi_clock.subscribe(listener))

    def update(self) -> None:
        """Notice sources that went quiet (the engine calls this every tick)."""
        now = self.loop.time()
        self._after(self.clock.update(now), now)

    # ----- internals

    def _after(self, steered: bool, now: float) -> None:
        if not steered:
            return
        if self.clock.active != self._announced:
            self._announced = self.clock.active
            for listener in list(self._source_listeners):
                try:
                    listener(self.clock.active, self.clock.bpm)
                except Exception:
                    log.exception("beat_source_listener_failed")
        if self._running:
            self._arm()
            for timer in list(self._timers):
                timer.arm()

    def _arm(self) -> None:
        when = self.clock.time_at(self.clock.emitted + 1)
        if self._timer is not None:
            if abs(when - self._timer_when) < 0.0005:
                return
            self._timer.cancel()
        self._timer_when = when
        self._timer = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self.loop.time()
        for beat in self.clock.crossed(now):
            event = BeatEvent(
                beat, self.clock.beats_per_bar, self.clock.time_at(beat), self.clock.bpm
            )
            for listener in list(self._beat_listeners):
                try:
                    listener(event)
                except Exception:  # a listener's bug must not stop the clock
                    log.exception("beat_listener_failed")
        if self._running:
            self._arm()
