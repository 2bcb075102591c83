"""Mappings compiled into bindings: a MIDI message in, actions out.

Pure logic apart from reading the parameter store for current values (soft
takeover and relative encoders need them). Nothing here sends or sets
anything: :meth:`MidiMapper.handle` returns :class:`SetTarget` and
:class:`RunCommand` actions that :class:`~soundscape.control.midi.MidiControl`
carries out, so tests drive the whole mapping with synthetic messages.

Each binding tags its changes with a source ``midi:<kind>:<channel>:<number>``
(the physical control), so feedback can tell a control's own move from a move
made anywhere else.

Screens: a mapping with ``screen = "<name>"`` compiles against that screen's
store; ``screen = "*"`` compiles into one binding per screen (each with its own
soft takeover, reading its own store), of which only the main screen's copy
sends feedback (one LED cannot show several values).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import mido
import structlog

from soundscape.control.midi_config import EVERY_SCREEN, MAIN_SCREEN, MidiMapping
from soundscape.control.midi_curves import ValueRange
from soundscape.control.midi_decode import MAX7, Cc14Decoder, button_pressed, relative_steps
from soundscape.control.midi_takeover import SoftTakeover
from soundscape.control.targets import Target, resolve
from soundscape.errors import ParamError
from soundscape.scope.params import ParameterStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SetTarget:
    target: Target
    value: float
    source: str
    binding: Binding


@dataclass(frozen=True)
class RunCommand:
    name: str
    args: tuple[Any, ...]
    source: str
    binding: Binding


Action = SetTarget | RunCommand


@dataclass(eq=False)
class Binding:
    """One compiled mapping on one screen: what it listens to, what it moves, its state."""

    mapping: MidiMapping
    target: Target | None  # None for commands
    range: ValueRange
    takeover: SoftTakeover
    store: ParameterStore  # the screen's store: values read and set here
    screen: str = MAIN_SCREEN  # "" = the main screen
    shows_feedback: bool = True  # False for the extra copies of a "*" mapping
    decoder: Cc14Decoder | None = None
    toggled: bool = False  # a command toggle's own state
    last_error: str | None = field(default=None, repr=False)

    @property
    def source(self) -> str:
        return "midi:" + self.mapping.control_key()

    @property
    def continuous(self) -> bool:
        """A knob or fader with a physical position (its own moves are never echoed)."""
        return self.mapping.type in ("cc", "cc14") and self.mapping.button_mode is None

    def matches(self, msg: mido.Message) -> bool:
        m = self.mapping
        channel = getattr(msg, "channel", None)
        if m.channel is not None and channel != m.channel - 1:
            return False
        if msg.type == "control_change":
            if m.type == "cc14":
                return msg.control in (m.number, (m.number or 0) + 32)
            return m.type in ("cc", "relative") and msg.control == m.number
        if msg.type in ("note_on", "note_off"):
            return m.type == "note" and msg.note == m.number
        if msg.type == "program_change":
            return m.type == "program" and (m.number is None or msg.program == m.number)
        return False

    # ----- reading the current value on the knob's scale

    def current_unit(self) -> float | None:
        if self.target is None:
            return None
        value = self.target.get(self.store)
        return None if value is None else self.range.to_unit(value)

    # ----- turning messages into actions

    def handle(self, msg: mido.Message, now: float) -> list[Action]:
        m = self.mapping
        if m.type == "cc14":
            assert self.decoder is not None
            if msg.control == m.number:
                unit = self.decoder.feed_msb(msg.value, now)
            else:
                unit = self.decoder.feed_lsb(msg.value, now)
            return [] if unit is None else self._absolute(unit)
        if m.type == "relative":
            return self._relative(msg.value)
        if m.type == "program":
            return self._program(msg.program)
        if m.type == "note":
            pressed = msg.type == "note_on" and msg.velocity > 0
            velocity = msg.velocity if msg.type == "note_on" else 0
            return self._button(pressed, velocity)
        if m.button_mode is not None:
            return self._button(button_pressed(msg.value), msg.value)
        return self._absolute(msg.value / MAX7)

    def poll(self, now: float) -> list[Action]:
        """Flush a 14-bit half that waited too long for its partner."""
        if self.decoder is None:
            return []
        unit = self.decoder.poll(now)
        return [] if unit is None else self._absolute(unit)

    def _set(self, unit: float) -> list[Action]:
        assert self.target is not None
        return [SetTarget(self.target, self.range.to_value(unit), self.source, self)]

    def _absolute(self, knob: float) -> list[Action]:
        unit = self.takeover.feed(knob, self.current_unit())
        return [] if unit is None else self._set(unit)

    def _relative(self, value: int) -> list[Action]:
        steps = relative_steps(self.mapping.encoding, value)
        if steps == 0:
            return []
        current = self.current_unit()
        unit = (0.0 if current is None else current) + steps * self.mapping.sensitivity / MAX7
        return self._set(min(1.0, max(0.0, unit)))

    def _program(self, program: int) -> list[Action]:
        m = self.mapping
        if m.command:
            args = (*m.args,) if m.number is not None else (*m.args, program)
            return [RunCommand(m.command, args, self.source, self)]
        if m.number is None:
            return self._set(program / MAX7)
        return self._trigger_value(MAX7)

    def _trigger_value(self, velocity: int) -> list[Action]:
        assert self.target is not None
        m = self.mapping
        if m.value is not None:
            return [SetTarget(self.target, m.value, self.source, self)]
        return self._set(velocity / MAX7 if m.velocity else 1.0)

    def _button(self, pressed: bool, velocity: int) -> list[Action]:
        m = self.mapping
        mode = m.button_mode
        if m.command:
            if mode == "trigger":
                return [RunCommand(m.command, tuple(m.args), self.source, self)] if pressed else []
            if mode == "toggle":
                if not pressed:
                    return []
                self.toggled = not self.toggled
                return [RunCommand(m.command, (*m.args, self.toggled), self.source, self)]
            return [RunCommand(m.command, (*m.args, pressed), self.source, self)]
        if mode == "trigger":
            return self._trigger_value(velocity) if pressed else []
        if mode == "toggle":
            if not pressed:
                return []
            current = self.current_unit()
            return self._set(0.0 if current is not None and current >= 0.5 else 1.0)
        # momentary
        if pressed:
            return self._set(velocity / MAX7 if m.velocity else 1.0)
        return self._set(0.0)


def compile_mapping(
    mapping: MidiMapping,
    store: ParameterStore,
    *,
    screen: str = MAIN_SCREEN,
    takeover: str = "pickup",
    threshold: float = 0.03,
    pair_window: float = 0.02,
) -> Binding:
    """Build a binding on ``store`` (the store of ``screen``); raises ParamError (one
    clear message) when it cannot work."""
    problems = [f"{key}: {msg}" for key, msg in mapping.check()]
    if problems:
        raise ParamError(f"{mapping.label()}: " + "; ".join(problems))
    target = None
    value_range = ValueRange(0.0, 1.0, mapping.curve, mapping.curve_amount)
    if mapping.command is None:
        try:
            target = resolve(mapping.target, store)
        except ParamError as err:
            raise ParamError(f"{mapping.label()}: {err}") from None
        low = target.low if mapping.min is None else mapping.min
        high = target.high if mapping.max is None else mapping.max
        clamped_low = min(target.high, max(target.low, low))
        clamped_high = min(target.high, max(target.low, high))
        if (clamped_low, clamped_high) != (low, high):
            log.warning(
                "midi_mapping_range_clamped",
                mapping=mapping.label(),
                range=f"{low:g}..{high:g}",
                allowed=f"{target.low:g}..{target.high:g}",
            )
        value_range = ValueRange(clamped_low, clamped_high, mapping.curve, mapping.curve_amount)
    decoder = Cc14Decoder(window=pair_window) if mapping.type == "cc14" else None
    return Binding(
        mapping=mapping,
        target=target,
        range=value_range,
        takeover=SoftTakeover(mapping.takeover or takeover, threshold),
        store=store,
        screen=screen,
        decoder=decoder,
    )


class MidiMapper:
    """All bindings of a config; routes each message to the bindings that match.

    ``store`` is the main screen's; ``screens`` maps each screen's name to its
    store (None: the main screen only). The main screen may be listed under its
    own name: a mapping naming it binds to the main store like ``screen = ""``.
    """

    def __init__(
        self,
        mappings: Iterable[MidiMapping],
        store: ParameterStore,
        *,
        screens: Mapping[str, ParameterStore] | None = None,
        takeover: str = "pickup",
        threshold: float = 0.03,
        pair_window: float = 0.02,
    ) -> None:
        self.store = store
        self.screens: dict[str, ParameterStore] = dict(screens or {})
        self.takeover = takeover
        self.threshold = threshold
        self.pair_window = pair_window
        self.bindings: list[Binding] = []
        self.problems: list[str] = []
        for mapping in mappings:
            self.add(mapping)

    def screen_stores(self, screen: str) -> list[tuple[str, ParameterStore]]:
        """(screen, store) pairs a mapping's ``screen`` reaches, the main one as "".

        Raises ParamError naming the known screens when there is no such screen.
        """
        if screen == MAIN_SCREEN:
            return [(MAIN_SCREEN, self.store)]
        others = [(name, s) for name, s in self.screens.items() if s is not self.store]
        if screen == EVERY_SCREEN:
            return [(MAIN_SCREEN, self.store), *others]
        store = self.screens.get(screen)
        if store is None:
            known = ", ".join(repr(name) for name in self.screens) or "only the main screen"
            raise ParamError(f"no screen {screen!r} (screens: {known})")
        return [(MAIN_SCREEN if store is self.store else screen, store)]

    def add(self, mapping: MidiMapping) -> list[Binding]:
        """Compile and add one mapping (one binding per screen it reaches).

        Logs and skips what cannot work: an unknown screen skips the mapping, a
        target missing on one screen (a LoRA it has not loaded) skips that copy.
        """
        try:
            stores = self.screen_stores(mapping.screen)
        except ParamError as err:
            stores = []
            self._skip(f"{mapping.label()}: {err}")
        added: list[Binding] = []
        for screen, store in stores:
            try:
                binding = compile_mapping(
                    mapping,
                    store,
                    screen=screen,
                    takeover=self.takeover,
                    threshold=self.threshold,
                    pair_window=self.pair_window,
                )
            except ParamError as err:
                self._skip(f"{err} (screen {screen!r})" if screen else str(err))
                continue
            # One LED shows one value: the first copy (the main screen's) gives feedback.
            binding.shows_feedback = not added
            added.append(binding)
        self.bindings += added
        return added

    def _skip(self, problem: str) -> None:
        self.problems.append(problem)
        log.warning("midi_mapping_skipped", problem=problem)

    def remove_control(self, mapping: MidiMapping) -> None:
        """Drop the bindings listening to the same physical control as ``mapping``."""
        key = mapping.control_key()
        self.bindings = [b for b in self.bindings if b.mapping.control_key() != key]

    def mappings(self) -> list[MidiMapping]:
        """The mappings bound, once each (a "*" mapping has a binding per screen)."""
        unique = {id(b.mapping): b.mapping for b in self.bindings}
        return [dataclasses.replace(m) for m in unique.values()]

    def handle(self, msg: mido.Message, now: float) -> tuple[list[Action], bool]:
        """Actions for one message, and whether any binding listened to it."""
        actions: list[Action] = []
        matched = False
        for binding in self.bindings:
            if binding.matches(msg):
                matched = True
                actions.extend(binding.handle(msg, now))
        return actions, matched

    def poll(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for binding in self.bindings:
            actions.extend(binding.poll(now))
        return actions

    @property
    def deadline(self) -> float | None:
        """Earliest time :meth:`poll` has work (a 14-bit half waiting), or None."""
        times = [b.decoder.deadline for b in self.bindings if b.decoder is not None]
        pending = [t for t in times if t is not None]
        return min(pending) if pending else None
