"""The show's state as data, and its versioned JSON form (pure).

``version`` names the format. A file from a newer daemon, or one that is not
this format at all, raises :class:`StateFileError` with a one-line reason; the
caller logs it and starts from the config. An older version is read through
:func:`_migrate` and saved in the current one at the next write.

Versions: 1, the main screen only, one Scope session (``scope_session``); 2,
further screens under ``screens`` (by name) and every server's session under
``scope_sessions`` (by server name).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

VERSION = 2
READS = (1, 2)

# The key of a version-1 file's one session: the main screen's primary (unnamed then).
MAIN_PRIMARY = ""

# Parameters the config owns, never restored: what is loaded on the server and
# how it is fed (pipeline_ids, input_mode), and server-side paths that may not
# exist after a new pod (vace_ref_images).
NOT_RESTORED = frozenset({"pipeline_ids", "input_mode", "vace_ref_images"})


class StateFileError(Exception):
    """A state file that cannot be used; ``str()`` is the one-line reason."""


@dataclass
class Takeover:
    """One soft-takeover position: where the knob was and what it last set (knob scale)."""

    knob: float | None = None
    set: float | None = None
    synced: bool = False


@dataclass
class ScreenState:
    """What one screen keeps: its parameters, scene and mapping (the tempo is global)."""

    parameters: dict[str, Any] = field(default_factory=dict)
    # The screen's config parameters when this was saved: a value the file has changed
    # since wins over the saved one (the same rule as a reload).
    config_parameters: dict[str, Any] = field(default_factory=dict)
    manual: dict[str, float] = field(default_factory=dict)  # target → value under the rules
    scene: str | None = None
    variation: int = 0
    mapping_enabled: bool | None = None


@dataclass
class ShowState(ScreenState):
    """The main screen's state (inherited fields), the global parts, and further screens."""

    # "control>target[@screen]" → position (MIDI's bindings of every screen)
    takeover: dict[str, Takeover] = field(default_factory=dict)
    bpm: float | None = None
    beat_source: str | None = None
    # Each server's Scope session at the time (server name → {"url", "id"}): a kill -9
    # leaves them on the servers.
    scope_sessions: dict[str, dict[str, str]] = field(default_factory=dict)
    screens: dict[str, ScreenState] = field(default_factory=dict)  # further screens by name


def encode(state: ShowState) -> bytes:
    """The file's bytes (no timestamp: unchanged state, unchanged bytes, no write)."""
    data: dict[str, Any] = {
        "version": VERSION,
        **_encode_screen(state),
        "takeover": {
            key: {"knob": t.knob, "set": t.set, "synced": t.synced}
            for key, t in state.takeover.items()
        },
        "tempo": {"bpm": state.bpm, "source": state.beat_source},
        "scope_sessions": state.scope_sessions,
        "screens": {name: _encode_screen(screen) for name, screen in state.screens.items()},
    }
    return json.dumps(data, indent=1, sort_keys=True).encode() + b"\n"


def _encode_screen(state: ScreenState) -> dict[str, Any]:
    return {
        "parameters": {k: v for k, v in state.parameters.items() if k not in NOT_RESTORED},
        "config_parameters": state.config_parameters,
        "manual": state.manual,
        "scene": state.scene,
        "variation": state.variation,
        "mapping_enabled": state.mapping_enabled,
    }


def decode(raw: bytes) -> ShowState:
    """Parse a state file; raises StateFileError saying why it cannot be used."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StateFileError(f"not JSON ({err})") from None
    if not isinstance(data, dict):
        raise StateFileError("not a JSON object")
    version = data.get("version")
    if isinstance(version, bool) or version not in READS:
        raise StateFileError(
            f"format version {version!r}, this daemon reads {', '.join(map(str, READS))}"
        )
    try:
        data = _migrate(data)
        main = _decode_screen(data)
        return ShowState(
            **vars(main),
            takeover={
                str(k): Takeover(
                    knob=_optional_unit(v.get("knob")),
                    set=_optional_unit(v.get("set")),
                    synced=bool(v.get("synced", False)),
                )
                for k, v in _table(data, "takeover").items()
            },
            bpm=_optional_bpm(_table(data, "tempo").get("bpm")),
            beat_source=_optional_str(_table(data, "tempo").get("source")),
            scope_sessions=_session_refs(_table(data, "scope_sessions")),
            screens={
                str(name): _decode_screen(_as_table(screen, f"screens.{name}"))
                for name, screen in _table(data, "screens").items()
            },
        )
    except (TypeError, ValueError, AttributeError) as err:
        raise StateFileError(f"malformed ({err})") from None


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    """An older file's data in the current form (the file itself is rewritten at the next save)."""
    if data["version"] == 1:
        data = dict(data)
        # One session, the main screen's primary, whose name the file did not say.
        session = _table(data, "scope_session")
        data["scope_sessions"] = {MAIN_PRIMARY: session} if session else {}
        data["screens"] = {}
    return data


def _decode_screen(data: dict[str, Any]) -> ScreenState:
    return ScreenState(
        parameters={k: v for k, v in _table(data, "parameters").items() if k not in NOT_RESTORED},
        config_parameters=_table(data, "config_parameters"),
        manual={str(k): _number(v) for k, v in _table(data, "manual").items()},
        scene=_optional_str(data.get("scene")),
        variation=int(data.get("variation") or 0),
        mapping_enabled=_optional_bool(data.get("mapping_enabled")),
    )


def _session_refs(table: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Server name → ``{"url", "id"}``; a ref without both is of no use and left out."""
    out = {}
    for name, ref in table.items():
        ref = _as_table(ref, f"scope_sessions.{name}")
        kept = {k: ref[k] for k in ("url", "id") if isinstance(ref.get(k), str)}
        if len(kept) == 2:
            out[str(name)] = kept
    return out


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return {} if value is None else _as_table(value, key)


def _as_table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{key} is not a table")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _optional_unit(value: Any) -> float | None:
    return None if value is None else min(1.0, max(0.0, _number(value)))


def _optional_bpm(value: Any) -> float | None:
    if value is None:
        return None
    bpm = _number(value)
    if not 1.0 <= bpm <= 999.0:
        raise ValueError(f"tempo {bpm} out of range")
    return bpm


def _optional_str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def _optional_bool(value: Any) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true/false")
    return value
