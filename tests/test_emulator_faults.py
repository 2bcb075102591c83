"""The emulator's hostile faults (issue 9 item 11), each through its endpoint and its method.

A bare aiortc peer checks what a client would meet; the daemon's answers to these
faults are tested by the supervision tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from soundscape.emulator import Emulator, EmulatorConfig
from soundscape.emulator.peer import ScopePeer

VIZ = {"pipeline_ids": ["controller-viz"], "load_params": {"width": 320, "height": 192}}
TEXT = {"input_mode": "text", "pipeline_ids": ["controller-viz"]}
QUIET = 1.0  # a bounded wait for something that must NOT happen (it has no event)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    emulator = Emulator(EmulatorConfig(restart_delay=0.2, restart_downtime=0.5))
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
async def http(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emu.url, timeout=10.0) as client:
        yield client


async def loaded(emu: Emulator, http: httpx.AsyncClient) -> None:
    await http.post("/api/v1/pipeline/load", json=VIZ)
    await emu.wait_for(lambda s: s["pipeline"]["generation"] == s["pipeline"]["load_count"], 5)


async def streaming(emu: Emulator) -> ScopePeer:
    peer = ScopePeer(emu.url)
    assert (await peer.connect(TEXT)).status_code == 200
    await peer.watch.until(lambda: peer.channel_open and len(peer.frames) >= 3)
    return peer


async def test_garbage_sdp(emu: Emulator, http: httpx.AsyncClient) -> None:
    await loaded(emu, http)
    assert (await http.post("/_emulator/garbage_sdp")).json()["garbage_sdp"] is True
    peer = ScopePeer(emu.url)
    try:
        # aiortc refuses the answer with ValueError, as the issue describes.
        with pytest.raises(ValueError):
            await peer.connect(TEXT)
        assert emu.state()["offers"] == 1 and emu.state()["sessions"] == []
    finally:
        await peer.close()
    emu.fault_garbage_sdp(False)
    healthy = await streaming(emu)  # behaving again: the next offer works
    await healthy.close()
    assert emu.state()["offers"] == 2


async def test_close_at_once(emu: Emulator, http: httpx.AsyncClient) -> None:
    await loaded(emu, http)
    assert (await http.post("/_emulator/close_at_once")).json()["close_at_once"] is True
    peer = ScopePeer(emu.url)
    try:
        assert (await peer.connect(TEXT)).status_code == 200  # accepted...
        await peer.watch.until(lambda: "closed" in peer.states, 10)  # ...and closed at once
        metrics = (await http.get("/api/v1/session/metrics")).json()
        assert metrics["sessions"] == {}
    finally:
        await peer.close()
    assert (await http.post("/_emulator/close_at_once", params={"enabled": "0"})).status_code == 200
    healthy = await streaming(emu)
    await healthy.close()


@pytest.mark.parametrize("via", ["endpoint", "method"])
async def test_restart_keep_pipeline(emu: Emulator, http: httpx.AsyncClient, via: str) -> None:
    await loaded(emu, http)
    peer = await streaming(emu)
    try:
        start = (await http.get("/health")).json()["server_start_time"]
        if via == "endpoint":
            assert (await http.post("/_emulator/restart_keep_pipeline")).json()["sessions"] == 1
        else:
            assert await emu.fault_restart_keep_pipeline() == 1
        # Everything a client polls looks the same ...
        assert (await http.get("/health")).json()["server_start_time"] == start
        assert (await http.get("/api/v1/pipeline/status")).json()["status"] == "loaded"
        # ... except the session list.
        assert (await http.get("/api/v1/session/metrics")).json()["sessions"] == {}
        before = len(peer.frames)
        assert await peer.quiet(lambda: len(peer.frames) > before + 2, QUIET)
        assert peer.messages == [] and peer.pc.connectionState == "connected"
    finally:
        await peer.close()


async def upload(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.post("/api/v1/assets", params={"filename": "ref.png"}, content=b"png")
    assert response.status_code == 200
    return dict(response.json())


async def test_lose_assets(emu: Emulator, http: httpx.AsyncClient) -> None:
    await upload(http)
    assert (await http.post("/_emulator/lose_assets")).json()["assets"] == 1
    assert (await http.get("/api/v1/assets")).json() == {"assets": []}
    await upload(http)
    assert emu.fault_lose_assets() == 1
    assert (await http.get("/api/v1/assets")).json() == {"assets": []}


async def test_restart_loses_assets_only_when_asked(emu: Emulator, http: httpx.AsyncClient) -> None:
    entry = await upload(http)
    await emu.fault_restart(0.0)
    assert [a["path"] for a in (await http.get("/api/v1/assets")).json()["assets"]] == [
        entry["path"]
    ]
    await emu.fault_restart(0.0, lose_assets=True)
    assert (await http.get("/api/v1/assets")).json() == {"assets": []}
    await upload(http)
    response = await http.post("/_emulator/restart", params={"downtime": 0, "lose_assets": 1})
    assert response.status_code == 200
    assert (await http.get("/api/v1/assets")).json() == {"assets": []}


async def test_slow_load(emu: Emulator, http: httpx.AsyncClient) -> None:
    assert (await http.post("/_emulator/slow_load", params={"seconds": 1.0})).status_code == 200
    await http.post("/api/v1/pipeline/load", json=VIZ)
    status = (await http.get("/api/v1/pipeline/status")).json()
    assert status["status"] == "loading"
    with pytest.raises(TimeoutError):  # a CPU pipeline normally loads in ~15 ms
        await emu.wait_for(lambda s: s["pipeline"]["status"] == "loaded", 0.6)
    await emu.wait_for(lambda s: s["pipeline"]["status"] == "loaded", 5)
    emu.fault_slow_load(None)
    assert emu.state()["pipeline"]["slow_load"] is None


async def test_fault_restart_defaults_to_the_real_restart(
    emu: Emulator, http: httpx.AsyncClient
) -> None:
    """No arguments: frames stop ``restart_delay`` later, refused ``restart_downtime``."""
    await loaded(emu, http)
    peer = await streaming(emu)
    try:
        started = (await http.get("/health")).json()["server_start_time"]
        assert await emu.fault_restart() == 1
        assert not emu.state()["listening"]
        with pytest.raises(httpx.ConnectError):
            await http.get("/health")
        state = await emu.wait_for(lambda s: s["listening"], 5)
        assert state["pipeline"]["status"] == "not_loaded" and state["sessions"] == []
        async with httpx.AsyncClient(base_url=emu.url) as fresh:
            assert (await fresh.get("/health")).json()["server_start_time"] > started
        assert peer.messages == []
    finally:
        await peer.close()


async def test_deletes_are_recorded(emu: Emulator, http: httpx.AsyncClient) -> None:
    await loaded(emu, http)
    peer = await streaming(emu)
    try:
        assert (await peer.delete()).status_code == 204
        assert (await http.delete("/api/v1/webrtc/offer/unknown")).status_code == 204
        deletes = emu.state()["deletes"]
        assert [(d["session_id"], d["live"]) for d in deletes] == [
            (peer.session_id, True),
            ("unknown", False),
        ]
        state = (await http.get("/_emulator/state")).json()
        assert len(state["deletes"]) == 2
    finally:
        await peer.close()
