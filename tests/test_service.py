"""systemd: the daemon speaks sd_notify (the unit itself: test_systemd_unit.py)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from soundscape.service import Notifier

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
