"""What a control input needs to steer one screen: its parameter store and its commands.

A daemon drives one or more screens (``[[scope]]`` entries with ``role = "screen"``,
besides the main one). OSC (``/screen/<name>/...``), MIDI (``screen = "<name>"`` in a
mapping) and mapping rules (``screen = "<name>"``) address a screen by its name; what
they reach is this pair. The main screen is listed too, under its own name.
"""

from __future__ import annotations

from dataclasses import dataclass

from soundscape.control.commands import CommandBus
from soundscape.scope.params import ParameterStore


@dataclass(frozen=True, slots=True)
class ScreenControls:
    """One screen as the controls see it.

    ``commands`` holds the screen's own commands (scene, panic, variation, pause,
    reset_cache, reconnect, failover) and falls back to the daemon's shared bus for
    the rest (tap, mapping, reload, learn, state).
    """

    name: str
    store: ParameterStore
    commands: CommandBus
