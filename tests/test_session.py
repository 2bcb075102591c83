"""The daemon against the Scope emulator over real aiortc: load, stream, every
fault, and the state resync after each recovery."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from soundscape.app import Daemon
from soundscape.config import Config, load
from soundscape.emulator import Emulator, EmulatorConfig
from soundscape.errors import ScopeHTTPError
from soundscape.scope.api import ScopeClient
from soundscape.scope.session import ScopeSession

STALL = 1.5


def make_config(url: str, **session: Any) -> Config:
    config = load(None)
    fast = dataclasses.replace(config.session, stall_timeout=STALL, **session)
    return dataclasses.replace(
        config, scope=dataclasses.replace(config.scope, url=url), session=fast
    )


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emu = Emulator(EmulatorConfig(width=320, height=192, fps=30, load_time=0.2))
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
        if ours.get(k) != theirs.get(k)
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


FAULTS = ["stream_stopped", "drop", "stall", "restart"]


@pytest.mark.parametrize("fault", FAULTS)
async def test_recovers_from_fault_with_state_resynced(
    emulator: Emulator, daemon: Daemon, fault: str
):
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


async def test_paused_session_is_not_rebuilt(emulator: Emulator, daemon: Daemon):
    await emulator.wait_for(streaming_session(), timeout=15)
    daemon.store.set("paused", True, source="test")

    def paused(state: dict[str, Any]) -> bool:
        sessions = open_sessions(state)
        return bool(sessions) and sessions[0]["paused"]

    state = await emulator.wait_for(paused, timeout=5)
    await inject(emulator, "stall")  # no frames at all now: only "paused" keeps the watchdog calm
    # The watchdog's own deadline is what is under test here, so waiting past it is the point.
    await asyncio.sleep(STALL * 2)
    assert daemon.supervisor.status.reconnects == 0
    daemon.store.set("paused", False, source="test")
    await emulator.wait_for(
        streaming_session(exclude={s["id"] for s in state["sessions"]}), timeout=STALL + 10
    )
    assert daemon.supervisor.status.reconnects == 1


async def test_backs_off_while_server_is_down_then_recovers(emulator: Emulator):
    config = make_config(emulator.url, backoff_initial=0.1, backoff_max=0.4)
    daemon = Daemon(config)
    attempts: list[int] = []
    daemon.supervisor.on_status(
        lambda s: s["state"] == "reconnecting" and attempts.append(s["attempt"])
    )
    await daemon.start()
    try:
        state = await emulator.wait_for(streaming_session(), timeout=15)
        await emulator.fault_restart(downtime=2.0)
        state = await emulator.wait_for(
            streaming_session(exclude={s["id"] for s in state["sessions"]}), timeout=15
        )
        assert len(attempts) >= 3  # retried while the server was away
        assert max(attempts) >= 3
        await wait_status(daemon, "streaming")
        assert_in_sync(daemon, open_sessions(state)[0])
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
        assert any("pipeline load failed" in r for r in reasons), reasons
    finally:
        await daemon.stop()


async def test_shutdown_ends_the_session_politely(emulator: Emulator):
    daemon = Daemon(make_config(emulator.url))
    await daemon.start()
    await emulator.wait_for(streaming_session(), timeout=15)
    await daemon.stop()
    state = await emulator.wait_for(lambda s: not open_sessions(s), timeout=5)
    assert state["sessions"] and not open_sessions(state)


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
