"""Where the state files live (pure: the environment is passed in)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from soundscape.state.config import StateConfig

APP = "soundscape"


def state_dir(configured: str, env: Mapping[str, str], home: Path) -> Path:
    """``[state] dir``, else systemd's ``$STATE_DIRECTORY``, else the XDG state home.

    systemd sets ``STATE_DIRECTORY`` from ``StateDirectory=`` (a colon-separated
    list when the unit names several; ours names one, the first is ours).
    """
    if configured:
        return Path(configured).expanduser()
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(systemd)
    xdg = env.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".local" / "state"
    return base / APP


def instance_name(configured: str, config_path: Path | None, *, demo: bool = False) -> str:
    """The file name prefix: one show per config file, so two shows never share a state."""
    if configured:
        return configured
    if config_path is not None:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", config_path.stem) or "default"
    return "demo" if demo else "default"


def show_file(directory: Path, name: str) -> Path:
    return directory / f"{name}.show.json"


def learned_file(directory: Path, name: str) -> Path:
    return directory / f"{name}.midi-learned.json"


@dataclass(frozen=True)
class StateFiles:
    """The two files of one show."""

    show: Path
    learned: Path


def state_files(
    config: StateConfig,
    config_path: Path | None,
    env: Mapping[str, str],
    home: Path,
    *,
    demo: bool = False,
) -> StateFiles:
    directory = state_dir(config.dir, env, home)
    name = instance_name(config.name, config_path, demo=demo)
    return StateFiles(show_file(directory, name), learned_file(directory, name))
