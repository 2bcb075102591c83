"""Generate the reference parts of ``docs/osc.md`` from the address table and the config.

``python -m soundscape.control.osc_docs --write`` rewrites the generated
sections (between ``<!-- osc-reference:begin/end -->`` and
``<!-- osc-config:begin/end -->``); ``--check`` exits 1 when they are stale.
The rest of the page is written by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from soundscape.control.osc_address import (
    OUTBOUND_ROUTES,
    SCOPE_ROUTES,
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
        ]
    )


def render_config() -> str:
    rows = ["| Key | Default | Meaning |", "| --- | --- | --- |"]
    for key, doc, default in describe(OscConfig, "osc"):
        rows.append(f"| `{key}` | `{_cell(json.dumps(default))}` | {_cell(doc)} |")
    return "\n".join(rows)


SECTIONS = {"osc-reference": render_reference, "osc-config": render_config}


def update(text: str) -> str:
    """``text`` with every generated section replaced by its current rendering."""
    for marker, render in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {marker}:begin -->\n).*?(<!-- {marker}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"docs/osc.md has no <!-- {marker}:begin/end --> markers")
        text = pattern.sub(lambda m, r=render: m.group(1) + r() + "\n" + m.group(2), text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", type=Path, default=DOC)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the generated sections")
    mode.add_argument("--check", action="store_true", help="exit 1 if they are stale")
    args = parser.parse_args(argv)
    text = args.path.read_text(encoding="utf-8")
    new = update(text)
    if args.check:
        if new != text:
            print(f"{args.path} is stale: run python -m soundscape.control.osc_docs --write")
            return 1
        return 0
    args.path.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
