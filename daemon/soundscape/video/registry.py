"""Output backends by name, imported only when used (like uvicorn's loop/http tables)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from soundscape.errors import BackendUnavailable
from soundscape.video.outputs.base import Output

BACKENDS: dict[str, str] = {
    "ndi": "soundscape.video.outputs.ndi:NdiOutput",
    "spout": "soundscape.video.outputs.spout:SpoutOutput",
    "syphon": "soundscape.video.outputs.syphon:SyphonOutput",
    "record": "soundscape.video.outputs.record:RecordOutput",
}

BackendTable = Mapping[str, "str | type[Output]"]


def load_backend(type_name: str, table: BackendTable | None = None) -> type[Output]:
    """The Output class for ``type_name``; raises BackendUnavailable saying why not."""
    table = BACKENDS if table is None else table
    entry = table.get(type_name)
    if entry is None:
        known = ", ".join(sorted(table))
        raise BackendUnavailable(f"unknown output type {type_name!r} (known: {known})")
    if not isinstance(entry, str):
        return entry
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BackendUnavailable(f"{type_name} backend cannot be imported: {err}") from err
    cls: type[Output] = getattr(module, attr)
    return cls
