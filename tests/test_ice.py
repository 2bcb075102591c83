"""ICE servers that do not answer are left out, so a session never waits on them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioice import stun

from soundscape.emulator import Emulator, EmulatorConfig
from soundscape.scope.api import IceServer, ScopeClient
from soundscape.scope.ice import IceFilter, IceUrl
from soundscape.scope.session import ScopeSession

# TEST-NET-1 (RFC 5737): routable nowhere, so a STUN request there is never answered —
# what the public STUN server of Scope's list is on a machine without internet.
SILENT = "stun:192.0.2.1:3478"


class StunResponder(asyncio.DatagramProtocol):
    """A STUN server on loopback: answers every binding request."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = stun.parse_message(data)
        response = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE,
            transaction_id=request.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = addr
        self.transport.sendto(bytes(response), addr)


@pytest.fixture
async def stun_server() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(StunResponder, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        yield f"stun:127.0.0.1:{port}"
    finally:
        transport.close()


def test_ice_urls_parse():
    assert IceUrl.parse("stun:stun.l.google.com:19302") == IceUrl(
        "stun", "stun.l.google.com", 19302, "udp"
    )
    assert IceUrl.parse("turn:example.org?transport=tcp") == IceUrl(
        "turn", "example.org", 3478, "tcp"
    )
    assert IceUrl.parse("turns:[::1]:5349").host == "::1"
    assert IceUrl.parse("http://x") is None


async def test_silent_servers_are_left_out_and_answering_ones_kept(stun_server: str):
    ice = IceFilter(timeout=0.3)
    servers = [IceServer((SILENT,)), IceServer((stun_server, SILENT), "u", "p")]
    started = time.monotonic()
    kept = await ice.filter(servers)
    assert time.monotonic() - started < 0.6  # probed in parallel, bounded by the timeout
    assert kept == [IceServer((stun_server,), "u", "p")]
    started = time.monotonic()
    assert await ice.filter(servers) == kept
    assert time.monotonic() - started < 0.05  # verdicts are cached


async def test_a_session_with_scopes_public_stun_server_connects_at_once():
    """Offline, an unfiltered STUN server that never answers holds each session 5 s."""
    emu = Emulator(
        EmulatorConfig(width=320, height=192, ice_servers=[{"urls": [SILENT]}], load_time=0.1)
    )
    await emu.start(host="127.0.0.1", port=0)
    try:
        async with ScopeClient(emu.url) as client:
            await client.load_pipeline(["longlive"], {"width": 320, "height": 192})
            await emu.wait_for(lambda s: s["pipeline"]["status"] == "loaded", timeout=10)
            started = time.monotonic()
            servers = await IceFilter(timeout=0.3).filter(await client.ice_servers())
            session = ScopeSession(
                client,
                ice_servers=servers,
                on_frame=lambda f: None,
                on_message=lambda m: None,
                on_lost=lambda r: None,
            )
            try:
                await session.open({"pipeline_ids": ["longlive"], "input_mode": "text"}, 10)
                assert time.monotonic() - started < 1.5  # not 5 s of STUN gathering
            finally:
                await session.close(polite=True)
    finally:
        await emu.stop()
