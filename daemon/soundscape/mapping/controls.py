"""Control channels: named 0..1 values that OSC and MIDI write and mapping rules read.

A control channel is not a Scope parameter: it is a knob the show designer
wires into rules (``source = "control:intensity"`` — e.g. a master
"reactivity" fader that scales how much the music moves the picture).

Writers: anything holding the registry calls ``controls.set(name, value)``;
and because :meth:`Controls.register_target` adds the target family
``control:<name>``, MIDI mappings (``target = "control:intensity"``) and OSC
(``/soundscape/norm/control:intensity``) reach it through the shared targets
with no code of their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from soundscape.control import targets
from soundscape.errors import ParamError
from soundscape.scope.params import ParameterStore

NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.")

Listener = Callable[[str, float], None]


def _check_name(name: str) -> str:
    if not name or not set(name.lower()) <= NAME_CHARS:
        raise ParamError(f"control {name!r}: use letters, digits, '_', '-' or '.'")
    return name.lower()


class Controls:
    """Named control values in 0..1; unknown names read as their default (0)."""

    def __init__(self) -> None:
        self._values: dict[str, float] = {}
        self._listeners: list[Listener] = []

    def set(self, name: str, value: float) -> float:
        """Set a control (clamped to 0..1); raises ParamError for a bad name or value."""
        name = _check_name(name)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ParamError(f"control {name}: expected a number, got {value!r}")
        value = min(1.0, max(0.0, float(value)))
        self._values[name] = value
        for listener in list(self._listeners):
            listener(name, value)
        return value

    def get(self, name: str, default: float = 0.0) -> float:
        return self._values.get(name.lower(), default)

    def known(self, name: str) -> bool:
        return name.lower() in self._values

    def snapshot(self) -> dict[str, float]:
        return dict(self._values)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """``listener(name, value)`` after every set."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def register_target(self) -> None:
        """Make ``control:<name>`` a target (MIDI mappings, OSC ``/soundscape/norm/...``)."""
        targets.register_target("control", self._target)

    def _target(self, name: str, store: ParameterStore) -> targets.Target:
        name = _check_name(name)

        def setter(_store: ParameterStore, value: float, _source: str) -> dict[str, Any]:
            self.set(name, value)
            return {}  # not a Scope parameter: nothing for the sender

        return targets.Target(
            f"control:{name}",
            0.0,
            1.0,
            f"Control channel {name!r} (read by mapping rules).",
            lambda _store: self._values.get(name),
            setter,
        )
