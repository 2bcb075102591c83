"""The built-in demo show, with a config file and flags layered over it.

``soundscape demo --config FILE`` keeps the demo's scenes, rules and music and
applies FILE on top: tables merge key by key, a key in FILE wins, and an
array in FILE (``[[scenes.list]]``, ``[[outputs]]``...) replaces the demo's.
The generated drum loop lives in a private temp directory removed on exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from soundscape.config import Config, parse
from soundscape.errors import ConfigError

LOOP_BPM = 124.0


def layer(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: tables merged recursively, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = layer(out[key], value)
        else:
            out[key] = value
    return out


def demo_data() -> tuple[dict[str, Any], str]:
    text = resources.files("soundscape").joinpath("demo.toml").read_text(encoding="utf-8")
    return tomllib.loads(text), text


def demo_config(path: Path | None) -> Config:
    """The demo show, with the file at ``path`` (if any) layered over it."""
    data, text = demo_data()
    source = "demo.toml"
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError([f"{path}: cannot read: {err.strerror or err}"], str(path)) from None
        try:
            data = layer(data, tomllib.loads(text))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError([f"{path}: not valid TOML: {err}"], str(path)) from None
        source = str(path)
    return parse(data, text, source)


@contextlib.contextmanager
def generated_loop() -> Iterator[Path]:
    """A freshly rendered drum loop (16 s, house, 124 BPM), deleted afterwards."""
    from soundscape.audio.synth import drum_loop

    directory = Path(tempfile.mkdtemp(prefix="soundscape-demo-"))
    try:
        loop = directory / f"loop-{LOOP_BPM:g}bpm.wav"
        drum_loop(LOOP_BPM, 16.0, pattern="house", lead_in=0.0).write_wav(loop)
        yield loop
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def with_music(config: Config, loop: Path) -> Config:
    """Give the demo its music unless the show names a file or a device of its own."""
    audio = config.audio
    if not audio.enabled or audio.file or audio.device:
        return config
    return dataclasses.replace(config, audio=dataclasses.replace(audio, file=str(loop)))
