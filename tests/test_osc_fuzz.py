"""Fuzz: junk, mutated packets and well-formed messages with wrong values.

Seeded, so a failure replays. The server must not crash, the valid state must
not move, and it must still answer afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Callable
from typing import Any, cast

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from soundscape.control.commands import CommandBus
from soundscape.control.osc_config import OscConfig
from soundscape.control.osc_packet import MalformedPacket, decode
from soundscape.control.osc_server import OscServer
from soundscape.scope.params import ParameterStore

SEED = 20240611
PACKETS = 3000
CHUNK = 50  # packets between barriers, well under the socket's receive buffer
LORAS = {"wave": "/loras/wave.safetensors"}

# Values no address of the table accepts where they are sent below.
WRONG: dict[str, list[tuple[Any, ...]]] = {
    "/scope/prompt": [(3,), ("",), (None,), (b"\xff\xfe",), ("a", "b"), ()],
    "/scope/input_mode": [("film",), (1,), ()],
    "/scope/transition_steps": [(-1,), (2.5,), ("x",), ()],
    "/scope/interpolation_method": [("cubic",), (0,), ()],
    "/scope/temporal_interpolation_method": [("cubic",), (True,)],
    "/scope/denoising_step_list": [(500, 750), (0,), (2000,), ("x",), (), ([1.5],)],
    "/scope/noise_scale": [(1.5,), (-0.1,), ("x",), (True,), (), (0.1, 0.2), (float("nan"),)],
    "/scope/noise_controller": [(0.5,), ("yes",), ()],
    "/scope/kv_cache_attention_bias": [(0.0,), (2.0,), ("x",)],
    "/scope/manage_cache": [(2,), ("x",)],
    "/scope/reset_cache": [("x",), (1, 2)],
    "/scope/vace_context_scale": [(2.5,), (-1.0,), (b"blob",)],
    "/scope/paused": [(0.3,), ("x",), ()],
    "/scope/pipeline_ids": [("other",)],
    "/scope/transition": [("x",)],
    "/scope/prompts": [(1,), ("",)],
    "/scope/lora_scales": [(1.0,)],
    "/scope/quantize_mode": [("never",)],
    "/scope/lookahead_ms": [(5000.0,)],
    "/scope/_private": [(1,)],
    "/soundscape/prompt/0": [(3,), ("",), ("a", "b")],
    "/soundscape/prompt/9": [("a",)],
    "/soundscape/prompt/x": [("a",)],
    "/soundscape/prompt/0/weight": [(-1.0,), ("x",), ()],
    "/soundscape/prompt/3/weight": [(0.5,)],
    "/soundscape/prompt/0/remove": [("x",), ()],  # () would remove the only prompt: refused
    "/soundscape/prompts": [(), (1,), ("a", "b", "c", "d", "e"), ("a", -1.0)],
    "/soundscape/interpolation": [("slerp",), ("cubic",)],  # slerp needs 2 prompts
    "/soundscape/transition": [(4, "cubic", "a"), (-1, "linear", "a"), (4, "linear"), ()],
    "/soundscape/lora/wave": [(11.0,), ("x",), ()],
    "/soundscape/lora/nope": [(1.0,)],
    "/soundscape/noise": [(2.0,)],
    "/soundscape/noise/auto": [(0.5,)],
    "/soundscape/vace": [(3.0,)],
    "/soundscape/cache/bias": [(0.001,)],
    "/soundscape/cache/manage": [("x",)],
    "/soundscape/steps": [(1, 2, 3)],
    "/soundscape/pause": [(0.5,), ("x",)],
    "/soundscape/norm/noise_scale": [(1.5,), (-0.5,), ("x",)],
    "/soundscape/norm/nope": [(0.5,)],
    "/soundscape/norm/lora:nope": [(0.5,)],
    "/soundscape/scene": [("intro",), (True,)],  # no scene command here
    "/soundscape/scene/intro": [()],
    "/soundscape/panic": [()],
    "/soundscape/learn": [(1,)],
    "/soundscape/query": [(1,), ("[",)],
    "/soundscape/status": [("streaming",)],
    "/soundscape/query/end": [(1,)],
    "/soundscape/{noise,vace}": [(5.0,)],
    "/scope/*_scale": [(5.0,)],
    "/nowhere": [(1,)],
    # A single-screen server: every screen address is refused, patterns included.
    "/screen/left/scope/noise_scale": [(0.1,)],
    "/screen/*/soundscape/panic": [()],
    "/screen/[/scope/noise_scale": [(0.1,)],
    "/screen//soundscape/pause": [()],
    "/screen/left": [(1,)],
}


def message(address: str, args: tuple[Any, ...]) -> bytes:
    builder = OscMessageBuilder(address)
    for value in args:
        builder.add_arg(value)
    return builder.build().dgram


def bundle(*contents: bytes) -> bytes:
    body = b"".join(struct.pack(">i", len(c)) + c for c in contents)
    return b"#bundle\x00" + osc_types.write_date(osc_types.IMMEDIATELY) + body


# Structurally rich packets in a namespace no mutation of one or two bytes can turn
# into a real address: mutations exercise the parser, not the parameters.
SEEDS = [
    message("/zz/zz/zz", (1, 2.5, "text", b"blob", True, False, None, 2**40, [1, [2, 3]])),
    message("/zz/zz/zz", ()),
    bundle(message("/zz/zz/zz", (1,)), bundle(message("/zz/zz/zq", ("s", 0.5)))),
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:  # truncate
        return bytes(buf[: rng.randrange(len(buf) + 1)])
    if kind == 1:  # extend with junk
        return bytes(buf + rng.randbytes(rng.randrange(1, 16)))
    for _ in range(rng.randint(1, 2)):  # overwrite one or two bytes
        buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def junk(rng: random.Random) -> bytes:
    size = rng.randrange(0, 200)
    # /scope/pipeline_ids: whatever random type and value follow, it is refused.
    prefix = rng.choice([b"", b"/", b"#bundle\x00", b"/scope/pipeline_ids\x00,"])
    return prefix + rng.randbytes(size)


def packets(rng: random.Random, n: int) -> list[bytes]:
    wrong = [(address, args) for address, values in WRONG.items() for args in values]
    makers: list[Callable[[], bytes]] = [
        lambda: junk(rng),
        lambda: mutate(rng, rng.choice(SEEDS)),
        lambda: message(*rng.choice(wrong)),
        lambda: bundle(*(message(*rng.choice(wrong)) for _ in range(rng.randint(1, 4)))),
    ]
    return [rng.choice(makers)() for _ in range(n)]


def test_decoder_fuzz_raises_only_malformed() -> None:
    rng = random.Random(SEED)
    for _ in range(20000):
        data = mutate(rng, rng.choice(SEEDS)) if rng.random() < 0.7 else junk(rng)
        with contextlib.suppress(MalformedPacket):
            decode(data)


class _Peer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.ends: asyncio.Queue[None] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if any(t.message.address == "/soundscape/query/end" for t in decode(data)):
            self.ends.put_nowait(None)


async def test_server_fuzz_keeps_state_and_keeps_answering() -> None:
    rng = random.Random(SEED)
    store = ParameterStore(loras=LORAS)
    store.set_lora_scale("wave", 1.0)
    store.outbox.clear()
    before = store.snapshot()
    changes: list[dict[str, Any]] = []
    store.subscribe(lambda applied, source: changes.append(applied))
    commands = CommandBus()  # none registered: every command is refused
    server = OscServer(OscConfig(port=0), store, commands)
    await server.start()
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(_Peer, local_addr=("127.0.0.1", 0))
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # sends b"" too
    barrier = message("/soundscape/query", ("/nothing",))
    try:
        async with asyncio.timeout(90):
            all_packets = packets(rng, PACKETS)
            for start in range(0, PACKETS, CHUNK):
                for data in all_packets[start : start + CHUNK]:
                    raw.sendto(data, server.address)
                assert peer.transport is not None
                peer.transport.sendto(barrier, server.address)
                await peer.ends.get()
        assert changes == []
        assert store.snapshot() == before
        counters = server.counters()
        assert counters["packets"] == PACKETS + PACKETS // CHUNK
        assert counters["malformed"] > 0 and counters["refused"] > 0
        assert counters["applied"] == PACKETS // CHUNK  # only the barriers
        # Still answering: a valid message after all that is applied.
        peer.transport.sendto(message("/scope/kv_cache_attention_bias", (0.5,)), server.address)
        peer.transport.sendto(barrier, server.address)
        await asyncio.wait_for(peer.ends.get(), 10)
        assert store.get("kv_cache_attention_bias") == 0.5
    finally:
        raw.close()
        if peer.transport is not None:
            peer.transport.close()
        await server.stop()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_decoder_handles_every_mutation_position(seed: int) -> None:
    # Every single-byte overwrite of a rich bundle: still only MalformedPacket or a result.
    rng = random.Random(seed)
    data = SEEDS[2]
    for position in range(len(data)):
        buf = bytearray(data)
        buf[position] = rng.randrange(256)
        with contextlib.suppress(MalformedPacket):
            decode(bytes(buf))
