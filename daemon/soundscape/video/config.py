"""The ``[[outputs]]`` config entries: one table per video output.

Example::

    [[outputs]]
    type = "ndi"
    name = "Soundscape"        # the NDI source name receivers pick
    hold = "last"              # while Scope is away: last | black | still | none

    [[outputs]]
    type = "record"
    path = "archive/show-%Y%m%d-%H%M%S.mp4"
    hold = "none"
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

from soundscape.settings import setting

OUTPUT_TYPES = ("ndi", "spout", "syphon", "record")
HOLD_MODES = ("last", "black", "still", "none")
RECORD_SUFFIXES = (".mp4", ".mkv", ".mov")
# A live output takes a short burst whole (WebRTC hands over two or three frames at once
# after a CPU hiccup) but drops frames that waited longer than LIVE_MAX_AGE while a newer
# one is queued, so a slow output never builds latency; a recording rides out about half a
# second of slow disk and drops nothing by age.
LIVE_QUEUE = 8  # a memory bound: LIVE_MAX_AGE is what keeps the latency down
LIVE_MAX_AGE = 0.1  # seconds: three frames at 30 fps
RECORD_QUEUE = 16


@dataclasses.dataclass
class OutputConfig:
    type: str = setting(doc="Backend: ndi, spout, syphon or record.", choices=OUTPUT_TYPES)
    name: str = setting(
        "Soundscape", "Source name receivers see (NDI, Spout, Syphon); a label for record."
    )
    enabled: bool = setting(True, "false keeps the entry but starts nothing.")
    hold: str = setting(
        "last",
        "What is sent while Scope is away: last frame, black, a still image, or none.",
        choices=HOLD_MODES,
    )
    still_image: str = setting("", "Image file for hold = 'still' (PNG, JPEG...), fitted to size.")
    hold_after: float = setting(
        1.0,
        "Seconds without frames before black/still replaces the last frame "
        "(a lost session switches at once).",
        low=0,
        high=60,
    )
    fps: float = setting(
        30.0,
        "Frames per second sent while holding; NDI frame rate until measured.",
        low=1,
        high=120,
    )
    queue_size: int = setting(
        0,
        "Frames waiting for this output; when full the oldest is dropped "
        "(0 = 8 for live outputs, which also drop frames older than 0.1 s; 16 for record).",
        low=0,
        high=64,
    )
    width: int = setting(
        0, "Fixed output width, frames are scaled (0 = follow the stream).", low=0, high=8192
    )
    height: int = setting(0, "Fixed output height (0 = follow the stream).", low=0, high=8192)
    loopback_only: bool = setting(
        False,
        "NDI: announce and send on 127.0.0.1 only (one machine, tests). Applies to the "
        "whole process, so set it on every NDI output or none.",
    )
    groups: str = setting("", "NDI groups, comma-separated (empty = the public group).")
    path: str = setting(
        "", "record: output file, .mp4 .mkv or .mov; strftime codes allowed (%Y%m%d-%H%M%S)."
    )

    @property
    def label(self) -> str:
        """Unique key in counters and logs: ``type:name``."""
        return f"{self.type}:{self.name}"

    @property
    def queue_depth(self) -> int:
        """The queue size in effect: live outputs want the newest frame, a recording every one."""
        if self.queue_size:
            return self.queue_size
        return RECORD_QUEUE if self.type == "record" else LIVE_QUEUE

    @property
    def max_age(self) -> float | None:
        """Live outputs skip frames that waited too long; a recording keeps every one."""
        return None if self.type == "record" else LIVE_MAX_AGE

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width and self.height else None

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.name.strip():
            problems.append(("name", "must not be empty"))
        if self.hold == "still" and not self.still_image:
            problems.append(("still_image", "hold = 'still' needs an image file"))
        if bool(self.width) != bool(self.height):
            problems.append(("width", "set both width and height, or neither"))
        for key in ("width", "height"):
            if getattr(self, key) % 2:
                problems.append((key, f"{getattr(self, key)} is odd; video needs even sizes"))
        if self.type == "record":
            if not self.path:
                problems.append(("path", "a record output needs a file path"))
            elif Path(self.path).suffix.lower() not in RECORD_SUFFIXES:
                problems.append(
                    ("path", f"{self.path!r} should end in one of {', '.join(RECORD_SUFFIXES)}")
                )
        elif self.path:
            problems.append(("path", f"only record outputs take a path, not {self.type}"))
        if self.loopback_only and self.type != "ndi":
            problems.append(("loopback_only", "only applies to ndi outputs"))
        return problems


def ndi_output(name: str, *, loopback_only: bool = False) -> OutputConfig:
    """The output behind the CLI flag ``--ndi NAME``."""
    return OutputConfig(type="ndi", name=name, loopback_only=loopback_only)


def validate_outputs(outputs: list[OutputConfig]) -> list[tuple[str, str]]:
    """Rules across entries, as (key, message) pairs for ``Config.check``.

    Keys are relative to the ``outputs`` list (``[1].name``).
    """
    problems: list[tuple[str, str]] = []
    active = [(i, o) for i, o in enumerate(outputs) if o.enabled]
    seen = Counter(o.label for _, o in active)
    for i, o in active:
        if seen[o.label] > 1:
            problems.append((f"[{i}].name", f"two enabled {o.type} outputs are named {o.name!r}"))
    ndi = [o for _, o in active if o.type == "ndi"]
    if ndi and len({o.loopback_only for o in ndi}) > 1:
        first = next(i for i, o in active if o.type == "ndi")
        problems.append(
            (
                f"[{first}].loopback_only",
                "NDI's network setting is per process: set loopback_only on every NDI output "
                "or on none",
            )
        )
    return problems
