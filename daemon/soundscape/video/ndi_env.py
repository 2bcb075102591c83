"""Write the NDI runtime's config for this process, before the library loads.

The runtime reads ``$NDI_CONFIG_DIR/ndi-config.v1.json`` once, when the
library loads (it ignores ``$HOME`` and reads the passwd home otherwise), so
:func:`configure` must run before ``import cyndilib``. The file goes to a
private per-user directory; the user's own NDI config is left alone unless
``[ndi]`` asks for something (see :mod:`soundscape.video.ndi_discovery`).
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import sys
import tempfile
from pathlib import Path

import structlog

from soundscape.video.ndi_discovery import NdiConfig, runtime_config

log = structlog.get_logger(__name__)

LOOPBACK_CONFIG = runtime_config(NdiConfig(loopback=True))
CONFIG_FILE = "ndi-config.v1.json"

_current = NdiConfig()  # what this process's runtime was (or will be) told


def default_config_dir() -> Path:
    """A private per-user directory: $XDG_RUNTIME_DIR when there is one, else the temp dir."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "soundscape-ndi"
    return Path(tempfile.gettempdir()) / f"soundscape-ndi-{getpass.getuser()}"


def configure(config: NdiConfig, config_dir: str | Path | None = None) -> Path | None:
    """Write ``config`` for the runtime and set ``NDI_CONFIG_DIR`` (this process and children).

    Nothing is written when ``config`` asks for nothing: the user's own NDI set-up
    (NDI Access Manager, ``~/.ndi``) then decides. Returns the directory used.
    """
    global _current
    if not config.custom:
        return None
    _current = config
    directory = Path(config_dir) if config_dir is not None else default_config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    file = directory / CONFIG_FILE
    text = json.dumps(runtime_config(config))
    before = file.read_text(encoding="utf-8") if file.exists() else None
    file.write_text(text, encoding="utf-8")
    previous = os.environ.get("NDI_CONFIG_DIR")
    os.environ["NDI_CONFIG_DIR"] = str(directory)
    if previous == str(directory) and before == text:
        return directory  # unchanged
    if ndi_loaded():
        # The runtime already read its config: this process keeps the old setting.
        log.warning("ndi_config_too_late", config_dir=str(directory), previous=previous)
    log.info("ndi_config", config_dir=str(directory), **runtime_config(config)["ndi"]["networks"])
    return directory


def use_loopback(config_dir: str | Path | None = None) -> Path:
    """Add loopback to this process's NDI config (an output with ``loopback_only``, tests)."""
    directory = configure(dataclasses.replace(_current, loopback=True), config_dir)
    assert directory is not None
    return directory


def ndi_loaded() -> bool:
    return "cyndilib" in sys.modules
