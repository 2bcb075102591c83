"""The output mailbox: a burst is delivered whole, a slow output never builds latency."""

from __future__ import annotations

from soundscape.video.config import LIVE_MAX_AGE, OutputConfig
from soundscape.video.mailbox import LatestMailbox

P = 1 / 30  # one frame interval


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def live_box(clock: Clock, drops: list[tuple[int, bool]]) -> LatestMailbox[int]:
    config = OutputConfig(type="ndi")
    return LatestMailbox(
        config.queue_depth,
        max_age=config.max_age,
        on_drop=lambda n, late: drops.append((n, late)),
        clock=clock,
    )


def test_a_burst_of_frames_handed_over_at_once_is_delivered_whole():
    clock, drops = Clock(), []
    box = live_box(clock, drops)
    for n in range(3):  # a late wake-up: three frames back to back, the thread not yet run
        box.put(n)
    clock.t += 0.005  # the output thread gets the CPU a little later
    assert [box.get(0), box.get(0), box.get(0), box.get(0)] == [0, 1, 2, None]
    assert drops == []


def test_a_persistently_slow_output_sends_only_recent_frames():
    clock, drops = Clock(), []
    box = live_box(clock, drops)
    lags = []
    n = 0
    for _ in range(100):  # the output needs two frame intervals per send
        for _ in range(2):
            box.put(n)
            n += 1
            clock.t += P
        got = box.get(0)
        assert got is not None
        lags.append(clock.t - got * P)
    assert max(lags) <= LIVE_MAX_AGE + 2 * P  # bounded, not growing with time
    assert sum(n for n, _ in drops) >= 40  # about every other frame skipped: latest wins
    assert all(late for _, late in drops)  # skipped for being late, never overtaken


def test_the_newest_frame_is_never_dropped_by_age():
    clock, drops = Clock(), []
    box = live_box(clock, drops)
    box.put(1)
    clock.t += 10.0
    assert box.get(0) == 1 and drops == []


def test_a_full_box_drops_the_oldest_and_says_so():
    clock, drops = Clock(), []
    box: LatestMailbox[int] = LatestMailbox(
        2, on_drop=lambda n, late: drops.append((n, late)), clock=clock
    )
    assert [box.put(i) for i in range(4)] == [False, False, True, True]
    assert [box.get(0), box.get(0)] == [2, 3] and drops == [(1, False), (1, False)]


def test_a_recording_keeps_every_frame_however_old():
    config = OutputConfig(type="record", path="x.mkv")
    clock = Clock()
    box: LatestMailbox[int] = LatestMailbox(config.queue_depth, max_age=config.max_age, clock=clock)
    for n in range(5):
        box.put(n)
        clock.t += 1.0
    assert [box.get(0) for _ in range(5)] == list(range(5))
