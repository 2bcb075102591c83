"""Ships the parameter store's outbox to the live session, rate-limited.

An isolated change leaves at once; while changes arrive faster than the rate
(a 1 kHz knob), they coalesce in the store's outbox (latest value wins) and
leave at most ``rate`` times a second. Transitions and one-shots are never
merged away (see :class:`soundscape.scope.params.Outbox`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog

from soundscape.scope.params import Outbox, ParameterStore
from soundscape.tasks import Supervised, supervise

log = structlog.get_logger(__name__)


class Channel(Protocol):
    def send(self, message: Mapping[str, Any]) -> bool: ...


class ParameterSender:
    def __init__(
        self,
        store: ParameterStore,
        *,
        rate: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        outbox: Outbox | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self._store = store
        # A standby server's sender has an outbox of its own (ParameterStore.add_outbox).
        self.outbox = outbox if outbox is not None else store.outbox
        self._transform = transform  # a standby's own asset paths
        self._interval = 1.0 / rate
        self._clock = clock
        self._wake = asyncio.Event()
        self._channel: Channel | None = None
        self._last_send = -1e9
        self._task: Supervised | None = None
        self.sent = 0
        self.on_sent: Callable[[dict[str, Any]], None] | None = None
        store.on_outbox(self._wake.set)

    def attach(self, channel: Channel | None) -> None:
        """Send to ``channel`` from now on (None while there is no session)."""
        self._channel = channel
        if channel is not None:
            self._wake.set()

    async def start(self) -> None:
        # Core: the stream's control path; a sender that keeps failing ends the daemon.
        self._task = supervise("param-sender", self._run, core=True)

    async def stop(self) -> None:
        if self._task is not None:
            await self._task.stop()
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.outbox and self._channel is not None:
                wait = self._last_send + self._interval - self._clock()
                if wait > 0:
                    # Rate limiting: the wait is the point, not a stand-in for an event.
                    await asyncio.sleep(wait)
                    continue
                channel = self._channel
                message = self.outbox.take()
                if not message:
                    break
                if self._transform is not None:
                    message = self._transform(message)
                if not channel.send(message):
                    # The session went away between wake-up and send; the next
                    # session starts from the full state, so nothing is lost.
                    break
                self._last_send = self._clock()
                self.sent += 1
                if self.on_sent is not None:
                    self.on_sent(message)
