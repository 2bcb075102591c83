"""MIDI learn: the next control moved binds to a chosen target, saved to the config.

:class:`LearnCapture` is pure: it watches messages (with their times) and
decides what the control is. Notes and program changes are decided at once. A
CC is watched for ``settle`` seconds, because one message cannot tell a knob
from an endless encoder or a 14-bit fader:

- CC n (0-31) together with CC n+32 → ``cc14``;
- the same small value repeated (1,1,1 or 127,127 or 65,65) → ``relative``,
  with the encoding guessed from the values (turn both ways to be sure; or
  pass the encoding explicitly);
- only 0 and 127 → a button (``cc`` with a button mode);
- anything else → an absolute ``cc``.

:func:`save_mapping` writes the mapping into ``[[midi.mappings]]`` with
tomlkit, so the user's comments and layout survive; a mapping of the same
physical control is replaced.
"""

from __future__ import annotations

import datetime
import itertools
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mido
import tomlkit
from tomlkit.items import AoT, Array, Table

from soundscape.control.midi_config import BUTTON_MODES, RELATIVE_MODES, MidiMapping

_RELATIVE_SMALL = 15  # steps per message a relative encoder sends in practice


@dataclass
class LearnCapture:
    target: str
    kind: str | None = None  # force a type (cc, cc14, relative, note, program)
    mode: str | None = None  # force a mode (encoding or button mode)
    settle: float = 0.4
    started: float | None = None  # time of the first message of the chosen control
    channel: int | None = None  # 0-based channel of the chosen control
    control: int | None = None
    values: list[tuple[int, int]] = field(default_factory=list)  # (control, value)

    @property
    def is_command(self) -> bool:
        return self.target.startswith("command:")

    @property
    def deadline(self) -> float | None:
        return None if self.started is None else self.started + self.settle

    def feed(self, msg: mido.Message, now: float) -> tuple[bool, MidiMapping | None]:
        """(was the message used by learn, the mapping once decided)."""
        if msg.type == "note_on" and msg.velocity > 0 and self.started is None:
            return True, self._note(msg)
        if msg.type == "program_change" and self.started is None:
            return True, self._program(msg)
        if msg.type != "control_change":
            # The release of a learnt pad, or anything not a control: not ours.
            return False, None
        if self.started is None:
            self.started = now
            self.channel = msg.channel
            self.control = msg.control
        elif msg.channel != self.channel or msg.control not in self._family():
            return False, None
        self.values.append((msg.control, msg.value))
        if now >= self.started + self.settle:
            return True, self.decide()
        return True, None

    def poll(self, now: float) -> MidiMapping | None:
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            return self.decide()
        return None

    def _family(self) -> tuple[int, ...]:
        assert self.control is not None
        n = self.control
        return (n, n + 32) if n < 32 else (n, n - 32) if n < 64 else (n,)

    def _note(self, msg: mido.Message) -> MidiMapping:
        mode = self.mode if self.mode in BUTTON_MODES else ""
        return MidiMapping(
            target=self.target, type="note", number=msg.note, channel=msg.channel + 1, mode=mode
        )

    def _program(self, msg: mido.Message) -> MidiMapping:
        # A program change learnt for scenes follows every program; else just this one.
        number = None if self.target == "command:scene" else msg.program
        return MidiMapping(
            target=self.target, type="program", number=number, channel=msg.channel + 1
        )

    def decide(self) -> MidiMapping | None:
        """The mapping for what was seen so far (None if nothing usable)."""
        if self.control is None or self.channel is None:
            return None
        channel = self.channel + 1
        seen = {c for c, _ in self.values}
        kind = self.kind
        if kind is None:
            if len(seen) == 2 and min(seen) < 32:
                kind = "cc14"
            else:
                kind = _classify([v for c, v in self.values if c == self.control])
        if kind == "cc14":
            number = self.control if self.control < 32 else self.control - 32
            return MidiMapping(target=self.target, type="cc14", number=number, channel=channel)
        values = [v for c, v in self.values if c == self.control]
        if kind == "relative" or kind in RELATIVE_MODES:
            encoding = self.mode if self.mode in RELATIVE_MODES else _encoding(values)
            return MidiMapping(
                target=self.target,
                type="relative",
                number=self.control,
                channel=channel,
                mode=encoding,
            )
        mode = ""
        if self.mode in BUTTON_MODES:
            mode = self.mode
        elif kind == "button" or self.is_command:
            mode = "trigger" if self.is_command else "toggle"
        return MidiMapping(
            target=self.target, type="cc", number=self.control, channel=channel, mode=mode
        )


def _classify(values: list[int]) -> str:
    if values and set(values) <= {0, 127} and (0 in values or len(values) == 1):
        return "button"  # press/release (127, 127, 127 is an encoder turning left)
    repeated = any(a == b for a, b in itertools.pairwise(values))
    if repeated and _encoding(values, strict=True):
        return "relative"
    return "cc"


def _encoding(values: list[int], strict: bool = False) -> str:
    """Guess a relative encoding from the values seen ('' if none fits and strict)."""
    small_up = set(range(1, _RELATIVE_SMALL + 1))
    twos_down = set(range(128 - _RELATIVE_SMALL, 128))
    sign_down = set(range(65, 65 + _RELATIVE_SMALL))
    offset = set(range(64 - _RELATIVE_SMALL, 64 + _RELATIVE_SMALL + 1)) - {64}
    seen = set(values)
    if seen <= offset and not seen & small_up:
        # 63/65 around the centre: binary offset (65 repeated could also be a
        # sign-magnitude left turn; a right turn then tells them apart).
        return "binary_offset"
    if seen <= small_up | twos_down and seen & twos_down:
        return "twos_complement"
    if seen <= small_up | sign_down and seen & sign_down:
        return "sign_magnitude"
    if seen <= small_up:
        return "twos_complement"  # a right turn only: the common default
    return "" if strict else "twos_complement"


# --------------------------------------------------------------------------- saving


def mapping_table(mapping: MidiMapping) -> dict[str, Any]:
    """The fields worth writing: what identifies the control, plus non-defaults."""
    defaults = MidiMapping()
    out: dict[str, Any] = {"type": mapping.type}
    if mapping.channel is not None:
        out["channel"] = mapping.channel
    if mapping.number is not None:
        out["number"] = mapping.number
    out["target"] = mapping.target
    for name in (
        "screen",
        "name",
        "mode",
        "min",
        "max",
        "curve",
        "curve_amount",
        "takeover",
        "feedback",
        "sensitivity",
        "value",
        "velocity",
        "args",
        "feedback_on",
        "feedback_off",
    ):
        value = getattr(mapping, name)
        if value != getattr(defaults, name):
            out[name] = value
    return out


def _same_control(item: Any, mapping: MidiMapping) -> bool:
    try:
        other = MidiMapping(
            target=str(item.get("target", "")),
            type=str(item.get("type", "cc")),
            number=item.get("number"),
            channel=item.get("channel"),
        )
    except (TypeError, ValueError):
        return False
    return other.control_key() == mapping.control_key()


def save_mapping(path: str | Path, mapping: MidiMapping) -> None:
    """Add ``mapping`` to ``[[midi.mappings]]`` in ``path``, keeping comments and layout.

    Mappings of the same physical control are replaced (a control moves one
    thing). The file is replaced atomically, so a crash never leaves half a file.
    Raises OSError / tomlkit's ParseError when the file cannot be read or written.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    doc = tomlkit.parse(text)
    midi = doc.get("midi")
    if midi is None:
        midi = tomlkit.table()
        doc["midi"] = midi
    mappings = midi.get("mappings")
    fields = mapping_table(mapping)
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    if isinstance(mappings, Array):
        for i in reversed(range(len(mappings))):
            if _same_control(mappings[i], mapping):
                del mappings[i]
        inline = tomlkit.inline_table()
        inline.update(fields)
        mappings.append(inline)
    else:
        if mappings is None:
            mappings = tomlkit.aot()
            midi["mappings"] = mappings
        assert isinstance(mappings, AoT)
        for i in reversed(range(len(mappings))):
            if _same_control(mappings[i], mapping):
                del mappings[i]
        if len(mappings) and not mappings[-1].as_string().endswith("\n\n"):
            mappings[-1].add(tomlkit.nl())  # a blank line between entries
        table: Table = tomlkit.table()
        table.add(tomlkit.comment(f"learned {stamp}"))
        for key, value in fields.items():
            table[key] = value
        table.add(tomlkit.nl())
        mappings.append(table)
    _write_atomic(path, tomlkit.dumps(doc))


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
