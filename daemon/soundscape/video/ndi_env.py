"""Point the NDI runtime at loopback only, before it loads.

Without avahi/D-Bus (containers, CI, a locked-down show PC) NDI discovery
finds nothing; restricting NDI to 127.0.0.1 with discovery off makes sender
and receiver on one machine find each other. The runtime reads
``$NDI_CONFIG_DIR/ndi-config.v1.json`` once, when the library loads (it
ignores ``$HOME``), so this must run before ``import cyndilib``.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import tempfile
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

LOOPBACK_CONFIG = {"ndi": {"networks": {"ips": "127.0.0.1", "discovery": ""}}}
CONFIG_FILE = "ndi-config.v1.json"


def default_config_dir() -> Path:
    """A private per-user directory: $XDG_RUNTIME_DIR when there is one, else the temp dir."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "soundscape-ndi"
    return Path(tempfile.gettempdir()) / f"soundscape-ndi-{getpass.getuser()}"


def use_loopback(config_dir: str | Path | None = None) -> Path:
    """Write the loopback config and set ``NDI_CONFIG_DIR`` for this process (and children)."""
    directory = Path(config_dir) if config_dir is not None else default_config_dir()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps(LOOPBACK_CONFIG), encoding="utf-8")
    previous = os.environ.get("NDI_CONFIG_DIR")
    os.environ["NDI_CONFIG_DIR"] = str(directory)
    if previous != str(directory) and ndi_loaded():
        # The runtime already read its config: this process keeps the old setting.
        log.warning("ndi_config_too_late", config_dir=str(directory), previous=previous)
    return directory


def ndi_loaded() -> bool:
    return "cyndilib" in sys.modules
