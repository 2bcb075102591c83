"""MIDI control: controllers in, feedback out, clock, learn — the component the app runs.

:class:`MidiControl` ties the pure parts together: messages from
:class:`~soundscape.control.midi_ports.MidiPorts` go through the
:class:`~soundscape.control.midi_mapping.MidiMapper` into the
:class:`~soundscape.scope.params.ParameterStore` (or the
:class:`~soundscape.control.commands.CommandBus`); store changes come back as
feedback; realtime messages feed the :class:`~soundscape.control.midi_clock.MidiClock`.

Usage (the app)::

    midi = MidiControl(config.midi, store, commands, save=learned.save, screens=screens)
    await midi.start()          # registers the "learn" command
    ...
    await midi.stop()

Screens: ``screens`` maps each screen's name to its
:class:`~soundscape.control.screens.ScreenControls` (the main screen may be
listed under its own name; ``store`` and ``commands`` are the main screen's). A
mapping with ``screen = "b"`` sets b's store, runs commands on b's bus and shows
b's values as feedback; ``screen = "*"`` does so on every screen.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tomllib
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mido
import structlog

from soundscape.control.commands import CommandBus
from soundscape.control.midi_clock import MidiClock
from soundscape.control.midi_config import (
    EVERY_SCREEN,
    MAIN_SCREEN,
    MAPPING_TYPES,
    MidiConfig,
    MidiMapping,
)
from soundscape.control.midi_feedback import FeedbackPlanner
from soundscape.control.midi_learn import LearnCapture
from soundscape.control.midi_mapping import Action, Binding, MidiMapper, RunCommand, SetTarget
from soundscape.control.midi_ports import (
    MessageHandler,
    MidiPorts,
    PortListener,
    choose_backend,
    match_ports,
)
from soundscape.control.midi_takeover import SoftTakeover
from soundscape.control.screens import ScreenControls
from soundscape.control.targets import resolve
from soundscape.errors import BackendUnavailable, ConfigError, ParamError
from soundscape.scope.params import ParameterStore
from soundscape.settings import Problem, build
from soundscape.tasks import Supervised, supervise

log = structlog.get_logger(__name__)

REALTIME = frozenset({"clock", "start", "stop", "continue", "songpos"})
CLOCK_CHECK_INTERVAL = 0.25

SaveLearned = Callable[[MidiMapping], None]


class _Learning:
    """One armed learn: what to bind, its capture, its timeout, its result."""

    def __init__(
        self,
        capture: LearnCapture,
        future: asyncio.Future[MidiMapping | None],
        timeout: asyncio.TimerHandle,
        screen: str = MAIN_SCREEN,
    ) -> None:
        self.capture = capture
        self.future = future
        self.timeout = timeout
        self.screen = screen  # recorded in the learned mapping


def _owner(bus: CommandBus, name: str) -> CommandBus | None:
    """The bus whose own handler runs ``name`` (a screen's, or the shared one it falls
    back to), or None."""
    return bus.owner(name)


class MidiControl:
    """The MIDI component: ports, mappings, feedback, clock and learn for one config.

    ``start()`` opens the ports when ``config.enabled`` (and registers the
    ``learn`` command), ``stop()`` closes everything; ``reload(config)`` takes
    new mappings and port choices live. ``save(mapping)`` keeps a learned
    binding (blocking: it runs in a thread; the daemon saves to the state
    directory, see :mod:`soundscape.state.learned`). ``screens`` (or
    :meth:`set_screens`): the screens mappings may name; None = the main screen only.
    """

    def __init__(
        self,
        config: MidiConfig,
        store: ParameterStore,
        commands: CommandBus,
        *,
        save: SaveLearned | None = None,
        clock: MidiClock | None = None,
        screens: Mapping[str, ScreenControls] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.commands = commands
        self.screens: dict[str, ScreenControls] = dict(screens or {})
        self.save = save
        self.clock = clock or MidiClock()
        self.mapper = self._mapper(config)
        self.feedback = FeedbackPlanner(self.mapper.bindings)
        self.ports: MidiPorts | None = None
        self._learning: _Learning | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._saves: set[asyncio.Task[None]] = set()  # awaited, never cancelled, by stop()
        # save() reads, merges and rewrites the file: two at once would lose one binding.
        self._save_lock = asyncio.Lock()
        self._poll_handle: asyncio.TimerHandle | None = None
        self._poll_at: float | None = None
        self._detach: list[Callable[[], None]] = []  # store listeners, learn commands
        self._attached = False
        self._clock_task: Supervised | None = None
        self._counts: Counter[str] = Counter()
        self._port_listeners: list[PortListener] = []
        self._monitors: list[MessageHandler] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the ports (when enabled) and register the ``learn`` command."""
        if not self.config.enabled:
            log.info("midi_off", reason="[midi] enabled = false")
            return
        try:
            # With backend auto, this probes for a JACK server (50-75 ms): off the loop.
            backend = await asyncio.to_thread(choose_backend, self.config.backend)
        except BackendUnavailable as err:
            log.warning("midi_off", reason=str(err))
            return
        log.info(
            "midi_backend",
            api=backend.name,
            reason=backend.reason,
            mappings=len(self.mapper.bindings),
        )
        self.ports = MidiPorts(
            backend,
            self._on_message,
            client_name=self.config.client_name,
            inputs=self.config.inputs,
            output=self.config.output,
            extra_inputs=self._extra_inputs(self.config),
            poll_interval=self.config.poll_interval,
        )
        self.ports.subscribe(self._on_port_event)
        for listener in self._port_listeners:
            self.ports.subscribe(listener)
        self._attach()
        await self.ports.start()
        self._clock_task = supervise("midi-clock-watch", self._watch_clock)

    async def stop(self) -> None:
        if self._learning is not None:
            self._finish_learn(None)
        if self._poll_handle is not None:
            self._poll_handle.cancel()
            self._poll_handle = None
        if self._clock_task is not None:
            await self._clock_task.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        # gather returns the tasks' own cancellations, but re-raises ours.
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._saves:  # a learned binding being written must reach the disk
            await asyncio.wait(list(self._saves))
        self._clock_task = None
        self._tasks.clear()
        self._detach_all()
        if self.ports is not None:
            await self.ports.stop()
            self.ports = None

    def reload(self, config: MidiConfig) -> None:
        """Take a new ``[midi]`` section without restarting: mappings and port choices.

        Changing ``enabled``, ``backend`` or ``client_name`` needs a restart
        (logged). A knob bound to the same target as before keeps its
        soft-takeover position (no pickup needed); a new binding picks up.
        """
        for key in ("enabled", "backend", "client_name"):
            if getattr(config, key) != getattr(self.config, key):
                log.warning("midi_restart_needed", key=key)
        self.config = config
        self._rebind()
        if self.ports is not None:
            self.ports.configure(config.inputs, config.output, self._extra_inputs(config))
            self._send_feedback(None)
        log.info("midi_reloaded", mappings=len(self.mapper.bindings))

    def set_screens(self, screens: Mapping[str, ScreenControls] | None) -> None:
        """The screens mappings may name (None = the main screen only).

        Meant for before :meth:`start`; later it rebinds like a reload (knobs keep
        their soft-takeover positions on screens still there).
        """
        self.screens = dict(screens or {})
        attached = self._attached
        if attached:
            self._detach_all()
        self._rebind()
        if attached:
            self._attach()
            self._send_feedback(None)
        log.info("midi_screens", screens=sorted(self.screens), mappings=len(self.mapper.bindings))

    def _rebind(self) -> None:
        """Compile the mappings again; a knob bound as before keeps its takeover position."""
        kept = self.takeover_positions()
        self.mapper = self._mapper(self.config)
        for key, takeover in self.takeover_positions().items():
            if key in kept and kept[key].mode == takeover.mode:
                takeover.restore(*kept[key].position())
        self.feedback.set_bindings(self.mapper.bindings)
        self.feedback.forget()

    def _attach(self) -> None:
        """Listen to every screen's store; register ``learn`` (on each screen's bus too,
        bound to that screen, so ``learn`` called on screen b learns for b)."""
        for store in self._stores():
            self._detach.append(store.subscribe(self._store_listener(store)))
        doc = "MIDI learn: bind the next control moved to a target."
        self.commands.register("learn", self._learn_command, doc)
        self._detach.append(lambda: self.commands.unregister("learn"))
        for name, screen in self.screens.items():
            bus = screen.commands
            if bus is self.commands:
                continue
            bus.register("learn", self._screen_learn_command(name), f"{doc} (screen {name})")
            self._detach.append(lambda bus=bus: bus.unregister("learn"))
        self._attached = True

    def _detach_all(self) -> None:
        detach, self._detach = self._detach, []
        for undo in detach:
            undo()
        self._attached = False

    # ------------------------------------------------------------------ reading

    def counters(self) -> dict[str, int]:
        """Running totals for status pages and tests."""
        out = dict(self._counts)
        if self.ports is not None:
            out.update({f"port_{k}": v for k, v in self.ports.counters.items()})
            out["inputs_open"] = len(self.ports.inputs)
            out["output_open"] = int(self.ports.output is not None)
        out["clock_messages"] = self.clock.received
        out["bindings"] = len(self.mapper.bindings)
        return out

    def subscribe_ports(self, listener: PortListener) -> None:
        """``listener(event, port)`` for port events (input_opened, input_lost,
        output_opened, output_ready, output_lost); may be called before start()."""
        self._port_listeners.append(listener)
        if self.ports is not None:
            self.ports.subscribe(listener)

    def monitor(self, listener: MessageHandler) -> Callable[[], None]:
        """``listener(port, message, time)`` for every message received (a MIDI monitor)."""
        self._monitors.append(listener)
        return lambda: self._monitors.remove(listener)

    @property
    def learning(self) -> str | None:
        """The target a learn is waiting for, if any."""
        return None if self._learning is None else self._learning.capture.target

    def bindings(self) -> list[Binding]:
        return list(self.mapper.bindings)

    def takeover_positions(self) -> dict[str, SoftTakeover]:
        """The soft takeover of each knob and fader (saved state), by ``control>target``,
        with ``@screen`` for a screen other than the main one: one per screen and target."""
        return {
            f"{b.mapping.control_key()}>{b.mapping.target}"
            + (f"@{b.screen}" if b.screen else ""): b.takeover
            for b in self.mapper.bindings
            if b.continuous
        }

    # ------------------------------------------------------------------ learn

    def learn(
        self,
        target: str,
        *,
        kind: str | None = None,
        mode: str | None = None,
        timeout: float | None = None,
        screen: str = MAIN_SCREEN,
    ) -> asyncio.Future[MidiMapping | None]:
        """Arm learn: the next control moved binds to ``target`` (saved to the config file).

        Returns a future with the new mapping, or None on timeout / cancel.
        Raises ParamError for an unknown target, type or screen. ``kind`` forces the
        mapping type; ``mode`` the encoding or button mode; ``screen`` is recorded in
        the mapping ("" = the main screen, a screen's name, or "*").
        """
        stores = self.mapper.screen_stores(screen)  # raises ParamError naming the screens
        if not target.startswith("command:"):
            for _, store in stores:
                resolve(target, store)  # raises ParamError listing the known targets
        if kind is not None and kind not in MAPPING_TYPES:
            raise ParamError(f"learn: type {kind!r} is not one of {', '.join(MAPPING_TYPES)}")
        if self._learning is not None:
            log.info("midi_learn_replaced", target=self._learning.capture.target)
            self._finish_learn(None)
        loop = asyncio.get_running_loop()
        seconds = self.config.learn_timeout if timeout is None else timeout
        future: asyncio.Future[MidiMapping | None] = loop.create_future()
        handle = loop.call_later(seconds, self._learn_timed_out)
        capture = LearnCapture(target, kind=kind, mode=mode, settle=self.config.learn_settle)
        self._learning = _Learning(capture, future, handle, screen)
        log.info("midi_learn_armed", target=target, screen=screen or None, timeout=seconds)
        return future

    def cancel_learn(self) -> bool:
        if self._learning is None:
            return False
        log.info("midi_learn_cancelled", target=self._learning.capture.target)
        self._finish_learn(None)
        return True

    async def _learn_command(
        self,
        target: str = "",
        kind: str | None = None,
        mode: str | None = None,
        screen: str | None = None,
        *,
        source: str = "api",
    ) -> str:
        """CommandBus ``learn <target> [type] [mode] [screen]`` arms learn; ``learn cancel``
        stops. Empty type/mode = decided from the control; empty screen = the main one."""
        if target in ("", "cancel", "stop"):
            return "learn cancelled" if self.cancel_learn() else "no learn was armed"
        screen = screen or MAIN_SCREEN
        self.learn(target, kind=kind or None, mode=mode or None, screen=screen)
        log.info("midi_learn_requested", target=target, screen=screen or None, by=source)
        where = f" on screen {screen}" if screen else ""
        return f"learning {target}{where}: move a control"

    def _screen_learn_command(self, name: str) -> Callable[..., Any]:
        """``learn`` on screen ``name``'s own bus: learns for that screen."""

        async def learn(
            target: str = "",
            kind: str | None = None,
            mode: str | None = None,
            *,
            source: str = "api",
        ) -> str:
            return await self._learn_command(target, kind, mode, name, source=source)

        return learn

    def _learn_timed_out(self) -> None:
        if self._learning is not None:
            log.warning(
                "midi_learn_timeout",
                target=self._learning.capture.target,
                seconds=self.config.learn_timeout,
            )
            self._finish_learn(None)

    def _finish_learn(self, mapping: MidiMapping | None) -> None:
        learning, self._learning = self._learning, None
        if learning is None:
            return
        learning.timeout.cancel()
        if not learning.future.done():
            learning.future.set_result(mapping)

    def _bind_learned(self, mapping: MidiMapping) -> None:
        assert self._learning is not None
        mapping = dataclasses.replace(mapping, screen=self._learning.screen)
        self.mapper.remove_control(mapping)
        if not self.mapper.add(mapping):
            log.warning(
                "midi_learn_failed", target=mapping.target, problems=self.mapper.problems[-1:]
            )
            self._finish_learn(None)
            return
        key = mapping.control_key()
        self.config.mappings = [m for m in self.config.mappings if m.control_key() != key] + [
            mapping
        ]
        self.feedback.set_bindings(self.mapper.bindings)
        self._counts["learned"] += 1
        log.info(
            "midi_learned",
            target=mapping.target,
            screen=mapping.screen or None,
            type=mapping.type,
            channel=mapping.channel,
            number=mapping.number,
            mode=mapping.mode or None,
        )
        if self.save is not None:
            task = asyncio.create_task(self._save(mapping), name="midi-learn-save")
            self._saves.add(task)
            task.add_done_callback(self._saves.discard)
        self._finish_learn(mapping)
        self._send_feedback(None)

    async def _save(self, mapping: MidiMapping) -> None:
        assert self.save is not None
        try:
            async with self._save_lock:
                # A file write (with fsync) must never hold up the event loop.
                await asyncio.to_thread(self.save, mapping)
        except Exception as err:  # the binding works anyway; say it will not survive a restart
            log.warning("midi_learn_not_saved", target=mapping.target, error=str(err))
        else:
            log.info("midi_learn_saved", target=mapping.target, screen=mapping.screen or None)

    # ------------------------------------------------------------------ messages

    def _on_message(self, port: str, msg: mido.Message, t: float) -> None:
        self._counts["messages"] += 1
        for monitor in list(self._monitors):
            try:
                monitor(port, msg, t)
            except Exception:
                log.exception("midi_monitor_failed")
        if msg.type in REALTIME:
            if self.config.clock and self._is_clock_port(port):
                self.clock.feed(msg.type, t, getattr(msg, "pos", None))
            return
        if not self._is_control_port(port):
            return
        if self._learning is not None:
            used, mapping = self._learning.capture.feed(msg, t)
            if mapping is not None:
                self._bind_learned(mapping)
            if used:
                self._schedule_poll()
                return
        actions, matched = self.mapper.handle(msg, t)
        if not matched:
            self._counts["unmapped"] += 1
        self._apply(actions)
        self._schedule_poll()

    def _is_clock_port(self, port: str) -> bool:
        pattern = self.config.clock_input
        return not pattern or pattern.lower() in port.lower()

    def _is_control_port(self, port: str) -> bool:
        # No input patterns = every port is a controller; a port opened only for
        # clock_input carries no mappings.
        if not self.config.inputs:
            return True
        return bool(match_ports([port], self.config.inputs, self.config.client_name))

    def _apply(self, actions: list[Action]) -> None:
        ran: set[tuple[int, int]] = set()
        for action in actions:
            if isinstance(action, SetTarget):
                try:
                    action.target.set(action.binding.store, action.value, source=action.source)
                except ParamError as err:
                    self._refused(action.binding, err)
                else:
                    action.binding.last_error = None
                    self._counts["applied"] += 1
            elif isinstance(action, RunCommand):
                self._run(action, ran)

    def _run(self, action: RunCommand, ran: set[tuple[int, int]]) -> None:
        bus = self._bus(action.binding.screen)
        if action.name == "reset_cache" and "reset_cache" not in bus:
            # A one-shot of the store itself; no component needs to own it.
            self._counts["commands"] += 1
            action.binding.store.reset_cache(source=action.source)
            return
        # A "*" pad runs a screen's own command (scene, panic) on every screen, but a
        # shared one (tap, mapping) that each screen's bus falls back to only once.
        key = (id(action.binding.mapping), id(_owner(bus, action.name)))
        if key in ran:
            return
        ran.add(key)
        self._counts["commands"] += 1
        task = asyncio.create_task(self._call(action, bus), name=f"midi-command-{action.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, action: RunCommand, bus: CommandBus) -> None:
        try:
            await bus.call(action.name, *action.args, source=action.source)
        except ParamError as err:
            self._refused(action.binding, err)
        except Exception:  # a broken command must not take MIDI down
            log.exception("midi_command_failed", command=action.name)

    def _refused(self, binding: Binding, err: ParamError) -> None:
        self._counts["refused"] += 1
        if str(err) != binding.last_error:  # one line per new problem, not per message
            binding.last_error = str(err)
            log.warning("midi_refused", mapping=binding.mapping.label(), error=str(err))

    # ------------------------------------------------------------------ timers

    def _schedule_poll(self) -> None:
        deadlines = [self.mapper.deadline]
        if self._learning is not None:
            deadlines.append(self._learning.capture.deadline)
        pending = [d for d in deadlines if d is not None]
        if not pending:
            return
        when = min(pending)
        if self._poll_at is not None and self._poll_at <= when:
            return
        if self._poll_handle is not None:
            self._poll_handle.cancel()
        self._poll_at = when
        self._poll_handle = asyncio.get_running_loop().call_at(when, self._poll)

    def _poll(self) -> None:
        self._poll_handle = None
        self._poll_at = None
        now = asyncio.get_running_loop().time()
        self._apply(self.mapper.poll(now))
        if self._learning is not None:
            mapping = self._learning.capture.poll(now)
            if mapping is not None:
                self._bind_learned(mapping)
        self._schedule_poll()

    async def _watch_clock(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CLOCK_CHECK_INTERVAL)
            self.clock.check(loop.time())

    # ------------------------------------------------------------------ feedback

    def _store_listener(self, store: ParameterStore) -> Callable[[dict[str, Any], str], None]:
        def on_change(changes: dict[str, Any], source: str) -> None:
            self._send_feedback(source, store)

        return on_change

    def _send_feedback(self, source: str | None, store: ParameterStore | None = None) -> None:
        """Bring the controls of ``store`` (None: of every screen) up to date."""
        if self.ports is None or self.ports.output is None:
            return
        for msg in self.feedback.plan(store, source):
            if self.ports.send(msg):
                self._counts["feedback_sent"] += 1

    def _on_port_event(self, event: str, port: str) -> None:
        if event == "output_ready":
            self.feedback.forget()  # a (re)connected device shows nothing yet
            self._send_feedback(None)
        elif event == "input_opened":
            for binding in self.mapper.bindings:
                binding.takeover.forget_knob()

    # ------------------------------------------------------------------ helpers

    def _mapper(self, config: MidiConfig) -> MidiMapper:
        return MidiMapper(
            config.mappings,
            self.store,
            screens={name: screen.store for name, screen in self.screens.items()},
            takeover=config.takeover,
            threshold=config.takeover_threshold,
            pair_window=config.pair_window,
        )

    def _bus(self, screen: str) -> CommandBus:
        """The command bus of a binding's screen ("" = the main screen's)."""
        return self.screens[screen].commands if screen else self.commands

    def _stores(self) -> list[ParameterStore]:
        """Every screen's store, once each, the main one first."""
        stores = [self.store]
        for screen in self.screens.values():
            if all(screen.store is not s for s in stores):
                stores.append(screen.store)
        return stores

    @staticmethod
    def _extra_inputs(config: MidiConfig) -> list[str]:
        return [config.clock_input] if config.clock and config.clock_input else []


# --------------------------------------------------------------------------- CLI helpers


def read_midi_config(path: str | Path) -> tuple[MidiConfig, dict[str, str]]:
    """The ``[midi]`` section and the LoRA names of a config file, for CLI helpers.

    Raises ConfigError listing every problem of the section.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError([f"{path}: {err}"], str(path)) from None
    problems: list[Problem] = []
    config = build(MidiConfig, data.get("midi", {}), "midi", problems)
    if problems:
        raise ConfigError([f"{path}: {p}" for p in problems], str(path))
    loras = {
        str(entry.get("name")): str(entry.get("path"))
        for entry in data.get("pipeline", {}).get("loras", [])
        if isinstance(entry, dict) and "name" in entry and "path" in entry
    }
    return config, loras


async def learn_once(
    config_path: str | Path | None,
    target: str,
    *,
    save: SaveLearned | None = None,
    kind: str | None = None,
    mode: str | None = None,
    timeout: float | None = None,
    on_ready: Callable[[list[str]], None] | None = None,
    screen: str = MAIN_SCREEN,
) -> MidiMapping | None:
    """``soundscape midi-learn <target>``: open the inputs, bind the next control, save.

    Works without a running daemon (a running daemon picks the mapping up on
    its next reload, SIGHUP; to bind live, send it the ``learn`` command over
    OSC instead). ``save(mapping)`` keeps the binding (the CLI: the state
    directory). ``on_ready(open_inputs)`` is called once listening (the CLI
    prints "move a control now"). ``screen`` is recorded in the mapping (checked
    against the ``[[scope]]`` screens when the daemon loads it). Returns the
    mapping, or None on timeout.
    """
    config, loras = read_midi_config(config_path) if config_path else (MidiConfig(), {})
    config.enabled = True
    store = ParameterStore(loras=loras)
    screens = None
    if screen not in (MAIN_SCREEN, EVERY_SCREEN):  # no daemon: a stand-in with the same LoRAs
        screens = {screen: ScreenControls(screen, ParameterStore(loras=loras), CommandBus())}
    control = MidiControl(config, store, CommandBus(), save=save, screens=screens)
    await control.start()
    if control.ports is None:
        raise BackendUnavailable("MIDI is unavailable (see the log line above)")
    try:
        future = control.learn(target, kind=kind, mode=mode, timeout=timeout, screen=screen)
        if on_ready is not None:
            on_ready(control.ports.inputs)
        return await future
    finally:
        await control.stop()
