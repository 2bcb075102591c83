"""The failover benchmark: its freeze and frame-rate arithmetic, and one real kill end to end."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from bench._freeze import Freeze, longest_freeze, lowest_rate, picture_changes, rate

FRAME = 1 / 30


def stream(start: float, end: float, counter: int = 0) -> list[tuple[float, int | None]]:
    """Frames every 1/30 s from start to end, each a new picture."""
    n = round((end - start) / FRAME)
    return [(start + i * FRAME, counter + i) for i in range(n)]


def test_a_held_frame_is_no_new_picture_and_an_unreadable_one_proves_nothing() -> None:
    frames = [(0.0, 5), (0.1, 6), (0.2, 6), (0.3, None), (0.4, 6), (0.5, 900), (0.6, 3)]
    # Another server's counter, lower or higher, is a new picture.
    assert picture_changes(frames) == [0.0, 0.1, 0.5, 0.6]


def test_the_freeze_runs_from_the_last_picture_before_the_kill_to_the_first_after() -> None:
    held = [(1.0 + i * FRAME, 29) for i in range(1, 30)]  # the output repeats frame 29
    frames = [*stream(0.0, 1.0), *held, *stream(2.0, 3.0, counter=500)]
    changes = picture_changes(frames)
    freeze = longest_freeze(changes, start=1.2, end=3.0)
    assert freeze == Freeze(pytest.approx(29 * FRAME), 2.0)
    assert not freeze.open
    # Stillness that ended before the kill is not the kill's.
    assert longest_freeze(changes, start=2.5, end=3.0).seconds == pytest.approx(FRAME)


def test_a_picture_that_never_moves_again_is_an_open_freeze_up_to_the_end() -> None:
    changes = picture_changes(stream(0.0, 1.0))
    freeze = longest_freeze(changes, start=0.5, end=4.0)
    assert freeze.open and freeze.end == 4.0
    assert freeze.seconds == pytest.approx(4.0 - 29 * FRAME)
    assert longest_freeze([], 0.0, 1.0) is None


def test_frames_in_flight_after_the_kill_do_not_shorten_the_freeze() -> None:
    # Killed at 1.0; two frames already on their way arrive after it, then a 0.5 s hole.
    frames = [*stream(0.0, 1.0), (1.01, 30), (1.04, 31), *stream(1.54, 2.0, counter=100)]
    freeze = longest_freeze(picture_changes(frames), start=1.0, end=2.0)
    assert freeze.start == 1.04 and freeze.end == pytest.approx(1.54)


def test_rates_count_frames_and_the_worst_second_finds_a_hole() -> None:
    times = [t for t, _ in stream(0.0, 10.0)]
    assert rate(times, 0.0, 10.0) == pytest.approx(30.0)
    assert lowest_rate(times, 0.0, 10.0) == pytest.approx(29.0, abs=1.0)
    holed = [t for t in times if not 4.0 <= t < 4.5]
    assert lowest_rate(holed, 0.0, 10.0) == pytest.approx(15.0, abs=1.0)
    assert lowest_rate(holed, 6.0, 10.0) == pytest.approx(29.0, abs=1.0)


@pytest.mark.ndi
@pytest.mark.timeout(240)
@pytest.mark.skipif(
    importlib.util.find_spec("cyndilib") is None,
    reason="cyndilib not installed (pip install 'soundscape[ndi]')",
)
def test_one_kill_with_and_without_a_standby_is_measured_end_to_end() -> None:
    """The harness itself: real processes, one SIGKILL each, freezes read from the pictures."""
    script = Path(__file__).resolve().parent.parent / "bench" / "failover.py"
    done = subprocess.run(
        [sys.executable, str(script), "--modes", "single,hot", "--kills", "1", "--settle", "1"],
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    worst = {}
    for mode in ("single", "hot"):
        row = next(line for line in done.stdout.splitlines() if line.startswith(f"| {mode} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1:3] == ["1", "0"], row  # one kill, none failed
        worst[mode] = float(cells[5].split(" / ")[1])
    # A new server process and a new session take a while; a standby already streams.
    assert 0.3 < worst["single"] < 15.0
    assert worst["hot"] < worst["single"]
