"""Hold timing and the latest-wins mailbox: pure logic, driven by synthetic clocks."""

from __future__ import annotations

import threading

import pytest

from soundscape.video.hold import HoldClock
from soundscape.video.mailbox import LatestMailbox

P = 1 / 30


def streaming_clock(frames: int = 10, interval: float = P) -> HoldClock:
    clock = HoldClock(fps=30, hold_after=1.0)
    clock.set_streaming(True)
    for i in range(frames):
        clock.on_real(i * interval)
    return clock


def test_before_any_frame_hold_frames_are_due_at_once_then_every_period():
    clock = HoldClock(fps=30)
    assert clock.away(0.0) and clock.hold_due(0.0)
    clock.on_hold_sent(0.0)
    assert not clock.hold_due(0.02)
    assert clock.next_deadline(0.02) == pytest.approx(P)
    assert clock.hold_due(P)


def test_a_flowing_stream_is_not_away_until_two_intervals_pass():
    clock = streaming_clock()
    last = 9 * P
    assert not clock.away(last + 1.5 * P)
    assert not clock.hold_due(last + 1.5 * P)
    assert clock.next_deadline(last + P) == pytest.approx(last + 2 * P)
    assert clock.away(last + 2 * P)
    assert clock.hold_due(last + 2 * P)


def test_the_stale_limit_follows_a_slower_stream():
    clock = streaming_clock(interval=0.1)  # Scope at 10 fps
    assert clock.measured_fps() == pytest.approx(10)
    last = 0.9
    assert not clock.away(last + 0.15)  # would be stale at 30 fps, not at 10
    assert clock.away(last + 0.2)


def test_a_lost_session_is_away_at_once_and_frames_bring_it_back():
    clock = streaming_clock()
    clock.set_streaming(False)
    assert clock.away(9 * P + 0.001)
    clock.on_real(1.0)
    assert clock.streaming and not clock.away(1.0 + P)


def test_outage_gaps_do_not_count_as_frame_intervals():
    clock = streaming_clock()
    clock.on_real(60.0)  # a minute-long outage, then frames again
    assert clock.measured_fps() == pytest.approx(30)


def test_the_last_frame_stands_in_for_hiccups_but_not_for_a_lost_session():
    clock = streaming_clock()
    last = 9 * P
    assert clock.show_last(last + 0.5)
    assert not clock.show_last(last + 1.0)
    clock.set_streaming(False)
    assert not clock.show_last(last + 0.1)


def test_mailbox_keeps_the_latest_items_and_says_when_it_dropped():
    box: LatestMailbox[int] = LatestMailbox(2)
    assert [box.put(i) for i in range(4)] == [False, False, True, True]
    assert [box.get(0), box.get(0), box.get(0)] == [2, 3, None]


def test_mailbox_get_returns_on_put_from_another_thread():
    box: LatestMailbox[str] = LatestMailbox(1)
    got: list[str | None] = []
    waiter = threading.Thread(target=lambda: got.append(box.get(10.0)))
    waiter.start()
    box.put("frame")
    waiter.join(10.0)
    assert got == ["frame"]


def test_mailbox_wake_and_close_release_a_waiter():
    box: LatestMailbox[int] = LatestMailbox(1)
    box.wake()
    assert box.get(10.0) is None
    box.put(1)
    box.close()
    assert box.get(10.0) is None and box.closed
    assert box.drain() == 1
