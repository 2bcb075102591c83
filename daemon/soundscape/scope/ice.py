"""Keep only the STUN/TURN servers that answer, so gathering never waits on a dead one.

The real Scope server's ICE list names ``stun:stun.l.google.com:19302``. Offline
(a show network, a loopback-only test) aiortc asks it anyway while gathering,
inside ``setLocalDescription``: measured here with aiortc 1.16, a STUN server
that resolves but does not answer holds every new session for 5.0 s (aioice's
gathering timeout), a name that does not resolve costs nothing. Host
candidates are all two machines on one network need, so a server that does
not answer a STUN binding request within ``timeout`` is left out.

Verdicts are cached for ``ttl`` seconds: a reconnect should not probe again.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import parse_qs

import structlog
from aioice import stun

from soundscape.scope.api import IceServer

log = structlog.get_logger(__name__)

DEFAULT_PORTS = {"stun": 3478, "turn": 3478, "stuns": 5349, "turns": 5349}


@dataclass(frozen=True)
class IceUrl:
    scheme: str  # stun | stuns | turn | turns
    host: str
    port: int
    transport: str  # udp | tcp

    @classmethod
    def parse(cls, url: str) -> IceUrl | None:
        """``stun:host:port``, ``turn:host?transport=tcp`` (RFC 7064/7065); None if not one."""
        scheme, sep, rest = url.partition(":")
        scheme = scheme.lower()
        if not sep or scheme not in DEFAULT_PORTS:
            return None
        rest, _, query = rest.partition("?")
        if rest.startswith("["):  # IPv6 literal
            host, _, port_text = rest[1:].partition("]")
            port_text = port_text.lstrip(":")
        else:
            host, _, port_text = rest.partition(":")
        try:
            port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
        except ValueError:
            return None
        transport = parse_qs(query).get("transport", ["udp"])[0].lower()
        if scheme in ("stuns", "turns"):
            transport = "tcp"
        return cls(scheme, host, port, transport) if host else None


class _Answer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answered = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.answered.done():
            self.answered.set_result(True)


async def _resolve(host: str, port: int, kind: socket.SocketKind) -> tuple[int, tuple]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=kind)
    family, _, _, _, address = infos[0]
    return family, address


async def answers(url: IceUrl) -> bool:
    """True when the server answers (a STUN binding over UDP, a TCP connect otherwise)."""
    loop = asyncio.get_running_loop()
    try:
        if url.transport == "tcp":
            _reader, writer = await asyncio.open_connection(url.host, url.port)
            writer.close()
            return True
        family, address = await _resolve(url.host, url.port, socket.SOCK_DGRAM)
        transport, protocol = await loop.create_datagram_endpoint(_Answer, family=family)
        try:
            request = stun.Message(
                message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST
            )
            transport.sendto(bytes(request), address)
            return await protocol.answered
        finally:
            transport.close()
    except OSError:
        return False


class IceFilter:
    """Filters an ICE server list down to the servers that answer (cached verdicts)."""

    def __init__(
        self,
        timeout: float = 0.3,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.ttl = ttl
        self._clock = clock
        self._verdicts: dict[str, tuple[bool, float]] = {}

    async def _usable(self, url: str) -> bool:
        cached = self._verdicts.get(url)
        now = self._clock()
        if cached is not None and now - cached[1] < self.ttl:
            return cached[0]
        parsed = IceUrl.parse(url)
        ok = False
        if parsed is not None:
            try:
                async with asyncio.timeout(self.timeout):
                    ok = await answers(parsed)
            except TimeoutError:
                ok = False
        if not ok and (cached is None or cached[0]):
            log.info("ice_server_skipped", url=url, reason="no answer", timeout=self.timeout)
        self._verdicts[url] = (ok, now)
        return ok

    async def filter(self, servers: list[IceServer]) -> list[IceServer]:
        urls = [url for server in servers for url in server.urls]
        verdicts = dict(zip(urls, await asyncio.gather(*map(self._usable, urls)), strict=True))
        kept = []
        for server in servers:
            good = tuple(url for url in server.urls if verdicts[url])
            if good:
                kept.append(replace(server, urls=good))
        return kept
