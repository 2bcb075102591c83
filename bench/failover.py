"""Failover: how long the picture freezes at the NDI output when the Scope server is killed.

Every part is its own process, as on a stage: two Scope emulators (``soundscape
emulate``, each on a fixed port, so a killed one comes back at the same address),
the daemon (``soundscape run --scope-url A --standby-url B --standby-mode hot|warm
--ndi NAME``; for ``single`` only ``--scope-url A``, the recovery without a standby)
and an NDI receiver (``soundscape.video.ndi_probe``, cyndilib over loopback) that
reads the emulator's frame counter back from every picture it receives. This
process is the operator: it streams for a while, kills the primary with SIGKILL,
starts it again at once on the same port and waits (on the daemon's log events)
until the daemon is back on it; then the next kill.

The freeze is measured from picture content, not frame arrival: the output holds
its last frame while its source is away, so frames keep coming during an outage.
Per kill (see ``bench/_freeze.py``): the longest time the received picture did not
change, from the kill until the standby's (or, single, the restarted server's)
pictures move, and, with a standby, around the switch back to the primary. Beside
it the frame rate the receiver got, over the whole run and in the worst 1-second
span of any kill, and the longest stillness between kills (the chain's own jitter).

    python bench/failover.py [--kills 20] [--modes hot,warm,single] [--quick] [--logs DIR]
                             [--write-docs]

``--quick`` is a smoke run (2 kills per mode); ``--logs DIR`` keeps every process's
output (the daemon's JSON log, the receiver's frames) for reading afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import math
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._docs import write_section
from bench._freeze import Freeze, longest_freeze, lowest_rate, median_max, picture_changes, rate

MODES = ("hot", "warm", "single")
GOAL_FREEZE = 0.25  # s, hot: the longest freeze at any kill
GOAL_FPS = 25.0  # received at the NDI output, throughout
TAIL = 1.0  # s of pictures after the daemon is back on the primary, inside the episode
START_TIMEOUT = 60.0
STATUS_POLL = 0.1  # s between status reads while waiting for a precondition
RECOVERY_TIMEOUT = 30.0  # s from a kill to the daemon back on the primary: failed beyond
STOP_TIMEOUT = 15.0
# Both clocks of one machine: log timestamps (local wall time) become CLOCK_MONOTONIC,
# the clock the receiver stamps frames with.
WALL_TO_MONOTONIC = time.time() - time.monotonic()


# --------------------------------------------------------------------------- child processes


class ChildExited(RuntimeError):
    pass


class Child:
    """A child process; its JSON lines (logs or events) kept with CLOCK_MONOTONIC times.

    Every line also goes to ``log_path``, so a run can be read afterwards.
    """

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.records: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._log = log_path.open("a", encoding="utf-8")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self, env: dict[str, str] | None = None) -> None:
        self._log.write(f"# start {time.monotonic():.6f}: {' '.join(self.argv)}\n")
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self._proc.stdout)),
            asyncio.create_task(self._read(self._proc.stderr)),
        ]

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace")
            if not self._log.closed:
                self._log.write(line)
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    record.setdefault("t", _monotonic(record.get("timestamp")))
                    self.records.append(record)
            self._changed.set()
        self._changed.set()

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, start: int = 0
    ) -> dict[str, Any]:
        """The first record from index ``start`` on that satisfies ``predicate``."""
        async with asyncio.timeout(timeout):
            i = start
            while True:
                while i < len(self.records):
                    if predicate(self.records[i]):
                        return self.records[i]
                    i += 1
                if not self.running and all(r.done() for r in self._readers):
                    raise ChildExited(f"{self.name} exited ({self._exit_text()})")
                self._changed.clear()
                await self._changed.wait()

    def _exit_text(self) -> str:
        assert self._proc is not None
        return f"code {self._proc.returncode}; its output is in {self.log_path}"

    def kill(self) -> None:
        """SIGKILL, by this child's own pid (it is the server process itself)."""
        assert self._proc is not None
        self._log.write(f"# SIGKILL {time.monotonic():.6f}\n")
        self._proc.send_signal(signal.SIGKILL)

    async def stop(self, how: str = "signal") -> None:
        """End the child: close its stdin (``how="stdin"``) or send SIGTERM; then wait."""
        if self._proc is None:
            return
        if self._proc.returncode is None:
            if how == "stdin" and self._proc.stdin is not None:
                self._proc.stdin.close()
            else:
                self._proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        await self.reap()

    async def reap(self) -> None:
        """After the process is gone: read what it wrote last."""
        assert self._proc is not None
        await self._proc.wait()
        await asyncio.wait(self._readers, timeout=5)

    def close(self) -> None:
        for reader in self._readers:
            reader.cancel()  # only after reap(), unless the run is being torn down
        self._log.close()


def _monotonic(stamp: Any) -> float:
    """A structlog ISO timestamp (local time) on the monotonic clock; now if there is none."""
    if isinstance(stamp, str):
        with contextlib.suppress(ValueError):
            return datetime.datetime.fromisoformat(stamp).timestamp() - WALL_TO_MONOTONIC
    return time.monotonic()


def free_port() -> int:
    """A TCP port free now; it stays the server's port across restarts from then on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "soundscape.cli", *args]


class Emulator:
    """A Scope emulator process on a fixed port: killed and started again at the same URL."""

    def __init__(self, name: str, port: int, load_time: float, run_dir: Path) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._argv = cli(
            "emulate", "--port", str(port), "--no-ice-servers",
            "--load-time", f"{load_time:g}", "--log-level", "info",
        )  # fmt: skip
        self._log = run_dir / f"{name}.log"
        self.child: Child | None = None
        self.lives: list[Child] = []
        self._restart: asyncio.Task[float] | None = None

    async def start(self) -> float:
        """Start the process; return when it listens (monotonic time)."""
        self.child = Child(self.name, self._argv, self._log)
        self.lives.append(self.child)
        await self.child.start()
        listening = await self.child.wait_for(
            lambda r: r.get("event") == "emulator_listening", START_TIMEOUT
        )
        return float(listening["t"])

    async def kill_and_restart(self) -> tuple[float, asyncio.Task[float]]:
        """SIGKILL the server, start a new one on the same port at once.

        Returns the kill time and a task that ends when the new server listens.
        """
        old, self.child = self.child, None
        assert old is not None
        t_kill = time.monotonic()
        old.kill()
        await old.reap()  # the port is free once the process is gone
        old.close()
        self._restart = asyncio.create_task(self.start())
        return t_kill, self._restart

    async def stop(self) -> None:
        if self._restart is not None and not self._restart.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._restart, START_TIMEOUT)
        if self.child is not None:
            await self.child.stop()
            self.child.close()


def daemon_config(folder: Path, http_port: int) -> Path:
    """The daemon's config: defaults, but nothing shared with a daemon already running here."""
    path = folder / "failover.toml"
    path.write_text(
        "[osc]\nport = 0\n"  # any free port
        f'[http]\nlisten = "127.0.0.1:{http_port}"\n'
        f'[state]\ndir = "{folder / "state"}"\n',
        encoding="utf-8",
    )
    return path


# --------------------------------------------------------------------------- events per mode


Record = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Events:
    """What a mode waits for: a state (from the daemon's status) and log events."""

    ready: Callable[[Record], bool]  # status: a kill now meets the set-up under test
    failed_over: Callable[[Record], bool] | None  # log: the outputs take the standby
    back: Callable[[Record], bool]  # log: the outputs show the primary again, streaming


def _event(name: str, **fields: Any) -> Callable[[Record], bool]:
    return lambda r: r.get("event") == name and all(r.get(k) == v for k, v in fields.items())


def _standby_ready(mode: str) -> Callable[[Record], bool]:
    """Main shown and streaming; the standby streaming (hot) or waiting loaded (warm)."""

    def ready(status: Record) -> bool:
        screen = (status.get("screens") or {}).get("main") or {}
        servers = screen.get("servers") or {}
        failover = screen.get("failover") or {}
        live = {name: s.get("live") for name, s in (failover.get("servers") or {}).items()}
        standby = servers.get("standby") or {}
        return (
            failover.get("active") == "main"
            and (servers.get("main") or {}).get("state") == "streaming"
            and bool(live.get("main"))
            and standby.get("state") == ("streaming" if mode == "hot" else "warm")
            and (bool(live.get("standby")) if mode == "hot" else True)
        )

    return ready


def events_for(mode: str) -> Events:
    if mode == "single":
        streaming = _event("session_streaming")
        return Events(
            lambda s: (s.get("session") or {}).get("state") == "streaming", None, streaming
        )
    # The daemon names the primary "main" and the one standby "standby".
    return Events(
        _standby_ready(mode),
        _event("failover_switched", shown="standby"),
        _event("failover_switched", shown="main"),
    )


async def wait_status(url: str, predicate: Callable[[Record], bool], timeout: float) -> Record:
    """Poll the daemon's status until ``predicate`` holds: a precondition, not a timing."""
    async with httpx.AsyncClient(timeout=2) as http, asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                status = (await http.get(f"{url}/api/status")).json()
                if predicate(status):
                    return dict(status)
            await asyncio.sleep(STATUS_POLL)


def daemon_argv(mode: str, config: Path, primary: str, standby: str, ndi_name: str) -> list[str]:
    argv = cli(
        "run", "--config", str(config), "--scope-url", primary,
        "--ndi", ndi_name, "--ndi-loopback", "--log-format", "json",
    )  # fmt: skip
    if mode != "single":
        argv += ["--standby-url", standby, "--standby-mode", mode]
    return argv


# --------------------------------------------------------------------------- one mode


@dataclasses.dataclass
class Kill:
    t_kill: float
    t_listening: float | None = None  # the restarted server accepts connections
    t_failed_over: float | None = None  # the daemon says its outputs take the standby
    t_back: float | None = None  # the daemon says it is back on the primary
    t_end: float | None = None  # end of the episode (back + TAIL)
    freeze: Freeze | None = None  # from the kill until the switch back (single: recovery)
    freeze_back: Freeze | None = None  # around the switch back to the primary
    lowest_fps: float = float("nan")  # received frames, worst 1-s span of the episode
    receiver_late: int = 0  # the receiver itself polled late during the freeze
    failed: str = ""

    @property
    def worst(self) -> float:
        parts = [f.seconds for f in (self.freeze, self.freeze_back) if f is not None]
        return max(parts, default=float("nan"))


@dataclasses.dataclass
class ModeResult:
    mode: str
    kills: list[Kill]
    fps: float = float("nan")  # received frames per second, first picture to the end
    picture_fps: float = float("nan")  # of those, new pictures per second
    quiet_freeze: float = float("nan")  # longest stillness between kills (no fault)
    unreadable: int = 0  # frames whose counter could not be read
    switches: tuple[int, int] = (0, 0)  # output switches during kills / between them
    load: tuple[float, float] = (float("nan"), float("nan"))  # 1-min load before / after
    error: str = ""

    @property
    def done(self) -> list[Kill]:
        return [k for k in self.kills if not k.failed]


def probe_frames(probe: Child) -> list[tuple[float, int | None]]:
    return [(float(r["t"]), r.get("counter")) for r in probe.records if r.get("event") == "frame"]


async def pictures_after(probe: Child, t: float, timeout: float) -> None:
    """Until the receiver has a frame stamped after ``t`` (the episode's pictures are in)."""
    await probe.wait_for(lambda r: r.get("event") == "frame" and r["t"] > t, timeout)


async def run_mode(mode: str, args: argparse.Namespace, run_dir: Path) -> ModeResult:
    events = events_for(mode)
    folder = run_dir / mode
    folder.mkdir()
    result = ModeResult(mode, [])
    rng = random.Random(args.seed)
    primary = Emulator("primary", free_port(), args.load_time, folder)
    standby = Emulator("standby", free_port(), args.load_time, folder)
    servers = [primary] if mode == "single" else [primary, standby]
    ndi_name = f"failover-{mode}-{uuid.uuid4().hex[:6]}"
    http_port = free_port()
    status_url = f"http://127.0.0.1:{http_port}"
    config = daemon_config(folder, http_port)
    daemon = Child("daemon", daemon_argv(mode, config, primary.url, standby.url, ndi_name),
                   folder / "daemon.log")  # fmt: skip
    probe = Child(
        "receiver",
        [sys.executable, "-m", "soundscape.video.ndi_probe", ndi_name, "--loopback", "--decode",
         "--seconds", "86400", "--find-timeout", str(START_TIMEOUT)],
        folder / "receiver.log",
    )  # fmt: skip
    env = {**os.environ, "XDG_STATE_HOME": str(folder / "xdg-state")}
    env.pop("STATE_DIRECTORY", None)
    result.load = (os.getloadavg()[0], math.nan)
    try:
        await asyncio.gather(*(s.start() for s in servers))
        await daemon.start(env)
        await wait_status(status_url, events.ready, START_TIMEOUT)
        await probe.start()
        first = await probe.wait_for(lambda r: r.get("counter") is not None, START_TIMEOUT)
        t_first = float(first["t"])
        print(f"{mode}: streaming (kills every {args.settle:g}–{args.settle + 1:g} s)", flush=True)
        for n in range(args.kills):
            # Stream a while, into a random phase of frames and bars, past the daemon's
            # stability window (its backoff starts over), then kill mid-stream.
            await asyncio.sleep(args.settle + rng.random())
            await wait_status(status_url, events.ready, RECOVERY_TIMEOUT)
            kill = await one_kill(primary, daemon, probe, events)
            result.kills.append(kill)
            print(f"  {mode} kill {n + 1:2d}: {describe(kill)}", flush=True)
        t_last = time.monotonic()
        await pictures_after(probe, t_last, 5)
        measure_run(result, probe, t_first, t_last)
        result.switches = switches(daemon, result.kills, t_first, t_last)
    except (TimeoutError, ChildExited) as err:
        result.error = f"{type(err).__name__}: {err}"
        print(f"{mode}: stopped: {result.error}; logs in {folder}", flush=True)
    finally:
        await probe.stop("stdin")
        await daemon.stop()
        for server in servers:
            await server.stop()
        for child in [probe, daemon, *primary.lives, *standby.lives]:
            child.close()
        result.load = (result.load[0], os.getloadavg()[0])
    return result


async def one_kill(primary: Emulator, daemon: Child, probe: Child, events: Events) -> Kill:
    mark = len(daemon.records)
    t_kill, listening = await primary.kill_and_restart()
    kill = Kill(t_kill)

    def after_kill(predicate: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any]], bool]:
        return lambda r: predicate(r) and r["t"] > t_kill

    try:
        async with asyncio.timeout(RECOVERY_TIMEOUT):
            if events.failed_over is not None:
                switched = await daemon.wait_for(after_kill(events.failed_over), 1e9, mark)
                kill.t_failed_over = float(switched["t"])
            back = await daemon.wait_for(after_kill(events.back), 1e9, mark)
            kill.t_back = float(back["t"])
    except TimeoutError:
        kill.failed = f"not back on the primary within {RECOVERY_TIMEOUT:g} s"
        kill.t_end = time.monotonic()
    # The restarted server is needed by the next kill, whatever happened to this one.
    kill.t_listening = await listening
    if kill.failed:
        return kill
    assert kill.t_back is not None
    kill.t_end = kill.t_back + TAIL
    await pictures_after(probe, kill.t_end, RECOVERY_TIMEOUT)
    measure_kill(kill, probe, standby=events.failed_over is not None)
    return kill


def measure_kill(kill: Kill, probe: Child, standby: bool) -> None:
    assert kill.t_back is not None and kill.t_end is not None
    frames = probe_frames(probe)
    changes = picture_changes(frames)
    if standby:
        kill.freeze = longest_freeze(changes, kill.t_kill, kill.t_back)
        kill.freeze_back = longest_freeze(changes, kill.t_back, kill.t_end)
    else:
        kill.freeze = longest_freeze(changes, kill.t_kill, kill.t_end)
    arrivals = [t for t, _ in frames]
    kill.lowest_fps = lowest_rate(arrivals, kill.t_kill, kill.t_end)
    if kill.freeze is not None:
        a, b = kill.freeze.start, kill.freeze.end
        kill.receiver_late = sum(
            1 for r in probe.records if r.get("event") == "late" and r["since"] < b and r["t"] > a
        )


def measure_run(result: ModeResult, probe: Child, t_first: float, t_last: float) -> None:
    frames = [f for f in probe_frames(probe) if t_first <= f[0] < t_last]
    arrivals = [t for t, _ in frames]
    changes = picture_changes(frames)
    result.fps = rate(arrivals, t_first, t_last)
    result.picture_fps = rate(changes, t_first, t_last)
    result.unreadable = sum(1 for _, c in frames if c is None)
    # Between kills: from the end of one episode (or the first picture) to the next kill.
    quiet = []
    start = t_first + TAIL
    for kill in result.kills:
        freeze = longest_freeze(changes, start, kill.t_kill)
        if freeze is not None and kill.t_kill > start:
            quiet.append(freeze.seconds)
        start = kill.t_end or kill.t_kill
    result.quiet_freeze = max(quiet, default=float("nan"))


def switches(daemon: Child, kills: Sequence[Kill], start: float, end: float) -> tuple[int, int]:
    """The daemon's output switches within the kills' episodes, and outside them (none
    is expected there: a switch without a fault is a false alarm of the watchdog)."""
    times = [
        float(r["t"]) for r in daemon.records
        if r.get("event") == "failover_switched" and start <= r["t"] <= end
    ]  # fmt: skip
    inside = sum(1 for t in times if any(k.t_kill <= t <= (k.t_end or end) for k in kills))
    return inside, len(times) - inside


# --------------------------------------------------------------------------- report


def describe(kill: Kill) -> str:
    if kill.failed:
        return f"FAILED: {kill.failed}"
    parts = [f"freeze {_s(kill.freeze)}"]
    if kill.t_failed_over is not None:
        parts.append(f"switched {kill.t_failed_over - kill.t_kill:.3f} s after the kill")
        parts.append(f"freeze at switch back {_s(kill.freeze_back)}")
    assert kill.t_back is not None
    parts.append(f"back on the primary +{kill.t_back - kill.t_kill:.2f} s")
    if kill.t_listening is not None:
        parts.append(f"server listening again +{kill.t_listening - kill.t_kill:.2f} s")
    parts.append(f"lowest fps {kill.lowest_fps:.1f}")
    if kill.receiver_late:
        parts.append(f"receiver late x{kill.receiver_late}")
    return ", ".join(parts)


def _s(freeze: Freeze | None) -> str:
    if freeze is None:
        return "—"
    return f"{freeze.seconds:.3f} s" + (" (still frozen)" if freeze.open else "")


def _mm(values: Sequence[float], digits: int = 3) -> str:
    if not values:
        return "—"
    median, worst = median_max(values)
    return f"{median:.{digits}f} / {worst:.{digits}f}"


def verdict(result: ModeResult) -> str:
    if result.mode != "hot":
        return "—"
    kills = result.done
    if result.error or not kills or len(kills) < len(result.kills):
        return "**missed** (kills failed)"
    worst = max(k.worst for k in kills)
    lowest = min(k.lowest_fps for k in kills)
    ok = worst <= GOAL_FREEZE and lowest >= GOAL_FPS and result.fps >= GOAL_FPS
    return f"freeze ≤ {GOAL_FREEZE:g} s, ≥ {GOAL_FPS:g} fps: " + ("ok" if ok else "**missed**")


def table(results: Sequence[ModeResult]) -> str:
    lines = [
        "| mode | kills | failed | freeze at the kill (s) | freeze at switch back (s) "
        "| worst freeze per kill (s) | kill → outputs on standby (s) "
        "| kill → server listening again (s) | kill → back on primary (s) "
        "| received fps (run / worst 1 s) | new pictures/s | longest freeze between kills (s) "
        "| switches (in kills / between) | goal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        kills = r.done

        def after_kill(times: list[float | None], kills: list[Kill] = kills) -> list[float]:
            return [t - k.t_kill for t, k in zip(times, kills, strict=True) if t is not None]

        lowest = min((k.lowest_fps for k in kills), default=float("nan"))
        failed = str(len(r.kills) - len(kills)) + (f" ({r.error})" if r.error else "")
        single = r.mode == "single"
        lines.append(
            f"| {r.mode} | {len(r.kills)} | {failed} | "
            f"{_mm([k.freeze.seconds for k in kills if k.freeze])} | "
            f"{_mm([k.freeze_back.seconds for k in kills if k.freeze_back])} | "
            f"{_mm([k.worst for k in kills])} | "
            f"{_mm(after_kill([k.t_failed_over for k in kills]))} | "
            f"{_mm(after_kill([k.t_listening for k in kills]), 2)} | "
            f"{_mm(after_kill([k.t_back for k in kills]), 2)} | "
            f"{r.fps:.1f} / {lowest:.1f} | {r.picture_fps:.1f} | {r.quiet_freeze:.3f} | "
            f"{'—' if single else '{} / {}'.format(*r.switches)} | {verdict(r)} |"
        )
    return "\n".join(lines)


def ratios(results: Sequence[ModeResult]) -> str:
    by_mode = {r.mode: r for r in results if r.done}
    single = by_mode.get("single")
    if single is None:
        return ""
    base = median_max([k.worst for k in single.done])
    out = []
    for mode in ("hot", "warm"):
        r = by_mode.get(mode)
        if r is None:
            continue
        median, worst = median_max([k.worst for k in r.done])
        out.append(
            f"{mode}: the median freeze is {base[0] / median:.1f}× shorter than the single "
            f"server's, the longest {base[1] / worst:.1f}× shorter."
        )
    return " ".join(out)


def unreadable(results: Sequence[ModeResult]) -> str:
    counts = ", ".join(f"{r.mode} {r.unreadable}" for r in results)
    return f"Received frames whose counter could not be read (no new picture): {counts}."


# --------------------------------------------------------------------------- main


async def measure(args: argparse.Namespace, run_dir: Path) -> list[ModeResult]:
    results = []
    for mode in args.modes:
        results.append(await run_mode(mode, args, run_dir))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kills of the primary per mode")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: hot,warm,single")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 kills per mode")
    parser.add_argument("--load-time", type=float, default=0.5, help="emulated pipeline load, s")
    parser.add_argument(
        "--settle",
        type=float,
        default=5.5,
        help="s of streaming before each kill, plus up to 1 s at random (past the daemon's "
        "5 s stability window)",
    )
    parser.add_argument("--seed", type=int, default=12, help="of the random part of each wait")
    parser.add_argument("--logs", type=Path, help="keep every process's output in this folder")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    unknown = set(args.modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    if args.quick:
        args.kills = min(args.kills, 2)
    run_dir = Path(tempfile.mkdtemp(prefix="failover-", dir=args.logs))
    started = time.monotonic()
    try:
        results = asyncio.run(measure(args, run_dir))
    finally:
        if args.logs is None:
            shutil.rmtree(run_dir, ignore_errors=True)
    minutes = (time.monotonic() - started) / 60
    text = table(results)
    loads = ", ".join(f"{r.mode} {r.load[0]:.2f} / {r.load[1]:.2f}" for r in results)
    print(text)
    print(ratios(results))
    print(unreadable(results))
    print(f"load average (1 min) before / after: {loads}; run time {minutes:.1f} min")
    if args.logs is not None:
        print(f"logs: {run_dir}")
    if args.write_docs:
        write_section("failover", doc_text(args, results, text, loads, minutes))
    if any(r.error or len(r.done) < len(r.kills) for r in results):
        sys.exit(1)


def doc_text(
    args: argparse.Namespace, results: Sequence[ModeResult], text: str, loads: str, minutes: float
) -> str:
    return (
        f"`python bench/failover.py --kills {args.kills} --modes {','.join(args.modes)}` — "
        "each part its own process: two emulators (as Scope v0.2.4, 576×320 at 30 fps, "
        f"{args.load_time:g} s pipeline load) on fixed ports, the daemon "
        "(`soundscape run --scope-url A --standby-url B --standby-mode hot|warm --ndi NAME`, "
        "default settings; *single*: no standby) and a cyndilib NDI receiver on loopback. "
        f"Each kill: {args.settle:g}–{args.settle + 1:g} s of streaming, SIGKILL to the "
        "primary, the same server started again at once on the same port; the next kill "
        "once the daemon is back on it (its log says so) and the picture has moved for "
        f"{TAIL:g} s.\n\n"
        "*Freeze*: the longest time the picture at the receiver did not change (the "
        "emulator's frame counter, read from each received picture; the output keeps "
        "sending its last frame, so frames arrive throughout). *At the kill*: from the "
        "kill until the daemon reports the switch back (single: until the restarted "
        "server's pictures move); *at switch back*: from then to the end of the episode. "
        "*Received fps*: frames at the receiver over the run, and in the worst 1-second "
        "span of any kill. *Longest freeze between kills*: the same measure with no fault, "
        "the chain's own jitter. Times are median / max over the kills.\n\n"
        + text
        + "\n\n"
        + ratios(results)
        + f" {unreadable(results)}"
        + f"\n\nLoad average (1 min) before / after each mode: {loads}. Run time {minutes:.1f} min."
    )


if __name__ == "__main__":
    main()
