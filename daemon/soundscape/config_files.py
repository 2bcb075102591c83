"""The files a config refers to: do they exist? (``soundscape check-config``).

The schema checks values; this checks the machine: an audio file, scene
images, a still image for held frames, a video-in file, a state directory that can
be written.
Relative paths are read from the daemon's working directory, as at run time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from soundscape.config import Config
from soundscape.state.paths import state_dir
from soundscape.video_in.spec import parse_spec


def file_problems(config: Config, env: Mapping[str, str], home: Path) -> list[str]:
    """One line per referenced file that is missing or unusable."""
    problems: list[str] = []

    def readable(key: str, value: str) -> None:
        path = Path(value).expanduser()
        if not path.is_file():
            problems.append(f"{key}: {value!r} does not exist (relative to {Path.cwd()})")
        elif not os.access(path, os.R_OK):
            problems.append(f"{key}: {value!r} cannot be read")

    if config.audio.enabled and config.audio.file:
        readable("audio.file", config.audio.file)
    for i, scene in enumerate(config.scenes.list):
        if scene.reference_image:
            readable(f"scenes.list[{i}].reference_image", scene.reference_image)
    for i, output in enumerate(config.outputs):
        if output.hold == "still" and output.still_image:
            readable(f"outputs[{i}].still_image", output.still_image)
    if config.video_in.source:
        try:
            spec = parse_spec(config.video_in.source)
        except ValueError:
            spec = None  # the schema check already reports a bad spec
        # A URL is only known once opened; a camera may be plugged in later (it is retried).
        if spec is not None and spec.kind == "file" and "://" not in spec.target:
            readable("video_in.source", spec.target)
    if config.state.enabled:
        directory = state_dir(config.state.dir, env, home)
        existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
        if existing is None or not existing.is_dir():
            problems.append(f"state.dir: {str(directory)!r} cannot be created")
        elif not os.access(existing, os.W_OK | os.X_OK):
            where = "" if existing == directory else f" (cannot create it in {existing})"
            what = "is not writable" + where
            problems.append(f"state.dir: {str(directory)!r} {what}")
    return problems
