"""systemd: the daemon speaks sd_notify (the unit itself: test_systemd_unit.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from soundscape import tasks
from soundscape.app import Daemon, run
from soundscape.cli import main
from soundscape.config import Config, load
from soundscape.emulator import Emulator, EmulatorConfig
from soundscape.scope.supervisor import SessionSupervisor
from soundscape.service import Notifier
from soundscape.tasks import CoreFailed

ROOT = Path(__file__).resolve().parent.parent


def _notify_socket(tmp_path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    return sock, path


async def test_notifier_ready_status_watchdog(tmp_path, monkeypatch):
    sock, path = _notify_socket(tmp_path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    notifier = Notifier(path)
    notifier.ready("connecting")
    assert sock.recv(4096).decode().splitlines() == ["READY=1", "STATUS=connecting"]
    notifier.start_watchdog()
    assert await asyncio.to_thread(sock.recv, 4096) == b"WATCHDOG=1"
    notifier.stopping()
    # The watchdog may ping again in between; STOPPING must arrive.
    for _ in range(5):
        data = await asyncio.to_thread(sock.recv, 4096)
        if data.startswith(b"STOPPING=1"):
            break
    else:
        pytest.fail("no STOPPING=1")
    await notifier.close()
    sock.close()


def test_demo_process_notifies_and_stops_on_sigterm(tmp_path):
    """The real entry point: READY, STATUS streaming, then SIGTERM → STOPPING and exit 0."""
    sock, path = _notify_socket(tmp_path)
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "soundscape.cli", "demo", "--log-format", "json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        seen: list[str] = []
        while not any(line.startswith("STATUS=streaming") for line in seen):
            seen += sock.recv(4096).decode().splitlines()
        assert "READY=1" in seen and "WATCHDOG=1" in seen
        proc.terminate()
        while "STOPPING=1" not in seen:
            seen += sock.recv(4096).decode().splitlines()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.stdout.read().decode() if proc.stdout else ""
        sock.close()
    assert "daemon_stopped" in output


async def test_watchdog_pings_only_while_healthy(tmp_path, monkeypatch):
    sock, path = _notify_socket(tmp_path)
    sock.setblocking(False)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # a ping every 50 ms
    healthy = True
    notifier = Notifier(path)
    notifier.start_watchdog(lambda: healthy)
    loop = asyncio.get_running_loop()
    assert await loop.sock_recv(sock, 4096) == b"WATCHDOG=1"
    healthy = False
    await _drain(sock, 0.1)  # a ping already on its way
    assert await _pings_within(sock, 0.5) == 0, "no ping while unhealthy"
    healthy = True
    async with asyncio.timeout(5):
        assert await loop.sock_recv(sock, 4096) == b"WATCHDOG=1"
    await notifier.close()
    sock.close()


# ----- the daemon's watchdog and its core, in process, against the emulator


async def _drain(sock: socket.socket, seconds: float) -> None:
    await _pings_within(sock, seconds)


async def _pings_within(sock: socket.socket, seconds: float) -> int:
    """WATCHDOG=1 datagrams received in the next ``seconds`` (absence takes a wait)."""
    count = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(left):
                data = await loop.sock_recv(sock, 4096)
        except TimeoutError:
            break
        count += b"WATCHDOG=1" in data.split(b"\n")
    return count


class Notifications:
    """The daemon's sd_notify datagrams, read on the loop, each with its arrival time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seen: list[tuple[float, str]] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 4096)
            async with self._changed:
                now = time.monotonic()
                self.seen += [(now, line) for line in data.decode().splitlines()]
                self._changed.notify_all()

    async def wait_for(self, prefix: str, after: float = 0.0, timeout: float = 30.0) -> float:
        """The arrival time of the first line starting with ``prefix`` after ``after``."""

        def found() -> float | None:
            return next((t for t, line in self.seen if t > after and line.startswith(prefix)), None)

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: found() is not None)
        result = found()
        assert result is not None
        return result

    def pings(self, start: float, end: float) -> list[float]:
        return [t for t, line in self.seen if line == "WATCHDOG=1" and start <= t <= end]

    async def close(self) -> None:
        await tasks.cancel_and_wait(self._task)
        self.sock.close()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emu = Emulator(EmulatorConfig(width=160, height=96, fps=30, load_time=0.05))
    await emu.start(host="127.0.0.1", port=0)
    try:
        yield emu
    finally:
        await emu.stop()


def daemon_config(url: str) -> Config:
    config = load(None)
    return dataclasses.replace(
        config,
        scope=dataclasses.replace(config.scope, url=url, use_server_ice=False),
        osc=dataclasses.replace(config.osc, enabled=False),
        state=dataclasses.replace(config.state, enabled=False),
    )


class Running:
    """``run()`` as a task, with the notify socket bound; ``stop()`` ends it politely."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, usec: int) -> None:
        sock, path = _notify_socket(tmp_path)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        monkeypatch.setenv("WATCHDOG_USEC", str(usec))
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        self.notes = Notifications(sock)
        self.daemon: Daemon | None = None
        self._stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self, config: Config, on_started: Any = None) -> None:
        def started(daemon: Daemon) -> None:
            self.daemon = daemon
            if on_started is not None:
                on_started(daemon)

        self.task = asyncio.get_running_loop().create_task(
            run(config, shutdown_trigger=self._stop.wait, on_started=started)
        )

    async def stop(self) -> None:
        self._stop.set()
        if self.task is not None:
            async with asyncio.timeout(15):
                await self.task
        await self.notes.close()


async def test_watchdog_keeps_pinging_through_a_reconnect(tmp_path, monkeypatch, emulator):
    running = Running(tmp_path, monkeypatch, usec=200_000)  # a ping every 100 ms
    try:
        running.start(daemon_config(emulator.url))
        first = await running.notes.wait_for("STATUS=streaming")
        lost = time.monotonic()
        await emulator.fault_restart(1.0)  # gone for a second, back with nothing loaded
        await running.notes.wait_for("STATUS=reconnecting", after=lost)
        back = await running.notes.wait_for("STATUS=streaming", after=lost)
        pings = running.notes.pings(first, back)
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert len(pings) >= (back - first) / 0.1 * 0.5, pings
        assert max(gaps) < 0.6, f"the watchdog paused for {max(gaps):.2f} s during a reconnect"
        assert running.daemon is not None and running.daemon.healthy()
    finally:
        await running.stop()


async def test_watchdog_stops_when_the_supervisor_is_wedged(tmp_path, monkeypatch, emulator):
    """A supervisor stuck forever in one step (alive, but no progress) gets no pings."""
    wedged = asyncio.Event()

    async def stuck(self: SessionSupervisor, *args: Any, **kwargs: Any) -> None:
        wedged.set()
        await asyncio.Event().wait()  # the bug: an await that never ends, no timeout

    monkeypatch.setattr(SessionSupervisor, "_connect", stuck)
    running = Running(tmp_path, monkeypatch, usec=200_000)
    try:
        with capture_logs() as logs:
            running.start(
                daemon_config(emulator.url),
                on_started=lambda d: setattr(d, "progress_timeout", 0.5),
            )
            await running.notes.wait_for("READY=1")
            async with asyncio.timeout(10):
                await wedged.wait()
            since = time.monotonic()
            await asyncio.sleep(1.5)  # the wedge must outlast progress_timeout: time is the point
            assert running.daemon is not None and running.daemon.supervisor.alive
            assert running.notes.pings(since + 0.6, time.monotonic()) == []
        assert any(entry["event"] == "watchdog_withheld" for entry in logs)
    finally:
        await running.stop()


async def test_watchdog_stops_when_the_supervisor_task_has_ended(tmp_path, monkeypatch, emulator):
    """The loop still turns, but a supervisor whose task ended vouches for nothing."""
    ended = asyncio.Event()

    async def returns(self: SessionSupervisor) -> None:
        ended.set()

    monkeypatch.setattr(SessionSupervisor, "_run", returns)
    running = Running(tmp_path, monkeypatch, usec=100_000)  # a ping every 50 ms
    try:
        running.start(daemon_config(emulator.url))
        await running.notes.wait_for("READY=1")
        async with asyncio.timeout(10):
            await ended.wait()
        await asyncio.sleep(0.5)  # ten ping periods: time is the point
        assert running.daemon is not None and not running.daemon.supervisor.alive
        assert running.notes.pings(0.0, time.monotonic()) == []
    finally:
        await running.stop()


@pytest.fixture
def fast_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "RESTART_INITIAL", 0.01)
    monkeypatch.setattr(tasks, "RESTART_MAX", 0.05)


def _always_failing(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    runs: list[int] = []

    async def broken(self: SessionSupervisor) -> None:
        runs.append(1)
        raise RuntimeError("a bug in the supervisor")

    monkeypatch.setattr(SessionSupervisor, "_run", broken)
    return runs


async def test_a_core_that_keeps_failing_ends_run_with_core_failed(
    monkeypatch, emulator, fast_restarts
):
    runs = _always_failing(monkeypatch)
    stop = asyncio.Event()
    with capture_logs() as logs, pytest.raises(CoreFailed) as failure:
        async with asyncio.timeout(20):
            await run(daemon_config(emulator.url), shutdown_trigger=stop.wait)
    assert failure.value.part == "supervisor" and len(runs) == tasks.CORE_GIVE_UP
    events = [entry["event"] for entry in logs]
    assert events.count("task_failed") == 1, "the traceback is logged once"
    assert events.index("core_failed") < events.index("daemon_stopped"), "stopped politely"


def test_soundscape_run_exits_non_zero_when_the_core_gives_up(tmp_path, monkeypatch, fast_restarts):
    _always_failing(monkeypatch)
    config = tmp_path / "soundscape.toml"
    config.write_text(
        '[scope]\nurl = "http://127.0.0.1:9"\n[osc]\nenabled = false\n[state]\nenabled = false\n'
    )
    assert main(["run", "--config", str(config)]) == 1
