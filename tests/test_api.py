"""The REST client against real HTTP: the real server's recorded answers served as they
are, the emulator, and a server answering garbage."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from scope_replay import Replay, load, request_recordings, route_of
from soundscape.emulator import Emulator, EmulatorConfig
from soundscape.errors import ScopeHTTPError, ScopeMalformed, ScopeTimeout, ScopeUnreachable
from soundscape.scope.api import Asset, IceServer, ScopeClient
from soundscape.scope.backoff import Backoff, backoff_delay


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
        assert all(isinstance(s, IceServer) for s in await client.ice_servers())
        assert isinstance(await client.hardware_info(), dict)
        assert isinstance(await client.plugins(), list)
        loras = await client.lora_list(health.major_minor)
        assert [lora.path for lora in loras] == ["/models/lora/ink.safetensors"]
        path = await client.upload_asset("ref.png", b"\x89PNG fake bytes")
        assert path.endswith("ref.png")
        assert any(a.path == path for a in await client.assets())
        await client.load_pipeline(["longlive"], {"width": 320, "height": 192})
        await emulator.wait_for(lambda s: s["pipeline"]["status"] == "loaded", timeout=5)
        status = await client.pipeline_status()
        assert status.loaded and status.pipeline_ids == ("longlive",)
        assert status.load_params["width"] == 320


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
    assert backoff_delay(10_000, 0.2, 10.0) == 10.0  # no overflow after a long outage


def test_backoff_counts_failures_until_reset():
    backoff = Backoff(0.25, 3.0)
    assert backoff.delay() == 0.0
    assert [backoff.failed() for _ in range(6)] == [0.0, 0.25, 0.5, 1.0, 2.0, 3.0]
    assert backoff.peek() == 3.0
    backoff.reset()
    assert backoff.failed() == 0.0  # after a good spell the first retry is immediate again
    devices = Backoff(0.5, 10.0, immediate_first=False)
    assert [devices.failed() for _ in range(3)] == [0.5, 1.0, 2.0]


# --------------------------------------------------------------------------- recorded answers
# Each endpoint the client uses, against the real v0.2.4 server's recorded answer.

MISSING_SESSION = "00000000-0000-0000-0000-000000000000"
LIVE_SESSION = "794529e9-b7a5-41a1-a9b2-1ebb601722e4"


async def check_health(client: ScopeClient) -> None:
    health = await client.health()
    assert health.healthy and health.version == "0.2.4" and health.major_minor == (0, 2)
    assert health.server_start_time == load("health.json")["body"]["server_start_time"]


async def check_status_loaded(client: ScopeClient) -> None:
    status = await client.pipeline_status()
    assert status.loaded and status.pipeline_ids == ("controller-viz",)
    assert status.load_params == {"width": 576, "height": 320}
    assert status.loaded_lora_adapters is None  # null: unknown, not "no adapters"
    assert status.error is None


async def check_status_loaded_passthrough(client: ScopeClient) -> None:
    status = await client.pipeline_status()
    assert status.loaded and status.pipeline_ids == ("passthrough",)


async def check_status_not_loaded(client: ScopeClient) -> None:
    status = await client.pipeline_status()
    assert status.status == "not_loaded" and status.pipeline_ids == () and status.load_params == {}


async def check_status_loading(client: ScopeClient) -> None:
    status = await client.pipeline_status()
    assert status.status == "loading" and status.pipeline_ids == ()
    assert status.loading_stage == "Initializing pipeline..."


async def check_status_error(client: ScopeClient) -> None:
    status = await client.pipeline_status()
    assert status.status == "error" and status.error is None  # the real server gives no text


async def check_load(client: ScopeClient) -> None:
    assert await client.load_pipeline(["controller-viz"], {"width": 576, "height": 320}) == (
        "Pipeline loading initiated successfully"
    )


async def check_load_400(client: ScopeClient) -> None:
    with pytest.raises(ScopeHTTPError) as err:
        await client.load_pipeline([], {})
    assert err.value.status == 400 and "pipeline_ids" in err.value.detail


async def check_ice(client: ScopeClient) -> None:
    assert await client.ice_servers() == [IceServer(("stun:stun.l.google.com:19302",))]


async def check_offer(client: ScopeClient) -> None:
    answer = await client.offer("v=0", {"pipeline_ids": ["controller-viz"]})
    assert answer.type == "answer" and answer.session_id == LIVE_SESSION
    assert "a=end-of-candidates" in answer.sdp


async def check_offer_recvonly(client: ScopeClient) -> None:
    # A normal answer (sendonly video) for a recvonly offer: nothing in it warns of 0 frames.
    answer = await client.offer("v=0", {"pipeline_ids": ["controller-viz"]})
    assert answer.session_id == "e7226f26-f0f4-4973-b42b-9a74b9799211"
    assert "a=sendonly" in answer.sdp


async def check_offer_400(client: ScopeClient) -> None:
    with pytest.raises(ScopeHTTPError) as err:
        await client.offer("v=0", {})
    assert err.value.status == 400
    assert err.value.detail == "Pipeline not loaded. Please load pipeline first."


async def check_offer_422(client: ScopeClient) -> None:
    with pytest.raises(ScopeHTTPError) as err:
        await client.offer("v=0", {})
    assert err.value.status == 422
    # pydantic's list becomes one line naming each field
    assert "initialParameters." in err.value.detail or "sdp" in err.value.detail


async def check_offer_422_params(client: ScopeClient) -> None:
    with pytest.raises(ScopeHTTPError) as err:
        await client.offer("v=0", {})
    assert err.value.detail == (
        "initialParameters.noise_scale: Input should be less than or equal to 1; "
        "initialParameters.vace_context_scale: Input should be less than or equal to 2"
    )


async def check_patch_404(client: ScopeClient) -> None:
    with pytest.raises(ScopeHTTPError) as err:
        await client.add_ice_candidates(MISSING_SESSION, [{"candidate": "x"}])
    assert err.value.status == 404 and "not found" in err.value.detail


async def check_patch_closed_404(client: ScopeClient) -> None:
    with pytest.raises(ScopeHTTPError) as err:
        await client.add_ice_candidates(LIVE_SESSION, [{"candidate": "x"}])
    assert err.value.status == 404


async def check_patch_empty_204(client: ScopeClient) -> None:
    # 204 for a session the server never had: why the watchdog does not probe with it
    await client.add_ice_candidates(MISSING_SESSION, [])


async def check_patch_known_204(client: ScopeClient) -> None:
    await client.add_ice_candidates(LIVE_SESSION, [{"candidate": "x"}])


async def check_patch_422(client: ScopeClient) -> None:
    with pytest.raises(ScopeHTTPError) as err:
        await client.add_ice_candidates(MISSING_SESSION, [])
    assert err.value.status == 422


async def check_delete(client: ScopeClient) -> None:
    await client.delete_session(LIVE_SESSION)


async def check_delete_unknown(client: ScopeClient) -> None:
    await client.delete_session(MISSING_SESSION)


async def check_metrics(client: ScopeClient) -> None:
    sessions = await client.session_metrics()
    assert list(sessions) == [LIVE_SESSION]
    assert sessions[LIVE_SESSION]["frames_out"] == 795


async def check_metrics_empty(client: ScopeClient) -> None:
    assert await client.session_metrics() == {}


async def check_loras(client: ScopeClient) -> None:
    assert await client.lora_list((0, 2)) == []


async def check_lora_v01_path_404(client: ScopeClient) -> None:
    with pytest.raises(ScopeHTTPError) as err:  # served alone: nothing to fall back to
        await client.lora_list((0, 1))
    assert err.value.status == 404


async def check_assets_empty(client: ScopeClient) -> None:
    assert await client.assets() == []


async def check_assets(client: ScopeClient) -> None:
    (asset,) = await client.assets()
    assert isinstance(asset, Asset) and asset.type == "image"
    assert asset.path == "/home/scope/.daydream-scope/assets/capture-red-4x4.png"


async def check_upload(client: ScopeClient) -> None:
    path = await client.upload_asset("capture-red-4x4.png", b"\x89PNG")
    assert path == "/home/scope/.daydream-scope/assets/capture-red-4x4.png"


async def check_upload_400(client: ScopeClient) -> None:
    with pytest.raises(ScopeHTTPError) as err:
        await client.upload_asset("notes.txt", b"notes")
    assert err.value.status == 400 and "Invalid file type" in err.value.detail


async def check_upload_422(client: ScopeClient) -> None:
    with pytest.raises(ScopeHTTPError) as err:
        await client.upload_asset("", b"x")
    assert err.value.status == 422


async def check_models(client: ScopeClient) -> None:
    status = await client.models_status("controller-viz")
    assert isinstance(status.downloaded, bool)


async def check_models_422(client: ScopeClient) -> None:
    with pytest.raises(ScopeHTTPError) as err:
        await client.models_status("")
    assert err.value.status == 422 and "pipeline_id" in err.value.detail


async def check_plugins(client: ScopeClient) -> None:
    assert await client.plugins() == []


async def check_hardware(client: ScopeClient) -> None:
    assert (await client.hardware_info())["vram_gb"] is None


async def check_schemas(client: ScopeClient) -> None:
    schemas = await client.pipeline_schemas()
    assert {"controller-viz", "passthrough", "gray"} <= set(schemas)


async def check_parameters_post(client: ScopeClient) -> None:
    await client.update_session_parameters({"noise_scale": 0.5})


async def check_parameters_post_422(client: ScopeClient) -> None:
    with pytest.raises(ScopeHTTPError) as err:
        await client.update_session_parameters({"noise_scale": 5})
    assert err.value.status == 422


RECORDED = {
    "health.json": check_health,
    "pipeline-status.loaded.controller-viz.json": check_status_loaded,
    "pipeline-status.loaded.passthrough.json": check_status_loaded_passthrough,
    "pipeline-status.not_loaded.json": check_status_not_loaded,
    "pipeline-status.after-error.json": check_status_not_loaded,
    "pipeline-status.loading.json": check_status_loading,
    "pipeline-status.error.json": check_status_error,
    "pipeline-load.json": check_load,
    "pipeline-load.unknown-id.json": check_load,
    "pipeline-load.400-empty.json": check_load_400,
    "ice-servers.json": check_ice,
    "offer-answer.json": check_offer,
    "recvonly-no-frames.json": check_offer_recvonly,
    "offer-400-not-loaded.json": check_offer_400,
    "offer-400-after-failed-load.json": check_offer_400,
    "offer-422-bad-params.json": check_offer_422_params,
    "offer-422-input-mode.json": check_offer_422,
    "offer-422-kv-bias.json": check_offer_422,
    "offer-422-no-sdp.json": check_offer_422,
    "patch-unknown-session.one-candidate.json": check_patch_404,
    "patch-closed-session.json": check_patch_closed_404,
    "patch-unknown-session.empty.json": check_patch_empty_204,
    "patch-known-session.json": check_patch_known_204,
    "patch-unknown-session.bad-body.json": check_patch_422,
    "delete-session.json": check_delete,
    "delete-closed-session.json": check_delete,
    "delete-unknown-session.json": check_delete_unknown,
    "session-metrics.json": check_metrics,
    "session-metrics.no-session.json": check_metrics_empty,
    "lora-list.json": check_loras,
    "lora-list.v01-path.json": check_lora_v01_path_404,
    "assets-list.json": check_assets_empty,
    "assets-list.after-upload.json": check_assets,
    "assets-upload.json": check_upload,
    "assets-upload.bad-extension.json": check_upload_400,
    "assets-upload.no-filename.json": check_upload_422,
    "models-status.controller-viz.json": check_models,
    "models-status.rife.json": check_models,
    "models-status.no-param.json": check_models_422,
    "plugins.json": check_plugins,
    "hardware-info.json": check_hardware,
    "pipelines-schemas.json": check_schemas,
    "session-parameters.post.json": check_parameters_post,
    "session-parameters.post.no-session.json": check_parameters_post,
    "session-parameters.post.empty.json": check_parameters_post,
    "session-parameters.post.empty.no-session.json": check_parameters_post,
    "session-parameters.post.out-of-range.json": check_parameters_post_422,
}


@pytest.mark.parametrize("name", sorted(RECORDED))
async def test_client_parses_the_recorded_answer(name: str):
    async with Replay() as replay, ScopeClient(replay.url) as client:
        replay.serve(name)
        await RECORDED[name](client)
        assert replay.requests, "the client did not ask"


def test_every_recorded_endpoint_the_client_uses_is_checked():
    """A new recording of an endpoint the client calls must get a check above."""
    used = {route_of(load(name)) for name in RECORDED}
    unchecked = [
        name
        for name, recording in request_recordings()
        if route_of(recording) in used and name not in RECORDED
    ]
    assert not unchecked, f"recorded answers not checked against the client: {unchecked}"


async def test_lora_list_follows_the_server_version():
    async with Replay() as replay, ScopeClient(replay.url) as client:
        replay.serve("lora-list.json", "lora-list.v01-path.json")
        assert await client.lora_list((0, 2)) == []
        assert replay.requests[-1][1] == "/api/v1/loras"
        replay.requests.clear()
        # A v0.1 server is asked on its own path first; the 404 falls back to the other.
        assert await client.lora_list((0, 1)) == []
        assert [r[1] for r in replay.requests] == ["/api/v1/lora/list", "/api/v1/loras"]
