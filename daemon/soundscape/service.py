"""systemd integration: the sd_notify protocol (READY, WATCHDOG, STATUS, STOPPING).

A datagram to ``$NOTIFY_SOCKET``; no library needed. Outside systemd (no
socket in the environment) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

import structlog

from soundscape.tasks import cancel_and_wait

log = structlog.get_logger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._sock: socket.socket | None = None
        self._address = address
        if address:
            if address.startswith("@"):  # abstract namespace socket
                address = "\0" + address[1:]
            self._address = address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *lines: str) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as err:  # systemd gone or socket full: never fatal
            log.debug("sd_notify_failed", error=str(err))

    def ready(self, status: str = "") -> None:
        self.notify("READY=1", *(["STATUS=" + status] if status else []))

    def status(self, text: str) -> None:
        self.notify("STATUS=" + text)

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")

    def start_watchdog(self, healthy: Callable[[], bool] | None = None) -> None:
        """Ping WATCHDOG=1 at half the interval systemd asked for (WATCHDOG_USEC).

        A ping vouches that the daemon does its job, not that its loop turns:
        it is sent only while ``healthy()`` says so (the core parts alive and
        the session moving on; see ``Daemon.healthy``). A blocked loop, a dead
        or wedged core stop the pings, and systemd restarts the daemon.
        """
        usec = os.environ.get("WATCHDOG_USEC")
        if self._sock is None or not usec or not usec.isdigit():
            return
        pid = os.environ.get("WATCHDOG_PID")
        if pid and pid.isdigit() and int(pid) != os.getpid():
            return
        interval = int(usec) / 1e6 / 2
        self._watchdog = asyncio.get_running_loop().create_task(
            self._ping(interval, healthy or (lambda: True)), name="watchdog"
        )

    async def _ping(self, interval: float, healthy: Callable[[], bool]) -> None:
        withheld = False
        while True:
            try:
                ok = healthy()
            except Exception:  # a broken check must not look healthy
                log.exception("watchdog_check_failed")
                ok = False
            if ok:
                self.notify("WATCHDOG=1")
                if withheld:
                    log.info("watchdog_resumed")
            elif not withheld:
                log.error("watchdog_withheld", reason="the core is dead or makes no progress")
            withheld = not ok
            await asyncio.sleep(interval)  # the ping period itself, not a wait for an event

    async def close(self) -> None:
        if self._watchdog is not None:
            await cancel_and_wait(self._watchdog)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
