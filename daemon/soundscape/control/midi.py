"""MIDI control: controllers in, feedback out, clock, learn — the component the app runs.

:class:`MidiControl` ties the pure parts together: messages from
:class:`~soundscape.control.midi_ports.MidiPorts` go through the
:class:`~soundscape.control.midi_mapping.MidiMapper` into the
:class:`~soundscape.scope.params.ParameterStore` (or the
:class:`~soundscape.control.commands.CommandBus`); store changes come back as
feedback; realtime messages feed the :class:`~soundscape.control.midi_clock.MidiClock`.

Usage (the app)::

    midi = MidiControl(config.midi, store, commands, save=learned.save)
    await midi.start()          # registers the "learn" command
    ...
    await midi.stop()
"""

from __future__ import annotations

import asyncio
import tomllib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mido
import structlog

from soundscape.control.commands import CommandBus
from soundscape.control.midi_clock import MidiClock
from soundscape.control.midi_config import MAPPING_TYPES, MidiConfig, MidiMapping
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
    ) -> None:
        self.capture = capture
        self.future = future
        self.timeout = timeout


class MidiControl:
    """The MIDI component: ports, mappings, feedback, clock and learn for one config.

    ``start()`` opens the ports when ``config.enabled`` (and registers the
    ``learn`` command), ``stop()`` closes everything; ``reload(config)`` takes
    new mappings and port choices live. ``save(mapping)`` keeps a learned
    binding (blocking: it runs in a thread; the daemon saves to the state
    directory, see :mod:`soundscape.state.learned`).
    """

    def __init__(
        self,
        config: MidiConfig,
        store: ParameterStore,
        commands: CommandBus,
        *,
        save: SaveLearned | None = None,
        clock: MidiClock | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.commands = commands
        self.save = save
        self.clock = clock or MidiClock()
        self.mapper = self._mapper(config)
        self.feedback = FeedbackPlanner(self.mapper.bindings)
        self.ports: MidiPorts | None = None
        self._learning: _Learning | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._saves: set[asyncio.Task[None]] = set()  # awaited, never cancelled, by stop()
        self._poll_handle: asyncio.TimerHandle | None = None
        self._poll_at: float | None = None
        self._unsubscribe: Callable[[], None] | None = None
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
        self._unsubscribe = self.store.subscribe(self._on_store_change)
        self.commands.register(
            "learn", self._learn_command, "MIDI learn: bind the next control moved to a target."
        )
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
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
            self.commands.unregister("learn")
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
        kept = self.takeover_positions()
        self.config = config
        self.mapper = self._mapper(config)
        for key, takeover in self.takeover_positions().items():
            if key in kept and kept[key].mode == takeover.mode:
                takeover.restore(*kept[key].position())
        self.feedback.set_bindings(self.mapper.bindings)
        self.feedback.forget()
        if self.ports is not None:
            self.ports.configure(config.inputs, config.output, self._extra_inputs(config))
            self._send_feedback(None)
        log.info("midi_reloaded", mappings=len(self.mapper.bindings))

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
        """The soft takeover of each knob and fader, by ``control>target`` (saved state)."""
        return {
            f"{b.mapping.control_key()}>{b.mapping.target}": b.takeover
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
    ) -> asyncio.Future[MidiMapping | None]:
        """Arm learn: the next control moved binds to ``target`` (saved to the config file).

        Returns a future with the new mapping, or None on timeout / cancel.
        Raises ParamError for an unknown target or type. ``kind`` forces the
        mapping type; ``mode`` the encoding or button mode.
        """
        if not target.startswith("command:"):
            resolve(target, self.store)  # raises ParamError listing the known targets
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
        self._learning = _Learning(capture, future, handle)
        log.info("midi_learn_armed", target=target, timeout=seconds)
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
        *,
        source: str = "api",
    ) -> str:
        """CommandBus ``learn <target> [type] [mode]`` arms learn; ``learn cancel`` stops."""
        if target in ("", "cancel", "stop"):
            return "learn cancelled" if self.cancel_learn() else "no learn was armed"
        self.learn(target, kind=kind or None, mode=mode or None)
        log.info("midi_learn_requested", target=target, by=source)
        return f"learning {target}: move a control"

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
        self.mapper.remove_control(mapping)
        binding = self.mapper.add(mapping)
        if binding is None:
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
            # A file write (with fsync) must never hold up the event loop.
            await asyncio.to_thread(self.save, mapping)
        except Exception as err:  # the binding works anyway; say it will not survive a restart
            log.warning("midi_learn_not_saved", target=mapping.target, error=str(err))
        else:
            log.info("midi_learn_saved", target=mapping.target)

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
        for action in actions:
            if isinstance(action, SetTarget):
                try:
                    action.target.set(self.store, action.value, source=action.source)
                except ParamError as err:
                    self._refused(action.binding, err)
                else:
                    action.binding.last_error = None
                    self._counts["applied"] += 1
            elif isinstance(action, RunCommand):
                self._run(action)

    def _run(self, action: RunCommand) -> None:
        self._counts["commands"] += 1
        if action.name == "reset_cache" and "reset_cache" not in self.commands:
            # A one-shot of the store itself; no component needs to own it.
            self.store.reset_cache(source=action.source)
            return
        task = asyncio.create_task(self._call(action), name=f"midi-command-{action.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, action: RunCommand) -> None:
        try:
            await self.commands.call(action.name, *action.args, source=action.source)
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

    def _on_store_change(self, changes: dict[str, Any], source: str) -> None:
        self._send_feedback(source)

    def _send_feedback(self, source: str | None) -> None:
        if self.ports is None or self.ports.output is None:
            return
        for msg in self.feedback.plan(self.store, source):
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
            takeover=config.takeover,
            threshold=config.takeover_threshold,
            pair_window=config.pair_window,
        )

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
) -> MidiMapping | None:
    """``soundscape midi-learn <target>``: open the inputs, bind the next control, save.

    Works without a running daemon (a running daemon picks the mapping up on
    its next reload, SIGHUP; to bind live, send it the ``learn`` command over
    OSC instead). ``save(mapping)`` keeps the binding (the CLI: the state
    directory). ``on_ready(open_inputs)`` is called once listening (the CLI
    prints "move a control now"). Returns the mapping, or None on timeout.
    """
    config, loras = read_midi_config(config_path) if config_path else (MidiConfig(), {})
    config.enabled = True
    store = ParameterStore(loras=loras)
    control = MidiControl(config, store, CommandBus(), save=save)
    await control.start()
    if control.ports is None:
        raise BackendUnavailable("MIDI is unavailable (see the log line above)")
    try:
        future = control.learn(target, kind=kind, mode=mode, timeout=timeout)
        if on_ready is not None:
            on_ready(control.ports.inputs)
        return await future
    finally:
        await control.stop()
