"""The Scope emulator, driven by a minimal raw aiortc client over real HTTP and WebRTC.

The client here is deliberately independent of the daemon's session code: it is
the emulator that is under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import Any

import av
import httpx
import numpy as np
import pytest
from aiortc import MediaStreamTrack

from soundscape.emulator import Emulator, EmulatorConfig, decode_counter, render, serve
from soundscape.emulator.peer import ScopePeer as Client
from soundscape.emulator.renderer import Renderer, barcode_bits, overlay_lines
from soundscape.emulator.tempo import BeatClock

TEXT = {"pipeline_ids": ["longlive"], "input_mode": "text"}
PROMPTS = [{"text": "a cathedral of light", "weight": 1.0}]
QUIET = 1.5  # a bounded wait for something that must NOT happen (it has no event)


# --------------------------------------------------------------------------- client


class ColourBars(MediaStreamTrack):
    """A client camera: a fixed picture at 30 fps."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._n = 0

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(1 / 30)
        frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), 90, np.uint8), format="rgb24")
        frame.pts, frame.time_base = self._n * 3000, Fraction(1, 90000)
        self._n += 1
        return frame


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emu = Emulator(EmulatorConfig(load_time=0.2, loras=["/models/lora/arcane-jinx.safetensors"]))
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


async def load(http: httpx.AsyncClient, emu: Emulator, body: dict[str, Any] | None = None) -> None:
    body = body or {"pipeline_ids": ["longlive"], "load_params": {"width": 320, "height": 192}}
    failed_before = emu.state()["pipeline"]["failed_loads"]
    response = await http.post("/api/v1/pipeline/load", json=body)
    assert response.status_code == 200
    assert response.json() == {"message": "Pipeline loading initiated successfully"}
    await loaded_or_failed(emu, failed_before)


async def loaded_or_failed(emu: Emulator, failed_before: int) -> dict[str, Any]:
    """Wait for the outcome of the latest load (the status still shows the old one at first)."""

    def done(s: dict[str, Any]) -> bool:
        p = s["pipeline"]
        return p["generation"] == p["load_count"] or p["failed_loads"] > failed_before

    return await emu.wait_for(done, 10)


@pytest.fixture
async def http(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emulator.url, timeout=10.0) as client:
        yield client


@pytest.fixture
async def loaded(emulator: Emulator, http: httpx.AsyncClient) -> Emulator:
    await load(http, emulator)
    return emulator


@pytest.fixture
async def client(loaded: Emulator) -> AsyncIterator[Client]:
    c = Client(loaded.url)
    try:
        yield c
    finally:
        await c.close()


async def streaming(client: Client, initial: dict[str, Any] | None = None) -> None:
    response = await client.connect(initial or {**TEXT, "prompts": PROMPTS})
    assert response.status_code == 200, response.text
    await client.watch.until(lambda: client.channel_open and len(client.frames) >= 3)


def session_state(state: dict[str, Any], session_id: str | None) -> dict[str, Any]:
    return next(s for s in state["sessions"] if s["id"] == session_id)


# --------------------------------------------------------------------------- renderer


def test_barcode_layout() -> None:
    bits = barcode_bits(5)
    assert bits[:2] == [1, 0] and bits[-2:] == [0, 1] and len(bits) == 36
    assert bits[2:26] == [int(b) for b in f"{5:024b}"]


@pytest.mark.parametrize(("width", "height"), [(576, 320), (1280, 720), (320, 576), (64, 48)])
def test_counter_survives_vp8(width: int, height: int) -> None:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    # aiortc's own libvpx settings (codecs/vpx.py), at 200 kbit/s CBR: well below
    # aiortc's 500 kbit/s start, a hard case for the barcode.
    rate = "200000"
    encoder.bit_rate, encoder.qmin, encoder.qmax = int(rate), 2, 56
    encoder.options = {
        "deadline": "realtime",
        "cpu-used": "-6",
        "lag-in-frames": "0",
        "bufsize": rate,
        "minrate": rate,
        "maxrate": rate,
        "static-thresh": "1",
    }
    decoder = av.CodecContext.create("vp8", "r")
    renderer = Renderer(width, height)
    renderer.set_overlay({"parameters": {"prompts": PROMPTS, "noise_scale": 0.7}})
    sent = [1, 2, 3, 250, 65_535, 1_000_000, 16_777_215, *range(400, 413)]
    got = []
    for i, counter in enumerate(sent):
        frame = renderer.frame(counter, i / 30)
        frame.pts = i
        for packet in encoder.encode(frame):
            got += [decode_counter(f.to_ndarray()[: f.height]) for f in decoder.decode(packet)]
    for packet in encoder.encode(None):
        got += [decode_counter(f.to_ndarray()[: f.height]) for f in decoder.decode(packet)]
    assert got == sent


def test_decode_rejects_garbage() -> None:
    rng = np.random.default_rng(1)
    assert decode_counter(rng.integers(0, 256, (320, 576), dtype=np.uint8)) is None
    assert decode_counter(np.full((320, 576), 128, np.uint8)) is None
    luma = render(77, {}, 576, 320).to_ndarray()[:320].copy()
    assert decode_counter(luma) == 77
    # Flip one data cell: the checksum must catch it.
    edges = np.round(np.linspace(0.02 * 576, 0.98 * 576, 37)).astype(int)
    luma[300:310, edges[10] + 2 : edges[11] - 2] ^= 0xFF
    assert decode_counter(luma) is None


def test_render_shape_and_overlay_text() -> None:
    frame = render(3, {"prompts": PROMPTS, "paused": True}, 1280, 720)
    assert (frame.width, frame.height, frame.format.name) == (1280, 720, "yuv420p")
    lines = overlay_lines(
        {
            "parameters": {
                "prompts": PROMPTS,
                "noise_scale": 0.25,
                "lora_scales": [{"path": "/x/arcane.safetensors", "scale": 0.8}],
                "paused": True,
            }
        }
    )
    text = "\n".join(lines)
    for expected in ("a cathedral of light", "noise 0.25", "arcane:0.80", "PAUSED"):
        assert expected in text
    # Nonsense from a client is shown, never raised on.
    assert overlay_lines({"parameters": {"prompts": 5, "noise_scale": "loud"}})


def test_beat_clock() -> None:
    clock = BeatClock(bpm=120, origin=100.0)
    assert clock.update(101.25)["beat_count"] == 2
    assert clock.update(101.25)["beat_phase"] == pytest.approx(0.5)
    assert clock.delay_to_boundary(101.25, "beat") == pytest.approx(0.25)
    assert clock.delay_to_boundary(101.25, "bar") == pytest.approx(0.75)
    assert clock.delay_to_boundary(101.25, "beat", lookahead_ms=100) == pytest.approx(0.15)
    assert clock.delay_to_boundary(101.25, "none") is None


# --------------------------------------------------------------------------- REST


async def test_health_and_static_endpoints(emulator: Emulator, http: httpx.AsyncClient) -> None:
    health = (await http.get("/health")).json()
    assert health["status"] == "healthy" and health["version"] == "0.2.4"
    assert {"timestamp", "server_start_time", "git_commit"} <= set(health)
    servers = (await http.get("/api/v1/webrtc/ice-servers")).json()["iceServers"]
    assert servers[0]["urls"] == ["stun:stun.l.google.com:19302"]  # as recorded: offline, too
    schemas = (await http.get("/api/v1/pipelines/schemas")).json()["pipelines"]
    assert {"longlive", "streamdiffusionv2", "passthrough", "controller-viz", "gray"} <= set(
        schemas
    )
    assert "ndi" in (await http.get("/api/v1/hardware/info")).json()
    status = await http.get("/api/v1/models/status", params={"pipeline_id": "longlive"})
    assert status.json() == {"downloaded": True, "progress": None}
    loras = (await http.get("/api/v1/loras")).json()["lora_files"]
    assert loras[0]["name"] == "arcane-jinx"
    old = await http.get("/api/v1/lora/list")
    assert (old.status_code, old.json()) == (404, {"detail": "Frontend not built"})
    plugins = (await http.get("/api/v1/plugins")).json()
    assert plugins == {"plugins": [], "total": 0, "failed_plugins": []}
    upload = await http.post("/api/v1/assets", params={"filename": "ref.png"}, content=b"\x89PNG")
    entry = upload.json()
    assert set(entry) == {"name", "path", "size_mb", "folder", "type", "created_at"}
    assert entry["name"] == "ref" and entry["type"] == "image"
    assets = (await http.get("/api/v1/assets", params={"type": "image"})).json()["assets"]
    assert [a["path"] for a in assets] == [entry["path"]]
    assert (await http.get("/api/v1/assets", params={"type": "video"})).json()["assets"] == []
    bad = await http.post("/api/v1/assets", params={"filename": "../evil.png"}, content=b"x")
    assert bad.status_code == 400


async def test_pipeline_load_goes_loading_then_loaded(
    emulator: Emulator, http: httpx.AsyncClient
) -> None:
    assert (await http.get("/api/v1/pipeline/status")).json()["status"] == "not_loaded"
    body = {"pipelines": [{"node_id": "n1", "pipeline_id": "longlive", "load_params": {}}]}
    response = await http.post("/api/v1/pipeline/load", json=body)
    assert response.json() == {"message": "Pipeline loading initiated successfully"}
    status = (await http.get("/api/v1/pipeline/status")).json()
    assert status["status"] == "loading" and status["loading_stage"] == "Initializing pipeline..."
    assert status["pipeline_id"] is None and status["load_params"] == {}
    await emulator.wait_for(lambda s: s["pipeline"]["status"] == "loaded", 5)
    status = (await http.get("/api/v1/pipeline/status")).json()
    assert status["pipeline_id"] == "longlive" and status["error"] is None
    assert "pipeline_ids" not in status and status["produces_video"] is True
    assert emulator.state()["pipeline"]["load_count"] == 1


async def test_malformed_load(emulator: Emulator, http: httpx.AsyncClient) -> None:
    for body in ({}, {"pipeline_ids": []}):
        response = await http.post("/api/v1/pipeline/load", json=body)
        assert response.status_code == 400, body
        expected = "Either 'pipelines' or 'pipeline_ids' must be provided"
        assert response.json() == {"detail": expected}
    for body in ({"pipeline_ids": "longlive"}, [1]):
        response = await http.post("/api/v1/pipeline/load", json=body)
        assert response.status_code == 422, body
        assert isinstance(response.json()["detail"], list)
    assert emulator.state()["pipeline"]["load_count"] == 0


async def test_fail_next_load(emulator: Emulator, http: httpx.AsyncClient) -> None:
    assert (await http.post("/_emulator/fail_next_load")).status_code == 200
    await load(http, emulator)
    first = (await http.get("/api/v1/pipeline/status")).json()
    assert first["status"] == "error" and first["error"] is None  # no reason, ever
    assert (await http.get("/api/v1/pipeline/status")).json()["status"] == "not_loaded"
    await load(http, emulator)  # only the next one fails
    assert emulator.state()["pipeline"]["status"] == "loaded"


async def test_unknown_pipeline_ends_in_error_once(
    emulator: Emulator, http: httpx.AsyncClient
) -> None:
    await load(http, emulator, {"pipeline_ids": ["no-such-pipeline"]})
    reads = [(await http.get("/api/v1/pipeline/status")).json() for _ in range(3)]
    assert [r["status"] for r in reads] == ["error", "not_loaded", "not_loaded"]
    assert all(r["error"] is None and r["pipeline_id"] is None for r in reads)


async def test_offer_before_load_is_400(emulator: Emulator) -> None:
    client = Client(emulator.url)
    try:
        response = await client.connect(TEXT)
        assert response.status_code == 400
        assert response.json() == {"detail": "Pipeline not loaded. Please load pipeline first."}
        # As in FastAPI, a body that fails validation is 422 before the pipeline is checked.
        body = {"sdp": "v=0", "type": "offer", "initialParameters": {"noise_scale": 2}}
        assert (await client.http.post("/api/v1/webrtc/offer", json=body)).status_code == 422
    finally:
        await client.close()


async def test_offer_out_of_range_is_422(client: Client, loaded: Emulator) -> None:
    response = await client.connect({**TEXT, "noise_scale": 2})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "noise_scale"
    assert loaded.state()["sessions"] == []


# --------------------------------------------------------------------------- streaming


async def test_frames_arrive_with_increasing_counter(client: Client, loaded: Emulator) -> None:
    await streaming(client)
    counters = [f.counter for f in await client.frames_after(10)]
    decoded = [c for c in counters if c is not None]
    assert len(decoded) >= 8
    assert decoded == sorted(decoded) and decoded[-1] > decoded[0]
    state = await loaded.wait_for(lambda s: s["sessions"][0]["frames_sent"] >= 10, 5)
    assert state["sessions"][0]["open"] and state["sessions"][0]["width"] == 320


async def test_answer_is_vp8_first_with_audio_inactive(client: Client, loaded: Emulator) -> None:
    response = await client.connect(TEXT)
    media = response.json()["sdp"].split("m=")[1:]
    video = next(m for m in media if m.startswith("video"))
    audio = next(m for m in media if m.startswith("audio"))
    rtpmap = [line.split(" ", 1)[1] for line in video.split("\r\n") if "a=rtpmap:" in line]
    assert rtpmap[0] == "VP8/90000" and any(c.startswith("H264") for c in rtpmap)
    assert client.answer_direction() == "sendrecv"
    assert "a=inactive" in audio
    assert any(m.startswith("application") and "webrtc-datachannel" in m for m in media)
    assert "a=candidate:" in video and "a=end-of-candidates" in video  # no trickle needed


async def test_recvonly_gets_sendonly_and_zero_frames(loaded: Emulator) -> None:
    """The trap of issue 8: the real server never starts its output for a recvonly offer."""
    recvonly, sendrecv = Client(loaded.url, direction="recvonly"), Client(loaded.url)
    try:
        assert (await recvonly.connect(TEXT)).status_code == 200
        assert (await sendrecv.connect(TEXT)).status_code == 200
        assert recvonly.answer_direction() == "sendonly"
        await recvonly.watch.until(lambda: recvonly.channel_open)
        await sendrecv.frames_after(10)
        assert not recvonly.frames
        assert session_state(loaded.state(), recvonly.session_id)["frames_sent"] == 0
    finally:
        await recvonly.close()
        await sendrecv.close()


async def test_no_frames_without_pipeline_ids(client: Client, loaded: Emulator) -> None:
    response = await client.connect({"input_mode": "text", "prompts": PROMPTS})
    assert response.status_code == 200
    await client.watch.until(lambda: client.channel_open)
    with pytest.raises(TimeoutError):
        await client.watch.until(lambda: len(client.frames) > 0, QUIET)
    assert loaded.state()["sessions"][0]["frames_sent"] == 0


async def test_no_frames_for_another_pipeline(client: Client, loaded: Emulator) -> None:
    response = await client.connect({**TEXT, "pipeline_ids": ["streamdiffusionv2"]})
    assert response.status_code == 200
    await client.watch.until(lambda: client.channel_open)
    with pytest.raises(TimeoutError):
        await client.watch.until(lambda: len(client.frames) > 0, QUIET)


async def test_video_mode_needs_a_client_track(loaded: Emulator) -> None:
    without, with_camera = Client(loaded.url), Client(loaded.url, track=ColourBars())
    try:
        assert (await without.connect({**TEXT, "input_mode": "video"})).status_code == 200
        assert (await with_camera.connect({**TEXT, "input_mode": "video"})).status_code == 200
        await with_camera.frames_after(5)
        await loaded.wait_for(
            lambda s: session_state(s, with_camera.session_id)["frames_received"] > 0, 10
        )
        assert not without.frames
        assert session_state(loaded.state(), without.session_id)["frames_sent"] == 0
    finally:
        await without.close()
        await with_camera.close()


async def test_data_channel_parameters_merge(client: Client, loaded: Emulator) -> None:
    await streaming(client)
    client.send({"noise_scale": 0.3, "quantize_mode": "beat", "node_id": "x", "reset_cache": True})
    client.send("this is not json")
    client.send({"transition": {"target_prompts": [{"text": "fog", "weight": 1}], "num_steps": 4}})
    state = await loaded.wait_for(lambda s: s["sessions"][0]["messages_received"] >= 3, 5)
    session = state["sessions"][0]
    params = session["parameters"]
    assert params["noise_scale"] == 0.3
    assert params["prompts"] == PROMPTS  # a transition is stored as sent, prompts untouched
    assert params["pipeline_ids"] == ["longlive"]
    # v0.2.4 merges everything as it is, even one-shot and unknown keys.
    assert params["quantize_mode"] == "beat" and params["node_id"] == "x"
    assert params["reset_cache"] is True and params["transition"]["num_steps"] == 4
    assert session["cache_resets"] == 1 and session["bad_messages"] == 1
    assert session["transition"]["num_steps"] == 4
    # Never an acknowledgement: the channel stays silent.
    assert client.messages == []


async def test_paused_holds_last_frame(client: Client, loaded: Emulator) -> None:
    await streaming(client)
    client.send({"paused": True})
    state = await loaded.wait_for(lambda s: s["sessions"][0]["paused"], 5)
    held = state["sessions"][0]["frame_counter"]
    # Frames drawn before the pause landed may still be in flight; then only `held`.
    await client.watch.until(lambda: held in client.counters())
    frames = [f.counter for f in await client.frames_after(10)]
    assert frames == [held] * 10
    sent = loaded.state()["sessions"][0]["frames_sent"]
    client.send({"paused": False})
    after = [f.counter for f in await client.frames_after(10)]
    assert max(c for c in after if c is not None) > held
    assert loaded.state()["sessions"][0]["frames_sent"] > sent


async def test_session_parameters_endpoint(client: Client, loaded: Emulator) -> None:
    await streaming(client)
    response = await client.http.post("/api/v1/session/parameters", json={"noise_scale": 0.9})
    applied = {
        "noise_scale": 0.9,
        "prompt_interpolation_method": "linear",
        "vace_context_scale": 1.0,
    }
    assert response.json() == {"status": "ok", "applied_parameters": applied}
    await client.watch.until(lambda: bool(client.messages))
    assert client.messages[0] == {"type": "parameters_updated", "parameters": applied}
    assert loaded.state()["sessions"][0]["parameters"]["noise_scale"] == 0.9
    got = (await client.http.get("/api/v1/session/parameters")).json()["parameters"]
    assert got["noise_scale"] == 0.9 and got["prompts"] == PROMPTS


async def test_patch_and_delete(client: Client, loaded: Emulator) -> None:
    await streaming(client)
    url = f"/api/v1/webrtc/offer/{client.session_id}"
    candidate = {
        "candidate": "candidate:1 1 udp 2130706431 192.0.2.99 50000 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }
    assert (await client.http.patch(url, json={"candidates": [candidate]})).status_code == 204
    unknown = "/api/v1/webrtc/offer/nope"
    assert (await client.http.patch(unknown, json={"candidates": []})).status_code == 204
    missing = await client.http.patch(unknown, json={"candidates": [candidate]})
    assert (missing.status_code, missing.json()) == (404, {"detail": "Session nope not found"})
    assert (await client.http.delete(url)).status_code == 204
    await client.watch.until(lambda: "closed" in client.states)
    assert client.messages == [{"type": "stream_stopped"}]
    assert (await client.http.patch(url, json={"candidates": [candidate]})).status_code == 404
    assert (await client.http.delete(url)).status_code == 204  # always
    assert [d["live"] for d in loaded.state()["deletes"]] == [True, False]


async def test_quantized_change_waits_for_the_beat() -> None:
    emu = Emulator(EmulatorConfig(load_time=0.05, tempo_bpm=120.0))
    await emu.start()
    client = Client(emu.url)
    try:
        await load(client.http, emu)
        await streaming(client)
        await client.watch.until(lambda: any(m["type"] == "tempo_update" for m in client.messages))
        client.send({"noise_scale": 0.1, "quantize_mode": "beat", "_quantized": True})
        await client.watch.until(
            lambda: any(m["type"] == "change_applied" for m in client.messages)
        )
        kinds = [m["type"] for m in client.messages if m["type"] != "tempo_update"]
        assert kinds == ["change_scheduled", "change_applied"]
        scheduled = next(m for m in client.messages if m["type"] == "change_scheduled")
        assert 0 <= scheduled["delay_ms"] <= 500
        tempo = next(m for m in client.messages if m["type"] == "tempo_update")
        assert tempo["bpm"] == 120.0 and tempo["is_playing"] is True
        assert emu.state()["sessions"][0]["parameters"]["noise_scale"] == 0.1
    finally:
        await client.close()
        await emu.stop()


# --------------------------------------------------------------------------- faults


async def test_fault_drop_closes_without_message(client: Client, loaded: Emulator) -> None:
    await streaming(client)
    assert (await client.http.post("/_emulator/drop")).json() == {"sessions": 1}
    await client.watch.until(lambda: "closed" in client.states or "failed" in client.states)
    assert client.messages == []


async def test_fault_stream_stopped(client: Client, loaded: Emulator) -> None:
    await streaming(client)
    assert (await client.http.post("/_emulator/stream_stopped")).json() == {"sessions": 1}
    await client.watch.until(lambda: "closed" in client.states)
    assert client.messages == [{"type": "stream_stopped"}]


async def test_fault_stall_keeps_connection(client: Client, loaded: Emulator) -> None:
    await streaming(client)
    assert (await client.http.post("/_emulator/stall")).json() == {"sessions": 1}
    state = await loaded.wait_for(lambda s: s["sessions"][0]["stalled"], 5)
    before = len(client.frames)
    # At most the frames already encoded and in flight may still land.
    with pytest.raises(TimeoutError):
        await client.watch.until(lambda: len(client.frames) > before + 2, QUIET)
    assert loaded.state()["sessions"][0]["frames_sent"] == state["sessions"][0]["frames_sent"]
    assert client.pc.connectionState == "connected" and not client.channel_closed
    client.send({"noise_scale": 0.4})  # the channel still works
    await loaded.wait_for(lambda s: s["sessions"][0]["parameters"].get("noise_scale") == 0.4, 5)


async def test_fault_restart_is_silent(client: Client, loaded: Emulator) -> None:
    await streaming(client)
    response = await client.http.post("/_emulator/restart", params={"downtime": 0})
    assert response.json() == {"sessions": 1, "downtime": 0.0, "delay": 0.0}
    status = (await client.http.get("/api/v1/pipeline/status")).json()
    assert status["status"] == "not_loaded"
    assert loaded.state()["sessions"] == []
    url = f"/api/v1/webrtc/offer/{client.session_id}"
    candidate = {"candidate": "candidate:1 1 udp 1 192.0.2.9 9 typ host", "sdpMid": "0"}
    assert (await client.http.patch(url, json={"candidates": [candidate]})).status_code == 404
    before = len(client.frames)
    with pytest.raises(TimeoutError):
        await client.watch.until(
            lambda: client.channel_closed or "closed" in client.states or bool(client.messages),
            QUIET,
        )
    assert client.pc.connectionState == "connected"
    assert len(client.frames) - before <= 2  # at most what was already in flight


async def test_fault_restart_with_downtime(emulator: Emulator, http: httpx.AsyncClient) -> None:
    await load(http, emulator)
    port = emulator.port
    response = await http.post("/_emulator/restart", params={"downtime": 0.5})
    assert response.json()["downtime"] == 0.5
    await emulator.wait_for(lambda s: not s["listening"], 5)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=emulator.url) as fresh:
            await fresh.get("/health")
    await emulator.wait_for(lambda s: s["listening"], 5)
    assert emulator.port == port
    async with httpx.AsyncClient(base_url=emulator.url) as fresh:
        assert (await fresh.get("/health")).json()["status"] == "healthy"
        assert (await fresh.get("/api/v1/pipeline/status")).json()["status"] == "not_loaded"


async def test_reload_keeps_streaming_old_instance(client: Client, loaded: Emulator) -> None:
    await streaming(client)
    await load(client.http, loaded)
    assert loaded.state()["pipeline"]["load_count"] == 2
    await client.frames_after(5)
    session = loaded.state()["sessions"][0]
    assert session["open"] and session["pipeline_generation"] == 1
    assert client.messages == []


async def test_stop_sends_stream_stopped(loaded: Emulator) -> None:
    client = Client(loaded.url)
    try:
        await streaming(client)
        await loaded.stop()
        await client.watch.until(lambda: "closed" in client.states)
        assert client.messages == [{"type": "stream_stopped"}]
        await loaded.stop()  # idempotent
    finally:
        await client.close()


async def test_in_process_faults(client: Client, loaded: Emulator) -> None:
    await streaming(client)
    assert loaded.fault_stall() == 1
    assert loaded.state()["sessions"][0]["stalled"]
    port = loaded.port
    assert await loaded.fault_restart(downtime=0.3) == 1
    state = loaded.state()
    assert not state["listening"] and state["sessions"] == [] and state["restarts"] == 1
    state = await loaded.wait_for(lambda s: s["listening"], 5)
    assert loaded.port == port and state["pipeline"]["status"] == "not_loaded"
    loaded.fault_fail_next_load()
    await load(client.http, loaded)
    assert loaded.state()["pipeline"]["status"] == "error"


async def test_serve_runs_until_stop() -> None:
    stop = asyncio.Event()
    started: asyncio.Future[Emulator] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(EmulatorConfig(), "127.0.0.1", 0, stop, on_start=started.set_result)
    )
    emu = await asyncio.wait_for(started, 10)
    async with httpx.AsyncClient(base_url=emu.url) as http:
        assert (await http.get("/health")).json()["status"] == "healthy"
        stop.set()
        await asyncio.wait_for(task, 10)
        with pytest.raises(httpx.ConnectError):
            await http.get("/health")
