"""The REST client against real HTTP: the emulator, and a server answering garbage."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from soundscape.emulator import Emulator, EmulatorConfig
from soundscape.errors import ScopeHTTPError, ScopeMalformed, ScopeTimeout, ScopeUnreachable
from soundscape.scope.api import ScopeClient
from soundscape.scope.supervisor import backoff_delay


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emu = Emulator(
        EmulatorConfig(width=320, height=192, load_time=0.1, loras=["/models/lora/ink.safetensors"])
    )
    await emu.start(host="127.0.0.1", port=0)
    try:
        yield emu
    finally:
        await emu.stop()


async def test_every_endpoint_typed(emulator: Emulator):
    async with ScopeClient(emulator.url) as client:
        health = await client.health()
        assert health.healthy and health.version == "0.2.4"
        assert (await client.pipeline_status()).status == "not_loaded"
        assert "longlive" in await client.pipeline_schemas()
        assert isinstance((await client.models_status("longlive")).downloaded, bool)
        assert await client.download_models("longlive")
        assert await client.ice_servers() == []
        assert isinstance(await client.hardware_info(), dict)
        assert isinstance(await client.plugins(), list)
        loras = await client.lora_list()
        assert [lora.path for lora in loras] == ["/models/lora/ink.safetensors"]
        path = await client.upload_asset("ref.png", b"\x89PNG fake bytes")
        assert path.endswith("ref.png")
        assert any(a.path == path for a in await client.assets())
        await client.load_pipeline(["longlive"], {"width": 320, "height": 192})
        await emulator.wait_for(lambda s: s["pipeline"]["status"] == "loaded", timeout=5)
        status = await client.pipeline_status()
        assert status.loaded and status.pipeline_ids == ("longlive",)
        assert status.load_params["width"] == 320
        with pytest.raises(ScopeHTTPError) as err:
            await client.delete_session("no-such-session")
        assert err.value.status == 404
        with pytest.raises(ScopeHTTPError) as err:
            await client.add_ice_candidates("no-such-session", [])
        assert err.value.status == 404


async def test_unreachable_and_timeout():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with ScopeClient(f"http://127.0.0.1:{port}", connect_timeout=0.5) as client:
        with pytest.raises(ScopeUnreachable):
            await client.health()

    never = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await never.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/health", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with ScopeClient(f"http://127.0.0.1:{port}", request_timeout=0.3) as client:
            with pytest.raises(ScopeTimeout):
                await client.health()
    finally:
        never.set()
        await runner.cleanup()


@pytest.fixture
async def garbage_server() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A server that answers nonsense, and records the headers it got."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        if request.path == "/health":
            return web.Response(text="<html>proxy error</html>")
        if request.path == "/api/v1/pipeline/status":
            return web.json_response(["not", "an", "object"])
        if request.path == "/api/v1/webrtc/offer":
            return web.json_response({"sdp": 1})
        return web.json_response({"detail": "Not Found"}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def test_garbage_answers_are_malformed_errors(garbage_server, monkeypatch, caplog):
    url, seen = garbage_server
    monkeypatch.setenv("SCOPE_TOKEN", "s3cret-token")
    caplog.set_level(logging.DEBUG)
    async with ScopeClient(url) as client:
        with pytest.raises(ScopeMalformed, match="not JSON"):
            await client.health()
        with pytest.raises(ScopeMalformed):
            await client.pipeline_status()
        with pytest.raises(ScopeMalformed, match="not an answer"):
            await client.offer("v=0", {})
        with pytest.raises(ScopeHTTPError, match="Not Found"):
            await client.lora_list()
    assert seen[0]["Authorization"] == "Bearer s3cret-token"
    assert "s3cret-token" not in caplog.text


def test_backoff_is_immediate_then_exponential_capped_with_jitter():
    delays = [backoff_delay(n, 0.2, 10.0, 0.0) for n in range(1, 10)]
    assert delays[:5] == [0.0, 0.2, 0.4, 0.8, 1.6]
    assert max(delays) == 10.0
    assert backoff_delay(3, 0.2, 10.0, 0.25, rand=lambda: 1.0) == pytest.approx(0.5)
