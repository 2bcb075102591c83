"""Generates docs/configuration.md from the config schema, so the reference never drifts.

python -m soundscape.config_reference > docs/configuration.md
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from typing import Any

from soundscape.config import Config
from soundscape.settings import describe

INTRO = """\
# Configuration reference

One TOML file, given with `soundscape run --config FILE`. Every key is optional; the defaults
work against a local Scope at `http://127.0.0.1:8000` with `longlive` at 576×320.
[`config/soundscape.toml`](../config/soundscape.toml) shows every key with its default, and
`soundscape check-config FILE` reports every error at once with its key path and line
(unknown keys get a "did you mean").

Command-line flags override the file: `--scope-url`, `--log-level`, `--log-format` (and the
flags listed by `soundscape run --help`).

This page is generated from the schema (`python -m soundscape.config_reference`).
"""


def _default(value: Any) -> str:
    if value is None:
        return "—"
    if dataclasses.is_dataclass(value):
        return "(table)"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else f'"{value}"'
    return f"`{text}`" if len(text) < 60 else f"`{text[:57]}…`"


def render() -> str:
    lines = [INTRO]
    hints = typing.get_type_hints(Config)
    for field in dataclasses.fields(Config):
        if field.metadata.get("hidden"):
            continue
        section = hints[field.name]
        is_list = typing.get_origin(section) is list
        cls = typing.get_args(section)[0] if is_list else section
        header = f"[[{field.name}]]" if is_list else f"[{field.name}]"
        if field.name == "scope":
            header = "[scope]` or `[[scope]]"
        lines.append(f"\n## `{header}`\n")
        doc = inspect.getdoc(cls) or ""
        if doc and not doc.startswith(cls.__name__ + "("):
            lines.append(doc + "\n")
        elif field.metadata.get("doc"):
            lines.append(field.metadata["doc"] + "\n")
        lines.append("| key | default | meaning |\n|---|---|---|")
        for key, text, default in describe(cls):
            lines.append(f"| `{key}` | {_default(default)} | {text} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
