"""The beat clock on the event loop: beat/bar events on time, actions at a musical position."""

from __future__ import annotations

import asyncio

import pytest

from soundscape.control.midi_clock import PPQN, MidiClock
from soundscape.mapping.tempo import BeatClock, BeatClockRunner, BeatEvent, Observation


async def test_beat_and_bar_events_fire_at_the_beat_in_order():
    clock = BeatClock(default_bpm=600.0, beats_per_bar=4)  # a beat every 0.1 s
    runner = BeatClockRunner(clock)
    loop = asyncio.get_running_loop()
    events: list[tuple[BeatEvent, float]] = []
    done = asyncio.Event()

    def listener(event: BeatEvent) -> None:
        events.append((event, loop.time()))
        if len(events) == 9:
            done.set()

    runner.on_beat(listener)
    await runner.start()
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await runner.stop()
    beats = [e.beat for e, _ in events]
    assert beats == list(range(1, 10))
    assert [e.beat for e, _ in events if e.is_bar] == [4, 8]
    for event, fired_at in events:
        assert fired_at >= event.t - 0.001, "a beat event came before its beat"


async def test_an_action_at_a_beat_is_retimed_when_the_clock_is_corrected():
    clock = BeatClock(default_bpm=480.0)
    runner = BeatClockRunner(clock)
    await runner.start()
    loop = asyncio.get_running_loop()
    fired = asyncio.get_running_loop().create_future()
    runner.call_at_beat(4.0, lambda: fired.set_result(loop.time()))
    planned = clock.time_at(4.0)
    # The tempo halves before the bar line: the action must wait for it.
    runner.observe("scope", Observation(loop.time(), 240.0))
    replanned = clock.time_at(4.0)
    assert replanned > planned + 0.15
    try:
        at = await asyncio.wait_for(fired, 5)
    finally:
        await runner.stop()
    assert clock.position(at) == pytest.approx(4.0, abs=0.05)
    assert at >= replanned - 0.001


async def test_malformed_scope_tempo_is_counted_not_raised():
    runner = BeatClockRunner(BeatClock())
    await runner.start()
    try:
        runner.tempo_update({"type": "tempo_update", "bpm": "quick"})
        runner.tempo_update(
            {
                "type": "tempo_update",
                "bpm": 128.0,
                "beat_phase": 0.5,
                "bar_position": 1.5,
                "beat_count": 5,
                "is_playing": True,
            }
        )
    finally:
        await runner.stop()
    assert runner.bad_messages == 1
    assert runner.clock.active == "scope"
    assert runner.clock.bpm == pytest.approx(128.0)


async def test_follows_the_midi_helpers_clock_and_falls_back_when_it_is_lost():
    runner = BeatClockRunner(BeatClock(("midi", "scope", "tap", "audio"), default_bpm=100.0))
    midi = MidiClock()
    runner.attach_midi(midi)
    await runner.start()
    loop = asyncio.get_running_loop()
    try:
        t0 = loop.time() - 2.0
        midi.feed("start", t0)
        period = 60.0 / (140.0 * PPQN)
        for i in range(PPQN * 4):  # four beats at 140 BPM, ending about now
            midi.feed("clock", t0 + i * period)
        assert runner.clock.active == "midi"
        assert runner.clock.bpm == pytest.approx(140.0, abs=0.5)
        midi.check(t0 + 10.0)  # ticks stopped: the MIDI helper reports "lost"
        assert runner.clock.active is None
    finally:
        await runner.stop()
