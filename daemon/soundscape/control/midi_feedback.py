"""MIDI feedback: LED rings, motor faders and pad LEDs show the real state.

Pure logic: :class:`FeedbackPlanner` reads the current value of each binding's
target and returns the MIDI messages that bring the controller up to date.
It remembers what each control was last told, so an unchanged value costs
nothing (audio moving a parameter 60 times a second sends only real steps).

A knob or fader's own move is never sent back to it: a motor fader would fight
the hand moving it. Relative encoders and pads do get their own changes back,
since the device cannot know the resulting value (ring position, toggle state).

Each binding reads its own screen's store, so a control bound to screen "b"
shows b's value; a change in one screen's store re-plans only that screen's
bindings.
"""

from __future__ import annotations

from collections.abc import Iterable

import mido

from soundscape.control.midi_decode import MAX7, split14
from soundscape.control.midi_mapping import Binding
from soundscape.scope.params import ParameterStore


def feedback_messages(binding: Binding, unit: float) -> list[mido.Message]:
    """The messages that show knob-scale ``unit`` on the binding's control."""
    m = binding.mapping
    channel = 0 if m.channel is None else m.channel - 1
    assert m.number is not None
    if m.type == "cc14":
        msb, lsb = split14(unit)
        return [
            mido.Message("control_change", channel=channel, control=m.number, value=msb),
            mido.Message("control_change", channel=channel, control=m.number + 32, value=lsb),
        ]
    lit = m.feedback_on if unit >= 0.5 else m.feedback_off
    if m.type == "note":
        return [mido.Message("note_on", channel=channel, note=m.number, velocity=lit)]
    if binding.mapping.button_mode is not None:
        return [mido.Message("control_change", channel=channel, control=m.number, value=lit)]
    value = round(min(1.0, max(0.0, unit)) * MAX7)
    return [mido.Message("control_change", channel=channel, control=m.number, value=value)]


def wants_feedback(binding: Binding) -> bool:
    m = binding.mapping
    return (
        m.feedback and binding.shows_feedback and binding.target is not None and m.type != "program"
    )


class FeedbackPlanner:
    def __init__(self, bindings: Iterable[Binding] = ()) -> None:
        self._sent: dict[int, tuple[bytes, ...]] = {}
        self.bindings: list[Binding] = []
        self.set_bindings(bindings)

    def set_bindings(self, bindings: Iterable[Binding]) -> None:
        self.bindings = [b for b in bindings if wants_feedback(b)]
        live = {id(b) for b in self.bindings}
        self._sent = {k: v for k, v in self._sent.items() if k in live}

    def forget(self) -> None:
        """Forget what was sent (a new output connection must get everything)."""
        self._sent.clear()

    def plan(
        self, store: ParameterStore | None = None, source: str | None = None
    ) -> list[mido.Message]:
        """Messages for every control whose shown value is out of date.

        ``store`` is the store that changed (only its bindings are looked at;
        None: every binding, each reading its own screen's store). ``source`` is
        who made the change being reported; a continuous control that made it is
        marked up to date without being sent its own move.
        """
        out: list[mido.Message] = []
        for binding in self.bindings:
            if store is not None and binding.store is not store:
                continue
            unit = binding.current_unit()
            if unit is None:
                continue
            messages = feedback_messages(binding, unit)
            wire = tuple(bytes(msg.bytes()) for msg in messages)
            if self._sent.get(id(binding)) == wire:
                continue
            self._sent[id(binding)] = wire
            if binding.continuous and source == binding.source:
                continue
            out.extend(messages)
        return out
