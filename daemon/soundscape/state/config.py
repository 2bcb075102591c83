"""The ``[state]`` config section: where the performer's state is kept."""

from __future__ import annotations

import dataclasses

from soundscape.settings import setting


@dataclasses.dataclass
class StateConfig:
    """The performer's state (parameters, scene, learned MIDI, tempo), kept across restarts."""

    enabled: bool = setting(True, "Save the show's state and restore it on start (--fresh skips).")
    dir: str = setting(
        "",
        "State directory ('' = $STATE_DIRECTORY from systemd, else "
        "$XDG_STATE_HOME/soundscape or ~/.local/state/soundscape).",
    )
    name: str = setting("", "File name prefix ('' = the config file's name, 'demo' or 'default').")
    debounce: float = setting(
        0.5,
        "Seconds a change waits before it is written (at most one write per period).",
        low=0.05,
        high=60,
    )

    def check(self) -> list[tuple[str, str]]:
        if self.name and ("/" in self.name or self.name.startswith(".")):
            return [("name", f"{self.name!r} must be a plain file name prefix")]
        return []
