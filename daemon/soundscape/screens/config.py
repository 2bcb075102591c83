"""``[[scope]]`` (several Scope servers, each with a role) and ``[failover]``.

The single ``[scope]`` table keeps working: it is the main screen's primary
server. Written as a list, ``[[scope]]``, the first entry is that primary and
each further one has a ``role``:

- ``standby``: a second server running the same show for a screen (the main one
  unless ``standby_for`` names another), ``hot`` (its session streams all the
  time: takes over within a few frames, doubles the GPU cost) or ``warm`` (its
  pipeline loaded, no session: takes over in one session start, ~0.3 s);
- ``screen``: an independent screen with its own outputs, prompts and scenes,
  sharing the audio analysis, the beat clock and the controls.

The root :mod:`soundscape.config` reads the list into ``scope`` (the first) and
``servers`` (the rest).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from soundscape.mapping.config import ScenesConfig
from soundscape.scope.config import ScopeSection
from soundscape.settings import setting
from soundscape.video.config import OutputConfig, validate_outputs

ROLES = ("primary", "standby", "screen")
STANDBY_MODES = ("hot", "warm")
SWITCH_BACK = ("bar", "now", "never")
MAIN = "main"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # one OSC address part


@dataclasses.dataclass
class ServerEntry(ScopeSection):
    """One Scope server: the main screen's primary (``[scope]``), or a ``[[scope]]`` entry.

    ``role``: ``primary`` (the first entry only), ``standby`` or ``screen``.
    ``outputs``, ``prompts`` and ``scenes`` belong to screens (as ``[[scope.outputs]]``,
    ``[[scope.scenes.list]]`` under their entry).
    """

    name: str = setting(
        "",
        "Name in OSC (/screen/<name>/...), MIDI and mapping rules, logs and status"
        " ('' = main for the first, standby, standby-2, screen-2, ... for the others).",
    )
    role: str = setting("primary", "primary (first entry), standby or screen.", choices=ROLES)
    mode: str = setting(
        "hot",
        "A standby's readiness: hot (session streaming, takes over within frames; doubles"
        " the GPU cost) or warm (pipeline loaded, no session; takes over in ~0.3 s).",
        choices=STANDBY_MODES,
    )
    standby_for: str = setting("", "The screen a standby backs up ('' = the main screen).")
    outputs: list[OutputConfig] = setting([], "A screen's own video outputs ([[scope.outputs]]).")
    prompts: list[Any] = setting(
        [], "A screen's starting prompts, like [parameters].prompts ([] = the same)."
    )
    scenes: ScenesConfig = setting(
        factory=ScenesConfig,
        doc="A screen's own scene book, like [scenes] (no scenes listed = the [scenes] book).",
    )

    def check(self) -> list[tuple[str, str]]:
        problems = super().check()
        if self.name and not NAME_PATTERN.fullmatch(self.name):
            problems.append(("name", f"{self.name!r}: letters, digits, - and _ only (≤ 32)"))
        if self.role != "screen":
            own = {"outputs": self.outputs, "prompts": self.prompts, "scenes": self.scenes.list}
            for key, value in own.items():
                if value:
                    problems.append((key, f"only a screen has its own {key} (role {self.role})"))
        if self.role != "standby" and self.standby_for:
            problems.append(("standby_for", f"only a standby backs up a screen (role {self.role})"))
        problems += [(f"outputs{key}", message) for key, message in validate_outputs(self.outputs)]
        return problems


@dataclasses.dataclass
class FailoverSection:
    """``[failover]``: when the outputs move to a standby's frames, and when they come back."""

    watchdog_frames: float = setting(
        4.0,
        "Frame intervals without a frame from the server on the outputs before they take a"
        " standby's frames (4 at 30 fps = 133 ms; lower cuts sooner but may cut on jitter).",
        low=1.5,
        high=100,
    )
    switch_back: str = setting(
        "bar",
        "When the primary streams again: bar (switch back on the next bar line), now, or"
        " never (stay on the standby; switch by hand over OSC).",
        choices=SWITCH_BACK,
    )
    back_after: float = setting(
        2.0, "Seconds the primary must stream without a break before the switch back.", low=0
    )


def assign_names(main: ServerEntry, others: list[ServerEntry]) -> list[ServerEntry]:
    """Give every unnamed server its name: main, standby, standby-2, screen-2, ..."""
    taken = {main.name or MAIN, *(entry.name for entry in others if entry.name)}
    named = []
    for entry in others:
        if not entry.name:
            base = entry.role if entry.role == "standby" else "screen"
            n = 2 if base == "screen" else 1  # the main screen is the first screen
            name = base if n == 1 else f"{base}-{n}"
            while name in taken:
                n += 1
                name = f"{base}-{n}"
            taken.add(name)
            entry = dataclasses.replace(entry, name=name)
        named.append(entry)
    return named


def cross_check(main: ServerEntry, others: list[ServerEntry]) -> list[tuple[str, str]]:
    """Roles and names across the whole list (keys as ``scope[i].key``)."""
    problems: list[tuple[str, str]] = []
    if main.role != "primary":
        problems.append(("scope[0].role", "the first server is the main screen's primary"))
    names = [main.name or MAIN] + [entry.name for entry in others]
    urls = [main.url.rstrip("/")] + [entry.url.rstrip("/") for entry in others]
    screens = {main.name or MAIN} | {e.name for e in others if e.role == "screen"}
    for i, entry in enumerate(others, start=1):
        where = f"scope[{i}]"
        if entry.role == "primary":
            problems.append((f"{where}.role", "only the first is primary: standby or screen"))
        if names.count(entry.name) > 1:
            problems.append((f"{where}.name", f"{entry.name!r} is used twice"))
        if urls.index(entry.url.rstrip("/")) != i:  # a standby on its own primary protects nothing
            first = names[urls.index(entry.url.rstrip("/"))]
            problems.append((f"{where}.url", f"{entry.url} is already server {first!r}"))
        if entry.role == "standby" and entry.standby_for and entry.standby_for not in screens:
            known = ", ".join(sorted(screens))
            problems.append(
                (f"{where}.standby_for", f"no screen {entry.standby_for!r} (screens: {known})")
            )
    return problems
