"""The composition root: builds the daemon's parts from a Config and runs them.

Parts start in dependency order and stop in reverse, in ``finally``: the
parameter store first (everything writes to it), then the Scope session, then
outputs and inputs. ``run()`` takes a ``shutdown_trigger`` so tests stop the
daemon with an event and production with signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from soundscape.audio.engine import AudioEngine
from soundscape.config import Config
from soundscape.control.commands import CommandBus
from soundscape.control.midi import MidiControl
from soundscape.control.osc_server import OscServer
from soundscape.errors import BackendUnavailable
from soundscape.mapping.engine import MappingEngine
from soundscape.scope.api import ScopeClient
from soundscape.scope.params import ParameterStore
from soundscape.scope.supervisor import FrameSink, SessionSupervisor
from soundscape.service import Notifier
from soundscape.video.fanout import VideoFanout
from soundscape.warmup import warm_up

if TYPE_CHECKING:
    from soundscape.emulator import EmulatorConfig

log = structlog.get_logger(__name__)

STOP_TIMEOUT = 5.0


class Component(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class Daemon:
    """Everything the daemon runs, wired together; ``start()``/``stop()``."""

    def __init__(
        self,
        config: Config,
        *,
        frame_sink: FrameSink | None = None,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.store = ParameterStore(config.initial_parameters(), loras=config.lora_paths())
        self.commands = CommandBus()
        self.client = ScopeClient(
            config.scope.url,
            token_env=config.scope.token_env,
            auth_header=config.scope.auth_header,
            auth_scheme=config.scope.auth_scheme,
            connect_timeout=config.scope.connect_timeout,
            request_timeout=config.scope.request_timeout,
        )
        # Outputs live across sessions: an NDI source must never vanish while Scope reconnects.
        self.video = VideoFanout(
            config.outputs, size=(config.pipeline.width, config.pipeline.height)
        )
        self.supervisor = SessionSupervisor(
            self.client,
            self.store,
            pipeline=config.pipeline,
            session=config.session,
            use_server_ice=config.scope.use_server_ice,
            ice_probe_timeout=config.scope.ice_probe_timeout,
            frame_sink=frame_sink or self.video,
        )
        self.components: list[Component] = []
        self._started: list[Component] = []
        self._register_commands()

        self.osc = OscServer(config.osc, self.store, self.commands)
        self.supervisor.on_status(self.osc.on_status)

        # Built before MIDI: it registers the targets and commands MIDI binds to.
        self.mapping = MappingEngine(
            config.mapping,
            config.beat,
            config.scenes,
            self.store,
            self.commands,
            images=self.supervisor.assets,  # one path to Scope, re-uploaded after restarts
            publish=self.osc.send,
        )
        self.supervisor.on_message("tempo_update", self.mapping.tempo_update)

        # MIDI learn writes its bindings into the config file it came from.
        self.midi = MidiControl(config.midi, self.store, self.commands, config_path)
        self.mapping.attach_midi_clock(self.midi.clock)
        self.components += [self.osc, self.mapping, self.midi]

        self.audio: AudioEngine | None = None
        if config.audio.enabled:
            self.audio = AudioEngine(config.audio)
            self.audio.subscribe(self.mapping.feed)
            self.components.append(self.audio)

    def _register_commands(self) -> None:
        store = self.store

        def pause(value: bool | None = None, *, source: str) -> None:
            """Pause or resume generation (toggle without a value)."""
            target = (not store.get("paused")) if value is None else bool(value)
            store.set("paused", target, source=source)

        def reset_cache(*, source: str) -> None:
            """Reset Scope's cache once."""
            store.reset_cache(source=source)

        def reconnect(*, source: str) -> None:
            """Drop the Scope session and build a new one now."""
            log.info("reconnect_requested", source=source)
            self.supervisor.reconnect(f"requested by {source}")

        def state(*, source: str) -> dict[str, Any]:
            """The whole parameter state and the session status."""
            return {
                "parameters": store.snapshot(),
                "status": self.supervisor.status.as_dict(),
                "mapping": self.mapping.status(),
                "video": self.video.counters(),
                "midi": self.midi.counters(),
            }

        self.commands.register("pause", pause)
        self.commands.register("reset_cache", reset_cache)
        self.commands.register("reconnect", reconnect)
        self.commands.register("state", state)

    async def start(self) -> None:
        for component in [self.video, self.supervisor, *self.components]:
            try:
                await component.start()
            except BackendUnavailable as err:
                # An input or output that cannot run (port taken, library missing) must
                # not take the stream down with it: say why once and run without it.
                log.error(
                    "component_unavailable", component=type(component).__name__, reason=str(err)
                )
                continue
            self._started.append(component)

    async def stop(self) -> None:
        while self._started:
            component = self._started.pop()
            try:
                await component.stop()
            except Exception:  # one part failing to stop must not keep the others running
                log.exception("component_stop_failed", component=type(component).__name__)
        await self.client.aclose()


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT stop politely; a second one exits at once."""
    loop = asyncio.get_running_loop()

    def handle(signum: int) -> None:
        if stop.is_set():
            log.warning("forced_exit", signal=signal.Signals(signum).name)
            raise SystemExit(1)
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # not on Windows' default loop
            loop.add_signal_handler(signum, handle, signum)


async def run(
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
    with_emulator: bool = False,
    on_started: Callable[[Daemon], None] | None = None,
    config_path: Path | None = None,
) -> None:
    """Run the daemon until ``shutdown_trigger`` returns (default: SIGTERM/SIGINT).

    ``with_emulator`` starts the built-in Scope emulator in this process and
    points the daemon at it (``soundscape demo``).
    """
    notifier = Notifier()
    emulator = None
    if shutdown_trigger is None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        shutdown_trigger = stop.wait
    if with_emulator:
        from soundscape.emulator import Emulator

        emu_cfg = config.emulator
        emulator = Emulator(emulator_config(config))
        port = await emulator.start(host=emu_cfg.host, port=emu_cfg.port)
        url = f"http://{emu_cfg.host}:{port}"
        config = dataclasses.replace(config, scope=dataclasses.replace(config.scope, url=url))
        log.info("emulator_started", url=url, try_a_fault=f"curl -X POST {url}/_emulator/restart")
    # Lazy imports and first-use set-up, off the loop (see soundscape.warmup).
    await asyncio.to_thread(warm_up)
    daemon = Daemon(config, config_path=config_path)
    daemon.supervisor.on_status(lambda s: notifier.status(_status_line(s)))
    try:
        await daemon.start()
        notifier.ready(f"connecting to {config.scope.url}")
        notifier.start_watchdog()
        log.info("daemon_started", scope=config.scope.url)
        if on_started is not None:
            on_started(daemon)
        await shutdown_trigger()
    finally:
        notifier.stopping()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await daemon.stop()
                if emulator is not None:
                    await emulator.stop()
        except TimeoutError:
            log.warning("stop_timed_out", seconds=STOP_TIMEOUT)
        await notifier.close()
        log.info("daemon_stopped")


def emulator_config(config: Config) -> EmulatorConfig:
    """The built-in emulator per ``[emulator]``, serving our pipeline's size and LoRAs."""
    from soundscape.emulator import EmulatorConfig

    return EmulatorConfig(
        width=config.pipeline.width,
        height=config.pipeline.height,
        fps=config.emulator.fps,
        load_time=config.emulator.load_time,
        loras=[lora.path for lora in config.pipeline.loras],
    )


def _status_line(status: dict[str, Any]) -> str:
    text = status["state"]
    if status.get("reason"):
        text += f": {status['reason']}"
    if status["state"] == "streaming" and status.get("fps"):
        text += f" ({status['fps']:.1f} fps)"
    return text
