"""OSC for a daemon with several screens: ``/screen/<name>/...`` over real UDP.

Three screens, each its own ParameterStore and command bus (falling back to a
shared bus); ``main`` holds the server's own store, so unprefixed addresses are
its. Synchronisation as in test_osc_server: a barrier query answered in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from soundscape.control import osc_server
from soundscape.control.commands import CommandBus
from soundscape.control.osc_config import OscConfig
from soundscape.control.osc_logging import LogLimiter
from soundscape.control.osc_server import OscServer
from soundscape.control.screens import ScreenControls
from soundscape.scope.params import ParameterStore
from test_osc_server import LORAS, TIMEOUT, Peer, recorder

NAMES = ("main", "left", "right")


@dataclass
class Show:
    """Three screens, the calls their commands received, one OSC server."""

    server: OscServer
    screens: dict[str, ScreenControls]
    calls: list[tuple[str, str, tuple[Any, ...]]] = field(default_factory=list)
    called: asyncio.Queue[None] = field(default_factory=asyncio.Queue)

    def store(self, name: str) -> ParameterStore:
        return self.screens[name].store

    async def wait_calls(self, count: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while len(self.calls) < count:
                await self.called.get()


def make_screens(
    show_calls: Callable[[str, str, tuple[Any, ...]], None],
) -> tuple[CommandBus, dict[str, ScreenControls]]:
    shared = CommandBus()
    shared.register("tap", lambda *, source: show_calls("shared", "tap", ()))
    screens: dict[str, ScreenControls] = {}
    for name in NAMES:
        bus = CommandBus(parent=shared)
        for command in ("scene", "panic"):
            bus.register(
                command,
                lambda *args, source, n=name, c=command: show_calls(n, c, args),
            )
        prompts = [f"{name} prompt", f"{name} second"]
        screens[name] = ScreenControls(name, ParameterStore({"prompts": prompts}, loras=LORAS), bus)
    return shared, screens


@pytest.fixture
async def make_show() -> AsyncIterator[Callable[..., Any]]:
    servers: list[OscServer] = []

    async def make(**config: Any) -> Show:
        calls: list[tuple[str, str, tuple[Any, ...]]] = []
        called: asyncio.Queue[None] = asyncio.Queue()

        def record(screen: str, command: str, args: tuple[Any, ...]) -> None:
            calls.append((screen, command, args))
            called.put_nowait(None)

        _, screens = make_screens(record)
        main = screens["main"]
        config.setdefault("port", 0)
        server = OscServer(OscConfig(**config), main.store, main.commands, screens=screens)
        await server.start()
        servers.append(server)
        return Show(server, screens, calls, called)

    yield make
    for server in servers:
        await server.stop()


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = await Peer.open()
    yield p
    p.close()


# --------------------------------------------------------------------------- routing


async def test_prefixed_messages_reach_only_their_screen(make_show: Any, peer: Peer) -> None:
    show = await make_show()
    server = show.server
    before = {name: show.store(name).snapshot() for name in NAMES}
    left_changes = recorder(show.store("left"))
    send = lambda *a: peer.send(server, *a)  # noqa: E731
    send("/screen/left/scope/noise_scale", 0.3)
    send("/screen/left/soundscape/lora/wave", 2.0)
    send("/screen/left/soundscape/pause")  # toggle
    send("/screen/left/soundscape/prompt/1/weight", 0.25)
    send("/screen/right/soundscape/prompt/0", "a city at night")
    send("/screen/right/soundscape/norm/vace_context_scale", 0.5)
    send("/screen/right/soundscape/transition", 8, "slerp", "a sea", 1.0, "a sky", 0.5)
    send("/screen/right/scope/my_runtime_param", 0.8)
    send("/scope/noise_scale", 0.1)  # unprefixed: the main screen, as before
    send("/screen/main/scope/kv_cache_attention_bias", 0.5)  # the main screen by name
    await peer.barrier(server)

    left, right, main = (show.store(n) for n in ("left", "right", "main"))
    assert left.get("noise_scale") == 0.3 and left.lora_scale("wave") == 2.0
    assert left.get("paused") is True
    assert [p["weight"] for p in left.get("prompts")] == [1.0, 0.25]
    assert right.get("prompts") == [
        {"text": "a sea", "weight": 1.0},
        {"text": "a sky", "weight": 0.5},
    ]
    assert right.get("vace_context_scale") == 1.0 and right.get("my_runtime_param") == 0.8
    assert main.get("noise_scale") == 0.1 and main.get("kv_cache_attention_bias") == 0.5
    # Nothing else moved on any screen.
    changed = {
        "main": {"noise_scale", "kv_cache_attention_bias"},
        "left": {"noise_scale", "lora_scales", "paused", "prompts"},
        "right": {"prompts", "vace_context_scale", "my_runtime_param"},
    }
    for name in NAMES:
        after = show.store(name).snapshot()
        moved = {k for k in after if after[k] != before[name].get(k)}
        assert moved == changed[name], name
    # Tagged as OSC from this controller, so feedback skips its own move.
    assert left_changes[0][1] == f"osc:127.0.0.1:{peer.address[1]}"
    assert server.counters()["refused"] == 0


async def test_each_screen_has_its_own_prompt_transition_default(
    make_show: Any, peer: Peer
) -> None:
    show = await make_show()
    server = show.server
    left_changes = recorder(show.store("left"))
    main_changes = recorder(show.store("main"))
    peer.send(server, "/screen/left/scope/transition_steps", 4)
    peer.send(server, "/screen/left/scope/temporal_interpolation_method", "slerp")
    peer.send(server, "/screen/left/scope/prompt", "a forest")
    peer.send(server, "/scope/prompt", "a desert")  # the main screen still cuts
    await peer.barrier(server)
    assert left_changes[-1][0]["transition"]["num_steps"] == 4
    assert left_changes[-1][0]["transition"]["temporal_interpolation_method"] == "slerp"
    assert main_changes[-1][0] == {"prompts": [{"text": "a desert", "weight": 1.0}]}
    assert server.transition_steps == 0


async def test_commands_go_to_the_screen_bus_shared_ones_fall_back(
    make_show: Any, peer: Peer
) -> None:
    show = await make_show()
    server = show.server
    peer.send(server, "/screen/left/soundscape/scene", "intro")
    peer.send(server, "/screen/right/soundscape/scene/outro", 1.0)
    peer.send(server, "/soundscape/scene", 2.0)  # unprefixed: the main screen's bus
    peer.send(server, "/screen/right/soundscape/tap")  # not the screen's: the shared bus
    peer.send(server, "/screen/left/soundscape/reconnect")  # nobody handles it: refused
    await show.wait_calls(4)
    await peer.barrier(server)
    assert show.calls == [
        ("left", "scene", ("intro",)),
        ("right", "scene", ("outro",)),
        ("main", "scene", (2,)),
        ("shared", "tap", ()),
    ]
    assert server.counters()["refused"] == 1


# --------------------------------------------------------------------------- patterns


async def test_patterns_reach_every_matching_screen(make_show: Any, peer: Peer) -> None:
    show = await make_show()
    server = show.server
    send = lambda *a: peer.send(server, *a)  # noqa: E731
    send("/screen/*/soundscape/pause", True)
    send("/screen/{left,right}/scope/noise_scale", 0.2)
    send("/screen/left/soundscape/prompt/*/weight", 0.5)
    send("/screen/r?ght/soundscape/{noise,vace}", 0.3)
    send("/screen/x*/soundscape/pause", False)  # matches no screen: refused
    await peer.barrier(server)
    assert all(show.store(n).get("paused") is True for n in NAMES)
    assert [show.store(n).get("noise_scale") for n in NAMES] == [0.7, 0.2, 0.3]
    assert [p["weight"] for p in show.store("left").get("prompts")] == [0.5, 0.5]
    assert [p["weight"] for p in show.store("right").get("prompts")] == [1.0, 1.0]
    assert show.store("right").get("vace_context_scale") == 0.3
    assert server.counters()["refused"] == 1


async def test_drastic_commands_by_screen_pattern_only_with_a_literal_address(
    make_show: Any, peer: Peer
) -> None:
    show = await make_show()
    server = show.server
    # Panic on every screen: the wildcard names the screens, the address is literal.
    peer.send(server, "/screen/*/soundscape/panic")
    # A stray wildcard in the address part still never reaches panic.
    peer.send(server, "/screen/left/soundscape/{panic,reconnect}")
    peer.send(server, "/screen/*/soundscape/pan?c")
    await show.wait_calls(3)
    await peer.barrier(server)
    assert sorted(show.calls) == [(n, "panic", ()) for n in sorted(NAMES)]
    assert server.counters()["refused"] == 2  # the two patterns: they match nothing


# --------------------------------------------------------------------------- refusals


async def test_unknown_screen_refused_nothing_changed(
    make_show: Any, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    show = await make_show()
    server = show.server
    server.limiter = LogLimiter(clock=lambda: 0.0)  # a frozen clock: one line per key
    before = {name: show.store(name).snapshot() for name in NAMES}
    with capture_logs() as logs:
        monkeypatch.setattr(osc_server, "log", structlog.get_logger("test"))
        for _ in range(10):  # a controller repeating it
            peer.send(server, "/screen/centre/scope/noise_scale", 0.3)
        peer.send(server, "/screen/centre/soundscape/scene", "intro")
        peer.send(server, "/screen/left", 1.0)  # a screen, no address
        peer.send(server, "/screen/left/soundscape/status", "streaming")  # outbound only
        await peer.barrier(server)
    assert {name: show.store(name).snapshot() for name in NAMES} == before
    assert show.calls == []
    assert server.counters()["refused"] == 13
    refusals = [e for e in logs if e["event"] == "osc_refused"]
    unknown = [e for e in refusals if e["address"].startswith("/screen/centre/")]
    assert len(unknown) == 1  # rate-limited across addresses of an unknown screen
    assert unknown[0]["reason"] == "no screen 'centre' (screens: left, main, right)"
    reasons = {e["address"]: e["reason"] for e in refusals}
    assert reasons["/screen/left"] == "no such address"
    assert reasons["/screen/left/soundscape/status"] == (
        "this address is sent by the daemon, not received"
    )


async def test_single_screen_daemon_refuses_screen_addresses(
    peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ParameterStore()
    server = OscServer(OscConfig(port=0), store)
    await server.start()
    try:
        with capture_logs() as logs:
            monkeypatch.setattr(osc_server, "log", structlog.get_logger("test"))
            peer.send(server, "/screen/left/scope/noise_scale", 0.3)
            peer.send(server, "/screen/*/scope/noise_scale", 0.3)
            await peer.barrier(server)
        assert store.get("noise_scale") == 0.7
        assert server.counters()["refused"] == 2
        reasons = [e["reason"] for e in logs if e["event"] == "osc_refused"]
        assert "no screen 'left': this daemon drives a single screen" in reasons
    finally:
        await server.stop()


def test_screen_names_must_fit_in_an_osc_address() -> None:
    store = ParameterStore()
    for bad in ("", "two words", "a/b", "wall*", "{x}"):
        with pytest.raises(ValueError, match="cannot be part of an OSC address"):
            OscServer(
                OscConfig(port=0),
                store,
                screens={bad: ScreenControls(bad, ParameterStore(), CommandBus())},
            )


# --------------------------------------------------------------------------- feedback


async def test_feedback_under_the_screen_prefix_not_back_to_the_mover(make_show: Any) -> None:
    controller = await Peer.open()
    listener = await Peer.open()
    show = await make_show(feedback=[controller.target(), listener.target()], echo_match="address")
    server = show.server
    try:
        controller.send(server, "/screen/left/scope/noise_scale", 0.4)
        got = await controller.barrier(server)
        assert {m.address for m in got} == {
            "/screen/left/soundscape/noise",
            "/screen/left/soundscape/norm/noise_scale",
        }
        heard = await listener.expect("/soundscape/query/end")
        assert {m.address: m.args for m in heard[:-1]} == {
            "/screen/left/scope/noise_scale": (0.4,),
            "/screen/left/soundscape/noise": (0.4,),
            "/screen/left/soundscape/norm/noise_scale": (0.4,),
        }

        # A change from elsewhere (a scene, MIDI) on another screen goes to everyone.
        show.store("right").set("paused", True, source="midi")
        got = await controller.barrier(server)
        assert {(m.address, m.args) for m in got} == {
            ("/screen/right/scope/paused", (1,)),
            ("/screen/right/soundscape/pause", (1,)),
        }

        # The main screen: unprefixed exactly as before, and under its name too.
        show.store("main").set("vace_context_scale", 1.5, source="midi")
        got = await controller.barrier(server)
        addresses = {m.address for m in got}
        assert {"/scope/vace_context_scale", "/soundscape/vace"} <= addresses
        assert {"/screen/main/scope/vace_context_scale", "/screen/main/soundscape/vace"} <= (
            addresses
        )
        assert not any(a.startswith(("/screen/left", "/screen/right")) for a in addresses)
    finally:
        controller.close()
        listener.close()


async def test_query_under_a_prefix_answers_that_screen(make_show: Any, peer: Peer) -> None:
    listener = await Peer.open()
    show = await make_show(feedback=[listener.target()])
    server = show.server
    try:
        show.store("left").set("noise_scale", 0.25)
        server.send("/soundscape/beat", 3, 0.5)  # shared: the unprefixed query's
        peer.send(server, "/screen/left/soundscape/query")
        got = await peer.expect("/screen/left/soundscape/query/end")
        answered = {m.address: m.args for m in got[:-1]}
        assert got[-1].args == (len(answered),)
        assert all(a.startswith("/screen/left/") for a in answered)
        assert answered["/screen/left/scope/noise_scale"] == (0.25,)
        assert answered["/screen/left/soundscape/prompt/0"] == ("left prompt", 1.0)
        assert "/screen/left/soundscape/beat" not in answered
        # The feedback target gets it too.
        to_target = await listener.expect("/screen/left/soundscape/query/end")
        assert {m.address for m in to_target[:-1]} >= set(answered)

        # A pattern names the addresses with or without the prefix.
        for pattern in ("/soundscape/prompt/*", "/screen/left/soundscape/prompt/*"):
            peer.send(server, "/screen/left/soundscape/query", pattern)
            got = await peer.expect("/screen/left/soundscape/query/end")
            assert {m.address for m in got[:-1]} == {
                f"/screen/left/soundscape/prompt/{i}" for i in range(4)
            }

        # Every screen at once: each answers under its own prefix.
        peer.send(server, "/screen/*/soundscape/query", "/scope/prompt")
        seen: dict[str, tuple[Any, ...]] = {}
        async with asyncio.timeout(TIMEOUT):
            while len([a for a in seen if a.endswith("/query/end")]) < 3:
                message = await peer.inbox.get()
                seen[message.address] = message.args
        assert {a: v for a, v in seen.items() if a.endswith("/scope/prompt")} == {
            f"/screen/{n}/scope/prompt": (f"{n} prompt",) for n in NAMES
        }

        # The unprefixed query is the main screen's and the shared values, as before.
        peer.send(server, "/soundscape/query")
        got = await peer.expect("/soundscape/query/end")
        assert {m.address for m in got[:-1]} == {a for a, _ in server.dump()}
        assert not any(m.address.startswith("/screen/") for m in got)
    finally:
        listener.close()


async def test_screen_status_feedback(make_show: Any, peer: Peer) -> None:
    show = await make_show(feedback=[peer.target()])
    server = show.server
    server.on_screen_status("right", {"state": "reconnecting", "fps": 0.0, "reason": "gone"})
    got = await peer.expect("/screen/right/soundscape/status", ("reconnecting",))
    server.on_status({"state": "streaming", "fps": 29.5})
    got += await peer.expect("/screen/main/soundscape/status", ("streaming",))
    got += await peer.barrier(server)
    heard = {(m.address, m.args) for m in got}
    assert {
        ("/screen/right/soundscape/status/reason", ("gone",)),
        ("/soundscape/status", ("streaming",)),
        ("/soundscape/status/fps", (29.5,)),
        ("/screen/main/soundscape/status/fps", (29.5,)),
    } <= heard
    assert not any(a.startswith("/screen/left") for a, _ in heard)
    # A query under the prefix includes the screen's status.
    peer.send(server, "/screen/right/soundscape/query", "/soundscape/status")
    got = await peer.expect("/screen/right/soundscape/query/end", (1,))
    assert (got[-2].address, got[-2].args) == ("/screen/right/soundscape/status", ("reconnecting",))


async def test_set_screens_after_start(peer: Peer) -> None:
    calls: list[tuple[str, str, tuple[Any, ...]]] = []
    _, screens = make_screens(lambda *c: calls.append(c))
    main = screens["main"]
    server = OscServer(OscConfig(port=0, feedback=[peer.target()]), main.store, main.commands)
    await server.start()
    try:
        peer.send(server, "/screen/left/scope/noise_scale", 0.3)  # no screens yet
        await peer.barrier(server)
        assert server.counters()["refused"] == 1

        server.set_screens(screens)
        peer.send(server, "/screen/left/scope/noise_scale", 0.3)
        screens["right"].store.set("noise_scale", 0.9, source="midi")
        got = await peer.barrier(server)
        assert screens["left"].store.get("noise_scale") == 0.3
        assert ("/screen/right/scope/noise_scale", (0.9,)) in {(m.address, m.args) for m in got}

        # Without "right": its messages are refused and its changes no longer sent.
        server.set_screens({n: s for n, s in screens.items() if n != "right"})
        screens["right"].store.set("noise_scale", 0.1, source="midi")
        screens["left"].store.set("noise_scale", 0.6, source="midi")
        peer.send(server, "/screen/right/scope/noise_scale", 0.3)
        got = await peer.barrier(server)
        addresses = {m.address for m in got}
        assert "/screen/left/scope/noise_scale" in addresses
        assert not any(a.startswith("/screen/right") for a in addresses)
        assert server.counters()["refused"] == 2
    finally:
        await server.stop()
