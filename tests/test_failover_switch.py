"""The failover's frame watchdog and its choices, driven with synthetic time.

The real chain (emulator processes killed, stalled, restarted) is in
tests/test_failover.py; here the rules themselves, frame by frame.
"""

from __future__ import annotations

from typing import Any

import pytest

from soundscape.screens.config import FailoverSection
from soundscape.screens.failover import Failover
from soundscape.screens.switch import FrameSwitch

FPS = 30.0
DT = 1 / FPS


def stream(switch: FrameSwitch, name: str, start: float, seconds: float) -> float:
    """Frames of ``name`` at 30 fps from ``start``; returns the time of the last one."""
    t = start
    while t < start + seconds:
        switch.frame(name, t)
        t += DT
    return t - DT


def test_a_silent_primary_is_replaced_after_the_watchdog_counts_its_own_frame_intervals() -> None:
    switch = FrameSwitch(["main", "standby"], watchdog_frames=4)
    for i in range(60):  # both stream; the primary is shown
        assert switch.frame("main", i * DT) is True
        assert switch.frame("standby", i * DT + DT / 2) is False
    last = 59 * DT
    shown_at = None
    t = last + DT / 2
    while shown_at is None:  # the primary went silent; only the standby's frames come
        t += DT
        if switch.frame("standby", t):
            shown_at = t
    assert switch.active == "standby"
    # Switched on the first standby frame past 4 of the primary's intervals, not later.
    assert 4 * DT < shown_at - last <= 5 * DT + 1e-9


def test_the_watchdog_is_in_frame_intervals_not_seconds() -> None:
    """At 10 fps the same four intervals are 400 ms: a slow pipeline is not cut at 133 ms."""
    switch = FrameSwitch(["main", "standby"], watchdog_frames=4)
    for i in range(20):
        switch.frame("main", i * 0.1)
        switch.frame("standby", i * 0.1 + 0.05)
    last = 19 * 0.1
    for k in range(1, 4):  # 150, 250, 350 ms of silence: within four 100 ms intervals
        assert switch.frame("standby", last + 0.05 + k * 0.1) is False
    assert switch.frame("standby", last + 0.45) is True


def test_a_standby_that_only_bursts_does_not_take_over_a_briefly_late_primary() -> None:
    """Both jittery (a loaded machine): no cutting back and forth between two servers."""
    switch = FrameSwitch(["main", "standby"], watchdog_frames=4)
    t = stream(switch, "main", 0.0, 2.0)
    switch.frame("standby", t + 0.2)  # a lone frame after a long silence: not steady
    assert switch.active == "main"
    # A primary silent for twice the window is gone: any live frame is better.
    assert switch.frame("standby", t + 0.3) is True


def test_jitter_under_the_watchdog_does_not_switch() -> None:
    switch = FrameSwitch(["main", "standby"], watchdog_frames=4)
    t = stream(switch, "main", 0.0, 2.0)
    switch.frame("standby", t + 3 * DT)  # the primary is 3 intervals late: jitter
    switch.frame("main", t + 3.2 * DT)
    assert switch.active == "main"
    assert switch.switches == 0


def test_a_lost_session_switches_at_the_next_standby_frame() -> None:
    switch = FrameSwitch(["main", "standby"], watchdog_frames=4)
    t = stream(switch, "main", 0.0, 1.0)
    switch.stream_state("main", False)  # stream_stopped: no need to wait for silence
    assert switch.frame("standby", t + DT / 2) is True
    assert switch.active == "standby"


def test_a_manual_select_and_its_listener() -> None:
    switch = FrameSwitch(["main", "standby"])
    seen: list[tuple[str, str, str]] = []
    switch.on_switch(lambda a, b, why: seen.append((a, b, why)))
    assert switch.select("standby", "asked by osc") is True
    assert switch.select("standby", "again") is False
    assert seen == [("main", "standby", "asked by osc")]
    with pytest.raises(KeyError):
        switch.select("nobody", "typo")


class Sink:
    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.states: list[bool] = []

    def on_frame(self, frame: Any) -> None:
        self.frames.append(frame)

    def on_stream_state(self, streaming: bool) -> None:
        self.states.append(streaming)


class WarmStandby:
    """A warm standby's supervisor as the failover sees it: asked to start or stop a session."""

    def __init__(self) -> None:
        self.active = False
        self.asked: list[bool] = []

    def set_active(self, on: bool, reason: str = "") -> None:
        self.active = on
        self.asked.append(on)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def failover(switch_back: str = "now", back_after: float = 1.0) -> tuple[Failover, Sink, Clock]:
    clock, sink = Clock(), Sink()
    config = FailoverSection(switch_back=switch_back, back_after=back_after)
    return Failover("main", ["main", "standby"], sink, config, clock=clock), sink, clock


def run(fo: Failover, clock: Clock, names: list[str], seconds: float) -> None:
    end = clock.t + seconds
    while clock.t < end:
        clock.t += DT
        for name in names:
            fo.frame(name, name)
        fo.tick(clock.t)


def test_a_warm_standby_is_woken_when_the_primary_is_late_and_put_back_after() -> None:
    fo, sink, clock = failover(switch_back="now", back_after=1.0)
    warm = WarmStandby()
    fo.add_warm("standby", warm)
    run(fo, clock, ["main"], 1.0)
    assert warm.asked == []  # the primary streams: the standby stays warm (no GPU time)
    run(fo, clock, [], 5 * DT)  # the primary goes silent
    assert warm.asked == [True]
    run(fo, clock, ["standby"], 0.5)  # its session streams: its frames are shown
    assert fo.active == "standby"
    assert sink.frames[-1] == "standby"
    run(fo, clock, ["main", "standby"], 1.2)  # the primary is back for back_after
    assert fo.active == "main"
    assert warm.asked == [True]  # shown again just now: the standby waits back_after...
    run(fo, clock, ["main", "standby"], 1.2)
    assert warm.asked == [True, False]  # ...then goes back to warm


def test_a_short_stall_does_not_bring_a_cut_back_before_back_after() -> None:
    """A 300 ms stall moves the outputs; they come back only back_after after that cut."""
    fo, _sink, clock = failover(switch_back="now", back_after=2.0)
    run(fo, clock, ["main", "standby"], 3.0)
    run(fo, clock, ["standby"], 0.3)
    assert fo.active == "standby"
    cut = clock.t
    while fo.active == "standby":
        run(fo, clock, ["main", "standby"], DT)
    assert clock.t - cut >= 2.0


def test_switch_back_never_stays_on_the_standby() -> None:
    fo, _sink, clock = failover(switch_back="never")
    run(fo, clock, ["main", "standby"], 1.0)
    run(fo, clock, ["standby"], 0.5)
    assert fo.active == "standby"
    run(fo, clock, ["main", "standby"], 3.0)
    assert fo.active == "standby"
    assert fo.status()["switches"] == 1


class Bars:
    """A beat clock at 120 bpm, 4/4, whose timers the test fires."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.timers: list[tuple[float, Any]] = []

    def state(self) -> Any:
        class State:
            beats = self.clock.t * 2
            beats_per_bar = 4

        return State()

    def call_at_beat(self, beats: float, callback: Any) -> Any:
        self.timers.append((beats, callback))
        return self


def test_the_switch_back_waits_for_the_next_bar_line() -> None:
    fo, _sink, clock = failover(switch_back="bar", back_after=1.0)
    bars = fo.bars = Bars(clock)
    run(fo, clock, ["main", "standby"], 1.0)
    run(fo, clock, ["standby"], 0.5)
    run(fo, clock, ["main", "standby"], 1.2)
    assert fo.active == "standby"  # ready, but waiting for the bar line
    assert len(bars.timers) == 1
    beats, callback = bars.timers[0]
    assert beats % 4 == 0 and beats > clock.t * 2 - 4
    callback()  # the bar line
    assert fo.active == "main"


def test_a_warm_standby_is_not_woken_while_the_primary_has_not_started() -> None:
    """At start the primary is loading, not failing: no GPU time spent on the standby."""
    fo, _sink, clock = failover()
    warm = WarmStandby()
    fo.add_warm("standby", warm)
    run(fo, clock, [], 3.0)  # no frame from anyone yet
    assert warm.asked == []
    run(fo, clock, ["main"], 0.5)
    run(fo, clock, [], 5 * DT)  # now it has streamed and stopped: that is a failure
    assert warm.asked == [True]


def test_a_warm_standby_asked_for_by_hand_is_shown_from_its_first_frame() -> None:
    fo, sink, clock = failover(switch_back="now", back_after=0.5)
    warm = WarmStandby()
    fo.add_warm("standby", warm)
    run(fo, clock, ["main"], 1.0)
    assert fo.select("standby", source="osc") is False  # nothing to show yet...
    assert warm.asked == [True]  # ...but its session is starting
    run(fo, clock, ["main"], 0.5)
    assert fo.active == "main"  # the primary stays shown meanwhile: no dark frames
    run(fo, clock, ["main", "standby"], 1.0)
    assert fo.active == "standby" and sink.frames[-1] == "standby"
    assert fo.switch.preferred == "standby"  # and it sticks: no switch back to main
    assert warm.asked == [True]  # shown, so not put back to warm
