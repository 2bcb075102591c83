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
import os
import signal
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from soundscape import reload as live_reload
from soundscape.audio.config import AudioConfig
from soundscape.audio.controls import AudioClockControls
from soundscape.audio.engine import AudioEngine
from soundscape.config import Config
from soundscape.control.commands import CommandBus
from soundscape.control.midi import MidiControl
from soundscape.control.midi_config import MidiConfig
from soundscape.control.osc_server import OscServer
from soundscape.control.screens import ScreenControls
from soundscape.errors import BackendUnavailable, ParamError, StartupError
from soundscape.mapping.engine import MappingEngine
from soundscape.scope.params import ParameterStore
from soundscape.scope.supervisor import FrameSink
from soundscape.screens.config import ServerEntry
from soundscape.screens.screen import Screen
from soundscape.service import Notifier
from soundscape.state.learned import LearnedMappings, merge
from soundscape.state.paths import StateFiles, state_files
from soundscape.state.show import ShowPersistence
from soundscape.tasks import TaskOwner, cancel_and_wait, owning
from soundscape.video.fanout import VideoFanout
from soundscape.video_in import OutgoingTrack, VideoIn, parse_spec
from soundscape.video_in.chain_guard import ChainGuard
from soundscape.video_in.server_input import ServerInput
from soundscape.warmup import collections_paused, start_worker_pool, thaw_heap, warm_up
from soundscape.web.preview import FrameTee, Preview
from soundscape.web.server import ControlServer, start_control

if TYPE_CHECKING:
    from soundscape.emulator import EmulatorConfig

log = structlog.get_logger(__name__)

STOP_TIMEOUT = 5.0
# The supervisor may go this long without progress, on top of its longest planned wait
# (a backoff) and twice its longest timeout, before the watchdog calls it wedged.
PROGRESS_SLACK = 5.0


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
        state_files: StateFiles | None = None,
        fresh: bool = False,
    ) -> None:
        self.config = config
        self.store = ParameterStore(config.initial_parameters(), loras=config.lora_paths())
        self.commands = CommandBus()
        entries = config.server_entries()
        self.preview = Preview(config.http.preview_width)  # the operator's page's picture
        self.control: ControlServer | None = None  # started by run() ([http])
        # Outputs live across sessions: an NDI source must never vanish while Scope reconnects.
        self.video = VideoFanout(
            config.outputs, size=(config.pipeline.width, config.pipeline.height)
        )
        # Video in: a fresh track for every video-mode session, none in text mode.
        self.video_in: VideoIn | None = None
        self.server_input: ServerInput | None = None  # or Scope reads the source itself
        spec = parse_spec(config.video_in.source) if config.video_in.source else None
        if spec is not None and spec.kind != "scope":
            size = (config.pipeline.width, config.pipeline.height)
            self.video_in = VideoIn(config.video_in, size)
        # The main screen: the primary server, its standbys, the outputs above (soundscape.screens).
        self.main_screen = self._screen(
            entries[0],
            entries,
            self.store,
            FrameTee(frame_sink or self.video, self.preview),
            outgoing=self._outgoing_for(self.store),
        )
        self.screens: dict[str, Screen] = {self.main_screen.name: self.main_screen}
        self.client = self.main_screen.client
        self.supervisor = self.main_screen.primary
        if spec is not None and spec.kind == "scope":
            self.server_input = ServerInput(spec, self.store, self.client, self._rebuild_main)
        self.components: list[Component] = []
        self._started: list[Component] = []
        self.required: set[str] = set()  # inputs that must start ("osc"), set by run()
        # Every supervised part started by start() reports to this; a failed core ends run().
        self.tasks = TaskOwner()
        scope = config.scope
        session = config.session
        # The longest quiet wait is a backoff: after a failed load it runs to load_retry_max.
        longest_backoff = max(session.backoff_max, config.pipeline.load_retry_max)
        self.progress_timeout = (
            PROGRESS_SLACK
            + longest_backoff * (1 + session.backoff_jitter)
            + 2 * max(scope.connect_timeout, scope.request_timeout, session.connect_timeout)
        )
        self._register_commands()
        self._register_screen_commands(self.commands, self.main_screen)

        # Video mode's pipeline chain (preprocessors), kept right for the mode, live.
        self.chain: ChainGuard | None = None
        if config.video_in.source or config.pipeline.preprocessors:
            self.chain = ChainGuard(self.store, self.client, config.pipeline.preprocessors)
            self.components.append(self.chain)

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
        self._watch_failover(self.main_screen, "")

        # Further screens: their own store, servers, outputs, scenes and rules; the same
        # beat clock (the main mapping's), audio and controls (soundscape.screens).
        self.screen_engines: dict[str, MappingEngine] = {}
        self._screen_parts: list[Component] = []
        for entry in entries[1:]:
            if entry.role == "screen":
                self._add_screen(entry, entries)

        # MIDI learn saves to the state directory (the service's config is read-only);
        # learned bindings are merged over the config's, here and on every reload.
        self.learned = LearnedMappings(state_files.learned) if state_files else None
        midi = config.midi
        if self.learned is not None:
            midi = dataclasses.replace(midi, mappings=merge(midi.mappings, self.learned.load()))
        self.midi = MidiControl(
            midi, self.store, self.commands, save=self.learned.save if self.learned else None
        )
        self.mapping.attach_midi_clock(self.midi.clock)
        # A further screen's parts start after the mapping: its engine follows the main clock.
        self.components += [self.osc, self.mapping, *self._screen_parts, self.midi]
        if len(self.screens) > 1:  # OSC /screen/<name>/..., MIDI screen = "<name>"
            controls = self.screen_controls()
            self.osc.set_screens(controls)
            self.midi.set_screens(controls)

        self.audio: AudioEngine | None = None
        if config.audio.enabled:
            self.audio = self._audio_engine(config.audio)
            self.components.append(self.audio)

        # Restored before anything starts, saved from last to first stop.
        self.fresh = fresh
        self.persistence: ShowPersistence | None = None
        if state_files is not None and config.state.enabled:
            self.persistence = ShowPersistence(
                state_files.show,
                self,
                lambda: self.config.initial_parameters(),
                debounce=config.state.debounce,
            )
            self.components.append(self.persistence)
        self.load_config: Callable[[], Config] | None = None  # set by run(): what reload reads
        self._reloads: set[asyncio.Task[bool]] = set()
        self._reload_lock = asyncio.Lock()

    def _outgoing_for(self, store: ParameterStore) -> Callable[[str], OutgoingTrack | None] | None:
        """A screen's video-in tracks (one per server, each session a fresh one), if any."""
        video_in = self.video_in
        if video_in is None:
            return None

        def track(server: str) -> OutgoingTrack | None:
            return None if store.text_mode else video_in.track(server)

        return track

    # ----- screens

    def _screen(
        self,
        primary: ServerEntry,
        entries: list[ServerEntry],
        store: ParameterStore,
        outputs: FrameSink,
        *,
        outgoing: Callable[[str], OutgoingTrack | None] | None = None,
    ) -> Screen:
        main = primary is entries[0]
        standbys = [
            entry
            for entry in entries
            if entry.role == "standby"
            and (entry.standby_for == primary.name or (main and not entry.standby_for))
        ]
        return Screen(
            primary,
            standbys,
            store,
            outputs,
            pipeline=self.config.pipeline,
            session=self.config.session,
            failover=self.config.failover,
            outgoing=outgoing,
            label_logs=len(entries) > 1,  # which server a log line is about
        )

    def _add_screen(self, entry: ServerEntry, entries: list[ServerEntry]) -> None:
        """A further screen: its store, outputs, servers, commands and mapping engine."""
        config = self.config
        store = ParameterStore(config.screen_parameters(entry), loras=config.lora_paths())
        outputs = VideoFanout(entry.outputs, size=(config.pipeline.width, config.pipeline.height))
        screen = self._screen(entry, entries, store, outputs, outgoing=self._outgoing_for(store))
        screen.outputs = outputs
        bus = CommandBus(parent=self.commands)  # its own scene, pause, ...; the rest shared
        self._register_screen_commands(bus, screen)
        screen.commands = bus
        prefix = f"/screen/{screen.name}"
        engine = MappingEngine(
            config.mapping,
            config.beat,
            entry.scenes if entry.scenes.list else config.scenes,
            store,
            bus,
            images=screen.primary.assets,
            publish=lambda address, *args: self.osc.send(prefix + address, *args),
            runner=self.mapping.runner,  # one beat clock for every screen
            screen=screen.name,
            main_screen=False,
        )
        self._watch_failover(screen, prefix)
        screen.primary.on_status(lambda status: self.osc.on_screen_status(screen.name, status))
        self.screens[screen.name] = screen
        self.screen_engines[screen.name] = engine
        self._screen_parts += [outputs, screen, engine]

    def screen_controls(self) -> dict[str, ScreenControls]:
        """Each screen as OSC and MIDI steer it (the main one on the shared bus)."""
        return {
            name: ScreenControls(
                name,
                screen.store,
                self.commands if screen is self.main_screen else screen.commands,
            )
            for name, screen in self.screens.items()
        }

    def _watch_failover(self, screen: Screen, prefix: str) -> None:
        if screen.failover is None:
            return
        screen.failover.bars = self.mapping.runner  # switch back on the next bar line

        def tell(status: dict[str, Any]) -> None:
            last = status.get("last_switch") or {}
            self.osc.send(f"{prefix}/soundscape/failover", status["active"], last.get("reason", ""))

        screen.failover.on_change(tell)

    def _audio_engine(self, config: AudioConfig) -> AudioEngine:
        engine = AudioEngine(config)
        for mapping in (self.mapping, *self.screen_engines.values()):
            engine.subscribe(mapping.feed)
        return engine

    def _register_screen_commands(self, bus: CommandBus, screen: Screen) -> None:
        """The commands that act on one screen (on its own bus; the main screen's: the root)."""
        store = screen.store

        def pause(value: bool | None = None, *, source: str) -> None:
            """Pause or resume generation (toggle without a value)."""
            target = (not store.get("paused")) if value is None else bool(value)
            store.set("paused", target, source=source)

        def reset_cache(*, source: str) -> None:
            """Reset Scope's cache once."""
            store.reset_cache(source=source)

        def reconnect(*, source: str) -> None:
            """Drop the Scope session and build a new one now."""
            log.info("reconnect_requested", source=source, screen=screen.name)
            screen.primary.reconnect(f"requested by {source}")

        def failover(server: str | None = None, *, source: str) -> str:
            """Show this server's frames (a standby, or the primary; none = the next one)."""
            try:
                return screen.select(server, source=source)
            except KeyError as err:
                raise ParamError(str(err.args[0])) from None

        bus.register("pause", pause)
        bus.register("reset_cache", reset_cache)
        bus.register("reconnect", reconnect)
        if screen.failover is not None:
            bus.register("failover", failover)

    def _rebuild_main(self, why: str) -> None:
        """A new session on every server of the main screen that has one: what only an
        offer carries (Scope's ``input_source``) reaches a hot standby too, not only
        after its next reconnect. A warm standby offers it when it is woken."""
        for supervisor in self.main_screen.supervisors.values():
            if supervisor.active:
                supervisor.reconnect(why)

    def _register_commands(self) -> None:
        store = self.store

        def state(*, source: str) -> dict[str, Any]:
            """The whole parameter state and the session status."""
            return {
                "parameters": store.snapshot(),
                "status": self.supervisor.status.as_dict(),
                "mapping": self.mapping.status(),
                "video": self.video.counters(),
                "midi": self.midi.counters(),
                "screens": self.screens_status(),
            }

        self.commands.register("state", state)
        AudioClockControls(lambda: self.audio, lambda: self.mapping.clock.active).register(
            self.commands
        )

    def screens_status(self) -> dict[str, Any]:
        """Every screen: its servers, which one is shown, its scene and outputs."""
        out = {}
        for name, screen in self.screens.items():
            status = screen.status()
            engine = self.mapping if screen is self.main_screen else self.screen_engines[name]
            status["scene"] = engine.status()["scene"]
            outputs = self.video if screen is self.main_screen else screen.outputs
            status["outputs"] = outputs.counters() if outputs is not None else {}
            out[name] = status
        return out

    def healthy(self) -> bool:
        """What WATCHDOG=1 vouches for: the core runs and the session moves on.

        The core parts (supervisor, sender) are alive, and the supervisor made
        progress lately: frames arrive, or a reconnect goes through its steps.
        """
        if not self.tasks.core_alive():
            return False
        now = time.monotonic()
        return all(
            now - supervisor.progress_at < self.progress_timeout
            for screen in self.screens.values()
            for supervisor in screen.supervisors.values()
        )

    async def start(self) -> None:
        if self.persistence is not None and not self.fresh:
            saved = await self.persistence.load()
            if saved is not None:  # before the first offer, which carries it to Scope
                self.persistence.restore(saved)
        elif self.persistence is not None:
            log.info("state_fresh", reason="--fresh: starting from the config alone")
        with owning(self.tasks):  # parts started here report a failing core to run()
            await self._start_components()

    async def _start_components(self) -> None:
        inputs = [p for p in (self.video_in, self.server_input) if p is not None]
        for component in [self.video, *inputs, self.main_screen, *self.components]:
            try:
                await component.start()
            except BackendUnavailable as err:
                if component is self.osc and "osc" in self.required:
                    # Asked for explicitly (--osc-port, [osc] port): a daemon nobody can
                    # control must not look healthy; exit non-zero so systemd shows it.
                    raise StartupError(str(err)) from None
                # An input or output that cannot run (port taken, library missing) must
                # not take the stream down with it: say why once and run without it.
                log.error(
                    "component_unavailable", component=type(component).__name__, reason=str(err)
                )
                continue
            self._started.append(component)

    # ----- live reload (soundscape.reload)

    def request_reload(self) -> None:
        """SIGHUP: read the config file again, in the background (reloads run one at a time)."""
        if self.load_config is None:
            log.warning("config_reload_unavailable", reason="no config file to read again")
            return
        task = asyncio.get_running_loop().create_task(self.reload(), name="config-reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> bool:
        """Read the config file again and apply it; False when it was refused (and logged)."""
        assert self.load_config is not None
        async with self._reload_lock:
            log.info("config_reload_requested")
            with owning(self.tasks):  # parts restarted by the reload report like the others
                return await live_reload.reload(self, self.load_config)

    async def reload_midi(self, midi: MidiConfig) -> None:
        learned = await asyncio.to_thread(self.learned.load) if self.learned else []
        merged = dataclasses.replace(midi, mappings=merge(midi.mappings, learned))
        if merged != self.midi.config:
            self.midi.reload(merged)

    async def reload_audio(self, audio: AudioConfig) -> None:
        if self.audio is not None and audio.enabled:
            await self.audio.reload(audio)
        elif audio.enabled:
            self.audio = self._audio_engine(audio)
            self.components.append(self.audio)
            await self.audio.start()
            self._started.append(self.audio)
        elif self.audio is not None:
            engine, self.audio = self.audio, None
            self.components.remove(engine)
            if engine in self._started:
                self._started.remove(engine)
            await engine.stop()

    async def stop(self) -> None:
        for task in list(self._reloads):
            await cancel_and_wait(task)
        while self._started:
            component = self._started.pop()
            try:
                await component.stop()
            except Exception:  # one part failing to stop must not keep the others running
                log.exception("component_stop_failed", component=type(component).__name__)
        for screen in self.screens.values():
            await screen.aclose()


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
    load_config: Callable[[], Config] | None = None,
    fresh: bool = False,
    required: Collection[str] = (),
) -> None:
    """Run the daemon until ``shutdown_trigger`` returns (default: SIGTERM/SIGINT).

    SIGHUP (and the ``reload`` command) read the config again with
    ``load_config`` and apply it live (:mod:`soundscape.reload`). The show's
    state is kept in the state directory and restored on start unless
    ``fresh`` (:mod:`soundscape.state`).

    Raises :class:`soundscape.tasks.CoreFailed` (after stopping everything) when a
    core part kept failing, so the process exits non-zero and systemd restarts it.

    ``with_emulator`` starts the built-in Scope emulator in this process and
    points the daemon at it (``soundscape demo``).
    """
    # No collection until warm_up has walked the imports' heap off the loop.
    with collections_paused():
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
            log.info(
                "emulator_started", url=url, try_a_fault=f"curl -X POST {url}/_emulator/restart"
            )
            if load_config is not None:
                load_config = _at_url(load_config, url)
        files = state_files(
            config.state,
            config_path,
            os.environ,
            Path.home(),
            demo=with_emulator and config_path is None,
        )
        # Every worker thread started now, then lazy imports and first-use set-up, off
        # the loop (see soundscape.warmup).
        await start_worker_pool()
        await asyncio.to_thread(warm_up)
    daemon = Daemon(config, state_files=files, fresh=fresh)
    daemon.required = set(required)
    daemon.load_config = load_config
    daemon.commands.register(
        "reload", lambda *, source: daemon.request_reload(), "Read the config file again (SIGHUP)."
    )
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # no SIGHUP on Windows
        loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
    daemon.supervisor.on_status(lambda s: notifier.status(_status_line(s)))
    control: ControlServer | None = None
    try:
        await daemon.start()
        control = daemon.control = await start_control(daemon, daemon.preview)
        notifier.ready(f"connecting to {config.scope.url}")
        notifier.start_watchdog(daemon.healthy)
        log.info("daemon_started", scope=config.scope.url)
        if on_started is not None:
            on_started(daemon)
        await daemon.tasks.until(shutdown_trigger)  # or a core part gave up
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGHUP)
        notifier.stopping()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                if control is not None:
                    await control.stop()
                await daemon.stop()
                if emulator is not None:
                    await emulator.stop()
        except TimeoutError:
            log.warning("stop_timed_out", seconds=STOP_TIMEOUT)
        await notifier.close()
        thaw_heap()
        log.info("daemon_stopped")
    if daemon.tasks.failure is not None:
        raise daemon.tasks.failure  # `soundscape run` exits 1; systemd starts it afresh


def _at_url(load: Callable[[], Config], url: str) -> Callable[[], Config]:
    """A reload of the demo keeps pointing at its own emulator."""

    def load_at_url() -> Config:
        config = load()
        return dataclasses.replace(config, scope=dataclasses.replace(config.scope, url=url))

    return load_at_url


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
