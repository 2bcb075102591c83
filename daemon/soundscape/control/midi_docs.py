"""Tables for docs/midi.md, generated from the code so the reference never drifts.

``python -m soundscape.control.midi_docs [path]`` rewrites every block between
``<!-- midi:NAME:begin -->`` and ``<!-- midi:NAME:end -->`` in the file
(default ``docs/midi.md``); a test fails when the file is out of date.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from soundscape.control.midi_clock import CLOCK_EVENTS
from soundscape.control.midi_config import (
    BUTTON_MODES,
    CURVE_DOCS,
    MAPPING_TYPES,
    RELATIVE_MODES,
    TAKEOVER_MODES,
    MidiConfig,
    MidiMapping,
)
from soundscape.control.midi_curves import apply_curve
from soundscape.control.midi_decode import encode_relative
from soundscape.settings import describe


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _default(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, list):
        return "`[]`" if not value else f"`{value}`"
    return f"`{value}`"


def config_table() -> str:
    rows = [
        [f"`{key}`", _default(default), doc]
        for key, doc, default in describe(MidiConfig, "midi")
        if key != "midi.mappings"
    ]
    return _table(["Key", "Default", "Meaning"], rows)


def mapping_table() -> str:
    rows = [[f"`{key}`", _default(default), doc] for key, doc, default in describe(MidiMapping)]
    return _table(["Field", "Default", "Meaning"], rows)


def _words(table: dict[str, str]) -> str:
    return _table(["Value", "Meaning"], [[f"`{k}`", v] for k, v in table.items()])


def relative_table() -> str:
    rows = []
    for name, doc in RELATIVE_MODES.items():
        sample = ", ".join(f"{s:+d} → {encode_relative(name, s)}" for s in (1, 2, -1, -2))
        rows.append([f"`{name}`", sample, doc])
    return _table(["Encoding", "Steps → CC value", "Devices"], rows)


def curve_table() -> str:
    rows = []
    for name, doc in CURVE_DOCS.items():
        points = " / ".join(f"{apply_curve(name, x):.2f}" for x in (0.25, 0.5, 0.75))
        rows.append([f"`{name}`", points, doc])
    return _table(["Curve", "Output at 25 / 50 / 75 % (amount 3)", "Use"], rows)


TABLES: dict[str, Callable[[], str]] = {
    "config": config_table,
    "mapping": mapping_table,
    "types": lambda: _words(MAPPING_TYPES),
    "buttons": lambda: _words(BUTTON_MODES),
    "relative": relative_table,
    "curves": curve_table,
    "takeover": lambda: _words(TAKEOVER_MODES),
    "clock": lambda: _words(CLOCK_EVENTS),
}


def render(text: str) -> str:
    """``text`` with every generated block replaced by its current content."""
    for name, make in TABLES.items():
        pattern = re.compile(rf"(<!-- midi:{name}:begin -->\n).*?(<!-- midi:{name}:end -->)", re.S)
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path(__file__).resolve().parents[3] / "docs" / "midi.md"
    text = path.read_text(encoding="utf-8")
    new = render(text)
    if new != text:
        path.write_text(new, encoding="utf-8")
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
