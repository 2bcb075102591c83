"""Bindings made by MIDI learn, kept in the state directory and merged over the config.

The service's config file is root-owned and read-only for the service user, so
learn never writes there. The file is JSON with a ``version`` key; each entry
is written like a ``[[midi.mappings]]`` table and read back through the same
schema, so a learned binding is checked exactly like a configured one.

:meth:`LearnedMappings.save` reads, merges and rewrites the file (the daemon
and ``soundscape midi-learn`` may both add to it); it blocks, so the daemon
calls it in a thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import structlog

from soundscape.control.midi_config import MidiMapping
from soundscape.control.midi_learn import mapping_table
from soundscape.settings import Problem, build
from soundscape.state.files import write_atomic

log = structlog.get_logger(__name__)

VERSION = 1


def merge(configured: Iterable[MidiMapping], learned: Iterable[MidiMapping]) -> list[MidiMapping]:
    """The config's mappings with learned ones on top: a learned control replaces its entry."""
    learned = list(learned)
    keys = {m.control_key() for m in learned}
    return [m for m in configured if m.control_key() not in keys] + learned


class LearnedMappings:
    """``<state dir>/<name>.midi-learned.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[MidiMapping]:
        """The learned mappings; a missing file is none, a broken one is logged once and none."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as err:
            log.error("midi_learned_unreadable", path=str(self.path), error=str(err))
            return []
        try:
            return self._parse(raw)
        except ValueError as err:
            log.error("midi_learned_ignored", path=str(self.path), reason=str(err))
            return []

    def save(self, mapping: MidiMapping) -> None:
        """Add ``mapping`` (replacing one of the same physical control). Blocking."""
        try:
            current = self._parse(self.path.read_bytes())
        except (OSError, ValueError):
            current = []  # missing or broken: the new binding starts a good file
        merged = merge(current, [mapping])
        data = {"version": VERSION, "mappings": [mapping_table(m) for m in merged]}
        write_atomic(self.path, json.dumps(data, indent=1).encode() + b"\n", mode=0o644)

    @staticmethod
    def _parse(raw: bytes) -> list[MidiMapping]:
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"not JSON ({err})") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"not a version {VERSION} learned-mappings file")
        entries = data.get("mappings")
        if not isinstance(entries, list):
            raise ValueError("mappings is not a list")
        mappings = []
        for i, entry in enumerate(entries):
            problems: list[Problem] = []
            if not isinstance(entry, dict):
                log.warning("midi_learned_entry_skipped", problem=f"mappings[{i}] is not a table")
                continue
            mapping = build(MidiMapping, entry, f"mappings[{i}]", problems)
            if problems:
                # One bad entry must not cost the performer the others.
                log.warning("midi_learned_entry_skipped", problem=str(problems[0]))
                continue
            mappings.append(mapping)
        return mappings
