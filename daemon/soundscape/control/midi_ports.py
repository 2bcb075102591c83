"""MIDI ports: backend choice, port listing, inputs and the feedback output, reconnect.

Messages are mido's (``mido.Message.from_bytes`` / ``.bytes()``); the ports are
python-rtmidi objects opened directly rather than through ``mido.open_input``,
for reasons found on JACK:

- No Python runs in the MIDI system's thread. mido always installs an rtmidi
  callback, and rtmidi calls it from JACK's real-time process thread, which
  then waits for the GIL: under load that stalls JACK's cycle (messages lost,
  the client thrown out) and it deadlocks when a port is closed while a
  callback waits (rtmidi holds the GIL while JACK waits for that thread). Both
  were seen here. One reader thread drains rtmidi's queues instead.
- The daemon's own ports get a recognisable client name (``soundscape:in …``)
  and are never opened as inputs (mido names every client "RtMidiIn Client",
  and passing ``client_name=`` to ``mido.open_input`` silently creates a new
  virtual port instead of connecting to the existing one).
- Listing ports through mido opens two JACK clients per call (~50 ms); one
  persistent lister per direction costs 0.1 ms, so polling every second for
  unplugged devices is free.
- Realtime messages (clock) must not be filtered (``ignore_types``).

Arrival times come from rtmidi's own delta times (see :class:`_PortClock`), on
the ``time.monotonic()`` clock the asyncio loop uses; messages reach the loop
through ``call_soon_threadsafe``. Opening and closing ports (which connects
JACK clients) runs in a worker thread so the loop never stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import mido
import rtmidi
import structlog

from soundscape.control.jack_graph import paced
from soundscape.errors import BackendUnavailable
from soundscape.tasks import Supervised, in_thread, supervise

log = structlog.get_logger(__name__)

RTMIDI_MODULE = "mido.backends.rtmidi"
API_ALIASES = {
    "jack": "UNIX_JACK",
    "alsa": "LINUX_ALSA",
    "coremidi": "MACOSX_CORE",
    "winmm": "WINDOWS_MM",
}
_RTMIDI_ERRORS = (rtmidi.RtMidiError, RuntimeError, OSError)
OUTPUT_SETTLE = 0.25  # seconds from connecting an output to trusting it (see MidiPorts)

MessageHandler = Callable[[str, mido.Message, float], None]
PortListener = Callable[[str, str], None]


# --------------------------------------------------------------------------- backend


@dataclass(frozen=True)
class BackendChoice:
    api: int  # an rtmidi.API_* constant
    name: str  # UNIX_JACK, LINUX_ALSA, ... or UNSPECIFIED
    reason: str  # why this one (for the start-up log line)


def compiled_apis() -> dict[str, int]:
    """rtmidi APIs built into this wheel, by mido's names (UNIX_JACK, LINUX_ALSA...)."""
    out = {}
    for api in rtmidi.get_compiled_api():
        for attr in dir(rtmidi):
            if attr.startswith("API_") and getattr(rtmidi, attr) == api:
                out[attr[4:]] = api
    return out


def jack_running() -> bool:
    """Is a JACK server up? (rtmidi never starts one; libjack may print to stderr.)

    Blocking: it opens and closes a JACK client (50-75 ms), so the daemon calls
    it, through :func:`choose_backend`, on a worker thread.
    """
    if "UNIX_JACK" not in compiled_apis():
        return False
    try:
        probe = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "soundscape-probe")
    except _RTMIDI_ERRORS:
        return False
    probe.delete()
    return True


def _api_from(name: str, why: str) -> BackendChoice:
    apis = compiled_apis()
    key = API_ALIASES.get(name.lower(), name.upper())
    if key in ("", "UNSPECIFIED"):
        return BackendChoice(rtmidi.API_UNSPECIFIED, "UNSPECIFIED", why)
    if key not in apis:
        raise BackendUnavailable(
            f"MIDI API {name!r} is not available (compiled in: {', '.join(apis) or 'none'})"
        )
    return BackendChoice(apis[key], key, why)


def choose_backend(spec: str = "auto", env: Mapping[str, str] | None = None) -> BackendChoice:
    """Pick the rtmidi API: config, else MIDO_BACKEND, else JACK when it runs, else default.

    ``spec`` is ``auto``, an alias (jack, alsa, coremidi, winmm), an API name
    (UNIX_JACK) or a mido backend string (``mido.backends.rtmidi/UNIX_JACK``).
    Raises :class:`BackendUnavailable` for an API this machine lacks.
    """
    env = os.environ if env is None else env
    spec = spec.strip()
    source = "config"
    if spec.lower() == "auto":
        spec, source = env.get("MIDO_BACKEND", "").strip(), "MIDO_BACKEND"
    if spec:
        module, _, api = spec.partition("/")
        if "." not in module:  # an alias or a bare API name
            return _api_from(module, f"{source}={spec}")
        if module != RTMIDI_MODULE:
            log.warning("midi_backend_not_rtmidi", backend=module, using="rtmidi")
        return _api_from(api, f"{source}={spec}")
    if jack_running():
        return _api_from("UNIX_JACK", "a JACK server is running")
    return BackendChoice(rtmidi.API_UNSPECIFIED, "UNSPECIFIED", "system default")


# --------------------------------------------------------------------------- names


def is_own(name: str, client_name: str) -> bool:
    """A port of the daemon itself (JACK renames clashing clients to name-01...)."""
    return re.match(rf"^{re.escape(client_name)}(-\d+)?:", name, re.IGNORECASE) is not None


def match_ports(names: list[str], patterns: list[str], client_name: str) -> list[str]:
    """Names containing any pattern (case-insensitive); no patterns = all; never our own."""
    lowered = [p.lower() for p in patterns]
    return [
        name
        for name in names
        if not is_own(name, client_name)
        and (not lowered or any(p in name.lower() for p in lowered))
    ]


def _stable(name: str) -> str:
    # ALSA appends "client:port" numbers that change when a device is replugged.
    return re.sub(r"\s+\d+:\d+$", "", name)


def list_ports(spec: str = "auto", client_name: str = "soundscape") -> dict[str, Any]:
    """What ``soundscape midi-ports`` prints: the backend and the other programs' ports.

    Raises :class:`BackendUnavailable` when the MIDI system cannot be reached.
    """
    backend = choose_backend(spec)
    try:
        midi_in = rtmidi.MidiIn(backend.api, f"{client_name}-list")
        midi_out = rtmidi.MidiOut(backend.api, f"{client_name}-list")
    except _RTMIDI_ERRORS as err:
        raise BackendUnavailable(f"MIDI ({backend.name}) unavailable: {err}") from None
    try:
        api = rtmidi.get_api_name(midi_in.get_current_api())
        inputs = [n for n in midi_in.get_ports() if not is_own(n, client_name)]
        outputs = [n for n in midi_out.get_ports() if not is_own(n, client_name)]
    finally:
        midi_in.delete()
        midi_out.delete()
    return {"backend": api, "reason": backend.reason, "inputs": inputs, "outputs": outputs}


def format_ports(info: dict[str, Any]) -> str:
    """Human-readable listing of :func:`list_ports`."""
    lines = [f"MIDI backend: {info['backend']} ({info['reason']})", "Inputs (controllers):"]
    lines += [f"  {n}" for n in info["inputs"]] or ["  (none)"]
    lines.append("Outputs (feedback):")
    lines += [f"  {n}" for n in info["outputs"]] or ["  (none)"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- ports


class MidiPorts:
    """Keeps the wanted inputs and the feedback output open, across unplug and replug.

    Every ``poll_interval`` the port list is read; a wanted port that vanished
    is closed (logged once), and reopened when it comes back (logged once).
    Listeners get ``(event, port)``: input_opened, input_lost, output_opened,
    output_ready, output_lost. ``output_ready`` follows ``output_opened`` after
    ``OUTPUT_SETTLE`` seconds: JACK applies a new connection on a later cycle,
    and messages sent before that are lost (measured: 2 in 20 under load), so
    a full feedback refresh waits for it.
    """

    def __init__(
        self,
        backend: BackendChoice,
        on_message: MessageHandler,
        *,
        client_name: str = "soundscape",
        inputs: list[str] | None = None,
        output: str = "",
        extra_inputs: list[str] | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.backend = backend
        self.client_name = client_name
        self.poll_interval = poll_interval
        self._on_message = on_message
        self._patterns: list[str] = list(inputs or [])
        self._extra: list[str] = list(extra_inputs or [])
        self._output_pattern = output
        self._inputs: dict[str, rtmidi.MidiIn] = {}
        self._reader = _InputReader(self._deliver)
        self._output: tuple[str, rtmidi.MidiOut] | None = None
        self._lister: tuple[rtmidi.MidiIn, rtmidi.MidiOut] | None = None
        self._gone: set[str] = set()  # stable names lost while open (to log their return)
        self._missing: set[str] = set()  # patterns with no port (logged once)
        self._failed: set[str] = set()  # ports that would not open (logged once)
        self._unavailable: str | None = None
        self._listeners: list[PortListener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: Supervised | None = None
        self._wake = asyncio.Event()
        self._ready_handle: asyncio.TimerHandle | None = None
        self.counters = {
            "received": 0,
            "undecodable": 0,
            "sent": 0,
            "send_errors": 0,
            "opened": 0,
            "lost": 0,
        }

    # ----- public

    @property
    def inputs(self) -> list[str]:
        return list(self._inputs)

    @property
    def output(self) -> str | None:
        return None if self._output is None else self._output[0]

    def subscribe(self, listener: PortListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def configure(self, inputs: list[str], output: str, extra_inputs: list[str]) -> None:
        """New port choices (config reload); applied at once by a rescan."""
        self._patterns, self._output_pattern, self._extra = list(inputs), output, list(extra_inputs)
        self._missing.clear()
        self._wake.set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.scan()
        self._task = supervise("midi-ports", self._poll)

    async def stop(self) -> None:
        if self._task is not None:
            await self._task.stop()
            self._task = None
        if self._ready_handle is not None:
            self._ready_handle.cancel()
            self._ready_handle = None
        for name in self._inputs:
            self._reader.remove(name)
        await self._reader.stop()
        inputs, self._inputs = list(self._inputs.values()), {}
        output, self._output = self._output, None
        lister, self._lister = self._lister, None

        def close_all() -> None:
            for port in inputs:
                _close(port)
            if output is not None:
                _close(output[1])
            if lister is not None:
                lister[0].delete()
                lister[1].delete()

        await asyncio.to_thread(close_all)

    def send(self, msg: mido.Message) -> bool:
        """Send on the feedback output; False when none is connected."""
        if self._output is None:
            return False
        try:
            self._output[1].send_message(msg.bytes())
        except _RTMIDI_ERRORS as err:
            self.counters["send_errors"] += 1
            if self.counters["send_errors"] == 1:
                log.warning("midi_send_failed", port=self._output[0], error=str(err))
            return False
        self.counters["sent"] += 1
        return True

    async def scan(self) -> None:
        """Read the port list once and open / close ports to match it."""
        try:
            names_in, names_out = await asyncio.to_thread(self._list)
        except _RTMIDI_ERRORS as err:
            if self._unavailable is None:
                log.warning("midi_unavailable", backend=self.backend.name, error=str(err))
            self._unavailable = str(err)
            return
        if self._unavailable is not None:
            log.info("midi_available", backend=self.backend.name)
            self._unavailable = None
        await self._sync_inputs(names_in)
        await self._sync_output(names_out)

    # ----- internals

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            try:
                await self.scan()
            except Exception:  # the watcher must outlive any surprise from a driver
                log.exception("midi_scan_failed")

    def _list(self) -> tuple[list[str], list[str]]:
        if self._lister is None:
            self._lister = (
                rtmidi.MidiIn(self.backend.api, self.client_name),
                rtmidi.MidiOut(self.backend.api, self.client_name),
            )
        return self._lister[0].get_ports(), self._lister[1].get_ports()

    async def _sync_inputs(self, names: list[str]) -> None:
        wanted = match_ports(names, self._patterns, self.client_name)
        if self._extra:
            wanted += [
                n for n in match_ports(names, self._extra, self.client_name) if n not in wanted
            ]
        if self._patterns or self._extra:
            others = [n for n in names if not is_own(n, self.client_name)]
            for pattern in [*self._patterns, *self._extra]:
                present = any(pattern.lower() in n.lower() for n in wanted)
                if not present and pattern not in self._missing:
                    self._missing.add(pattern)
                    log.warning("midi_input_missing", pattern=pattern, available=others)
                elif present:
                    self._missing.discard(pattern)
        for name in [n for n in self._inputs if n not in names or n not in wanted]:
            port = self._inputs.pop(name)
            self._reader.remove(name)
            await asyncio.to_thread(_close, port)
            if name not in names:
                self._gone.add(_stable(name))
                self.counters["lost"] += 1
                log.warning("midi_input_lost", port=name)
                self._emit("input_lost", name)
        for name in wanted:
            if name in self._inputs:
                continue
            try:
                port = await asyncio.to_thread(self._open_input, name)
            except _RTMIDI_ERRORS as err:
                if name not in self._failed:  # retried every scan, logged once
                    self._failed.add(name)
                    log.warning("midi_input_open_failed", port=name, error=str(err))
                continue
            self._failed.discard(name)
            self._inputs[name] = port
            self._reader.add(name, port)
            self.counters["opened"] += 1
            if _stable(name) in self._gone:
                self._gone.discard(_stable(name))
                log.info("midi_input_back", port=name)
            else:
                log.info("midi_input_opened", port=name, backend=self.backend.name)
            self._emit("input_opened", name)

    async def _sync_output(self, names: list[str]) -> None:
        if self._output is not None and (
            self._output[0] not in names
            or not self._output_pattern
            or self._output_pattern.lower() not in self._output[0].lower()
        ):
            name, port = self._output
            self._output = None
            if self._ready_handle is not None:
                self._ready_handle.cancel()
                self._ready_handle = None
            await asyncio.to_thread(_close, port)
            if name not in names:
                self._gone.add("out:" + _stable(name))
                log.warning("midi_output_lost", port=name)
            self._emit("output_lost", name)
        if self._output is not None or not self._output_pattern:
            return
        candidates = match_ports(names, [self._output_pattern], self.client_name)
        if not candidates:
            if "out:" + self._output_pattern not in self._missing:
                self._missing.add("out:" + self._output_pattern)
                others = [n for n in names if not is_own(n, self.client_name)]
                log.warning("midi_output_missing", pattern=self._output_pattern, available=others)
            return
        self._missing.discard("out:" + self._output_pattern)
        name = candidates[0]
        try:
            port = await asyncio.to_thread(self._open_output, name)
        except _RTMIDI_ERRORS as err:
            if "out:" + name not in self._failed:
                self._failed.add("out:" + name)
                log.warning("midi_output_open_failed", port=name, error=str(err))
            return
        self._failed.discard("out:" + name)
        self._output = (name, port)
        if "out:" + _stable(name) in self._gone:
            self._gone.discard("out:" + _stable(name))
            log.info("midi_output_back", port=name)
        else:
            log.info("midi_output_opened", port=name, backend=self.backend.name)
        self._emit("output_opened", name)
        if self._loop is not None:
            self._ready_handle = self._loop.call_later(OUTPUT_SETTLE, self._ready, name)

    def _ready(self, name: str) -> None:
        self._ready_handle = None
        if self.output == name:
            self._emit("output_ready", name)

    def _port_name(self, prefix: str, name: str) -> str:
        # JACK splits full names at ':'; keep the remote name readable in patchbays.
        return f"{prefix} {name.replace(':', ' ')}"[:60]

    def _open_input(self, name: str) -> rtmidi.MidiIn:
        port = rtmidi.MidiIn(self.backend.api, self.client_name)
        _open_by_name(port, name, self._port_name("in", name))
        port.ignore_types(sysex=True, timing=False, active_sense=True)
        return port

    def _open_output(self, name: str) -> rtmidi.MidiOut:
        port = rtmidi.MidiOut(self.backend.api, self.client_name)
        _open_by_name(port, name, self._port_name("out", name))
        return port

    def _deliver(self, clock: _PortClock, data: list[int], delta: float, arrival: float) -> None:
        # The reader thread: stamp, parse, then hand over to the loop.
        now = clock.stamp(delta, arrival)
        self.counters["received"] += 1
        try:
            msg = mido.Message.from_bytes(data)
        except (ValueError, TypeError):
            self.counters["undecodable"] += 1
            return
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            loop.call_soon_threadsafe(self._on_message, clock.port, msg, now)

    def _emit(self, event: str, name: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, name)
            except Exception:
                log.exception("midi_port_listener_failed", port_event=event)


class _PortClock:
    """Arrival times from rtmidi's own delta times, on the monotonic clock.

    rtmidi measures each message's delta in the MIDI system's thread (JACK's
    process cycle, ALSA's queue), before Python is involved; reading
    ``time.monotonic()`` when the reader picks a message up would add the
    polling delay and any wait for the GIL. The deltas are summed into a port
    timeline, anchored to the monotonic clock by the smallest latency seen (a
    message never arrives before it was sent).
    """

    def __init__(self, port: str) -> None:
        self.port = port
        self._elapsed: float | None = None
        self._offset = 0.0

    def stamp(self, delta: float, arrival: float) -> float:
        if self._elapsed is None:
            self._elapsed, self._offset = 0.0, arrival
            return arrival
        self._elapsed += max(0.0, delta)
        t = self._elapsed + self._offset
        if arrival < t or arrival - t > _REANCHOR:
            # Earlier than predicted: a lower latency than seen so far (or the
            # timelines drifted apart, e.g. after a system suspend): re-anchor.
            self._offset = arrival - self._elapsed
            return arrival
        return t


_REANCHOR = 0.5  # seconds between a timeline and the monotonic clock before re-anchoring


class _InputReader:
    """One thread draining every open input's rtmidi queue (no callbacks, see above).

    Polls every millisecond while messages flow and every few milliseconds
    when idle: about 1-2 % of a core, and at most ``IDLE_WAIT`` added latency
    for the first message after a pause.
    """

    ACTIVE_WAIT = 0.001
    IDLE_WAIT = 0.004
    IDLE_AFTER = 0.5

    def __init__(self, deliver: Callable[[_PortClock, list[int], float, float], None]) -> None:
        self._deliver = deliver
        self._ports: dict[str, tuple[rtmidi.MidiIn, _PortClock]] = {}
        self._lock = threading.Lock()  # a port is never read while it is being closed
        self._stopping = threading.Event()
        self._part: Supervised | None = None

    def add(self, name: str, port: rtmidi.MidiIn) -> None:
        """Read ``port`` too (called on the event loop: it starts the supervised thread)."""
        with self._lock:
            self._ports[name] = (port, _PortClock(name))
        if self._part is None:
            self._stopping.clear()
            # A crash of the thread is logged and the thread started again (tasks.py).
            self._part = supervise("midi-in", lambda: in_thread(self._run, name="midi-in"))

    def remove(self, name: str) -> None:
        with self._lock:
            self._ports.pop(name, None)

    async def stop(self) -> None:
        """Stop the thread and wait for it (it sees the flag within a few milliseconds)."""
        self._stopping.set()
        if self._part is not None:
            await self._part.stop(grace=1.0)
            self._part = None

    def _run(self) -> None:
        last_active = 0.0
        while not self._stopping.is_set():
            got = False
            with self._lock:
                for port, clock in self._ports.values():
                    while (item := port.get_message()) is not None:
                        got = True
                        try:
                            self._deliver(clock, item[0], item[1], time.monotonic())
                        except Exception:  # the reader must survive anything
                            log.exception("midi_read_failed", port=clock.port)
            now = time.monotonic()
            if got:
                last_active = now
            idle = now - last_active > self.IDLE_AFTER
            self._stopping.wait(self.IDLE_WAIT if idle else self.ACTIVE_WAIT)


def _graph_change(port: rtmidi.MidiIn | rtmidi.MidiOut) -> contextlib.AbstractContextManager[None]:
    """Space a JACK port's open or close from this process's other graph changes:
    libjack crashes on a port closed while a notification walks its client's ports
    (see jack_graph). Other backends need no spacing."""
    if port.get_current_api() == rtmidi.API_UNIX_JACK:
        return paced()
    return contextlib.nullcontext()


def _open_by_name(port: rtmidi.MidiIn | rtmidi.MidiOut, name: str, own_name: str) -> None:
    """Connect ``port`` (a new rtmidi object) to the port called ``name``; on any
    failure ``port`` is closed and deleted, and the error raised.

    rtmidi opens by index into its own fresh listing: a port registered or
    unregistered by another program meanwhile shifts the indices and connects
    another device (seen here with clients coming and going every 0.1 s). The
    listing is taken again after opening; if it moved, which port got connected
    is unknown, so the port is closed and OSError raised (the next scan retries).
    A port that comes and goes between the two listings is not seen.
    """
    try:
        with _graph_change(port):  # listed inside: a paced wait would widen the window
            names = port.get_ports()
            if name not in names:
                raise OSError(f"port {name!r} vanished")
            port.open_port(names.index(name), own_name)
        after = port.get_ports()
        if after != names:
            came = sorted(set(after) - set(names), key=str)
            went = sorted(set(names) - set(after), key=str)
            raise OSError(
                f"the port list changed while connecting {name!r} (came {came}, went {went});"
                " retried at the next scan"
            )
    except BaseException:
        _close(port)  # its JACK client, at least, was made
        raise


def _close(port: rtmidi.MidiIn | rtmidi.MidiOut) -> None:
    """Close a port and its client (blocking: a worker thread's job)."""
    with _graph_change(port):
        try:
            port.close_port()
        finally:
            port.delete()
