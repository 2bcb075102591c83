"""The recorded answers of the real Scope v0.2.4 server, and how to compare ours with them.

The recordings live in ``shared/scope-v0.2.4/`` beside the repository (CI keeps a copy
there); ``SCOPE_RECORDINGS`` points elsewhere. Each single-request file is
``{"request": {"method", "path", "body"}, "status", "headers": {"content-type"},
"body"}``; ``_`` keys are the capturer's notes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def recordings_dir() -> Path:
    """Where the recordings are; raises with a clear message if nowhere."""
    configured = os.environ.get("SCOPE_RECORDINGS")
    candidates = [Path(configured)] if configured else []
    candidates.append(REPO.parent / "shared" / "scope-v0.2.4")
    for path in candidates:
        if (path / "README.md").is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"Scope v0.2.4 recordings not found (tried {tried}); set SCOPE_RECORDINGS"
    )


def recording_names() -> list[str]:
    """Every recorded JSON file, by name (``.sdp.txt`` files are read by the SDP tests)."""
    try:
        folder = recordings_dir()
    except FileNotFoundError:
        return ["<recordings missing>"]
    return sorted(p.name for p in folder.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((recordings_dir() / name).read_text()))


def sdp(name: str) -> str:
    return (recordings_dir() / name).read_text()


# --------------------------------------------------------------------------- comparison


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object" if isinstance(value, dict) else type(value).__name__


def shape_diff(
    recorded: Any,
    ours: Any,
    path: str = "body",
    *,
    keyed_by_id: frozenset[str] = frozenset(),
    extra_keys: frozenset[str] = frozenset(),
) -> list[str]:
    """Where ``ours`` differs from ``recorded`` in keys and JSON types (not values).

    An object named in ``keyed_by_id`` maps ids to entries: every entry of ours must
    have the shape of the recorded entries. ``extra_keys`` (``path.key``) may be in
    ours only (where the recording left a field out, e.g. the answer's long SDP).
    """
    if _kind(recorded) != _kind(ours):
        return [
            f"{path}: recorded {_kind(recorded)} {recorded!r:.80}, ours {_kind(ours)} {ours!r:.80}"
        ]
    diffs: list[str] = []
    if isinstance(recorded, dict):
        if path in keyed_by_id:
            templates = list(recorded.values())
            if templates and not ours:
                diffs.append(f"{path}: recorded {len(templates)} entries, ours none")
            for key, value in ours.items():
                if templates:
                    diffs += shape_diff(templates[0], value, f"{path}[{key}]")
            return diffs
        missing = recorded.keys() - ours.keys()
        extra = {k for k in ours.keys() - recorded.keys() if f"{path}.{k}" not in extra_keys}
        diffs += [f"{path}.{k}: recorded, missing in ours" for k in sorted(missing)]
        diffs += [f"{path}.{k}: ours only" for k in sorted(extra)]
        for key in recorded.keys() & ours.keys():
            diffs += shape_diff(
                recorded[key],
                ours[key],
                f"{path}.{key}",
                keyed_by_id=keyed_by_id,
                extra_keys=extra_keys,
            )
    elif isinstance(recorded, list) and recorded:
        if not ours:
            return [f"{path}: recorded {len(recorded)} items, ours none"]
        pairs = zip(recorded, ours, strict=False) if len(recorded) == len(ours) else None
        for i, item in enumerate(ours):
            template = recorded[i] if pairs is not None else recorded[0]
            diffs += shape_diff(
                template, item, f"{path}[{i}]", keyed_by_id=keyed_by_id, extra_keys=extra_keys
            )
    return diffs


def at(document: Any, dotted: str) -> Any:
    """The value at ``a.b.0.c`` (list indices as numbers)."""
    value = document
    for part in dotted.split(".") if dotted else []:
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def substitute(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with every recorded id replaced by ours (in strings, keys, lists)."""
    if isinstance(value, str):
        for recorded, ours in ids.items():
            value = value.replace(recorded, ours)
        return value
    if isinstance(value, list):
        return [substitute(v, ids) for v in value]
    if isinstance(value, dict):
        return {substitute(k, ids): substitute(v, ids) for k, v in value.items()}
    return value


def sdp_summary(text: str) -> list[dict[str, Any]]:
    """Per m-line: kind, direction, codec names in order, candidates, end-of-candidates,
    data-channel attributes. What an answer must look like, minus ports and keys."""
    sections = []
    for block in text.replace("\r\n", "\n").split("\nm=")[1:]:
        lines = block.split("\n")
        attrs = [line[2:] for line in lines if line.startswith("a=")]
        direction = next(
            (a for a in attrs if a in ("sendrecv", "sendonly", "recvonly", "inactive")), None
        )
        sections.append(
            {
                "kind": lines[0].split(" ")[0],
                "direction": direction,
                "codecs": [a.split(" ", 1)[1] for a in attrs if a.startswith("rtpmap:")],
                "has_candidates": any(a.startswith("candidate:") for a in attrs),
                "end_of_candidates": "end-of-candidates" in attrs,
                "sctp": [a for a in attrs if a.startswith(("sctp-port", "max-message-size"))],
            }
        )
    return sections
