"""The beat clock: source priority and fallback, phase continuity, bars, tap tempo.

Pure: every reading carries its time, so these drive the clock with a synthetic one.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from soundscape.mapping.scenes import next_boundary, quantize_beats
from soundscape.mapping.tempo import (
    BeatClock,
    Observation,
    TapTempo,
    from_features,
    from_tempo_update,
)

ORDER = ("midi", "scope", "tap", "audio")
TIMEOUTS = {"midi": None, "scope": 1.0, "tap": 60.0, "audio": 1.0}


def make_clock(**kwargs) -> BeatClock:
    kwargs.setdefault("timeouts", TIMEOUTS)
    return BeatClock(ORDER, **kwargs)


class Steady:
    """A source at a steady tempo whose bar 0 began at ``origin``."""

    def __init__(self, bpm: float, origin: float, beats_per_bar: int = 4) -> None:
        self.bpm, self.origin, self.bpb = bpm, origin, beats_per_bar

    def beats(self, t: float) -> float:
        return (t - self.origin) * self.bpm / 60.0

    def scope(self, t: float) -> dict:
        b = self.beats(t)
        return {
            "type": "tempo_update",
            "bpm": self.bpm,
            "beat_phase": b % 1.0,
            "bar_position": b % self.bpb,
            "beat_count": math.floor(b),
            "is_playing": True,
        }

    def audio(self, t: float) -> Observation:
        return Observation(t, self.bpm, self.beats(t) % 1.0, bar_aligned=False)


def drive(clock: BeatClock, feeds, start: float, end: float, step: float = 1 / 15):
    """Feed every ``(name, fn)`` each step; return (times, positions) sampled each step."""
    times, positions = [], []
    t = start
    while t < end:
        for name, fn in feeds:
            obs = fn(t)
            if obs is not None:
                clock.observe(name, obs, t)
        clock.update(t)
        times.append(t)
        positions.append(clock.position(t))
        t += step
    return np.array(times), np.array(positions)


def test_free_runs_at_the_default_tempo_without_sources():
    clock = make_clock(default_bpm=120.0, now=10.0)
    assert clock.position(10.0) == 0.0
    assert clock.position(12.0) == pytest.approx(4.0)
    assert clock.state(12.0).bar == 1
    assert clock.active is None


def test_the_most_trusted_live_source_drives_the_clock():
    clock = make_clock()
    scope, audio = Steady(128.0, 0.0), Steady(100.0, 0.3)
    clock.observe("audio", audio.audio(1.0), 1.0)
    assert clock.active == "audio"
    assert clock.bpm == pytest.approx(100.0)
    clock.observe("scope", from_tempo_update(scope.scope(1.1), 1.1), 1.1)
    assert clock.active == "scope"
    assert clock.bpm == pytest.approx(128.0)
    # The less trusted audio keeps talking: it is kept, not followed.
    clock.observe("audio", audio.audio(1.2), 1.2)
    assert clock.active == "scope"
    assert clock.bpm == pytest.approx(128.0)


def test_falls_back_down_the_list_when_a_source_goes_quiet_and_back_up_when_it_returns():
    clock = make_clock()
    scope, audio = Steady(128.0, 0.0), Steady(100.0, 0.0)

    def scope_until_5(t):
        return from_tempo_update(scope.scope(t), t) if t < 5.0 or t > 9.0 else None

    feeds = [("scope", scope_until_5), ("audio", audio.audio)]
    active = []
    t = 0.0
    while t < 12.0:
        for name, fn in feeds:
            obs = fn(t)
            if obs is not None:
                clock.observe(name, obs, t)
        clock.update(t)
        active.append((t, clock.active, clock.bpm))
        t += 0.05
    at = {round(t, 2): (a, bpm) for t, a, bpm in active}
    assert at[4.5] == ("scope", pytest.approx(128.0))
    # Quiet for more than the 1 s timeout: the audio tracker takes over.
    assert at[6.5] == ("audio", pytest.approx(100.0))
    # Scope speaks again: it wins again at once.
    assert at[9.5] == ("scope", pytest.approx(128.0))


def test_midi_stays_live_until_its_clock_says_lost():
    clock = make_clock()
    clock.observe("midi", Observation(0.0, 140.0, 0.0, bar_aligned=True), 0.0)
    clock.observe("audio", Observation(0.1, 100.0, 0.2), 0.1)
    clock.update(30.0)  # no timeout for MIDI: its clock reports loss itself
    assert clock.active == "midi"
    clock.silence("midi", 30.0)
    assert clock.active is None  # audio went quiet long ago: the clock runs on alone
    clock.observe("audio", Observation(30.1, 100.0, 0.2), 30.1)
    assert clock.active == "audio"


def test_position_never_jumps_or_goes_back_when_the_source_changes():
    clock = make_clock(max_correction=0.25, catch_up_beats=1.0)
    audio = Steady(120.0, 0.0)
    # Scope is at the same tempo but 0.4 beat earlier in phase, and 2 beats
    # off in the bar: both must be caught up smoothly.
    scope = Steady(120.0, 1.2)
    step = 1 / 60
    feeds = [("audio", audio.audio)]
    t_audio, p_audio = drive(clock, feeds, 0.0, 4.0, step)
    feeds = [("audio", audio.audio), ("scope", lambda t: from_tempo_update(scope.scope(t), t))]
    times, pos = drive(clock, feeds, 4.0, 16.0, step)
    all_t, all_p = np.concatenate([t_audio, times]), np.concatenate([p_audio, pos])
    keep = np.diff(all_t) > 1e-6
    speed = (np.diff(all_p) / np.diff(all_t))[keep] / (120.0 / 60.0)
    # Never backwards, never a jump: within the 25% catch-up allowance throughout.
    assert speed.min() >= 0.75 - 1e-6, "the clock went backwards or stalled"
    assert speed.max() <= 1.25 + 1e-6, "the clock jumped"
    assert speed.max() > 1.01 or speed.min() < 0.99, "no catch-up happened at all"
    # After catching up it runs in phase and on Scope's bars.
    t_end = times[-1]
    state = clock.state(t_end)
    src = scope.beats(t_end)
    assert state.phase == pytest.approx(src % 1.0, abs=1e-6)
    assert state.beat_in_bar == math.floor(src) % 4


def test_audio_aligns_the_beat_but_keeps_the_bar_count():
    clock = make_clock(catch_up_beats=0.5)
    audio = Steady(120.0, 0.1)  # a tenth of a second = 0.2 beat late
    times, _ = drive(clock, [("audio", audio.audio)], 0.0, 6.0)
    state = clock.state(times[-1])
    assert state.phase == pytest.approx(audio.beats(times[-1]) % 1.0, abs=1e-6)
    # Nearest-beat alignment: the 0.2 beat offset was absorbed, no bar shift.
    assert state.beats == pytest.approx(audio.beats(times[-1]), abs=1e-6)


def test_tempo_only_readings_keep_the_phase():
    clock = make_clock(default_bpm=120.0)
    before = clock.position(1.0)
    clock.observe("midi", Observation(1.0, 90.0), 1.0)
    assert clock.position(1.0) == pytest.approx(before)
    assert clock.position(3.0) == pytest.approx(before + 2 * 1.5)


def test_time_at_inverts_position_during_and_after_a_catch_up():
    clock = make_clock()
    clock.observe("scope", Observation(0.5, 150.0, 2.7, bar_aligned=True), 0.5)
    for beats in np.linspace(clock.position(0.5) + 0.01, clock.position(0.5) + 12, 40):
        assert clock.position(clock.time_at(beats)) == pytest.approx(beats, abs=1e-9)


def test_crossed_reports_each_beat_once_in_order():
    clock = make_clock(default_bpm=120.0)
    seen = []
    for t in np.arange(0.0, 5.0, 0.07):
        seen += clock.crossed(float(t))
    assert seen == list(range(1, 10))


@pytest.mark.parametrize("bpm", [90.0, 120.0, 174.0])
def test_tap_tempo_averages_recent_taps(bpm: float):
    rng = random.Random(1)
    tapper = TapTempo(count=8)
    period = 60.0 / bpm
    obs = None
    for i in range(12):
        obs = tapper.tap(100.0 + i * period + rng.uniform(-0.015, 0.015))
    assert obs is not None
    assert obs.bpm == pytest.approx(bpm, rel=0.02)
    assert obs.bar_aligned
    # The series started on a bar line: tap 12 is beat 11 of it.
    assert obs.beats == pytest.approx(11.0, abs=0.1)


def test_tap_series_resets_after_a_pause_and_ignores_bounces():
    tapper = TapTempo(reset_after=2.0)
    assert tapper.tap(0.0) is None  # one tap: no tempo yet
    assert tapper.tap(0.5).bpm == pytest.approx(120.0)
    assert tapper.tap(0.52) is None  # a switch bounce, 20 ms later
    assert tapper.tap(1.0).bpm == pytest.approx(120.0)
    assert tapper.taps == 3
    assert tapper.tap(5.0) is None  # after a pause: a new series
    assert tapper.taps == 1
    obs = tapper.tap(5.4)
    assert obs.bpm == pytest.approx(150.0)
    assert obs.beats == pytest.approx(1.0)


def test_tap_drives_the_clock_and_sets_the_bar_line():
    clock = make_clock(catch_up_beats=0.5)
    tapper = TapTempo()
    for i in range(8):
        t = 3.1 + i * 0.4  # 150 BPM, series starting at 3.1 s
        obs = tapper.tap(t)
        if obs is not None:
            clock.observe("tap", obs, t)
    assert clock.active == "tap"
    t = 20.0
    clock.update(t)
    tapped = (t - 3.1) / 0.4
    state = clock.state(t)
    assert state.bpm == pytest.approx(150.0)
    assert state.phase == pytest.approx(tapped % 1.0, abs=1e-6)
    assert state.beat_in_bar == math.floor(tapped) % 4


def test_scope_tempo_update_parsing():
    obs = from_tempo_update(
        {
            "bpm": 128,
            "beat_phase": 0.25,
            "bar_position": 2.25,
            "beat_count": 18,
            "is_playing": True,
        },
        7.0,
    )
    assert obs == Observation(7.0, 128.0, 2.25, bar_aligned=True)
    assert from_tempo_update({"bpm": 128, "beat_phase": 0.1, "is_playing": False}, 1.0) is None
    for bad in ({"bpm": "fast", "beat_phase": 0}, {"bpm": 0, "beat_phase": 0}, {"bpm": 120}):
        with pytest.raises(ValueError):
            from_tempo_update(bad, 1.0)


def test_audio_readings_need_confidence():
    class F:
        t, bpm, beat_phase, confidence = 3.0, 122.0, 0.4, 0.2

    assert from_features(F, 0.3) is None
    F.confidence = 0.8
    assert from_features(F, 0.3) == Observation(3.0, 122.0, 0.4, bar_aligned=False)


def test_audio_downbeats_align_the_bars_when_the_bar_lengths_agree():
    class F:
        t, bpm, beat_phase, confidence = 3.0, 120.0, 0.5, 0.8
        bar_phase, beats_per_bar = 0.375, 4  # halfway through the bar's second beat

    assert from_features(F, 0.3, 4) == Observation(3.0, 120.0, 1.5, bar_aligned=True)
    F.beats_per_bar = 3  # the audio hears 3/4, the show counts 4: only the beat
    assert from_features(F, 0.3, 4) == Observation(3.0, 120.0, 0.5, bar_aligned=False)


def test_bad_bpm_readings_are_ignored():
    clock = make_clock()
    assert not clock.observe("scope", Observation(1.0, float("nan"), 0.0), 1.0)
    assert not clock.observe("scope", Observation(1.0, -5.0, 0.0), 1.0)
    assert not clock.observe("nonsense", Observation(1.0, 120.0, 0.0), 1.0)
    assert clock.active is None


def test_quantized_change_time_lands_on_the_next_bar_line():
    clock = make_clock(default_bpm=120.0, now=0.0)  # bar lines every 2 s
    now = 5.3  # beat 10.6, in bar 2 (0-based)
    unit = quantize_beats("bar", clock.beats_per_bar)
    at = next_boundary(clock.position(now), unit)
    assert at == 12.0
    assert clock.time_at(at) == pytest.approx(6.0)
    assert next_boundary(clock.position(now), quantize_beats("beat", 4)) == 11.0
    assert next_boundary(clock.position(now), quantize_beats("4_bar", 4)) == 16.0
    assert next_boundary(clock.position(now), quantize_beats("none", 4)) == pytest.approx(10.6)
    # Exactly on a bar line: that bar line (now), not the next.
    assert next_boundary(8.0, unit) == 8.0
    # Just after one, within the grace: at once (it was meant for that bar line) ...
    assert next_boundary(8.1, unit, grace=0.125) == 8.1
    # ... but later than the grace: the next bar line.
    assert next_boundary(8.2, unit, grace=0.125) == 12.0
