"""Soak: the daemon for N minutes under a show's load, with a Scope fault every 30 s.

Three processes, as on a stage: the daemon (``soundscape.app.run`` with a show's
config, the process that is measured), the Scope emulator, and this one, the
performer and the operator:

- a knob at 200 Hz over real UDP OSC (``/soundscape/norm/kv_cache_attention_bias``),
  prompt changes and transitions, commands (query, reset_cache, tap, scenes,
  pause, mapping on/off), an OSC feedback target that reads what the daemon sends;
- the daemon analyses a generated drum loop (``--audio-file``, via
  ``soundscape.audio.synth``), a mapping rule drives a LoRA from it, and it records
  the video (``[[outputs]] type = "record"``) — all in a temporary directory that is
  deleted afterwards;
- a fault every 30 s, cycling through every kind the emulator offers;
- every 10 s the daemon's RSS, open fds, threads and CPU are sampled from ``/proc``.

After each fault: the time to the new session's first frame, and then, with the
controls held still for a moment, the new session's parameters on the server
(``/_emulator/state``, a transition's target taken as its prompts: :func:`server_view`)
against the daemon's ``store.wire_view()``. The report gives
growth per hour (``numpy.polyfit`` over the samples after a warm-up, 2 min by
default, which is left out of the fit), recovery times per fault kind, failed
recoveries and every state difference.

    nice -n 5 python bench/soak.py [--minutes 20] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pythonosc.udp_client import SimpleUDPClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._docs import write_section
from bench._emulator_child import EmulatorChild
from bench._frames import on_first_frame

KNOB_RATE = 200.0
KNOB_ADDRESS = "/soundscape/norm/kv_cache_attention_bias"
PROMPT_EVERY = 3.0
COMMAND_EVERY = 4.0
# Keys the server keeps out of the stored parameters, or that are events, not state.
NOT_STORED = frozenset(
    {
        "reset_cache",
        "transition",
        "quantize_mode",
        "lookahead_ms",
        "output_sinks",
        "input_source",
        "modulations",
        "beat_cache_reset_rate",
        "node_id",
    }
)
KINDS = (
    "stream_stopped",
    "drop",
    "stall",
    "restart",
    "restart_keep_pipeline",
    "garbage_sdp",
    "close_at_once",
    "restart_failed_load",  # the first load after the restart fails (error once, no text)
    "restart_slow_load",  # the load after the restart takes SLOW_LOAD s
)
HOSTILE_FOR = 3.0  # s a hostile mode lasts
SLOW_LOAD = 10.0
LORAS = [{"name": "ink", "path": "/emulator/loras/ink.safetensors", "scale": 0.5}]


# --------------------------------------------------------------------------- pure logic


def growth_per_hour(t: list[float], values: list[float]) -> float:
    """Slope of a least-squares line through the samples, per hour."""
    if len(t) < 2:
        return float("nan")
    slope, _ = np.polyfit(np.asarray(t) / 3600.0, np.asarray(values, dtype=float), 1)
    return float(slope)


def flat(values: list[float] | list[int]) -> bool:
    """No upward trend: the last quarter never exceeds what the first quarter reached."""
    if len(values) < 4:
        return True
    quarter = max(1, len(values) // 4)
    return max(values[-quarter:]) <= max(values[:quarter])


def steady_text(counts: list[int]) -> str:
    """``first | last | min / max`` cells of the report's table ('—' without samples)."""
    if not counts:
        return "— | — | —"
    return f"{counts[0]} | {counts[-1]} | {min(counts)} / {max(counts)}"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def state_differences(daemon: dict[str, Any], server: dict[str, Any]) -> dict[str, Any]:
    """Keys whose value on the server differs from the daemon's state (``{key: (ours, theirs)}``).

    Only the daemon's keys count: the server may hold more (its defaults).
    """
    diffs = {}
    for key, ours in daemon.items():
        if key in NOT_STORED:
            continue
        theirs = server.get(key, "<missing>")
        if not _same(ours, theirs):
            diffs[key] = (ours, theirs)
    return diffs


def server_view(session: dict[str, Any]) -> dict[str, Any]:
    """The parameters a session on the server works from (an ``/_emulator/state`` entry).

    Scope's parameters keep ``prompts`` as they were before a transition that came on
    the data channel; the target is only in ``transition`` (recorded:
    ``scope-v0.2.4/session-parameters.get.json``), while the picture moves to it. So a
    transition made while a session opens (after the offer took the prompts, before the
    sender was attached) leaves the server's ``prompts`` behind the daemon's, which holds
    the target. When the server's prompts are still those the transition started from,
    they are its target; a plain prompt change after it would have replaced them.
    """
    params = dict(session.get("parameters") or {})
    transition = session.get("transition")
    if (
        isinstance(transition, dict)
        and transition.get("to") is not None
        and _same(params.get("prompts"), transition.get("from"))
    ):
        params["prompts"] = transition["to"]
    return params


# --------------------------------------------------------------------------- the daemon child


def serve_daemon(config_path: str) -> None:
    """Child: the daemon (``app.run``), plus a line protocol on stdin/stdout for the soak.

    Out: ``{"kind": "status", ...}`` on every status change. In: ``state`` →
    ``{"kind": "state", "wire": store.wire_view(), "status": ...}``; ``census`` →
    object counts by type; ``trace`` / ``trace_top`` → tracemalloc start / top growth;
    ``heap`` → the heap trims after closed sessions (how many, the longest).
    EOF stops the daemon.
    """
    import gc
    import tracemalloc

    from soundscape import logs
    from soundscape.app import Daemon, run
    from soundscape.config import load

    path = Path(config_path)
    config = load(path)
    logs.configure(config.log.level, config.log.format)
    held: dict[str, Daemon] = {}
    traced: list[tracemalloc.Snapshot] = []

    def emit(record: dict[str, Any]) -> None:
        print(json.dumps({"t": time.monotonic(), **record}, default=str), flush=True)

    def on_started(daemon: Daemon) -> None:
        held["daemon"] = daemon
        daemon.supervisor.on_status(lambda s: emit({"kind": "status", **s}))
        on_first_frame(daemon, lambda t, sid: emit({"kind": "frame", "t": t, "session_id": sid}))
        emit({"kind": "started"})

    def answer(command: str) -> None:
        daemon = held.get("daemon")
        if command == "state" and daemon is not None:
            emit(
                {
                    "kind": "state",
                    "wire": daemon.store.wire_view(),
                    "status": daemon.supervisor.status.as_dict(),
                }
            )
        elif command == "heap":
            from soundscape.scope.session import HEAP_TRIM

            emit({"kind": "heap", "trims": HEAP_TRIM.runs, "longest_s": HEAP_TRIM.longest})
        elif command == "census":
            # Only what is still referenced: cyclic garbage awaiting a full collection
            # is not a leak (but is counted, with how often the collector ran).
            stats = gc.get_stats()
            collected = gc.collect()
            counts = Counter(type(o).__qualname__ for o in gc.get_objects())
            emit(
                {
                    "kind": "census",
                    "counts": dict(counts),
                    "collected": collected,
                    "collections": [g["collections"] for g in stats],
                }
            )
        elif command == "trace":
            tracemalloc.start(8)
            traced[:] = [tracemalloc.take_snapshot()]
            emit({"kind": "trace"})
        elif command == "trace_top" and traced:
            top = tracemalloc.take_snapshot().compare_to(traced[0], "traceback")[:12]
            emit(
                {
                    "kind": "trace_top",
                    "top": [
                        {
                            "kib": round(s.size_diff / 1024, 1),
                            "count": s.count_diff,
                            "where": [f"{f.filename}:{f.lineno}" for f in s.traceback][-4:],
                        }
                        for s in top
                    ],
                }
            )

    async def until_stdin_closes() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            answer(line.decode().strip())

    asyncio.run(
        run(config, shutdown_trigger=until_stdin_closes, on_started=on_started, config_path=path)
    )


class DaemonChild:
    """The daemon process: its status changes, and its state on request."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self._config_path = config_path
        self._log_path = log_path
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._replies: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.statuses: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.gone = False  # the process ended (its log says why)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def __aenter__(self) -> DaemonChild:
        with self._log_path.open("wb") as log_file:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--serve-daemon",
                str(self._config_path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
            )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            try:
                await asyncio.wait_for(self._proc.wait(), 20)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader])

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for line in self._proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            kind = record.get("kind")
            if kind in ("status", "started", "frame"):
                self.statuses.append(record)
                self.changed.set()
            else:
                self._queue(str(kind)).put_nowait(record)
        self.gone = True
        self.changed.set()

    async def wait_changed(self) -> None:
        """Until the next status change; raises if the daemon has died."""
        if not self.gone:
            self.changed.clear()
            await self.changed.wait()
        if self.gone:
            tail = self._log_path.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError("the daemon exited:\n" + "\n".join(tail))

    def _queue(self, kind: str) -> asyncio.Queue[dict[str, Any]]:
        return self._replies.setdefault(kind, asyncio.Queue())

    async def ask(self, command: str, reply: str | None = None, timeout: float = 30) -> Any:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(command.encode() + b"\n")
        await self._proc.stdin.drain()
        return await asyncio.wait_for(self._queue(reply or command).get(), timeout)

    def sessions(self, since: float = 0.0, besides: set[str] | None = None) -> list[float]:
        """When each session that streamed had its first frame (from ``since``, not ``besides``)."""
        return [t for t, sid in self.streams() if t >= since and sid not in (besides or set())]

    def streams(self) -> list[tuple[float, str]]:
        """(time of the first frame, session id) of every session that streamed."""
        return [(r["t"], r["session_id"]) for r in self.statuses if r.get("kind") == "frame"]


# --------------------------------------------------------------------------- /proc sampling


@dataclass
class Sample:
    t: float
    rss_mb: float
    fds: int
    threads: int
    cpu_s: float  # user + system seconds so far
    children_rss_mb: float


def _status_fields(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    parts = stat[stat.rindex(")") + 2 :].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def sample_process(pid: int) -> Sample:
    status = _status_fields(pid)
    children_rss = 0.0
    for child in _children(pid):
        with contextlib.suppress(OSError, KeyError, ValueError):
            children_rss += int(_status_fields(child)["VmRSS"].split()[0]) / 1024
    return Sample(
        t=time.monotonic(),
        rss_mb=int(status["VmRSS"].split()[0]) / 1024,
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(status["Threads"]),
        cpu_s=_cpu_seconds(pid),
        children_rss_mb=children_rss,
    )


# --------------------------------------------------------------------------- the show


@dataclass
class Recovery:
    kind: str
    at: float  # seconds since start
    seconds: float | None  # None: failed
    differences: dict[str, Any] = field(default_factory=dict)
    compared: bool = False
    keys: int = 0  # parameters compared
    status: str = ""  # the daemon's own status then (frames were flowing)
    fds: list[str] = field(default_factory=list)  # open then: one session, controls still


@dataclass
class Show:
    """What this process sends and sees; shared by the workload tasks."""

    osc: SimpleUDPClient
    live: asyncio.Event = field(default_factory=asyncio.Event)  # clear: hands off the controls
    hands: asyncio.Lock = field(default_factory=asyncio.Lock)  # held through each gesture
    pause_allowed: bool = True
    knob_sent: int = 0
    prompts_sent: int = 0
    commands_sent: int = 0
    feedback_received: int = 0

    def send(self, address: str, *args: Any) -> None:
        self.osc.send_message(address, list(args) if len(args) != 1 else args[0])


async def knob(show: Show) -> None:
    """A hand on a fader: 200 values a second, a slow sine."""
    period = 1 / KNOB_RATE
    loop = asyncio.get_running_loop()
    start = next_at = loop.time()
    while True:
        await show.live.wait()
        now = loop.time()
        # Keep the 200 Hz schedule through small delays; after a long gap (hands off
        # the controls, a busy machine) start afresh instead of bursting.
        next_at = next_at + period if now - next_at < 0.05 else now
        value = 0.5 + 0.45 * math.sin(2 * math.pi * (now - start) / 7.0)
        show.send(KNOB_ADDRESS, round(value, 4))
        show.knob_sent += 1
        await asyncio.sleep(max(0.0, next_at - loop.time()))


PROMPTS = [
    "a quiet shore at dawn, mist over the water",
    "a city waking up, lights flickering on",
    "a neon storm over the ocean",
    "rain on glass, reflections of traffic",
]


async def prompts(show: Show) -> None:
    i = 0
    while True:
        await asyncio.sleep(PROMPT_EVERY)
        await show.live.wait()
        async with show.hands:
            if not show.live.is_set():
                continue
            text = PROMPTS[i % len(PROMPTS)]
            match i % 3:
                case 0:
                    show.send("/scope/prompt", f"{text} #{i}")
                case 1:
                    show.send("/soundscape/transition", 8, "linear", text, 1.0, PROMPTS[0], 0.4)
                case _:
                    show.send("/soundscape/prompt/1", f"{text}, detail #{i}", 0.5)
        show.prompts_sent += 1
        i += 1


async def commands(show: Show) -> None:
    i = 0
    while True:
        await asyncio.sleep(COMMAND_EVERY)
        await show.live.wait()
        async with show.hands:
            if show.live.is_set():
                await command(show, i)
        show.commands_sent += 1
        i += 1


async def command(show: Show, i: int) -> None:
    """One gesture; a few take a moment (taps, a pause and its release)."""
    match i % 6:
        case 0:
            show.send("/soundscape/query")
        case 1:
            show.send("/scope/reset_cache", True)
        case 2:
            for _ in range(4):
                show.send("/soundscape/tap")
                await asyncio.sleep(0.5)
        case 3:
            show.send("/soundscape/scene", "city" if i % 12 == 3 else "shore")
        case 4:
            if show.pause_allowed:
                show.send("/soundscape/pause", True)
                await asyncio.sleep(1.0)
                show.send("/soundscape/pause", False)
        case _:
            show.send("/soundscape/mapping", False)
            await asyncio.sleep(0.5)
            show.send("/soundscape/mapping", True)


class _Feedback(asyncio.DatagramProtocol):
    def __init__(self, show: Show) -> None:
        self._show = show

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._show.feedback_received += 1


# --------------------------------------------------------------------------- faults


async def inject(emulator: EmulatorChild, kind: str) -> float:
    """Cause one fault; return when the server behaves again as far as the fault goes."""
    if kind == "restart_failed_load":
        (await emulator.post("/_emulator/fail_next_load")).raise_for_status()
        kind = "restart"
    elif kind == "restart_slow_load":
        (await emulator.post("/_emulator/slow_load", seconds=SLOW_LOAD)).raise_for_status()
        kind = "restart"
    return await emulator.inject(kind, HOSTILE_FOR)


async def compare_state(
    daemon: DaemonChild, emulator: EmulatorChild, settle: float = 8.0
) -> tuple[bool, dict[str, Any], int, str]:
    """The new session's parameters on the server vs the daemon's, once the daemon is still.

    The daemon's state must first hold still (two reads 0.3 s apart alike: OSC
    datagrams still queued, a scene waiting for its beat, the sender's next slot);
    then a difference that lasts until ``settle`` runs out is a real loss of state.
    """
    deadline = time.monotonic() + settle
    diffs: dict[str, Any] = {"<no session>": None}
    previous: dict[str, Any] | None = None
    while True:
        reply = await daemon.ask("state")
        keys = len(set(reply["wire"]) - NOT_STORED)
        status = str(reply["status"].get("state"))
        still = previous is not None and not state_differences(previous, reply["wire"])
        previous = reply["wire"]
        if still:
            session_id = reply["status"].get("session_id")
            server = await emulator.state()
            session = next(
                (
                    s
                    for s in server.get("sessions", [])
                    if s.get("id") == session_id and s.get("open")
                ),
                None,
            )
            if session is not None:
                diffs = state_differences(reply["wire"], server_view(session))
                if not diffs:
                    return True, {}, keys, status
                diffs["<session>"] = (session_id, session.get("messages_received"))
                if session.get("transition"):  # what the prompts were compared against
                    diffs["<server transition>"] = session["transition"]
        elif previous is not None and time.monotonic() > deadline:
            diffs = {"<daemon state never held still>": None}
        if time.monotonic() > deadline:
            return still, diffs, keys, status
        await asyncio.sleep(0.3)


async def faults(
    show: Show,
    daemon: DaemonChild,
    emulator: EmulatorChild,
    kinds: list[str],
    start: float,
    end: float,
    every: float,
    recoveries: list[Recovery],
) -> None:
    at = start + every / 2
    i = 0
    while at + every / 2 < end:
        # No pause near a fault: a paused stream is silent on purpose, a stall would hide.
        await asyncio.sleep(max(0.0, at - 3 - time.monotonic()))
        show.pause_allowed = False
        show.send("/soundscape/pause", False)
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        kind = kinds[i % len(kinds)]
        i += 1
        before = {sid for _, sid in daemon.streams()}
        t0 = time.monotonic()
        recovery = Recovery(kind, t0 - start, None)
        recoveries.append(recovery)
        behaving = await inject(emulator, kind)
        try:
            async with asyncio.timeout(every - 5):
                # The first session to stream after the server behaves again (a hostile
                # spell may let one stream for a moment before closing it).
                while not (new := daemon.sessions(since=behaving, besides=before)):
                    await daemon.wait_changed()
        except TimeoutError:
            print(f"{recovery.at:7.1f} s  {kind:22s} NOT recovered in {every - 5:g} s", flush=True)
            at += every
            show.pause_allowed = True
            continue
        finally:
            if kind == "restart_slow_load":
                (await emulator.post("/_emulator/slow_load", seconds="")).raise_for_status()
        recovery.seconds = min(new) - behaving
        # Hands off the controls and the mapping while the states are compared (a gesture
        # under way, such as mapping off-and-on again, ends first).
        async with show.hands:
            show.live.clear()
        show.send("/soundscape/mapping", False)
        await asyncio.sleep(0.3)
        compared = await compare_state(daemon, emulator)
        recovery.compared, recovery.differences, recovery.keys, recovery.status = compared
        # The steady moment: one session streaming, nothing being sent. Sampled at random
        # times the count also holds a closing session's or an HTTP request's sockets.
        with contextlib.suppress(OSError):
            recovery.fds = describe_fds(daemon.pid)
        show.send("/soundscape/mapping", True)
        show.live.set()
        show.pause_allowed = True
        same = recovery.compared and not recovery.differences
        note = f"state ok ({recovery.keys} parameters)" if same else "STATE DIFFERS"
        if recovery.status != "streaming":
            note += f"; the daemon's status says {recovery.status!r} while frames flow"
        print(
            f"{recovery.at:7.1f} s  {kind:22s} recovered in {recovery.seconds:.3f} s, {note}"
            + (f": {recovery.differences}" if recovery.differences else ""),
            flush=True,
        )
        at += every


def _address(hex_address: str) -> str:
    host, port = hex_address.split(":")
    if len(host) == 8:  # IPv4, stored little-endian
        host = ".".join(str(b) for b in bytes.fromhex(host)[::-1])
    return f"{host}:{int(port, 16)}"


def describe_fds(pid: int) -> list[str]:
    """What each open descriptor of ``pid`` is: a path, or a socket with its addresses."""
    sockets: dict[str, str] = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]:
                f = line.split()
                sockets[f[9]] = f"{proto} {_address(f[1])} -> {_address(f[2])}"
    described = []
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            inode = target[len("socket:[") : -1] if target.startswith("socket:[") else ""
            described.append(sockets.get(inode, target))
    return described


def fd_kind(described: str) -> str:
    """A descriptor without its ephemeral port: a TCP connection by its peer, a socket by
    its protocol and host (each session binds new ports), anything else as it is."""
    proto, _, rest = described.partition(" ")
    if proto not in ("tcp", "tcp6", "udp", "udp6") or " -> " not in rest:
        return described
    local, peer = rest.split(" -> ")
    if proto.startswith("tcp") and not peer.endswith(":0"):
        return f"{proto} connection to {peer}"
    return f"{proto} socket on {local.rpartition(':')[0]}"


async def sampler(
    pid: int,
    every: float,
    samples: list[Sample],
    start: float,
    fd_peaks: list[tuple[float, list[str]]] | None = None,
) -> None:
    """Sample every ``every`` s; at each new highest fd count, note what the fds are."""
    while True:
        s = sample_process(pid)
        samples.append(s)
        if fd_peaks is not None and s.fds > max((len(d) for _, d in fd_peaks), default=0):
            with contextlib.suppress(OSError):
                fd_peaks.append((s.t - start, describe_fds(pid)))
        cpu = 0.0
        if len(samples) > 1:
            prev = samples[-2]
            cpu = 100 * (s.cpu_s - prev.cpu_s) / (s.t - prev.t)
        print(
            f"{s.t - start:7.1f} s  RSS {s.rss_mb:7.1f} MB  fds {s.fds:4d}  "
            f"threads {s.threads:3d}  CPU {cpu:5.1f}%  children RSS {s.children_rss_mb:.1f} MB",
            flush=True,
        )
        await asyncio.sleep(every)


# --------------------------------------------------------------------------- run


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(
    folder: Path, scope_url: str, audio: Path, osc_port: int, feedback_port: int
) -> Path:
    from soundscape.config import Config

    loras = ", ".join(
        f'{{ name = "{x["name"]}", path = "{x["path"]}", scale = {x["scale"]} }}' for x in LORAS
    )
    text = f"""
[scope]
url = "{scope_url}"

[pipeline]
loras = [{loras}]

[audio]
enabled = true
file = "{audio}"

[osc]
port = {osc_port}
feedback = ["127.0.0.1:{feedback_port}"]

[[mapping.rules]]
name = "ink breathes"
source = "energy"
target = "lora:ink"
min = 0.0
max = 1.5
attack = 0.02
release = 0.3

[scenes]
quantize = "beat"

[[scenes.list]]
name = "shore"
prompts = [{{ text = "a quiet shore at dawn, mist over the water", weight = 1.0 }}]

[[scenes.list]]
name = "city"
prompts = ["a city waking up, lights flickering on", "rain on glass"]

[[outputs]]
type = "record"
path = "{folder / "soak.mkv"}"

[log]
level = "info"
format = "json"
"""
    sections = {f.name for f in dataclasses.fields(Config)}
    if "http" in sections:
        text += '\n[http]\nlisten = "127.0.0.1:0"\n'  # the operator's page, on a free port
    if "state" in sections:  # the performer's state is saved as on stage, but not in $HOME
        text += f'\n[state]\ndir = "{folder / "state"}"\n'
    path = folder / "soak.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Result:
    minutes: float
    warmup: float
    kinds: list[str]
    samples: list[Sample]
    recoveries: list[Recovery]
    show: Show
    start: float
    record_mb: float
    log_counts: Counter[str]
    census: dict[str, int] = field(default_factory=dict)
    trace_top: list[dict[str, Any]] = field(default_factory=list)
    messages_at_server: int = 0
    heap: dict[str, Any] = field(default_factory=dict)
    fd_peaks: list[tuple[float, list[str]]] = field(default_factory=list)


async def soak(args: argparse.Namespace) -> Result:
    from soundscape.audio.synth import drum_loop

    folder = Path(tempfile.mkdtemp(prefix="soundscape-soak-"))
    try:
        audio = drum_loop(124.0, 16.0, pattern="house", lead_in=0.0).write_wav(folder / "loop.wav")
        loop = asyncio.get_running_loop()
        osc_port = free_udp_port()
        show = Show(SimpleUDPClient("127.0.0.1", osc_port))
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Feedback(show), local_addr=("127.0.0.1", 0)
        )
        feedback_port = transport.get_extra_info("sockname")[1]
        emulator_args = {"load_time": args.load_time, "loras": [x["path"] for x in LORAS]}
        try:
            async with EmulatorChild(**emulator_args) as emulator:
                config = write_config(folder, emulator.url, audio, osc_port, feedback_port)
                async with DaemonChild(config, folder / "daemon.log") as daemon:
                    result = await _run_show(args, show, daemon, emulator, folder)
            result.log_counts = log_counts(folder / "daemon.log")
            if any(r.seconds is None or r.differences for r in result.recoveries):
                # Keep the daemon's own account of what went wrong beyond the temp folder.
                kept = Path(tempfile.gettempdir()) / f"soak-daemon-{time.strftime('%H%M%S')}.log"
                shutil.copy(folder / "daemon.log", kept)
                print(f"daemon log kept in {kept}", flush=True)
            return result
        finally:
            transport.close()
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


async def _run_show(
    args: argparse.Namespace,
    show: Show,
    daemon: DaemonChild,
    emulator: EmulatorChild,
    folder: Path,
) -> Result:
    async with asyncio.timeout(120):
        while not daemon.sessions():
            await daemon.wait_changed()
    kinds = args.kinds.split(",") if args.kinds else list(KINDS)
    print(f"daemon pid {daemon.pid}, streaming; fault kinds: {', '.join(kinds)}", flush=True)
    start = time.monotonic()
    end = start + args.minutes * 60
    samples: list[Sample] = []
    recoveries: list[Recovery] = []
    show.live.set()
    result = Result(
        args.minutes, args.warmup, kinds, samples, recoveries, show, start, 0, Counter()
    )
    workload = [
        asyncio.create_task(knob(show)),
        asyncio.create_task(prompts(show)),
        asyncio.create_task(commands(show)),
        asyncio.create_task(
            sampler(daemon.pid, args.sample_every, samples, start, result.fd_peaks)
        ),
    ]
    census = asyncio.create_task(census_start(args, daemon, start))
    try:
        await faults(show, daemon, emulator, kinds, start, end, args.fault_every, recoveries)
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        samples.append(sample_process(daemon.pid))
        await census_end(args, daemon, await census, result)
        result.heap = await daemon.ask("heap")
        server = await emulator.state()
        result.messages_at_server = sum(
            int(s.get("messages_received") or 0) for s in server.get("sessions", [])
        )
    finally:
        for task in [*workload, census]:
            task.cancel()
        await asyncio.wait([*workload, census])
    record = folder / "soak.mkv"
    result.record_mb = record.stat().st_size / 1e6 if record.exists() else 0.0
    return result


async def census_start(args: argparse.Namespace, daemon: DaemonChild, start: float) -> Any:
    """Optional leak hunting: object counts / tracemalloc once the warm-up is over."""
    await asyncio.sleep(max(0.0, start + args.warmup - time.monotonic()))
    before = (await daemon.ask("census")) if args.census else None
    if args.trace_malloc:
        await daemon.ask("trace")
    return before


async def census_end(
    args: argparse.Namespace, daemon: DaemonChild, before: Any, result: Result
) -> None:
    """After the last sample (the census itself allocates): what grew since the warm-up."""
    if before is not None:
        after = await daemon.ask("census")
        counts = after["counts"]
        old = before["counts"]
        growth = {k: counts.get(k, 0) - old.get(k, 0) for k in set(counts) | set(old)}
        result.census = dict(sorted(growth.items(), key=lambda kv: -kv[1])[:15])
        print(
            f"object growth by type after a full collection: {result.census}; that "
            f"collection freed {after['collected']} objects; collections per generation "
            f"since start: {after['collections']}",
            flush=True,
        )
    if args.trace_malloc:
        result.trace_top = (await daemon.ask("trace_top"))["top"]
        for entry in result.trace_top:
            print(f"tracemalloc {entry}", flush=True)


def log_counts(path: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    with contextlib.suppress(OSError), path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            with contextlib.suppress(ValueError, AttributeError):
                record = json.loads(line)
                if record.get("level") in ("warning", "error", "critical"):
                    counts[f"{record['level']} {record.get('event')}"] += 1
    return counts


# --------------------------------------------------------------------------- report


def report(result: Result) -> str:
    fit = [s for s in result.samples if s.t - result.start >= result.warmup]
    t = [s.t - result.start for s in fit]
    rss = [s.rss_mb for s in fit]
    fds = [float(s.fds) for s in fit]
    threads = [float(s.threads) for s in fit]
    span = (fit[-1].t - fit[0].t) if len(fit) > 1 else 0.0
    cpu = 100 * (fit[-1].cpu_s - fit[0].cpu_s) / span if span else float("nan")
    rss_rate = growth_per_hour(t, rss)
    half = len(t) // 2
    rss_late = growth_per_hour(t[half:], rss[half:])
    fd_rate = growth_per_hour(t, fds)
    steady_at = [r for r in result.recoveries if r.fds and r.at >= result.warmup]
    steady = [len(r.fds) for r in steady_at]
    steady_rate = growth_per_hour([r.at for r in steady_at], steady)
    thread_rate = growth_per_hour(t, threads)

    def verdict(ok: bool) -> str:
        return "ok" if ok else "**missed**"

    lines = [
        "| measure | after warm-up | end | min / max | growth per hour (fit) | goal |",
        "|---|---|---|---|---|---|",
        f"| RSS (MB) | {rss[0]:.1f} | {rss[-1]:.1f} | {min(rss):.1f} / {max(rss):.1f} | "
        f"{rss_rate:+.2f} MB/h | ≤ 5 MB/h: {verdict(rss_rate <= 5)} |",
        f"| RSS, second half of the run only | {rss[half]:.1f} | {rss[-1]:.1f} | "
        f"{min(rss[half:]):.1f} / {max(rss[half:]):.1f} | {rss_late:+.2f} MB/h | "
        f"(where it levels off) |",
        f"| open fds, at every sample | {fds[0]:.0f} | {fds[-1]:.0f} | {min(fds):.0f} / "
        f"{max(fds):.0f} | {fd_rate:+.1f}/h | (moves with sessions opening and closing) |",
        f"| open fds, steady (after each recovery) | {steady_text(steady)} | "
        f"{steady_rate:+.1f}/h | flat: {verdict(bool(steady) and flat(steady))} |",
        f"| threads | {threads[0]:.0f} | {threads[-1]:.0f} | {min(threads):.0f} / "
        f"{max(threads):.0f} | {thread_rate:+.1f}/h | flat: {verdict(flat(threads))} |",
        f"| CPU (mean, % of one core) | {cpu:.1f} | | | | — |",
    ]
    text = "\n".join(lines)
    text += (
        f"\n\n{len(result.samples)} samples every 10 s; the first {result.warmup / 60:g} min "
        f"(warm-up: code paths, caches and the allocator's pools filling) are left out of the "
        f"fit ({len(fit)} samples fitted). *Flat* = the last quarter of the samples never "
        "exceeds the highest value of the first quarter. The steady fd count is taken after "
        "each recovery, when one session streams and the controls are held still (the "
        "moment of the state comparison): sampled at any time, the count also catches a "
        "closing session's ICE socket or an HTTP request under way."
    )
    by_kind: dict[str, list[Recovery]] = {}
    for r in result.recoveries:
        by_kind.setdefault(r.kind, []).append(r)
    rows = [
        "| fault | n | recovered | → first frame, median (s) | max (s) | failed | "
        "state differences |",
        "|---|---|---|---|---|---|---|",
    ]
    failed_total = diffs_total = 0
    for kind, items in by_kind.items():
        times = [r.seconds for r in items if r.seconds is not None]
        failed = len(items) - len(times)
        differ = sum(
            1 for r in items if r.seconds is not None and (r.differences or not r.compared)
        )
        failed_total += failed
        diffs_total += differ
        median = f"{statistics.median(times):.3f}" if times else "—"
        worst = f"{max(times):.3f}" if times else "—"
        rows.append(
            f"| {kind} | {len(items)} | {len(times)} | {median} | {worst} | {failed} | {differ} |"
        )
    text += "\n\n" + "\n".join(rows)
    text += (
        "\n\nTimes run from the fault (for a hostile spell, from its end: the server behaves "
        "again) to the first frame of the new session; a restart's include the server's own "
        "4.4 s outage and the reload."
    )
    text += (
        f"\n\nFailed recoveries: {failed_total} (goal 0: {verdict(failed_total == 0)}); "
        f"recoveries with a state difference: {diffs_total} (goal 0: "
        f"{verdict(diffs_total == 0)})."
    )
    for r in result.recoveries:
        if r.differences:
            text += f"\n- {r.kind} at {r.at:.0f} s: {r.differences}"
    if steady:
        base = Counter(map(fd_kind, steady_at[0].fds))
        for r in steady_at:
            extra = Counter(map(fd_kind, r.fds)) - base
            if len(r.fds) > max(steady[: max(1, len(steady) // 4)]) and extra:
                text += (
                    f"\n\nSteady fds above the first quarter's at {r.at:.0f} s ({r.kind}): "
                    + "; ".join(f"{n}× {what}" for what, n in extra.most_common())
                    + "."
                )
                break
    if result.fd_peaks:
        at, described = result.fd_peaks[-1]
        text += (
            f"\n\nOpen fds at their highest ({len(described)}, first at {at:.0f} s): "
            + "; ".join(f"{n}× {what}" for what, n in Counter(described).most_common())
            + "."
        )
    wrong = [r for r in result.recoveries if r.seconds is not None and r.status != "streaming"]
    if wrong:
        text += (
            f"\n\nThe daemon's status did not say `streaming` after {len(wrong)} recoveries "
            "although frames were flowing: "
            + ", ".join(f"{r.kind} at {r.at:.0f} s ({r.status!r})" for r in wrong)
            + "."
        )
    show = result.show
    minutes = result.minutes
    text += (
        f"\n\nLoad over the run: knob {show.knob_sent / (minutes * 60):.0f} OSC messages/s "
        f"({show.knob_sent} in all), {show.prompts_sent} prompt changes, "
        f"{show.commands_sent} commands, {show.feedback_received} feedback packets received, "
        f"{result.messages_at_server} data-channel messages at the server (last "
        "20 sessions), recording "
        f"{result.record_mb:.1f} MB."
    )
    if result.heap:
        text += (
            f" Heap trims after closed sessions: {result.heap['trims']}, the longest "
            f"{1000 * result.heap['longest_s']:.1f} ms (in a worker thread)."
        )
    if result.log_counts:
        common = ", ".join(f"{k} ×{n}" for k, n in result.log_counts.most_common(8))
        text += f" Daemon log warnings/errors: {common}."
    if result.census:
        text += f"\n\nObject growth by type (warm-up end → end): {result.census}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds left out of the fit")
    parser.add_argument("--fault-every", type=float, default=30.0)
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--load-time", type=float, default=0.5, help="emulated pipeline load, s")
    parser.add_argument("--kinds", default="", help="fault kinds (default: all the emulator has)")
    parser.add_argument("--census", action="store_true", help="object counts by type (gc)")
    parser.add_argument("--trace-malloc", action="store_true", help="tracemalloc top growth")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--serve-daemon", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_daemon:
        serve_daemon(args.serve_daemon)
        return
    load_before = os.getloadavg()
    niceness = os.nice(0)
    result = asyncio.run(soak(args))
    text = report(result)
    load_after = os.getloadavg()
    text += (
        f"\n\nNice {niceness}; load average (1/5/15 min) at the start "
        f"{load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, at the end "
        f"{load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} (the machine is shared)."
    )
    print(text)
    if args.write_docs:
        write_section(
            "soak",
            f"`nice -n {niceness} python bench/soak.py --minutes {args.minutes:g}` — the daemon "
            "(`soundscape.app.run`, the measured process) against the emulator in another "
            "process, for "
            f"{args.minutes:g} min: a knob at 200 Hz over UDP OSC, a prompt change every "
            f"{PROMPT_EVERY:g} s, a command every {COMMAND_EVERY:g} s (query, reset_cache, tap, "
            "scene, pause, mapping off/on), OSC feedback to a listener, a generated drum loop "
            "analysed (`[audio] file`) driving a LoRA through a mapping rule, a recording "
            '(`[[outputs]] type = "record"`, .mkv), and a fault every '
            f"{args.fault_every:g} s cycling through {', '.join(result.kinds)}. After each "
            "recovery, with the controls held still, the new session's parameters on the "
            "server (a transition's target counted as the prompts it leads to) are compared "
            "with the daemon's `store.wire_view()`.\n\n" + text,
        )


if __name__ == "__main__":
    main()
