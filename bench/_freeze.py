"""Freezes and frame rates as a receiver of the output sees them: from picture content.

The daemon's outputs hold the last frame while Scope is away, so frames keep
arriving at the receiver during an outage: counting arrivals would hide every
freeze. A picture is told apart from the one before by the emulator's frame
counter (the barcode ``soundscape.emulator.renderer`` stamps into every frame,
read back by ``soundscape.video.ndi_probe --decode``): a held frame repeats its
counter, a new frame from either server has another. A frame whose counter
cannot be read counts as no new picture, so an unreadable stretch can only
lengthen a freeze, never hide one.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Freeze:
    """The picture stood still from ``start`` to ``end`` (receiver times, s)."""

    start: float
    end: float
    open: bool = False  # the picture had not moved again by ``end`` (a lower bound)

    @property
    def seconds(self) -> float:
        return self.end - self.start


def picture_changes(frames: Sequence[tuple[float, int | None]]) -> list[float]:
    """Arrival times of the frames that showed a new picture (the first frame is one)."""
    changes: list[float] = []
    last: int | None = None
    for t, counter in frames:
        if counter is None:
            continue  # unreadable: not evidence that the picture moved
        if not changes or counter != last:
            changes.append(t)
            last = counter
    return changes


def longest_freeze(changes: Sequence[float], start: float, end: float) -> Freeze | None:
    """The longest stillness that ended in ``(start, end]``, from sorted change times.

    A stillness runs from one picture change to the next and is credited to the window
    its end falls in: a fault at ``start`` freezes the picture from the last change
    before it (or just after it: frames in flight still arrive) to the first change that
    follows. The stillness still running at ``end`` counts too, as an open freeze (a
    lower bound). None if nothing changed at or before ``end``.
    """
    first = bisect.bisect_right(changes, start)  # changes[first]: the first after start
    last = bisect.bisect_right(changes, end)  # changes[:last]: at or before end
    if last == 0:
        return None
    gaps = [Freeze(changes[i - 1], changes[i]) for i in range(max(first, 1), last)]
    gaps.append(Freeze(changes[last - 1], end, open=True))
    return max(gaps, key=lambda g: g.seconds)


def rate(times: Sequence[float], start: float, end: float) -> float:
    """Events per second in ``[start, end)``, from sorted times."""
    if end <= start:
        return float("nan")
    n = bisect.bisect_left(times, end) - bisect.bisect_left(times, start)
    return n / (end - start)


def lowest_rate(times: Sequence[float], start: float, end: float, window: float = 1.0) -> float:
    """The fewest events in any ``window``-second span inside ``[start, end)``, per second.

    The count in a sliding span only falls when its start passes an event, so the worst
    spans begin at ``start`` or just after an event: only those are counted.
    """
    if end - start <= window:
        return rate(times, start, end)

    def count(after: float, inclusive: bool) -> int:
        left = (bisect.bisect_left if inclusive else bisect.bisect_right)(times, after)
        return bisect.bisect_left(times, after + window) - left

    lo = bisect.bisect_left(times, start)
    hi = bisect.bisect_left(times, end - window)
    worst = min([count(start, True), *(count(t, False) for t in times[lo:hi])])
    return worst / window


def median_max(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.median(values), max(values)
