"""The OSC server over real UDP: liblo's oscsend and python-osc as controllers.

Synchronisation without sleeps: a controller's ``barrier()`` sends
``/soundscape/query`` for a pattern that matches nothing and waits for the
``/soundscape/query/end`` answer; the server handles packets in order, so
everything sent before it has been handled when it arrives.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
import structlog
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types
from pythonosc.udp_client import SimpleUDPClient
from structlog.testing import capture_logs

from soundscape.control import osc_server
from soundscape.control.commands import CommandBus
from soundscape.control.osc_config import OscConfig
from soundscape.control.osc_logging import LogLimiter
from soundscape.control.osc_packet import Message, decode, float32_decimal
from soundscape.control.osc_server import OscServer
from soundscape.errors import BackendUnavailable
from soundscape.scope.params import ParameterStore

LORAS = {"wave": "/loras/wave.safetensors"}
TIMEOUT = 10.0

needs_liblo = pytest.mark.skipif(
    shutil.which("oscsend") is None, reason="liblo-tools (oscsend/oscdump) not installed"
)


# --------------------------------------------------------------------------- helpers


def build(address: str, *args: Any) -> bytes:
    """One message; an arg is a value (type guessed) or (value, tag)."""
    builder = OscMessageBuilder(address)
    for arg in args:
        if isinstance(arg, tuple):
            builder.add_arg(*arg)
        else:
            builder.add_arg(arg)
    return builder.build().dgram


class Peer(asyncio.DatagramProtocol):
    """A controller: one real UDP socket that sends OSC and reads what comes back."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, host: str = "127.0.0.1") -> Peer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(cls, local_addr=(host, 0))
        return peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        for timed in decode(data):
            self.inbox.put_nowait(timed.message)

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def target(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def send_raw(self, data: bytes, server: OscServer) -> None:
        assert self.transport is not None and server.address is not None
        self.transport.sendto(data, server.address)

    def send(self, server: OscServer, address: str, *args: Any) -> None:
        self.send_raw(build(address, *args), server)

    async def expect(self, address: str, args: tuple[Any, ...] | None = None) -> list[Message]:
        """Read until ``address`` (with ``args`` if given) arrives; return everything read."""
        seen: list[Message] = []
        async with asyncio.timeout(TIMEOUT):
            while True:
                message = await self.inbox.get()
                seen.append(message)
                if message.address == address and (args is None or message.args == args):
                    return seen

    async def barrier(self, server: OscServer) -> list[Message]:
        """Everything sent before has been handled; returns what arrived meanwhile."""
        self.send(server, "/soundscape/query", "/nothing/matches/this")
        return (await self.expect("/soundscape/query/end", (0,)))[:-1]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


MakeServer = Callable[..., Awaitable[OscServer]]


@pytest.fixture
async def make_server() -> AsyncIterator[MakeServer]:
    servers: list[OscServer] = []

    async def make(
        store: ParameterStore | None = None, commands: CommandBus | None = None, **config: Any
    ) -> OscServer:
        config.setdefault("port", 0)
        server = OscServer(OscConfig(**config), store or ParameterStore(loras=LORAS), commands)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = await Peer.open()
    yield p
    p.close()


def oscsend(server: OscServer, address: str, types: str = "", *values: str) -> None:
    """liblo's oscsend: an OSC implementation independent of python-osc."""
    assert server.address is not None
    subprocess.run(
        ["oscsend", "127.0.0.1", str(server.address[1]), address, types, *values],
        check=True,
        timeout=10,
    )


def recorder(store: ParameterStore) -> list[tuple[dict[str, Any], str]]:
    changes: list[tuple[dict[str, Any], str]] = []
    store.subscribe(lambda applied, source: changes.append((applied, source)))
    return changes


# --------------------------------------------------------------------------- Scope's addresses


@needs_liblo
async def test_touchdesigner_rig_for_scope_works_unchanged(
    make_server: MakeServer, peer: Peer
) -> None:
    store = ParameterStore(loras=LORAS)
    server = await make_server(store)
    # What a TouchDesigner rig built for Scope's OSC sends (CHOPs send floats).
    oscsend(server, "/scope/prompt", "s", "a neon city at night")
    oscsend(server, "/scope/interpolation_method", "s", "linear")
    oscsend(server, "/scope/noise_scale", "f", "0.35")
    oscsend(server, "/scope/noise_controller", "T")
    oscsend(server, "/scope/kv_cache_attention_bias", "f", "0.5")
    oscsend(server, "/scope/denoising_step_list", "ffff", "1000", "800", "600", "400")
    oscsend(server, "/scope/manage_cache", "f", "0")
    oscsend(server, "/scope/vace_context_scale", "d", "1.5")
    oscsend(server, "/scope/paused", "f", "1")
    oscsend(server, "/scope/paused", "F")
    oscsend(server, "/scope/input_mode", "s", "text")
    oscsend(server, "/scope/my_runtime_param", "f", "0.8")  # any other runtime parameter
    oscsend(server, "/scope/my_list_param", "ii", "3", "4")
    await peer.barrier(server)

    state = store.snapshot()
    assert state["prompts"] == [{"text": "a neon city at night", "weight": 1.0}]
    assert state["noise_scale"] == 0.35
    assert state["noise_controller"] is True
    assert state["kv_cache_attention_bias"] == 0.5
    assert state["denoising_step_list"] == [1000, 800, 600, 400]
    assert state["manage_cache"] is False
    assert state["vace_context_scale"] == 1.5
    assert state["paused"] is False
    assert state["my_runtime_param"] == 0.8
    assert state["my_list_param"] == [3, 4]
    counters = server.counters()
    assert counters["refused"] == 0 and counters["applied"] == 14  # with the barrier
    # The sender ships it: Scope gets the same values (noise only in video mode).
    shipped = store.outbox.take()
    assert shipped["kv_cache_attention_bias"] == 0.5 and shipped["my_runtime_param"] == 0.8


async def test_scope_prompt_cuts_then_transitions(make_server: MakeServer, peer: Peer) -> None:
    store = ParameterStore()
    changes = recorder(store)
    server = await make_server(store)
    client = SimpleUDPClient(*server.address)  # type: ignore[misc]
    client.send_message("/scope/prompt", "a forest")
    await peer.barrier(server)
    assert changes[-1][0] == {"prompts": [{"text": "a forest", "weight": 1.0}]}
    assert "transition" not in store.outbox.take()

    client.send_message("/scope/transition_steps", 6.0)  # a CHOP float
    client.send_message("/scope/temporal_interpolation_method", "slerp")
    client.send_message("/scope/prompt", "a city")
    await peer.barrier(server)
    assert changes[-1][0]["transition"] == {
        "target_prompts": [{"text": "a city", "weight": 1.0}],
        "num_steps": 6,
        "temporal_interpolation_method": "slerp",
    }
    assert store.get("prompts") == [{"text": "a city", "weight": 1.0}]
    assert store.outbox.take()["transition"]["num_steps"] == 6


async def test_prompt_transition_from_config(make_server: MakeServer, peer: Peer) -> None:
    store = ParameterStore()
    changes = recorder(store)
    server = await make_server(store, prompt_transition_steps=5, prompt_transition_method="slerp")
    peer.send(server, "/scope/prompt", "a desert")
    await peer.barrier(server)
    assert changes[-1][0]["transition"]["num_steps"] == 5
    assert changes[-1][0]["transition"]["temporal_interpolation_method"] == "slerp"
    assert changes[-1][1] == f"osc:127.0.0.1:{peer.address[1]}"


# --------------------------------------------------------------------------- /soundscape tree


async def test_soundscape_tree(make_server: MakeServer, peer: Peer) -> None:
    store = ParameterStore(loras=LORAS)
    changes = recorder(store)
    server = await make_server(store)
    send = lambda *a: peer.send(server, *a)  # noqa: E731
    send("/soundscape/prompt/0", "a forest")
    send("/soundscape/prompt/1", "a city", 0.5)  # appends
    send("/soundscape/prompt/1/weight", 0.25)
    send("/soundscape/interpolation", "slerp")
    send("/soundscape/lora/wave", 2.5)
    send("/soundscape/noise", 0.2)
    send("/soundscape/noise/auto", True)
    send("/soundscape/vace", 1.25)
    send("/soundscape/cache/bias", 0.4)
    send("/soundscape/cache/manage", 0)
    send("/soundscape/steps", [900, 600, 300])  # an array
    send("/soundscape/pause")  # toggle: pause
    send("/soundscape/pause")  # toggle: resume
    send("/soundscape/pause", True)
    await peer.barrier(server)
    state = store.snapshot()
    assert state["prompts"] == [
        {"text": "a forest", "weight": 1.0},
        {"text": "a city", "weight": 0.25},
    ]
    assert state["prompt_interpolation_method"] == "slerp"
    assert state["lora_scales"] == [{"path": "/loras/wave.safetensors", "scale": 2.5}]
    assert state["noise_scale"] == 0.2 and state["noise_controller"] is True
    assert state["vace_context_scale"] == 1.25 and state["kv_cache_attention_bias"] == 0.4
    assert state["manage_cache"] is False
    assert state["denoising_step_list"] == [900, 600, 300]
    assert state["paused"] is True
    assert [c for c, _ in changes if "paused" in c] == [
        {"paused": True},
        {"paused": False},
        {"paused": True},
    ]

    send("/soundscape/cache/reset", 1.0)  # press
    send("/soundscape/cache/reset", 0.0)  # release: nothing
    send("/scope/reset_cache")
    send("/soundscape/prompts", "one", 0.5, "two", "three", 2)
    send("/soundscape/prompt/2/remove")
    send("/soundscape/transition", 8, "linear", "a sea", 0.9)
    await peer.barrier(server)
    assert sum(1 for c, _ in changes if "reset_cache" in c) == 2
    assert any(
        c.get("prompts")
        == [
            {"text": "one", "weight": 0.5},
            {"text": "two", "weight": 1.0},
            {"text": "three", "weight": 2.0},
        ]
        for c, _ in changes
    )
    transition = changes[-1][0]["transition"]
    assert transition["target_prompts"] == [{"text": "a sea", "weight": 0.9}]
    assert transition["num_steps"] == 8
    assert store.get("prompts") == [{"text": "a sea", "weight": 0.9}]
    assert server.counters()["refused"] == 0


async def test_normalised_targets(make_server: MakeServer, peer: Peer) -> None:
    store = ParameterStore(loras=LORAS)
    server = await make_server(store)
    peer.send(server, "/soundscape/norm/lora:wave", 0.75)
    peer.send(server, "/soundscape/norm/kv_cache_attention_bias", 0.0)
    peer.send(server, "/soundscape/norm/vace_context_scale", 0.5)
    peer.send(server, "/soundscape/norm/prompt_weight:0", 0.4)
    peer.send(server, "/soundscape/norm/noise_scale", 1.5)  # outside 0..1: refused
    await peer.barrier(server)
    assert store.lora_scale("wave") == 5.0
    assert store.get("kv_cache_attention_bias") == 0.01
    assert store.get("vace_context_scale") == 1.0
    assert store.get("prompts")[0]["weight"] == 0.4
    assert store.get("noise_scale") == 0.7
    assert server.counters()["refused"] == 1


async def test_commands_go_through_the_bus_in_order(make_server: MakeServer, peer: Peer) -> None:
    bus = CommandBus()
    calls: list[tuple[Any, ...]] = []
    done = asyncio.Event()

    def record(*entry: Any) -> None:
        calls.append(entry)
        if len(calls) == 10:
            done.set()

    def handler(name: str) -> Callable[..., None]:
        return lambda *args, source: record(name, *args, source)

    async def scene(ref: Any, *, source: str) -> None:
        await asyncio.sleep(0)  # an async handler
        record("scene", ref, source)

    for name in ("panic", "tap", "learn", "variation", "mapping"):
        bus.register(name, handler(name))
    bus.register("scene", scene)
    server = await make_server(commands=bus)
    send = lambda *a: peer.send(server, *a)  # noqa: E731
    send("/soundscape/scene", "intro")
    send("/soundscape/scene", 3.0)  # a CHOP float: scene number 3
    send("/soundscape/scene/outro", 1.0)  # a button's press ...
    send("/soundscape/scene/outro", 0.0)  # ... and release: ignored
    send("/soundscape/tap")
    send("/soundscape/tap", 0)  # release: ignored
    send("/soundscape/panic", True)
    send("/soundscape/learn", "lora:wave")
    send("/soundscape/reconnect")  # nobody handles it: refused
    send("/soundscape/variation")  # the command's own default (next)
    send("/soundscape/variation", "random")
    send("/soundscape/variation/calm", 1.0)
    send("/soundscape/mapping", False)
    async with asyncio.timeout(TIMEOUT):
        await done.wait()
    await peer.barrier(server)
    source = f"osc-command:127.0.0.1:{peer.address[1]}"
    assert calls == [
        ("scene", "intro", source),
        ("scene", 3, source),
        ("scene", "outro", source),
        ("tap", source),
        ("panic", source),
        ("learn", "lora:wave", source),
        ("variation", source),
        ("variation", "random", source),
        ("variation", "calm", source),
        ("mapping", False, source),
    ]
    assert server.counters()["refused"] == 1


async def test_patterns_never_reach_panic_or_reconnect(make_server: MakeServer, peer: Peer) -> None:
    bus = CommandBus()
    calls: list[str] = []
    second_tap = asyncio.Event()

    def record(name: str) -> None:
        calls.append(name)
        if calls.count("tap") == 2:
            second_tap.set()

    for name in ("panic", "tap", "reconnect"):
        bus.register(name, lambda *, source, n=name: record(n))
    server = await make_server(commands=bus)
    peer.send(server, "/soundscape/{panic,tap,reconnect}")
    peer.send(server, "/soundscape/panic")  # the literal address works
    peer.send(server, "/soundscape/tap")  # commands run in order: this one comes last
    async with asyncio.timeout(TIMEOUT):
        await second_tap.wait()
    assert calls == ["tap", "panic", "tap"]


async def test_failing_command_is_refused_and_the_worker_goes_on(
    make_server: MakeServer, peer: Peer
) -> None:
    bus = CommandBus()
    tapped = asyncio.Event()

    def broken(*, source: str) -> None:
        raise RuntimeError("a bug in a handler")

    bus.register("panic", broken)
    bus.register("tap", lambda *, source: tapped.set())
    server = await make_server(commands=bus)
    peer.send(server, "/soundscape/panic")
    peer.send(server, "/soundscape/tap")
    async with asyncio.timeout(TIMEOUT):
        await tapped.wait()
    assert server.counters()["refused"] == 1 and server.counters()["applied"] == 1


# --------------------------------------------------------------------------- patterns, bundles


async def test_address_patterns(make_server: MakeServer, peer: Peer) -> None:
    store = ParameterStore({"prompts": ["a", "b", "c"], "vace_context_scale": 1.0}, loras=LORAS)
    server = await make_server(store)
    peer.send(server, "/soundscape/prompt/*/weight", 0.25)
    peer.send(server, "/soundscape/{noise,vace}", 0.3)
    peer.send(server, "/scope/noise_sc?le", 0.4)
    peer.send(server, "/soundscape/prompt/[!0]", "changed")
    peer.send(server, "/nowhere/*", 1.0)  # matches nothing: refused
    peer.send(server, "/scope/[", 1.0)  # not a valid pattern: refused
    await peer.barrier(server)
    assert [p["weight"] for p in store.get("prompts")] == [0.25, 0.25, 0.25]
    assert [p["text"] for p in store.get("prompts")] == ["a", "changed", "changed"]
    assert store.get("noise_scale") == 0.4
    assert store.get("vace_context_scale") == 0.3
    assert server.counters()["refused"] == 2


async def test_bundle_with_future_time_tag_applies_at_its_time(
    make_server: MakeServer, peer: Peer
) -> None:
    store = ParameterStore()
    server = await make_server(store)
    applied = asyncio.Event()
    applied_at: list[float] = []

    def on_change(changes: dict[str, Any], source: str) -> None:
        if changes.get("noise_scale") == 0.3:
            applied_at.append(time.time())
            applied.set()

    store.subscribe(on_change)
    when = time.time() + 0.6
    bundle = OscBundleBuilder(when)
    msg = OscMessageBuilder("/scope/noise_scale")
    msg.add_arg(0.3, "f")
    bundle.add_content(msg.build())
    now_msg = OscMessageBuilder("/scope/kv_cache_attention_bias")
    now_msg.add_arg(0.9, "f")
    immediate = OscBundleBuilder(osc_types.IMMEDIATELY)
    immediate.add_content(now_msg.build())
    immediate.add_content(bundle.build())  # a nested bundle, later than its parent
    peer.send_raw(immediate.build().dgram, server)

    await peer.barrier(server)
    assert store.get("kv_cache_attention_bias") == 0.9  # the immediate part is in
    assert store.get("noise_scale") == 0.7 and not applied.is_set()  # the timed one waits
    assert server.counters()["scheduled"] == 1
    async with asyncio.timeout(TIMEOUT):
        await applied.wait()
    assert applied_at[0] >= when  # at, not before, the time tag


async def test_bundle_timing_can_be_ignored(make_server: MakeServer, peer: Peer) -> None:
    store = ParameterStore()
    server = await make_server(store, time_tags="ignore")
    bundle = OscBundleBuilder(time.time() + 30)
    msg = OscMessageBuilder("/scope/noise_scale")
    msg.add_arg(0.3, "f")
    bundle.add_content(msg.build())
    peer.send_raw(bundle.build().dgram, server)
    await peer.barrier(server)
    assert store.get("noise_scale") == 0.3


async def test_bundles_too_far_ahead_refused_and_waiting_ones_cancelled_on_stop(
    make_server: MakeServer, peer: Peer
) -> None:
    store = ParameterStore()
    server = await make_server(store, max_bundle_delay=10)
    for ahead in (60.0, 5.0):
        bundle = OscBundleBuilder(time.time() + ahead)
        msg = OscMessageBuilder("/scope/noise_scale")
        msg.add_arg(0.3, "f")
        bundle.add_content(msg.build())
        peer.send_raw(bundle.build().dgram, server)
    await peer.barrier(server)
    assert server.counters()["refused"] == 1 and server.counters()["scheduled"] == 1
    assert len(server._scheduled) == 1
    await server.stop()
    assert not server._scheduled
    assert store.get("noise_scale") == 0.7


# --------------------------------------------------------------------------- refusals


async def test_wrong_types_and_ranges_refused_state_kept(
    make_server: MakeServer, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ParameterStore({"prompts": ["a", "b"]}, loras=LORAS)
    server = await make_server(store)
    server.limiter = LogLimiter(clock=lambda: 0.0)  # a frozen clock: exactly one line each
    before = store.snapshot()
    bad: list[tuple[str, tuple[Any, ...]]] = [
        ("/scope/noise_scale", (2.0,)),
        ("/soundscape/vace", ("loud",)),
        ("/scope/noise_scale", ()),
        ("/scope/noise_scale", (0.1, 0.2)),
        ("/scope/kv_cache_attention_bias", (0.0,)),
        ("/scope/denoising_step_list", (500, 750)),  # not descending
        ("/scope/interpolation_method", ("cubic",)),
        ("/scope/temporal_interpolation_method", ("cubic",)),
        ("/scope/transition_steps", (-1,)),
        ("/scope/paused", (0.5,)),
        ("/scope/pipeline_ids", ("other",)),
        ("/scope/prompt", (3,)),
        ("/scope/prompt", ("   ",)),
        ("/soundscape/prompt/7", ("x",)),
        ("/soundscape/prompt/x", ("x",)),
        ("/soundscape/prompt/5/weight", (0.5,)),
        ("/soundscape/prompt/0/weight", (-1.0,)),
        ("/soundscape/prompts", ("a", "b", "c", "d", "e")),
        ("/soundscape/transition", (4, "cubic", "a")),
        ("/soundscape/lora/unknown", (1.0,)),
        ("/soundscape/lora/wave", (11.0,)),
        ("/soundscape/norm/bogus", (0.5,)),
        ("/soundscape/scene", ("intro",)),  # no scene command registered
        ("/soundscape/status", ("streaming",)),  # sent by the daemon only
        ("/no/such/address", (1,)),
    ]
    with capture_logs() as logs:
        monkeypatch.setattr(osc_server, "log", structlog.get_logger("test"))
        for address, args in bad:
            peer.send(server, address, *args)
        for _ in range(20):  # a controller repeating a wrong value
            peer.send(server, "/scope/noise_scale", 5.0)
        await peer.barrier(server)
    assert store.snapshot() == before
    counters = server.counters()
    assert counters["refused"] == len(bad) + 20
    assert counters["applied"] == 1  # the barrier's query
    refusals = [e for e in logs if e["event"] == "osc_refused"]
    by_address = {e["address"]: e for e in refusals}
    assert by_address["/scope/kv_cache_attention_bias"]["reason"] == (
        "kv_cache_attention_bias: 0 is outside 0.01..1"
    )
    assert "expected f, got string 'loud'" in str([e["reason"] for e in refusals])
    assert by_address["/soundscape/lora/unknown"]["reason"].startswith("lora 'unknown'")
    assert by_address["/no/such/address"]["reason"] == "no such address"
    # Rate-limited per address: the 21 refusals of /scope/noise_scale made one line.
    assert sum(1 for e in refusals if e["address"] == "/scope/noise_scale") == 1


async def test_malformed_packets_counted_server_keeps_answering(
    make_server: MakeServer, peer: Peer
) -> None:
    server = await make_server()
    hang = b"#bundle\x00" + b"\x00" * 7 + b"\x01" + b"\xff\xff\xff\xfc"  # size -4
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # asyncio will not send b""
    for junk in (b"", b"garbage", b"/a\x00", hang, b"/x\x00\x00,c\x00\x00\xff\xff\xff\xff"):
        raw.sendto(junk, server.address)
    raw.close()
    await peer.barrier(server)
    assert server.counters()["malformed"] == 5


async def test_allow_list_drops_other_networks(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ParameterStore()
    server = await make_server(store, host="0.0.0.0", allow=["127.0.0.1/32"])
    server.limiter = LogLimiter(clock=lambda: 0.0)
    outsider = await Peer.open("127.0.0.2")  # another loopback address, outside the list
    insider = await Peer.open("127.0.0.1")
    target = ("127.0.0.1", server.address[1])  # type: ignore[index]
    try:
        with capture_logs() as logs:
            monkeypatch.setattr(osc_server, "log", structlog.get_logger("test"))
            for _ in range(3):
                outsider.transport.sendto(build("/scope/noise_scale", 0.1), target)  # type: ignore[union-attr]
            insider.transport.sendto(build("/soundscape/query", "/none"), target)  # type: ignore[union-attr]
            await insider.expect("/soundscape/query/end")
        assert store.get("noise_scale") == 0.7
        assert server.counters()["not_allowed"] == 3
        lines = [e for e in logs if e["event"] == "osc_not_allowed"]
        assert len(lines) == 1 and lines[0]["source"] == "127.0.0.2"
    finally:
        outsider.close()
        insider.close()


async def test_disabled_server_does_not_listen() -> None:
    server = OscServer(OscConfig(enabled=False, port=0), ParameterStore())
    await server.start()
    assert server.address is None
    server.send("/soundscape/beat", 1)  # publishing with OSC off is a no-op
    server.on_status({"state": "streaming"})
    await server.stop()


async def test_bind_failure_says_why() -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        server = OscServer(OscConfig(port=taken.getsockname()[1]), ParameterStore())
        with pytest.raises(BackendUnavailable, match=r"OSC cannot listen on 127\.0\.0\.1"):
            await server.start()
    finally:
        taken.close()


# --------------------------------------------------------------------------- feedback


async def test_feedback_only_changes_and_no_echo_to_sender(make_server: MakeServer) -> None:
    # The controller listens on the socket it sends from (like TouchOSC with one port),
    # so echo_match="address" recognises it among several controllers on one machine.
    controller = await Peer.open()
    listener = await Peer.open()
    store = ParameterStore()
    server = await make_server(
        store, feedback=[controller.target(), listener.target()], echo_match="address"
    )
    try:
        controller.send(server, "/scope/noise_scale", 0.4)
        got = await controller.barrier(server)
        assert {m.address for m in got} == {"/soundscape/noise", "/soundscape/norm/noise_scale"}
        heard = await listener.expect("/soundscape/query/end")
        assert {m.address: m.args for m in heard[:-1]} == {
            "/scope/noise_scale": (0.4,),
            "/soundscape/noise": (0.4,),
            "/soundscape/norm/noise_scale": (0.4,),
        }

        controller.send(server, "/scope/noise_scale", 0.4)  # no change: nothing goes out
        controller.send(server, "/soundscape/cache/bias", 0.5)
        got = await controller.barrier(server)
        assert {m.address for m in got} == {
            "/scope/kv_cache_attention_bias",
            "/soundscape/norm/kv_cache_attention_bias",
        }
        heard = await listener.expect("/soundscape/query/end")
        assert {m.address for m in heard[:-1]} == {
            "/scope/kv_cache_attention_bias",
            "/soundscape/cache/bias",
            "/soundscape/norm/kv_cache_attention_bias",
        }

        # A change from elsewhere (MIDI, a scene) does go back to the controller.
        store.set("noise_scale", 0.9, source="midi")
        got = await controller.barrier(server)
        assert ("/scope/noise_scale", (0.9,)) in [(m.address, m.args) for m in got]
    finally:
        controller.close()
        listener.close()


async def test_echo_to_sender_when_asked(make_server: MakeServer, peer: Peer) -> None:
    server = await make_server(feedback=[peer.target()], echo_to_sender=True)
    peer.send(server, "/scope/noise_scale", 0.4)
    got = await peer.barrier(server)
    assert ("/scope/noise_scale", (0.4,)) in [(m.address, m.args) for m in got]


async def test_echo_matched_by_host(make_server: MakeServer) -> None:
    # A tablet at 127.0.0.2 sends from a random port and listens on another one.
    tablet_out = await Peer.open("127.0.0.2")
    tablet_in = await Peer.open("127.0.0.2")
    desk = await Peer.open("127.0.0.1")
    store = ParameterStore()
    server = await make_server(store, host="0.0.0.0", feedback=[tablet_in.target(), desk.target()])
    target = ("127.0.0.1", server.address[1])  # type: ignore[index]
    try:
        tablet_out.transport.sendto(build("/soundscape/norm/noise_scale", 0.25), target)  # type: ignore[union-attr]
        tablet_out.transport.sendto(build("/soundscape/query", "/none"), target)  # type: ignore[union-attr]
        await tablet_out.expect("/soundscape/query/end")
        to_tablet = await tablet_in.expect("/soundscape/query/end")
        to_desk = await desk.expect("/soundscape/query/end")
        assert "/soundscape/norm/noise_scale" not in {m.address for m in to_tablet}
        assert "/scope/noise_scale" in {m.address for m in to_tablet}
        assert ("/soundscape/norm/noise_scale", (0.25,)) in [(m.address, m.args) for m in to_desk]
    finally:
        for p in (tablet_out, tablet_in, desk):
            p.close()


async def test_feedback_rate_limited_latest_wins(make_server: MakeServer, peer: Peer) -> None:
    listener = await Peer.open()
    store = ParameterStore()
    server = await make_server(
        store, feedback=[listener.target()], feedback_rate=2, echo_match="address"
    )
    try:
        builder = OscBundleBuilder(osc_types.IMMEDIATELY)
        for i in range(1, 51):  # a fast knob: 50 values at once
            msg = OscMessageBuilder("/scope/noise_scale")
            msg.add_arg(i / 100, "f")
            builder.add_content(msg.build())
        peer.send_raw(builder.build().dgram, server)
        heard = await listener.expect("/scope/noise_scale", (0.5,))
        values = [m.args[0] for m in heard if m.address == "/scope/noise_scale"]
        assert values == [0.01, 0.5]  # the first at once, then only the latest
        assert store.get("noise_scale") == 0.5
    finally:
        listener.close()


async def test_query_dump_status_and_published_values(make_server: MakeServer, peer: Peer) -> None:
    listener = await Peer.open()
    store = ParameterStore(loras=LORAS)
    server = await make_server(store, feedback=[listener.target()])
    try:
        server.on_status({"state": "streaming", "fps": 29.5, "reason": ""})
        await listener.expect("/soundscape/status", ("streaming",))
        server.send("/soundscape/beat", 3, 0.5)
        await listener.expect("/soundscape/beat", (3, 0.5))

        peer.send(server, "/soundscape/query")
        got = await peer.expect("/soundscape/query/end")
        answered = {m.address: m.args for m in got[:-1]}
        assert got[-1].args == (len(got) - 1,)
        assert answered == {address: _wire(args) for address, args in server.dump()}
        assert answered["/scope/noise_scale"] == (0.7,)
        assert answered["/scope/paused"] == (0,)  # bools as ints
        assert answered["/soundscape/status"] == ("streaming",)
        assert answered["/soundscape/status/fps"] == (29.5,)
        assert answered["/soundscape/beat"] == (3, 0.5)
        # The feedback target gets the dump too.
        to_target = await listener.expect("/soundscape/query/end")
        assert {m.address for m in to_target[:-1]} == set(answered)

        peer.send(server, "/soundscape/query", "/soundscape/prompt/*")
        got = await peer.expect("/soundscape/query/end")
        assert {m.address for m in got[:-1]} == {f"/soundscape/prompt/{i}" for i in range(4)}
    finally:
        listener.close()


def _wire(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """What arguments look like after a trip over OSC (bools as ints, float32)."""
    out: list[Any] = []
    for value in args:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool):
                item = int(item)
            elif isinstance(item, float):
                item = float32_decimal(item)
            out.append(item)
    return tuple(out)


@needs_liblo
async def test_oscdump_receives_feedback(make_server: MakeServer, peer: Peer) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # oscdump takes the port (liblo needs a number)
    proc = await asyncio.create_subprocess_exec(
        "oscdump", "-L", str(port), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Readiness: oscdump prints nothing when it is up; wait until it prints a probe.
        async with asyncio.timeout(TIMEOUT):
            while True:
                sender.sendto(build("/probe"), ("127.0.0.1", port))
                try:
                    line = await asyncio.wait_for(proc.stdout.readline(), 0.2)
                except TimeoutError:
                    continue
                if b"/probe" in line:
                    break
        sender.close()
        store = ParameterStore()
        await make_server(store, feedback=[f"127.0.0.1:{port}"])
        store.set_prompts(["a lighthouse in fog"], source="midi")
        async with asyncio.timeout(TIMEOUT):
            while True:
                line = (await proc.stdout.readline()).decode()
                if " /soundscape/prompt/0 " in line:
                    break
        assert 'sf "a lighthouse in fog" 1.000000' in line
    finally:
        proc.terminate()
        await proc.wait()


async def test_ipv6_loopback(make_server: MakeServer) -> None:
    try:
        listener = await Peer.open("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    controller = await Peer.open("::1")
    store = ParameterStore()
    server = await make_server(
        store, host="::1", feedback=[listener.target()], echo_match="address"
    )
    try:
        controller.send(server, "/scope/noise_scale", 0.2)
        await listener.expect("/scope/noise_scale", (0.2,))
        assert store.get("noise_scale") == 0.2
    finally:
        listener.close()
        controller.close()
