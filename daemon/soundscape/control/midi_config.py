"""The ``[midi]`` config section and its ``[[midi.mappings]]`` list.

Declared with :func:`soundscape.settings.setting` so ``soundscape check-config``
reports every mistake with its key path. Checks that need the live parameter
store (is ``lora:ink`` loaded?) happen when the mappings are compiled
(:mod:`soundscape.control.midi_mapping`), which logs and skips a bad mapping
instead of refusing the whole config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from soundscape.settings import setting

# Each table maps a config word to its one-line description; docs/midi.md is
# generated from them (soundscape.control.midi_docs), so they stay in step.
MAPPING_TYPES: dict[str, str] = {
    "cc": "7-bit control change (knob, fader; or a button with a button mode).",
    "cc14": "14-bit control change: MSB on CC n (0-31), LSB on CC n+32.",
    "relative": "Endless encoder sending steps (see the relative encodings).",
    "note": "Pad or key: note on = press, note off / velocity 0 = release.",
    "program": "Program change (e.g. scene N).",
}

BUTTON_MODES: dict[str, str] = {
    "trigger": "Each press runs the command, or sets the target to `value` (default: max).",
    "toggle": "Each press flips the target between min and max (a command gets true/false).",
    "momentary": "Press sets max, release sets min (a command gets true, then false).",
}

RELATIVE_MODES: dict[str, str] = {
    "twos_complement": "1..63 = +1..+63 steps, 127..65 = -1..-63 (APC40, Launch Control XL).",
    "binary_offset": "64 = no move; 65 = +1, 63 = -1 (Ableton 'Bin Offset').",
    "sign_magnitude": "1..63 = +1..+63, 65..127 = -1..-63 (Mackie Control V-Pots, X-Touch MC).",
}

CURVE_DOCS: dict[str, str] = {
    "linear": "Equal knob travel, equal change.",
    "exponential": "Fine control at the low end; most change near the top.",
    "logarithmic": "Fast rise at the low end; fine control near the top.",
    "s-curve": "Fine control at both ends, fast through the middle.",
}

TAKEOVER_MODES: dict[str, str] = {
    "pickup": "Ignore the knob until it reaches (or crosses) the current value.",
    "scale": "Move the value proportionally so knob end and value end meet, then follow.",
    "none": "Follow the knob at once (the value may jump).",
}

COMMAND_PREFIX = "command:"
MAIN_SCREEN = ""  # a mapping's screen when it names none
EVERY_SCREEN = "*"


@dataclasses.dataclass
class MidiMapping:
    """One control → one target (or command)."""

    target: str = setting(
        "",
        "Target name (noise_scale, lora:ink, prompt_weight:0) "
        "or command:NAME (command:scene, command:panic).",
    )
    screen: str = setting(
        "",
        "Screen it steers (its parameters and commands): empty = the main screen, the name of "
        'a [[scope]] screen, or "*" = every screen.',
    )
    type: str = setting("cc", "What the control sends.", choices=tuple(MAPPING_TYPES))
    number: int | None = setting(
        None,
        "CC, note or program number (cc14: the MSB controller 0-31; program: "
        "empty = any, the program number goes to the command).",
        low=0,
        high=127,
    )
    channel: int | None = setting(None, "MIDI channel 1-16; empty = any.", low=1, high=16)
    name: str = setting("", "Optional label (logs, learn).")
    mode: str = setting(
        "",
        "relative: the encoding (default twos_complement); note/cc: trigger, toggle or "
        "momentary (default: trigger for commands or with a value, else toggle; cc: absolute).",
        choices=("", "absolute", *BUTTON_MODES, *RELATIVE_MODES),
    )
    min: float | None = setting(
        None,
        "Value at the bottom of the control (target units); "
        "default: the target's minimum. min > max inverts.",
    )
    max: float | None = setting(None, "Value at the top; default: the target's maximum.")
    curve: str = setting("linear", "Response curve.", choices=tuple(CURVE_DOCS))
    curve_amount: float = setting(
        3.0, "Steepness of exponential/logarithmic/s-curve.", low=0.1, high=20.0
    )
    takeover: str = setting(
        "", "pickup, scale or none; empty = [midi].takeover.", choices=("", *TAKEOVER_MODES)
    )
    feedback: bool = setting(True, "Send the value back to [midi].output (LEDs, motor faders).")
    sensitivity: float = setting(
        1.0,
        "relative: share of the range per step, in 1/127ths (negative reverses the direction).",
        low=-64,
        high=64,
    )
    value: float | None = setting(None, "trigger: the value to set (default: max).")
    velocity: bool = setting(False, "note: the velocity scales the value between min and max.")
    args: list[Any] = setting([], "Arguments passed to a command (before any on/off state).")
    feedback_on: int = setting(
        127,
        "Feedback for a lit pad/button (velocity or CC value; colour on many pads).",
        low=0,
        high=127,
    )
    feedback_off: int = setting(0, "Feedback for an unlit pad/button.", low=0, high=127)

    # ----- derived

    @property
    def command(self) -> str | None:
        """The command name when the target is ``command:<name>``."""
        if self.target.startswith(COMMAND_PREFIX):
            return self.target[len(COMMAND_PREFIX) :]
        return None

    @property
    def button_mode(self) -> str | None:
        """trigger/toggle/momentary when the control acts as a button, else None."""
        if self.type == "program":
            return "trigger"
        if self.type == "note":
            return self.mode or ("trigger" if self.command or self.value is not None else "toggle")
        if self.type == "cc" and self.mode in BUTTON_MODES:
            return self.mode
        if self.type == "cc" and not self.mode and self.command:
            return "trigger"
        return None

    @property
    def encoding(self) -> str:
        return self.mode or "twos_complement"

    def control_key(self) -> str:
        """Which physical control: kind, channel (``*`` = any) and number."""
        kind = "note" if self.type == "note" else "program" if self.type == "program" else "cc"
        channel = "*" if self.channel is None else str(self.channel)
        number = "*" if self.number is None else str(self.number)
        return f"{kind}:{channel}:{number}"

    def label(self) -> str:
        if self.name:
            return self.name
        where = f"@{self.screen}" if self.screen else ""
        return f"{self.type}:{self.channel or '*'}:{self.number}->{self.target}{where}"

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.target:
            problems.append(("target", "a mapping needs a target (or command:NAME)"))
        elif self.target.startswith(COMMAND_PREFIX) and not self.command:
            problems.append(("target", "command: needs a name, e.g. command:panic"))
        if self.type != "program" and self.number is None:
            problems.append(("number", f"a {self.type} mapping needs a number"))
        if self.type == "cc14" and self.number is not None and self.number > 31:
            problems.append(("number", "cc14 takes the MSB controller (0-31); LSB is number+32"))
        allowed = {
            "cc": ("", "absolute", *BUTTON_MODES),
            "cc14": ("", "absolute"),
            "relative": ("", *RELATIVE_MODES),
            "note": ("", *BUTTON_MODES),
            "program": ("", "trigger"),
        }[self.type]
        if self.mode not in allowed:
            problems.append(
                (
                    "mode",
                    f"{self.mode!r} does not fit type {self.type!r} "
                    f"(use one of {', '.join(repr(m) for m in allowed if m)})",
                )
            )
        if self.command and self.type in ("cc14", "relative"):
            problems.append(("target", f"a {self.type} control cannot run a command"))
        if self.command and self.type == "cc" and self.mode == "absolute":
            problems.append(("mode", "a command needs a button mode (trigger/toggle/momentary)"))
        if self.sensitivity == 0:
            problems.append(("sensitivity", "0 would never move"))
        if self.velocity and self.type != "note":
            problems.append(("velocity", "only notes have a velocity"))
        return problems


@dataclasses.dataclass
class MidiConfig:
    """MIDI control: inputs, feedback output, clock, and the mappings."""

    enabled: bool = setting(False, "Use MIDI.")
    inputs: list[str] = setting(
        [], "Input ports to open, by name (case-insensitive substring); empty = every input."
    )
    output: str = setting("", "Feedback output port, by name substring; empty = no feedback.")
    backend: str = setting(
        "auto",
        "auto (MIDO_BACKEND if set, else JACK when a JACK server runs, else the system API), "
        "jack, alsa, coremidi, winmm, or a mido backend like mido.backends.rtmidi/UNIX_JACK.",
    )
    client_name: str = setting(
        "soundscape", "Name of the daemon's own MIDI client (its ports are never opened as inputs)."
    )
    clock: bool = setting(True, "Follow MIDI clock (tempo, start/stop) from the inputs.")
    clock_input: str = setting(
        "",
        "Only take clock from this port (substring; opened even if not in inputs); "
        "empty = any input.",
    )
    takeover: str = setting(
        "pickup", "Default soft takeover for knobs and faders.", choices=tuple(TAKEOVER_MODES)
    )
    takeover_threshold: float = setting(
        0.03, "How near (share of the knob's travel) counts as picked up.", low=0.0, high=0.5
    )
    learn_timeout: float = setting(30.0, "Seconds MIDI learn waits for a control.", low=1)
    learn_settle: float = setting(
        0.4,
        "Seconds learn watches a moved CC to tell knob, encoder and 14-bit apart.",
        low=0.05,
        high=5,
    )
    pair_window: float = setting(
        0.02,
        "Seconds a 14-bit MSB waits for its LSB before it is applied alone.",
        low=0.001,
        high=0.5,
    )
    poll_interval: float = setting(
        1.0,
        "Seconds between port scans (unplugged devices come back on their own).",
        low=0.05,
        high=60,
    )
    mappings: list[MidiMapping] = setting([], "Controls and what they move.")

    def check(self) -> list[tuple[str, str]]:
        problems = []
        seen: dict[tuple[str, str, str], int] = {}
        for i, mapping in enumerate(self.mappings):
            key = (mapping.control_key(), mapping.target, mapping.screen)
            if key in seen:
                problems.append(
                    (
                        f"mappings[{i}]",
                        f"same control, target and screen as mappings[{seen[key]}]",
                    )
                )
            seen[key] = i
        return problems


# --------------------------------------------------------------------------- screens


def screen_names_used(config: MidiConfig) -> set[str]:
    """The screen names the mappings refer to (not the main screen's "" nor "*")."""
    return {m.screen for m in config.mappings} - {MAIN_SCREEN, EVERY_SCREEN}


def screen_problems(
    config: MidiConfig, screens: Iterable[str], prefix: str = "midi"
) -> list[tuple[str, str]]:
    """(key path, message) for each mapping naming a screen not in ``screens``.

    The ``[midi]`` section cannot know the ``[[scope]]`` screens; the root config
    calls this with their names (the main screen's own name included).
    """
    known = set(screens)
    listed = ", ".join(repr(name) for name in sorted(known)) or "none"
    return [
        (
            f"{prefix}.mappings[{i}].screen",
            f"no screen {mapping.screen!r} (screens: {listed}; "
            f'"" = the main screen, "*" = every screen)',
        )
        for i, mapping in enumerate(config.mappings)
        if mapping.screen not in (MAIN_SCREEN, EVERY_SCREEN) and mapping.screen not in known
    ]
