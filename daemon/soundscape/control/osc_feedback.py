"""OSC out: state changes, status and other components' values sent to controllers.

Each target gets at most ``rate`` messages per second per address; a value
that arrives faster waits and the latest one wins; a value the target
already shows is not sent again. A controller's own move is not echoed back
to it (its fader would jump back to a stale position): the address it sent
to is skipped for the target on its host, and anything still waiting for
that address is dropped.

:class:`Throttle` is the pure part (time passed in); :class:`OscFeedback`
sends through a ``sendto`` callable (the server's socket, so replies come
from the port controllers talk to) and keeps one loop timer per target.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from soundscape.control.osc_logging import LogLimiter
from soundscape.control.osc_packet import encode

log = structlog.get_logger(__name__)

Addr = tuple[Any, ...]  # a socket address: (host, port[, flow, scope])
Feedback = tuple[str, tuple[Any, ...]]


def normalise_ip(host: str) -> str:
    """``::ffff:1.2.3.4`` → ``1.2.3.4`` so a dual-stack socket's peers compare equal."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


@dataclass
class _Slot:
    shown: tuple[Any, ...] | None = None  # what the receiver shows now
    sent_at: float = -math.inf
    pending: tuple[Any, ...] | None = None


class Throttle:
    """Per-address rate limit for one receiver: latest value wins, repeats dropped."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._slots: dict[str, _Slot] = {}
        self._due: dict[str, float] = {}

    def offer(self, address: str, args: tuple[Any, ...], now: float) -> bool:
        """True: send ``args`` now. False: it waits (see :meth:`pop_due`) or is not needed."""
        slot = self._slots.setdefault(address, _Slot())
        if args == slot.shown:
            # Back to what the receiver shows: whatever was waiting is moot.
            slot.pending = None
            self._due.pop(address, None)
            return False
        if now - slot.sent_at >= self.interval:
            self._mark(slot, address, args, now)
            return True
        slot.pending = args
        self._due[address] = slot.sent_at + self.interval
        return False

    def known(self, address: str, args: tuple[Any, ...]) -> None:
        """The receiver set ``args`` itself: record it, drop anything older waiting."""
        slot = self._slots.setdefault(address, _Slot())
        slot.shown = args
        slot.pending = None
        self._due.pop(address, None)

    def sent(self, address: str, args: tuple[Any, ...], now: float) -> None:
        """``args`` went out outside the throttle (a query's answer)."""
        self._mark(self._slots.setdefault(address, _Slot()), address, args, now)

    def pop_due(self, now: float) -> list[Feedback]:
        """Waiting values whose time has come, marked as sent."""
        out: list[Feedback] = []
        for address, due in list(self._due.items()):
            if due <= now:
                slot = self._slots[address]
                assert slot.pending is not None
                out.append((address, slot.pending))
                self._mark(slot, address, slot.pending, now)
        return out

    def next_due(self) -> float | None:
        return min(self._due.values(), default=None)

    def _mark(self, slot: _Slot, address: str, args: tuple[Any, ...], now: float) -> None:
        slot.shown = args
        slot.sent_at = now
        slot.pending = None
        self._due.pop(address, None)


@dataclass
class FeedbackTarget:
    host: str  # as configured
    port: int
    addr: Addr  # resolved socket address
    throttle: Throttle
    timer: asyncio.TimerHandle | None = None
    ip: str = field(init=False)

    def __post_init__(self) -> None:
        self.ip = normalise_ip(str(self.addr[0]))

    def is_origin(self, origin: tuple[str, int], match: str) -> bool:
        return self.ip == origin[0] and (match == "host" or self.port == origin[1])


class OscFeedback:
    def __init__(
        self,
        sendto: Callable[[bytes, Addr], None],
        *,
        rate: float = 30.0,
        echo_to_sender: bool = False,
        echo_match: str = "host",
    ) -> None:
        self._sendto = sendto
        self.interval = 1.0 / rate
        self.echo_to_sender = echo_to_sender
        self.echo_match = echo_match
        self.targets: list[FeedbackTarget] = []
        self.sent = 0
        self._limiter = LogLimiter()
        self._loop = asyncio.get_running_loop()

    async def add_targets(self, targets: Iterable[tuple[str, int]], family: int) -> None:
        """Resolve and add targets; one that does not resolve is logged and skipped."""
        for host, port in targets:
            flags = socket.AI_V4MAPPED if family == socket.AF_INET6 else 0
            try:
                infos = await self._loop.getaddrinfo(
                    host, port, family=family, type=socket.SOCK_DGRAM, flags=flags
                )
            except OSError as err:
                log.warning("osc_feedback_unresolved", target=f"{host}:{port}", error=str(err))
                continue
            addr = infos[0][4]
            self.targets.append(FeedbackTarget(host, port, addr, Throttle(self.interval)))
            log.info("osc_feedback_target", target=f"{host}:{port}", address=addr[0])

    def publish(
        self,
        messages: Iterable[Feedback],
        *,
        origin: tuple[str, int] | None = None,
        origin_address: str | None = None,
    ) -> None:
        """Offer ``messages`` to every target (rate-limited, repeats dropped).

        ``origin`` is the controller (ip, port) that caused the change and
        ``origin_address`` the address it sent to; that address is not echoed
        back to it (None: nothing is).
        """
        messages = list(messages)
        if not messages or not self.targets:
            return
        now = self._loop.time()
        for target in self.targets:
            from_it = (
                origin is not None
                and not self.echo_to_sender
                and target.is_origin(origin, self.echo_match)
            )
            for address, args in messages:
                if from_it and (origin_address is None or address == origin_address):
                    target.throttle.known(address, args)
                elif target.throttle.offer(address, args, now):
                    self._send(address, args, target.addr)
            self._arm(target)

    def dump(self, messages: Iterable[Feedback], reply_to: Addr | None) -> int:
        """Send every message now to ``reply_to`` and to every target; returns the count."""
        messages = list(messages)
        now = self._loop.time()
        replied = False
        for target in self.targets:
            if (
                reply_to is not None
                and target.ip == normalise_ip(str(reply_to[0]))
                and (target.port == reply_to[1])
            ):
                replied = True
            for address, args in messages:
                target.throttle.sent(address, args, now)
                self._send(address, args, target.addr)
        if reply_to is not None and not replied:
            for address, args in messages:
                self._send(address, args, reply_to)
        return len(messages)

    def send_to(self, address: str, args: tuple[Any, ...], addr: Addr) -> None:
        self._send(address, args, addr)

    def close(self) -> None:
        for target in self.targets:
            if target.timer is not None:
                target.timer.cancel()
                target.timer = None

    # ----- internals

    def _send(self, address: str, args: tuple[Any, ...], addr: Addr) -> None:
        try:
            data = encode(address, args)
        except Exception as err:  # a component published a value OSC cannot carry
            if (suppressed := self._limiter.check(f"encode:{address}")) is not None:
                log.warning(
                    "osc_feedback_unsendable",
                    address=address,
                    error=str(err),
                    suppressed=suppressed,
                )
            return
        self._sendto(data, addr)
        self.sent += 1

    def _arm(self, target: FeedbackTarget) -> None:
        due = target.throttle.next_due()
        if due is None:
            return
        if target.timer is not None:
            if target.timer.when() <= due:
                return
            target.timer.cancel()
        target.timer = self._loop.call_at(due, self._flush, target)

    def _flush(self, target: FeedbackTarget) -> None:
        target.timer = None
        for address, args in target.throttle.pop_due(self._loop.time()):
            self._send(address, args, target.addr)
        self._arm(target)
