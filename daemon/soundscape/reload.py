"""Live reload: a changed config file taken by the running daemon without dropping the stream.

SIGHUP (``systemctl reload soundscape``) or the ``reload`` command reads the
file again. A file with any error is refused whole: every problem is logged
and the running config stays. A good file is compared with the running one
(:func:`plan`, pure) and each part takes its own section live:

- ``[parameters]``: only the values the file changed are applied (source
  ``config``); every other live value (a knob, an OSC message, a scene) stays;
- ``[osc]``, ``[midi]`` (learned bindings merged over it again), ``[mapping]``,
  ``[scenes]``, ``[beat]``, ``[audio]``, ``[[outputs]]``: the part reconfigures
  itself; outputs whose config did not change keep running untouched;
- ``[pipeline]``: the new pipeline is loaded and the session rebuilt (Scope has
  no renegotiation); everything else never touches the Scope session;
- ``[scope]`` (and ``[[scope]]``, ``[failover]``), ``[session]``, ``[log]``,
  ``[emulator]``, ``[state]``: logged as needing a restart, and kept as they run, so
  the next reload says so again.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from soundscape.config import Config
from soundscape.errors import BackendUnavailable, ConfigError

if TYPE_CHECKING:
    from soundscape.app import Daemon

log = structlog.get_logger(__name__)

# Sections a running daemon cannot take over live: a reload logs each as needing a restart
# (and keeps running on the old values) rather than pretending it applied them.
# [ndi] is written into the NDI runtime's config before the library loads; [http] owns the
# control endpoint that `soundscape status` and the operator's page talk to.
RESTART_SECTIONS = (
    "scope",
    "servers",  # [[scope]] entries after the first: servers, screens and their outputs
    "failover",
    "session",
    "log",
    "emulator",
    "state",
    "ndi",
    "http",
    "video_in",
)
SESSION_KEYS = frozenset({"input_mode", "pipeline_ids"})


@dataclass
class ReloadPlan:
    sections: list[str] = field(default_factory=list)  # the sections that differ
    parameters: dict[str, Any] = field(default_factory=dict)  # values the file changed
    restart_needed: list[str] = field(default_factory=list)
    pipeline: bool = False  # the pipeline must be loaded again


def plan(old: Config, new: Config) -> ReloadPlan:
    """What a reload from ``old`` to ``new`` must do (pure)."""
    sections = [
        f.name for f in dataclasses.fields(Config) if getattr(old, f.name) != getattr(new, f.name)
    ]
    before, after = old.initial_parameters(), new.initial_parameters()
    parameters = {key: value for key, value in after.items() if before.get(key) != value}
    # load_timeout only bounds our wait; every other [pipeline] key is what Scope loads.
    same_load = dataclasses.replace(old.pipeline, load_timeout=new.pipeline.load_timeout)
    return ReloadPlan(
        sections=sections,
        parameters=parameters,
        restart_needed=[s for s in sections if s in RESTART_SECTIONS],
        # A new mode or pipeline chain needs a new session too: Scope has no renegotiation.
        pipeline=same_load != new.pipeline or bool(parameters.keys() & SESSION_KEYS),
    )


async def reload(daemon: Daemon, load: Callable[[], Config]) -> bool:
    """Read the config with ``load`` (in a thread) and apply it; False when refused."""
    try:
        new = await asyncio.to_thread(load)
    except ConfigError as err:
        for problem in err.problems:
            log.error("config_reload_error", problem=problem)
        log.error("config_reload_refused", errors=len(err.problems), keeping="the running config")
        return False
    await apply(daemon, new)
    return True


async def apply(daemon: Daemon, new: Config) -> ReloadPlan:
    """Give each part of a running daemon its new section."""
    old = daemon.config
    todo = plan(old, new)
    # Always: `soundscape midi-learn` may have added to the learned bindings.
    await _step("midi", daemon.reload_midi, new.midi)
    if not todo.sections:
        log.info("config_reload_unchanged")
        return todo
    for section in todo.restart_needed:
        log.warning("config_restart_needed", section=section)
    # What runs from now on: the new file, except the sections that need a restart.
    daemon.config = dataclasses.replace(
        new, **{section: getattr(old, section) for section in todo.restart_needed}
    )
    changed = set(todo.sections)

    if "pipeline" in changed:
        for screen in daemon.screens.values():
            screen.store.loras = new.lora_paths()
    if todo.parameters:
        await _step("parameters", _set_parameters, daemon, todo.parameters)
    if "osc" in changed:
        await _step("osc", daemon.osc.reload, new.osc)
    if changed & {"mapping", "scenes"}:
        await _step("mapping", _sync(daemon.mapping.reload), new.mapping, new.scenes)
        for name, engine in daemon.screen_engines.items():  # a screen's own book stays
            own = daemon.screens[name].entry.scenes
            scenes = own if own.list else new.scenes
            await _step(f"mapping:{name}", _sync(engine.reload), new.mapping, scenes)
    if "beat" in changed:
        await _step("beat", _sync(daemon.mapping.reload_beat), new.beat)
    if "audio" in changed:
        await _step("audio", daemon.reload_audio, new.audio)
    size = (new.pipeline.width, new.pipeline.height)
    if "outputs" in changed or size != (old.pipeline.width, old.pipeline.height):
        await _step("outputs", daemon.video.reload, new.outputs, size=size)
    if todo.pipeline:  # every server of every screen runs the one pipeline
        for screen in daemon.screens.values():
            for supervisor in screen.supervisors.values():
                supervisor.update_pipeline(new.pipeline)
                supervisor.reconnect("the pipeline changed in the config")
    log.info(
        "config_reloaded",
        sections=todo.sections,
        parameters=sorted(todo.parameters),
        pipeline_reload=todo.pipeline,
    )
    return todo


async def _set_parameters(daemon: Daemon, parameters: dict[str, Any]) -> None:
    daemon.store.update(parameters, source="config")
    for screen in daemon.screens.values():  # a further screen keeps its own prompts
        if screen is not daemon.main_screen:
            own = {
                k: v for k, v in parameters.items() if not (k == "prompts" and screen.entry.prompts)
            }
            if own:
                screen.store.update(own, source="config")


def _sync(function: Callable[..., None]) -> Callable[..., Any]:
    async def call(*args: Any, **kwargs: Any) -> None:
        function(*args, **kwargs)

    return call


async def _step(name: str, step: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    # One part failing to take its section must not keep the others on the old one.
    try:
        await step(*args, **kwargs)
    except BackendUnavailable as err:
        log.error("config_reload_part_unavailable", part=name, reason=str(err))
    except Exception:
        log.exception("config_reload_part_failed", part=name)
