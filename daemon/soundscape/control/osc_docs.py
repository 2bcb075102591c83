"""Generate the reference parts of ``docs/osc.md`` from the address table and the config.

``python -m soundscape.control.osc_docs --write`` rewrites the generated
sections (between ``<!-- osc-reference:begin/end -->`` and
``<!-- osc-config:begin/end -->``); ``--check`` exits 1 when they are stale.
The rest of the page is written by hand.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from soundscape import docgen
from soundscape.control.osc_address import (
    OUTBOUND_ROUTES,
    SCOPE_ROUTES,
    SCREEN_ROOT,
    SOUNDSCAPE_ROUTES,
    Route,
)
from soundscape.control.osc_config import OscConfig
from soundscape.settings import describe

DOC = Path(__file__).resolve().parents[3] / "docs" / "osc.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(routes: Sequence[Route], feedback_column: bool = True) -> str:
    head = "| Address | Arguments | What it does |"
    rule = "| --- | --- | --- |"
    if feedback_column:
        head += " Feedback |"
        rule += " --- |"
    rows = [head, rule]
    for route in routes:
        row = f"| `{route.address}` | {_cell(route.signature()) or '—'} | {_cell(route.doc)} |"
        if feedback_column:
            row += " yes |" if route.render is not None else " — |"
        rows.append(row)
    return "\n".join(rows)


def render_reference() -> str:
    return "\n\n".join(
        [
            "### Scope's own addresses (`/scope/…`)",
            _table(SCOPE_ROUTES),
            "### The daemon's addresses (`/soundscape/…`)",
            _table(SOUNDSCAPE_ROUTES),
            "### Sent by the daemon only",
            _table(OUTBOUND_ROUTES, feedback_column=False),
            f"### Screens (`{SCREEN_ROOT}<name>/…`)",
            _screens_table(),
        ]
    )


def _screens_table() -> str:
    # Not routes of the table: the server strips the prefix and looks the rest up.
    rows = [
        (
            f"`{SCREEN_ROOT}<name>/<address>`",
            "those of `<address>`",
            "Any address above (in or out) for screen `name` of a multi-screen daemon: "
            "its own parameters, prompts and commands. See *Screens*.",
            "yes, prefixed",
        ),
        (
            f"`{SCREEN_ROOT}*/<address>`",
            "those of `<address>`",
            "Every screen at once (any OSC pattern in the name part; the main screen included).",
            "yes, prefixed",
        ),
    ]
    head = ["| Address | Arguments | What it does | Feedback |", "| --- | --- | --- | --- |"]
    return "\n".join(head + [f"| {' | '.join(_cell(c) for c in row)} |" for row in rows])


def render_config() -> str:
    rows = ["| Key | Default | Meaning |", "| --- | --- | --- |"]
    for key, doc, default in describe(OscConfig, "osc"):
        rows.append(f"| `{key}` | `{_cell(json.dumps(default))}` | {_cell(doc)} |")
    return "\n".join(rows)


SECTIONS = {"osc-reference": render_reference, "osc-config": render_config}


def update(text: str) -> str:
    """``text`` with every generated section replaced by its current rendering."""
    return docgen.update(text, SECTIONS)


def main(argv: Sequence[str] | None = None) -> int:
    return docgen.main(DOC, SECTIONS, "soundscape.control.osc_docs", argv)


if __name__ == "__main__":
    sys.exit(main())
