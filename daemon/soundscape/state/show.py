"""The show's state taken from the daemon's parts and given back to them.

:class:`ShowPersistence` is the component the app runs: ``load()`` and
``restore()`` before anything starts (so the first offer to Scope already
carries the performer's picture), then ``start()`` saves on every change
through a :class:`~soundscape.state.writer.StateWriter`; ``stop()`` writes
the last state.

What comes back, and what the config keeps:

- parameters, except ``pipeline_ids``, ``input_mode`` and server paths
  (:data:`~soundscape.state.snapshot.NOT_RESTORED`); a value the config file
  has changed since the save takes the file's value (the rule of a reload);
- the manual value of each mapping-rule target (not a modulated value caught
  mid-swing), the scene and variation (marked as playing, not applied again),
  rules on/off, soft-takeover positions, the tempo and a tapped beat source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import structlog

from soundscape.errors import ParamError
from soundscape.state.snapshot import NOT_RESTORED, ShowState, StateFileError, Takeover, decode
from soundscape.state.snapshot import encode as encode_state
from soundscape.state.writer import StateWriter

log = structlog.get_logger(__name__)

IDLE_CHECK = 5.0  # seconds between checks for changes the store does not see (tempo, takeover)


class ShowParts(Protocol):
    """What the state is read from and restored to (the :class:`~soundscape.app.Daemon`)."""

    store: Any  # ParameterStore
    mapping: Any  # MappingEngine
    midi: Any  # MidiControl
    supervisor: Any  # SessionSupervisor


def capture(parts: ShowParts, config_parameters: Mapping[str, Any]) -> ShowState:
    scene = parts.mapping.director.scene
    return ShowState(
        parameters=parts.store.snapshot(),
        config_parameters=dict(config_parameters),
        manual=parts.mapping.manual_values(),
        scene=None if scene is None else scene.name,
        variation=parts.mapping.director.variation,
        mapping_enabled=parts.mapping.enabled,
        takeover={
            key: Takeover(*takeover.position())
            for key, takeover in parts.midi.takeover_positions().items()
        },
        # Rounded: an audio tracker's tempo wanders in the last digits; not worth a write.
        bpm=round(parts.mapping.clock.bpm, 2),
        beat_source=parts.mapping.clock.active,
        scope_session=parts.supervisor.session_ref(),
    )


def restore(state: ShowState, parts: ShowParts, config_parameters: Mapping[str, Any]) -> None:
    """Give the saved show back to the parts (before they start)."""
    parameters = _parameters_to_restore(state, config_parameters, parts.store.loras)
    try:
        parts.store.update(parameters, source="state")
    except ParamError:
        # A value this version no longer takes: keep every other one.
        skipped = []
        for key, value in parameters.items():
            try:
                parts.store.update({key: value}, source="state")
            except ParamError:
                skipped.append(key)
        log.warning("saved_parameters_skipped", keys=skipped)
    parts.mapping.restore(
        scene=state.scene,
        variation=state.variation,
        manual=state.manual,
        enabled=state.mapping_enabled,
        bpm=state.bpm,
        beat_source=state.beat_source,
    )
    parts.supervisor.forget_leftover(state.scope_session)
    positions = parts.midi.takeover_positions()
    for key, saved in state.takeover.items():
        if key in positions:
            positions[key].restore(saved.knob, saved.set, saved.synced)


def _parameters_to_restore(
    state: ShowState, config_parameters: Mapping[str, Any], loras: Mapping[str, str]
) -> dict[str, Any]:
    out = {}
    for key, value in state.parameters.items():
        if key in NOT_RESTORED:
            continue
        if (
            key in state.config_parameters
            and config_parameters.get(key) != (state.config_parameters[key])
        ):
            continue  # the file changed this one since the save: the file wins
        out[key] = value
    if "lora_scales" in out:  # only LoRAs still loaded by this config
        paths = set(loras.values())
        out["lora_scales"] = [s for s in out["lora_scales"] if s.get("path") in paths]
    return out


class ShowPersistence:
    """``<state dir>/<name>.show.json``: load, restore, save on change."""

    def __init__(
        self,
        path: Path,
        parts: ShowParts,
        config_parameters: Callable[[], Mapping[str, Any]],
        *,
        debounce: float = 0.5,
        idle_check: float = IDLE_CHECK,
    ) -> None:
        self.path = path
        self.parts = parts
        self.config_parameters = config_parameters
        self.writer = StateWriter(path, self._collect, debounce=debounce, idle=idle_check)
        self._unsubscribe: Callable[[], None] | None = None

    async def load(self) -> ShowState | None:
        """The saved show, or None (no file yet; a broken file is reported in one line)."""
        try:
            raw = await asyncio.to_thread(self.path.read_bytes)
        except FileNotFoundError:
            log.info("state_none", path=str(self.path))
            return None
        except OSError as err:
            log.error("state_ignored", path=str(self.path), reason=err.strerror or str(err))
            return None
        try:
            return decode(raw)
        except StateFileError as err:
            log.error("state_ignored", path=str(self.path), reason=str(err))
            return None

    def restore(self, state: ShowState) -> None:
        try:
            restore(state, self.parts, self.config_parameters())
        except Exception:  # a saved show must never keep the daemon from starting (a crash loop)
            log.exception("state_restore_failed", path=str(self.path))
            return
        log.info(
            "state_restored",
            path=str(self.path),
            scene=state.scene,
            parameters=len(state.parameters),
            bpm=state.bpm,
        )

    async def start(self) -> None:
        self._unsubscribe = self.parts.store.subscribe(lambda changes, source: self.writer.mark())
        await self.writer.start()
        self.writer.mark()

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self.writer.stop()

    def _collect(self) -> bytes:
        state = capture(self.parts, self.config_parameters())
        return encode_state(state)
