"""The daemon against the Scope emulator over real aiortc: load, stream, every
fault (the hostile ones too), the backoff, and the state resync after each recovery.

The emulator behaves as the real Scope v0.2.4 server (it refuses to stream to a
``recvonly`` offer, names a public STUN server, fails loads with one ``error``
read); see ``docs/scope-compatibility.md``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from PIL import Image

from soundscape.app import Daemon
from soundscape.config import Config, LoraEntry, load
from soundscape.emulator import Emulator, EmulatorConfig
from soundscape.emulator.peer import ScopePeer
from soundscape.errors import ScopeHTTPError, ScopeSessionError
from soundscape.scope import session as session_module
from soundscape.scope.api import ScopeClient
from soundscape.scope.session import ScopeSession

STALL = 1.5
# Keys the server keeps that are not our state: its defaults, added to every session's
# parameters, and one-shots it stores as they came (``reset_cache: true`` stays; recorded).
SERVER_DEFAULTS = {"prompt_interpolation_method", "vace_context_scale", "reset_cache", "transition"}


def make_config(url: str, **session: Any) -> Config:
    config = load(None)
    fast = dataclasses.replace(config.session, stall_timeout=STALL, **session)
    return dataclasses.replace(
        config, scope=dataclasses.replace(config.scope, url=url), session=fast
    )


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emu = Emulator(
        EmulatorConfig(
            width=320,
            height=192,
            fps=30,
            load_time=0.2,
            restart_delay=0.0,
            restart_downtime=0.5,
        )
    )
    await emu.start(host="127.0.0.1", port=0)
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
async def daemon(emulator: Emulator) -> AsyncIterator[Daemon]:
    d = Daemon(make_config(emulator.url))
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


async def inject(emulator: Emulator, fault: str) -> None:
    result = getattr(emulator, f"fault_{fault}")()
    if inspect.isawaitable(result):
        await result


def open_sessions(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in state["sessions"] if s["open"]]


def streaming_session(
    min_frames: int = 3, exclude: set[str] = frozenset()
) -> Callable[[dict[str, Any]], bool]:
    """Predicate: one open session, not an old one, that has sent frames."""

    def check(state: dict[str, Any]) -> bool:
        sessions = [s for s in open_sessions(state) if s["id"] not in exclude]
        return len(sessions) == 1 and sessions[0]["frames_sent"] >= min_frames

    return check


async def wait_status(
    daemon: Daemon, state: str, timeout: float = 10.0, since_frames: int = -1
) -> None:
    """Wait until the supervisor reports ``state`` (and, optionally, new frames)."""
    event = asyncio.Event()

    def listener(status: dict[str, Any]) -> None:
        if status["state"] == state and status["frames"] > since_frames:
            event.set()

    daemon.supervisor.on_status(listener)
    listener(daemon.supervisor.status.as_dict())
    await asyncio.wait_for(event.wait(), timeout)


def assert_in_sync(daemon: Daemon, session: dict[str, Any]) -> None:
    """Not one parameter differs between the daemon's state and the emulator's session."""
    ours = daemon.store.wire_view()
    theirs = session["parameters"]
    diff = {
        k: (ours.get(k), theirs.get(k))
        for k in ours.keys() | theirs.keys()
        if ours.get(k) != theirs.get(k) and not (k in SERVER_DEFAULTS and k not in ours)
    }
    assert not diff, f"daemon vs emulator: {diff}"


def change_everything(daemon: Daemon, n: int) -> None:
    """Move the state well away from its defaults (different each round)."""
    store = daemon.store
    store.update(
        {
            "vace_context_scale": 0.1 * n,
            "kv_cache_attention_bias": 0.05 + 0.1 * n,
            "denoising_step_list": [1000, 700 - 10 * n, 300],
            "manage_cache": n % 2 == 0,
        },
        source="test",
    )
    store.transition([f"scene {n}", "fog"], num_steps=3, method="slerp")
    store.set_prompt(1, weight=0.25 + 0.1 * n, source="test")
    store.reset_cache(source="test")


async def test_loads_then_streams_with_the_full_state(emulator: Emulator, daemon: Daemon):
    state = await emulator.wait_for(streaming_session(), timeout=15)
    assert state["pipeline"]["status"] == "loaded"
    assert state["pipeline"]["load_count"] == 1
    assert state["pipeline"]["load_params"]["width"] == 576
    await wait_status(daemon, "streaming")
    (session,) = open_sessions(state)
    assert_in_sync(daemon, session)
    assert session["parameters"]["pipeline_ids"] == ["longlive"]
    assert session["parameters"]["input_mode"] == "text"
    assert session["receives_video"]  # offered sendrecv: the server's output track started
    assert daemon.supervisor.alive


async def test_live_changes_reach_the_session(emulator: Emulator, daemon: Daemon):
    await emulator.wait_for(streaming_session(), timeout=15)
    change_everything(daemon, 3)
    daemon.store.set("vace_context_scale", 1.9, source="test")

    def arrived(state: dict[str, Any]) -> bool:
        sessions = open_sessions(state)
        return bool(sessions) and sessions[0]["parameters"].get("vace_context_scale") == 1.9

    state = await emulator.wait_for(arrived, timeout=5)
    assert_in_sync(daemon, open_sessions(state)[0])


async def test_server_parameter_updates_merge_into_the_state(emulator: Emulator, daemon: Daemon):
    await emulator.wait_for(streaming_session(), timeout=15)
    changed = asyncio.Event()
    daemon.store.subscribe(lambda changes, source: source == "scope" and changed.set())
    async with ScopeClient(emulator.url) as client:
        await client.update_session_parameters({"kv_cache_attention_bias": 0.77})
    await asyncio.wait_for(changed.wait(), 5)
    assert daemon.store.get("kv_cache_attention_bias") == 0.77
    assert not daemon.store.outbox  # not echoed back


FAULTS = ["stream_stopped", "drop", "stall", "restart", "restart_keep_pipeline"]


@pytest.mark.parametrize("fault", FAULTS)
async def test_recovers_from_fault_with_state_resynced(
    emulator: Emulator, daemon: Daemon, fault: str
):
    reasons = Losses(daemon)
    state = await emulator.wait_for(streaming_session(), timeout=15)
    await wait_status(daemon, "streaming")
    for round_ in range(2):
        old = {s["id"] for s in state["sessions"]}
        change_everything(daemon, round_ + 1)
        frames_before = daemon.supervisor.status.frames
        await inject(emulator, fault)
        # Changes made during the outage must reach the new session too.
        daemon.store.set("vace_context_scale", 1.5 - 0.5 * round_, source="test")
        state = await emulator.wait_for(streaming_session(exclude=old), timeout=STALL + 10)
        await wait_status(daemon, "streaming", since_frames=frames_before)
        (session,) = [s for s in open_sessions(state) if s["id"] not in old]
        assert_in_sync(daemon, session)
    assert daemon.supervisor.status.reconnects == 2
    if fault == "restart":
        assert state["pipeline"]["load_count"] == 3  # reloaded after each restart
    if fault == "restart_keep_pipeline":
        assert state["pipeline"]["load_count"] == 1  # the pipeline is still loaded: no reload
        # Health and status look fine; only session/metrics shows the session is gone.
        assert reasons == ["the server no longer knows this session (restarted?)"] * 2


def paused_session(state: dict[str, Any]) -> bool:
    sessions = open_sessions(state)
    return bool(sessions) and sessions[0]["paused"]


async def test_a_paused_session_keeps_its_frozen_frame_and_is_not_rebuilt(
    emulator: Emulator, daemon: Daemon
):
    await emulator.wait_for(streaming_session(), timeout=15)
    daemon.store.set("paused", True, source="test")
    await emulator.wait_for(paused_session, timeout=5)
    frames = daemon.supervisor.status.frames
    # The watchdog's own deadline is what is under test here, so waiting past it is the point.
    await asyncio.sleep(STALL * 2)
    assert daemon.supervisor.status.reconnects == 0
    # Scope keeps sending the frozen frame while paused: that is what keeps the watchdog calm.
    assert daemon.supervisor.status.frames > frames
    assert daemon.supervisor.status.state == "streaming"


async def test_a_server_that_goes_quiet_while_paused_is_noticed(emulator: Emulator, daemon: Daemon):
    await emulator.wait_for(streaming_session(), timeout=15)
    daemon.store.set("paused", True, source="test")
    state = await emulator.wait_for(paused_session, timeout=5)
    old = {s["id"] for s in state["sessions"]}
    await inject(emulator, "stall")  # no frozen frames either: the session is broken

    def new_open_session(state: dict[str, Any]) -> bool:
        return any(s["id"] not in old for s in open_sessions(state))

    state = await emulator.wait_for(new_open_session, timeout=STALL + 10)
    assert daemon.supervisor.status.reconnects == 1
    (session,) = [s for s in open_sessions(state) if s["id"] not in old]
    assert session["parameters"]["paused"] is True  # still paused, as the performer left it
    # A session offered paused has no frame to freeze yet: its silence is not a stall.
    await asyncio.sleep(STALL * 2)
    assert daemon.supervisor.status.reconnects == 1
    daemon.store.set("paused", False, source="test")
    await emulator.wait_for(streaming_session(exclude=old), timeout=10)
    assert daemon.supervisor.status.reconnects == 1


async def test_another_clients_older_session_does_not_make_ours_look_lost(emulator: Emulator):
    # v0.2.4's session/metrics lists only the first open session: a leftover or another
    # client's session hides ours. That alone must not tear a healthy session down.
    config = make_config(emulator.url)
    async with ScopeClient(emulator.url) as client:
        await client.load_pipeline(["longlive"], config.pipeline.load_params())
    await emulator.wait_for(lambda st: st["pipeline"]["status"] == "loaded", timeout=10)
    other = ScopePeer(emulator.url)
    assert (await other.connect({"pipeline_ids": ["longlive"], "input_mode": "text"})).is_success
    try:
        daemon = Daemon(config)
        await daemon.start()
        try:
            state = await emulator.wait_for(streaming_session(exclude={other.session_id}), 15)
            metrics = await daemon.client.session_metrics()
            ours = daemon.supervisor.status.session_id
            assert ours not in metrics and other.session_id in metrics
            assert await daemon.supervisor._probe() is None
            assert daemon.supervisor.status.reconnects == 0
            assert len(open_sessions(state)) == 2
        finally:
            await daemon.stop()
    finally:
        await other.close()


def record_calls(target: Any, name: str) -> list[float]:
    """Instrument one client method: the monotonic time of every call (the call goes on)."""
    times: list[float] = []
    original = getattr(target, name)

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        times.append(time.monotonic())
        return await original(*args, **kwargs)

    setattr(target, name, recorded)
    return times


class Losses(list[str]):
    """The reasons of the session losses the supervisor reports; ``wait(n)`` for n of them."""

    def __init__(self, daemon: Daemon) -> None:
        super().__init__()
        self._changed = asyncio.Event()
        daemon.supervisor.on_status(self._status)

    def _status(self, status: dict[str, Any]) -> None:
        if status["state"] == "reconnecting" and status["reason"].startswith("server away"):
            return
        if status["state"] == "reconnecting" and status["reason"]:
            self.append(status["reason"])
            self._changed.set()

    async def wait(self, count: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while len(self) < count:
                self._changed.clear()
                await self._changed.wait()


def file_bytes(path: str | Path) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


async def test_server_away_health_checks_often_then_is_used_at_once(emulator: Emulator):
    daemon = Daemon(make_config(emulator.url))
    health = record_calls(daemon.client, "health")
    await daemon.start()
    try:
        state = await emulator.wait_for(streaming_session(), timeout=15)
        old = {s["id"] for s in state["sessions"]}
        offers = daemon.supervisor.offers
        await emulator.fault_restart(downtime=2.0)  # connections refused for 2 s
        went = time.monotonic()
        progress = daemon.supervisor.progress_at
        await emulator.wait_for(lambda s: s["listening"], timeout=10)
        back = time.monotonic()
        state = await emulator.wait_for(streaming_session(exclude=old), timeout=10)
        used_after = time.monotonic() - back
        away = [t for t in health if went <= t <= back]
        gaps = [b - a for a, b in itertools.pairwise(away)]
        assert len(away) >= 4 and max(gaps) <= 0.5, gaps  # cheap checks, often
        assert daemon.supervisor.offers == offers + 1  # no heavy step while it was away
        assert daemon.supervisor.progress_at > progress  # the watchdog sees a reconnect going on
        # Back = usable: reload (0.2 s here) and stream within a second.
        assert used_after < 1.0 + 0.2, used_after
        await wait_status(daemon, "streaming")
        assert_in_sync(daemon, open_sessions(state)[0])
    finally:
        await daemon.stop()
    assert not daemon.supervisor.alive


async def test_sessions_that_die_at_once_back_off(emulator: Emulator):
    daemon = Daemon(make_config(emulator.url))
    offers = record_calls(daemon.client, "offer")
    await daemon.start()
    try:
        state = await emulator.wait_for(streaming_session(), timeout=15)
        old = {s["id"] for s in state["sessions"]}
        emulator.fault_close_at_once(True)
        await inject(emulator, "drop")
        start = time.monotonic()
        # Counting offers over a window is the point of this test: the window is the wait.
        await asyncio.sleep(6.0)
        window = [t - start for t in offers if t >= start]
        gaps = [b - a for a, b in itertools.pairwise(window)]
        # Immediate, then 0.25, 0.5, 0.6, 0.6 s (+20 % jitter), each try ~0.3 s more: not
        # the ~20 in 6 s of a counter reset by every answered offer.
        cfg = daemon.config.session
        assert 4 <= len(window) <= 10, window
        assert min(gaps[-3:]) >= cfg.backoff_max, gaps  # grown to the cap and kept there
        assert daemon.supervisor.alive
        emulator.fault_close_at_once(False)
        behaving = time.monotonic()
        # Used within one backoff step: the cap with its jitter, then one session start.
        longest_wait = cfg.backoff_max * (1 + cfg.backoff_jitter)
        await emulator.wait_for(streaming_session(exclude=old), timeout=longest_wait + 1.5)
        assert time.monotonic() - behaving < longest_wait + 1.5
    finally:
        await daemon.stop()


async def test_garbage_sdp_is_a_loss_with_a_reason_and_retried(emulator: Emulator):
    emulator.fault_garbage_sdp(True)
    daemon = Daemon(make_config(emulator.url))
    reasons = Losses(daemon)
    await daemon.start()
    try:
        await reasons.wait(3, timeout=15)
        assert all("answer" in r and "SDP" in r for r in reasons), reasons
        assert daemon.supervisor.alive
        emulator.fault_garbage_sdp(False)
        await emulator.wait_for(streaming_session(), timeout=10)
        await wait_status(daemon, "streaming")
    finally:
        await daemon.stop()


async def test_an_error_of_our_own_is_a_loss_not_the_end(emulator: Emulator, monkeypatch):
    daemon = Daemon(make_config(emulator.url))
    reasons = Losses(daemon)
    original = daemon.supervisor._refresh_assets
    calls = 0

    async def buggy() -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RuntimeError("a bug of ours")
        await original()

    monkeypatch.setattr(daemon.supervisor, "_refresh_assets", buggy)
    await daemon.start()
    try:
        await emulator.wait_for(streaming_session(), timeout=15)
        assert reasons[:2] == ["internal error: RuntimeError: a bug of ours"] * 2
        assert daemon.supervisor.alive
    finally:
        await daemon.stop()


async def test_a_broken_frame_sink_does_not_drop_the_session(emulator: Emulator):
    class Broken:
        def on_frame(self, frame: Any) -> None:
            raise ValueError("output bug")

        def on_stream_state(self, streaming: bool) -> None:
            raise ValueError("output bug")

    daemon = Daemon(make_config(emulator.url), frame_sink=Broken())
    await daemon.start()
    try:
        await emulator.wait_for(streaming_session(min_frames=30), timeout=15)
        assert daemon.supervisor.status.frames >= 20
        assert daemon.supervisor.status.reconnects == 0
    finally:
        await daemon.stop()


async def test_failed_load_is_reported_and_retried(emulator: Emulator):
    await inject(emulator, "fail_next_load")
    daemon = Daemon(make_config(emulator.url, backoff_initial=0.1))
    reasons: list[str] = []
    daemon.supervisor.on_status(lambda s: reasons.append(s["reason"]))
    await daemon.start()
    try:
        state = await emulator.wait_for(streaming_session(), timeout=15)
        assert state["pipeline"]["load_count"] == 2
        assert "the Scope server could not load longlive — its own log says why" in reasons
    finally:
        await daemon.stop()


async def test_a_slow_load_is_waited_for_without_spinning(emulator: Emulator):
    emulator.fault_slow_load(2.0)
    daemon = Daemon(make_config(emulator.url))
    polls = record_calls(daemon.client, "pipeline_status")
    await daemon.start()
    try:
        await emulator.wait_for(streaming_session(), timeout=15)
        assert len(polls) <= 15  # 2 s of loading polled at ≤ 0.5 s, not in a tight loop
    finally:
        await daemon.stop()


async def test_the_pipeline_is_reloaded_only_when_it_differs(emulator: Emulator):
    async with ScopeClient(emulator.url) as client:
        await client.load_pipeline(["longlive"], {"width": 320, "height": 192})
        await emulator.wait_for(lambda s: s["pipeline"]["status"] == "loaded", timeout=10)
    config = make_config(emulator.url)
    for expected_loads in (2, 2):  # a different size: reloaded; the same config again: kept
        daemon = Daemon(config)
        await daemon.start()
        try:
            state = await emulator.wait_for(streaming_session(), timeout=15)
            assert state["pipeline"]["load_count"] == expected_loads
            assert state["pipeline"]["load_params"]["width"] == 576
        finally:
            await daemon.stop()
    lora = dataclasses.replace(
        config.pipeline, loras=[LoraEntry(name="ink", path="/models/ink.safetensors")]
    )
    daemon = Daemon(dataclasses.replace(config, pipeline=lora))
    await daemon.start()
    try:
        state = await emulator.wait_for(streaming_session(), timeout=15)
        assert state["pipeline"]["load_count"] == 3  # a LoRA added in the config: reloaded
    finally:
        await daemon.stop()


def write_png(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", (16, 16), colour).save(path)
    return path


async def test_reference_images_survive_a_restart_that_lost_them(
    emulator: Emulator, tmp_path: Path
):
    image = write_png(tmp_path / "anchor.png", (10, 120, 10))
    daemon = Daemon(make_config(emulator.url))
    await daemon.start()
    try:
        state = await emulator.wait_for(streaming_session(), timeout=15)
        path = await daemon.supervisor.assets.path_for(image)
        assert path is not None
        daemon.store.set("vace_ref_images", [path], source="test")
        await emulator.wait_for(
            lambda s: any(
                x["parameters"].get("vace_ref_images") == [path] for x in open_sessions(s)
            ),
            timeout=5,
        )
        old = {s["id"] for s in state["sessions"]}
        await emulator.fault_restart(downtime=0.3, lose_assets=True)
        assert file_bytes(path) is None
        state = await emulator.wait_for(streaming_session(exclude=old), timeout=15)
        (session,) = [s for s in open_sessions(state) if s["id"] not in old]
        (sent,) = session["parameters"]["vace_ref_images"]
        assert file_bytes(sent) == file_bytes(image)  # on the server again
        assert daemon.supervisor.assets.uploads == 2
    finally:
        await daemon.stop()


async def test_shutdown_ends_the_session_politely(emulator: Emulator):
    daemon = Daemon(make_config(emulator.url))
    await daemon.start()
    state = await emulator.wait_for(streaming_session(), timeout=15)
    (session,) = open_sessions(state)
    await daemon.stop()
    state = emulator.state()
    assert {"session_id": session["id"], "live": True} in [
        {k: d[k] for k in ("session_id", "live")} for d in state["deletes"]
    ]
    assert not open_sessions(state)


async def test_the_session_offers_sendrecv_and_frames_come(emulator: Emulator):
    frames = await frames_of_one_session(emulator)
    assert frames >= 5


async def test_a_recvonly_offer_would_get_no_frames(emulator: Emulator, monkeypatch):
    """The trap the test above guards: the same session offering recvonly gets nothing."""
    monkeypatch.setattr(session_module, "VIDEO_DIRECTION", "recvonly")
    assert await frames_of_one_session(emulator) == 0


async def frames_of_one_session(emulator: Emulator, wait: float = 1.5) -> int:
    """Open one ScopeSession (no supervisor) and count its frames over ``wait`` s."""
    async with ScopeClient(emulator.url) as client:
        await client.load_pipeline(["longlive"], {"width": 320, "height": 192})
        await emulator.wait_for(lambda s: s["pipeline"]["status"] == "loaded", timeout=10)
        frames = 0
        enough = asyncio.Event()

        def frame(_: Any) -> None:
            nonlocal frames
            frames += 1
            if frames >= 5:
                enough.set()

        session = ScopeSession(
            client, ice_servers=[], on_frame=frame, on_message=lambda m: None, on_lost=print
        )
        try:
            await session.open({"pipeline_ids": ["longlive"], "input_mode": "text"}, 5)
            assert session.channel_open
            # Absence of frames can only be shown by waiting; presence ends the wait early.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(enough.wait(), wait)
        finally:
            await session.close(polite=True)
        return frames


async def test_garbage_answer_raises_a_scope_error(emulator: Emulator):
    emulator.fault_garbage_sdp(True)
    async with ScopeClient(emulator.url) as client:
        await client.load_pipeline(["longlive"], {"width": 320, "height": 192})
        await emulator.wait_for(lambda s: s["pipeline"]["status"] == "loaded", timeout=10)
        session = ScopeSession(
            client,
            ice_servers=[],
            on_frame=lambda f: None,
            on_message=lambda m: None,
            on_lost=lambda r: None,
        )
        with pytest.raises(ScopeSessionError, match="SDP"):
            await session.open({"pipeline_ids": ["longlive"], "input_mode": "text"}, 5)
        await session.close(polite=False)


async def test_offer_before_load_is_400_and_bad_parameters_422(emulator: Emulator):
    async with ScopeClient(emulator.url) as client:
        session = ScopeSession(
            client,
            ice_servers=[],
            on_frame=lambda f: None,
            on_message=lambda m: None,
            on_lost=lambda r: None,
        )
        with pytest.raises(ScopeHTTPError) as err:
            await session.open({"pipeline_ids": ["longlive"], "input_mode": "text"}, 5)
        await session.close(polite=False)
        assert err.value.status == 400
        assert "Pipeline not loaded" in err.value.detail

        await client.load_pipeline(["longlive"], {"width": 320, "height": 192})
        await emulator.wait_for(lambda s: s["pipeline"]["status"] == "loaded", timeout=10)
        session = ScopeSession(
            client,
            ice_servers=[],
            on_frame=lambda f: None,
            on_message=lambda m: None,
            on_lost=lambda r: None,
        )
        with pytest.raises(ScopeHTTPError) as err:
            await session.open(
                {"pipeline_ids": ["longlive"], "input_mode": "text", "noise_scale": 2}, 5
            )
        await session.close(polite=False)
        assert err.value.status == 422
        assert "noise_scale" in err.value.detail


async def test_an_answer_without_video_is_a_scope_error():
    """A server whose answer sends no video (here: an aiortc peer with nothing to send)."""
    peers: list[RTCPeerConnection] = []

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peers.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())  # video: recvonly
        answer = pc.localDescription
        return web.json_response({"sdp": answer.sdp, "type": "answer", "sessionId": "s1"})

    app = web.Application()
    app.router.add_post("/api/v1/webrtc/offer", offer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with ScopeClient(f"http://127.0.0.1:{runner.addresses[0][1]}") as client:
            session = ScopeSession(
                client,
                ice_servers=[],
                on_frame=lambda f: None,
                on_message=lambda m: None,
                on_lost=lambda r: None,
            )
            with pytest.raises(ScopeSessionError, match="no video"):
                await session.open({"pipeline_ids": ["longlive"], "input_mode": "text"}, 5)
            await session.close(polite=False)
    finally:
        for pc in peers:
            await pc.close()
        await runner.cleanup()


async def test_streaming_status_names_the_session(emulator: Emulator, daemon: Daemon):
    named: list[str | None] = []
    daemon.supervisor.on_status(
        lambda s: s["state"] == "streaming" and named.append(s["session_id"])
    )
    state = await emulator.wait_for(streaming_session(), timeout=15)
    await inject(emulator, "drop")
    await emulator.wait_for(
        streaming_session(exclude={s["id"] for s in state["sessions"]}), timeout=STALL + 10
    )
    await wait_status(daemon, "streaming")
    assert named and None not in named  # status listeners (OSC, the bench) key on it


async def test_a_new_session_gets_first_frame_timeout_before_it_counts_as_stalled(
    emulator: Emulator,
):
    # Video mode with no track of ours: the server (real and emulated) connects and sends
    # nothing. A new session may warm up for first_frame_timeout, not the stall timeout.
    config = make_config(emulator.url, first_frame_timeout=3.0)
    video = dataclasses.replace(config.parameters, input_mode="video")
    daemon = Daemon(dataclasses.replace(config, parameters=video))
    reasons = Losses(daemon)
    opened = asyncio.Event()
    daemon.supervisor.on_status(
        lambda s: s["reason"] == "waiting for the first frame" and opened.set()
    )
    await daemon.start()
    try:
        await asyncio.wait_for(opened.wait(), 10)
        since_open = time.monotonic()
        await reasons.wait(1, timeout=10)
        assert "no first frame" in reasons[0], reasons
        assert time.monotonic() - since_open >= 3.0 - 0.2  # not STALL (1.5 s)
    finally:
        await daemon.stop()
