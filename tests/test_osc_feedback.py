"""Feedback throttling and log rate limits with synthetic clocks (pure)."""

from __future__ import annotations

from soundscape.control.osc_feedback import Throttle, normalise_ip
from soundscape.control.osc_logging import LogLimiter

INTERVAL = 1 / 30


def test_first_value_goes_out_at_once_repeats_do_not() -> None:
    t = Throttle(INTERVAL)
    assert t.offer("/a", (0.1,), now=0.0)
    assert not t.offer("/a", (0.1,), now=1.0)  # the receiver shows it already
    assert t.offer("/a", (0.2,), now=1.0)


def test_fast_stream_latest_wins_at_the_rate() -> None:
    t = Throttle(INTERVAL)
    assert t.offer("/a", (0.0,), now=0.0)
    for i in range(1, 10):  # 10 values within one interval
        assert not t.offer("/a", (i / 10,), now=i * 0.001)
    assert t.next_due() == INTERVAL
    assert t.pop_due(INTERVAL / 2) == []
    assert t.pop_due(INTERVAL) == [("/a", (0.9,))]
    assert t.next_due() is None


def test_addresses_are_limited_separately() -> None:
    t = Throttle(INTERVAL)
    assert t.offer("/a", (1,), now=0.0)
    assert t.offer("/b", (1,), now=0.001)


def test_value_returning_to_what_is_shown_cancels_the_wait() -> None:
    t = Throttle(INTERVAL)
    t.offer("/a", (1,), now=0.0)
    assert not t.offer("/a", (2,), now=0.01)
    assert not t.offer("/a", (1,), now=0.02)
    assert t.pop_due(1.0) == []


def test_known_value_drops_what_waits() -> None:
    # A controller moved the fader itself: a stale value waiting for it must not follow.
    t = Throttle(INTERVAL)
    t.offer("/a", (0.1,), now=0.0)
    t.offer("/a", (0.2,), now=0.01)  # waits
    t.known("/a", (0.5,))
    assert t.pop_due(1.0) == []
    assert not t.offer("/a", (0.5,), now=1.0)
    assert t.offer("/a", (0.6,), now=1.0)


def test_sent_outside_counts_for_the_rate() -> None:
    t = Throttle(INTERVAL)
    t.sent("/a", (1,), now=0.0)
    assert not t.offer("/a", (1,), now=0.001)
    assert not t.offer("/a", (2,), now=0.001)
    assert t.pop_due(INTERVAL) == [("/a", (2,))]


def test_normalise_ip() -> None:
    assert normalise_ip("::ffff:192.168.1.20") == "192.168.1.20"
    assert normalise_ip("::1") == "::1"
    assert normalise_ip("fe80::1%eth0") == "fe80::1"
    assert normalise_ip("not-an-ip") == "not-an-ip"


def test_log_limiter_one_line_per_interval_with_count() -> None:
    clock = [0.0]
    limiter = LogLimiter(interval=1.0, clock=lambda: clock[0])
    assert limiter.check("a") == 0
    assert limiter.check("a") is None
    assert limiter.check("a") is None
    assert limiter.check("b") == 0  # keys are separate
    clock[0] = 1.0
    assert limiter.check("a") == 2  # two lines held back


def test_log_limiter_memory_is_bounded() -> None:
    limiter = LogLimiter(max_keys=8, clock=lambda: 0.0)
    for i in range(1000):
        limiter.check(f"k{i}")
    assert len(limiter._keys) == 8
