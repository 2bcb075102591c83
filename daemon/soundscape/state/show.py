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

Every screen keeps its own parameters, scene and mapping, by name (a further
screen the config no longer has is ignored; one the file lacks starts from its
config); the tempo and the MIDI takeover positions are shared. Every server
(primary or standby, of every screen) has its last session DELETEd after a
``kill -9``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import structlog

from soundscape.errors import ParamError
from soundscape.state.snapshot import (
    MAIN_PRIMARY,
    NOT_RESTORED,
    ScreenState,
    ShowState,
    StateFileError,
    Takeover,
    decode,
)
from soundscape.state.snapshot import encode as encode_state
from soundscape.state.writer import StateWriter

log = structlog.get_logger(__name__)

IDLE_CHECK = 5.0  # seconds between checks for changes the store does not see (tempo, takeover)


class ShowParts(Protocol):
    """What the state is read from and restored to (the :class:`~soundscape.app.Daemon`)."""

    config: Any  # Config: a further screen's own config parameters
    store: Any  # ParameterStore (the main screen's)
    mapping: Any  # MappingEngine (the main screen's; owns the beat clock)
    midi: Any  # MidiControl (every screen's bindings)
    main_screen: Any  # Screen
    screens: dict[str, Any]  # name → Screen, the main one first
    screen_engines: dict[str, Any]  # a further screen's name → its MappingEngine


def capture(parts: ShowParts, config_parameters: Mapping[str, Any]) -> ShowState:
    main = _capture_screen(parts.store, parts.mapping, config_parameters)
    return ShowState(
        **vars(main),
        takeover={
            key: Takeover(*takeover.position())
            for key, takeover in parts.midi.takeover_positions().items()
        },
        # Rounded: an audio tracker's tempo wanders in the last digits; not worth a write.
        bpm=round(parts.mapping.clock.bpm, 2),
        beat_source=parts.mapping.clock.active,
        scope_sessions={
            name: ref
            for screen in parts.screens.values()
            for name, supervisor in screen.supervisors.items()
            if (ref := supervisor.session_ref()) is not None
        },
        screens={
            name: _capture_screen(
                parts.screens[name].store, engine, _screen_config_parameters(parts, name)
            )
            for name, engine in parts.screen_engines.items()
        },
    )


def _capture_screen(store: Any, engine: Any, config_parameters: Mapping[str, Any]) -> ScreenState:
    scene = engine.director.scene
    return ScreenState(
        parameters=store.snapshot(),
        config_parameters=dict(config_parameters),
        manual=engine.manual_values(),
        scene=None if scene is None else scene.name,
        variation=engine.director.variation,
        mapping_enabled=engine.enabled,
    )


def _screen_config_parameters(parts: ShowParts, name: str) -> dict[str, Any]:
    """A further screen's parameters as its config starts it (its own prompts)."""
    return dict(parts.config.screen_parameters(parts.screens[name].entry))


def restore_main(state: ShowState, parts: ShowParts, config_parameters: Mapping[str, Any]) -> None:
    """Give the main screen and the shared parts (tempo, MIDI takeover) their saved state."""
    restore_screen(
        state,
        parts.store,
        parts.mapping,
        config_parameters,
        bpm=state.bpm,
        beat_source=state.beat_source,
    )
    positions = parts.midi.takeover_positions()
    for key, saved in state.takeover.items():
        if key in positions:
            positions[key].restore(saved.knob, saved.set, saved.synced)


def restore_screen(
    saved: ScreenState,
    store: Any,
    engine: Any,
    config_parameters: Mapping[str, Any],
    *,
    bpm: float | None = None,
    beat_source: str | None = None,
) -> None:
    """One screen's parameters, then its scene and mapping (before they start); the tempo
    only for the engine that owns the beat clock."""
    parameters = _parameters_to_restore(saved, config_parameters, store.loras)
    try:
        store.update(parameters, source="state")
    except ParamError:
        # A value this version no longer takes: keep every other one.
        skipped = []
        for key, value in parameters.items():
            try:
                store.update({key: value}, source="state")
            except ParamError:
                skipped.append(key)
        log.warning("saved_parameters_skipped", keys=skipped, screen=engine.screen or None)
    engine.restore(
        scene=saved.scene,
        variation=saved.variation,
        manual=saved.manual,
        enabled=saved.mapping_enabled,
        bpm=bpm,
        beat_source=beat_source,
    )


def forget_leftovers(state: ShowState, parts: ShowParts) -> None:
    """Each server gets the DELETE of the session it had (by name, and only at the same URL)."""
    primary = parts.main_screen.primary
    for screen in parts.screens.values():
        for name, supervisor in screen.supervisors.items():
            ref = state.scope_sessions.get(name)
            if ref is None and supervisor is primary:  # a version-1 file's one session
                ref = state.scope_sessions.get(MAIN_PRIMARY)
            supervisor.forget_leftover(ref)


def _parameters_to_restore(
    state: ScreenState, config_parameters: Mapping[str, Any], loras: Mapping[str, str]
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
        self._unsubscribe: list[Callable[[], None]] = []

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
        """Each screen on its own: one that fails to take its state costs only itself."""
        parts = self.parts
        steps: list[tuple[str, Callable[[], None]]] = [
            ("scope_sessions", lambda: forget_leftovers(state, parts)),
            (parts.main_screen.name, lambda: restore_main(state, parts, self.config_parameters())),
        ]
        for name, saved in state.screens.items():
            if name not in parts.screen_engines:
                log.info("state_screen_ignored", screen=name, reason="no such screen in the config")
                continue
            steps.append((name, lambda n=name, s=saved: self._restore_screen(n, s)))
        restored = []
        for name, step in steps:
            # A saved show must never keep the daemon from starting (a crash loop).
            try:
                step()
            except Exception:
                log.exception("state_restore_failed", path=str(self.path), part=name)
                continue
            restored.append(name)
        screens = [name for name in restored if name in parts.screens]
        if screens:
            log.info(
                "state_restored",
                path=str(self.path),
                scene=state.scene,
                parameters=len(state.parameters),
                bpm=state.bpm,
                screens=screens,
            )

    def _restore_screen(self, name: str, saved: ScreenState) -> None:
        parts = self.parts
        config = _screen_config_parameters(parts, name)
        restore_screen(saved, parts.screens[name].store, parts.screen_engines[name], config)

    async def start(self) -> None:
        # A change on any screen's store schedules a save (the main screen's is parts.store).
        self._unsubscribe = [
            screen.store.subscribe(lambda changes, source: self.writer.mark())
            for screen in self.parts.screens.values()
        ]
        await self.writer.start()
        self.writer.mark()

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        await self.writer.stop()

    def _collect(self) -> bytes:
        state = capture(self.parts, self.config_parameters())
        return encode_state(state)
