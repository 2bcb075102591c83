"""Generated sections in Markdown docs, kept current from the code's own tables.

A doc marks each generated part with ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->``; a module renders each part and offers ``--write`` and
``--check`` (tests call ``update`` and compare).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

Renderers = Mapping[str, Callable[[], str]]


def replace_section(text: str, marker: str, body: str) -> str:
    """``text`` with the part between ``marker``'s begin and end lines set to ``body``."""
    pattern = re.compile(rf"(<!-- {re.escape(marker)}:begin -->\n).*?(<!-- {marker}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- {marker}:begin/end --> markers")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)


def update(text: str, sections: Renderers) -> str:
    """``text`` with every generated section replaced by its current rendering."""
    for marker, render in sections.items():
        text = replace_section(text, marker, render())
    return text


def main(doc: Path, sections: Renderers, module: str, argv: Sequence[str] | None = None) -> int:
    """``python -m MODULE --write|--check`` for one doc."""
    parser = argparse.ArgumentParser(description=f"Generated sections of {doc.name}")
    parser.add_argument("--path", type=Path, default=doc)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the generated sections")
    mode.add_argument("--check", action="store_true", help="exit 1 if they are stale")
    args = parser.parse_args(argv)
    text = args.path.read_text(encoding="utf-8")
    new = update(text, sections)
    if args.check:
        if new != text:
            print(f"{args.path} is stale: run python -m {module} --write", file=sys.stderr)
            return 1
        return 0
    args.path.write_text(new, encoding="utf-8")
    return 0
