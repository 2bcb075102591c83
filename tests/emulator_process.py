"""The Scope emulator as its own process, on a fixed port: SIGKILLed and started again.

A standby test needs a server that dies as a real one does (no goodbye, its port
refused) and comes back on the same address.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

START_TIMEOUT = 20.0


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmulatorProcess:
    """``soundscape emulate`` on ``port``; ``await start()``, ``kill9()``, ``state()``."""

    def __init__(self, log_dir: Path, *, fps: float = 30.0, size: tuple[int, int] = (320, 192)):
        self.port = free_tcp_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.fps, self.size = fps, size
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self) -> None:
        self._launch()
        async with asyncio.timeout(START_TIMEOUT), httpx.AsyncClient() as client:
            while True:  # a process start has no event to wait for but its port answering
                try:
                    if (await client.get(f"{self.url}/health", timeout=1.0)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)

    def _launch(self) -> None:
        """Start the process (Popen returns at once; start() waits for it to answer)."""
        self.starts += 1
        log = (self.log_dir / f"emulator-{self.port}-{self.starts}.log").open("wb")
        command = [sys.executable, "-m", "soundscape", "emulate", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [
                *command,
                "--width",
                str(self.size[0]),
                "--height",
                str(self.size[1]),
                "--fps",
                str(self.fps),
                "--load-time",
                "0.1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    async def post(self, path: str) -> None:
        async with httpx.AsyncClient() as client:
            (await client.post(f"{self.url}{path}", timeout=5.0)).raise_for_status()

    async def state(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.url}/_emulator/state", timeout=5.0)
            return dict(response.json())

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        """Until the emulator's own state satisfies ``predicate`` (it has no push channel)."""
        async with asyncio.timeout(timeout):
            while True:
                state = await self.state()
                if predicate(state):
                    return state
                await asyncio.sleep(0.05)

    def open_sessions(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        return [s for s in state["sessions"] if s["open"]]
