"""The ``denoising:profile`` target: a continuous value that picks a denoising step list.

Fewer denoising steps = a faster, rougher picture; more = slower and finer.
The configured profiles (``[mapping].denoising_profiles``, in order) become
indices 0..n-1, so a rule, a MIDI knob or an OSC fader can move between them
like any other target. Switching has hysteresis: the value must pass the
midpoint between two profiles by ``HYSTERESIS`` before the steps change, so a
value sitting on a boundary does not flap (each change resets Scope's cache).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from soundscape.control import targets
from soundscape.errors import ParamError
from soundscape.scope.params import ParameterStore

HYSTERESIS = 0.15


def pick(value: float, current: int | None, count: int) -> int:
    """Index for ``value`` given the profile in use (hysteresis around midpoints)."""
    index = min(count - 1, max(0, round(value)))
    if current is None or index == current:
        return index
    # Only leave the current profile once clearly past the midpoint.
    if abs(value - current) < 0.5 + HYSTERESIS:
        return current
    return index


def register(profiles: Mapping[str, Sequence[int]]) -> None:
    """Register ``denoising:profile`` for these profiles (replaces an earlier one)."""
    names = list(profiles)
    lists = [list(steps) for steps in profiles.values()]

    def factory(arg: str, store: ParameterStore) -> targets.Target:
        if arg != "profile":
            raise ParamError(f"denoising:{arg}: the target is denoising:profile")
        if not lists:
            raise ParamError("denoising:profile: no [mapping].denoising_profiles")

        def current(s: ParameterStore) -> int | None:
            steps = s.get("denoising_step_list")
            return lists.index(steps) if steps in lists else None

        def getter(s: ParameterStore) -> float | None:
            index = current(s)
            return None if index is None else float(index)

        def setter(s: ParameterStore, value: float, source: str) -> dict[str, Any]:
            return s.set(
                "denoising_step_list", lists[pick(value, current(s), len(lists))], source=source
            )

        doc = "Denoising profile: " + ", ".join(f"{i} = {n}" for i, n in enumerate(names))
        return targets.Target("denoising:profile", 0.0, float(len(lists) - 1), doc, getter, setter)

    targets.register_target("denoising", factory)
