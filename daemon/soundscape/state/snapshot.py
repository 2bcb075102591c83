"""The show's state as data, and its versioned JSON form (pure).

``version`` names the format. A file from a newer daemon, or one that is not
this format at all, raises :class:`StateFileError` with a one-line reason; the
caller logs it and starts from the config.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

VERSION = 1

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
class ShowState:
    parameters: dict[str, Any] = field(default_factory=dict)
    # The config's [parameters] when this was saved: a value the file has changed
    # since wins over the saved one (the same rule as a reload).
    config_parameters: dict[str, Any] = field(default_factory=dict)
    manual: dict[str, float] = field(default_factory=dict)  # target → value under the rules
    scene: str | None = None
    variation: int = 0
    mapping_enabled: bool | None = None
    takeover: dict[str, Takeover] = field(default_factory=dict)  # "control>target" → position
    bpm: float | None = None
    beat_source: str | None = None
    # Our Scope session at the time ({"url", "id"}): a kill -9 leaves it on the server.
    scope_session: dict[str, str] | None = None


def encode(state: ShowState) -> bytes:
    """The file's bytes (no timestamp: unchanged state, unchanged bytes, no write)."""
    data: dict[str, Any] = {
        "version": VERSION,
        "parameters": {k: v for k, v in state.parameters.items() if k not in NOT_RESTORED},
        "config_parameters": state.config_parameters,
        "manual": state.manual,
        "scene": state.scene,
        "variation": state.variation,
        "mapping_enabled": state.mapping_enabled,
        "takeover": {
            key: {"knob": t.knob, "set": t.set, "synced": t.synced}
            for key, t in state.takeover.items()
        },
        "tempo": {"bpm": state.bpm, "source": state.beat_source},
        "scope_session": state.scope_session,
    }
    return json.dumps(data, indent=1, sort_keys=True).encode() + b"\n"


def decode(raw: bytes) -> ShowState:
    """Parse a state file; raises StateFileError saying why it cannot be used."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StateFileError(f"not JSON ({err})") from None
    if not isinstance(data, dict):
        raise StateFileError("not a JSON object")
    version = data.get("version")
    if version != VERSION:
        raise StateFileError(f"format version {version!r}, this daemon reads {VERSION}")
    try:
        return ShowState(
            parameters={
                k: v for k, v in _table(data, "parameters").items() if k not in NOT_RESTORED
            },
            config_parameters=_table(data, "config_parameters"),
            manual={str(k): _number(v) for k, v in _table(data, "manual").items()},
            scene=_optional_str(data.get("scene")),
            variation=int(data.get("variation") or 0),
            mapping_enabled=_optional_bool(data.get("mapping_enabled")),
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
            scope_session={
                str(k): v for k, v in _table(data, "scope_session").items() if isinstance(v, str)
            }
            or None,
        )
    except (TypeError, ValueError, AttributeError) as err:
        raise StateFileError(f"malformed ({err})") from None


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
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
