"""The sender: isolated changes leave at once, bursts coalesce, the rate holds."""

from __future__ import annotations

import asyncio
import itertools
import time

from soundscape.scope.params import ParameterStore
from soundscape.scope.sender import ParameterSender


class RecordingChannel:
    """Stands in for the data channel: the sender's only I/O is ``send``."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, dict]] = []
        self.arrived = asyncio.Event()

    def send(self, message):
        self.messages.append((time.monotonic(), message))
        self.arrived.set()
        return True


async def test_isolated_change_goes_out_at_once():
    store = ParameterStore()
    sender = ParameterSender(store, rate=30)
    channel = RecordingChannel()
    sender.attach(channel)
    await sender.start()
    try:
        store.set("vace_context_scale", 1.2)
        # "At once": the sender wakes and sends in its next turn of the loop,
        # without waiting for a tick (two yields: wake-up, then send).
        for _ in range(2):
            await asyncio.sleep(0)
        assert [m for _, m in channel.messages] == [{"vace_context_scale": 1.2}]
    finally:
        await sender.stop()


async def test_burst_is_coalesced_at_the_rate_without_losing_transitions():
    store = ParameterStore()
    sender = ParameterSender(store, rate=30)
    channel = RecordingChannel()
    sender.attach(channel)
    await sender.start()
    try:
        transitions = 0
        for i in range(400):  # a 1 kHz knob for 0.4 s, with transitions in between
            store.set("vace_context_scale", (i % 200) / 100)
            if i % 100 == 50:
                store.transition([f"scene {i}"], num_steps=2)
                transitions += 1
            if i == 120:
                store.reset_cache()
            await asyncio.sleep(0.001)
        store.set("vace_context_scale", 0.33)
        final = 0.33

        def done() -> bool:
            return (
                bool(channel.messages)
                and channel.messages[-1][1].get("vace_context_scale") == final
            )

        while not done():
            channel.arrived.clear()
            await asyncio.wait_for(channel.arrived.wait(), 2)
    finally:
        await sender.stop()
    times = [t for t, _ in channel.messages]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1 / 30 - 0.002  # never faster than 30 messages a second
    assert len(channel.messages) < 400 / 3  # coalesced
    sent = [m for _, m in channel.messages]
    assert sum("transition" in m for m in sent) == transitions
    assert sum(bool(m.get("reset_cache")) for m in sent) == 1
    targets = [m["transition"]["target_prompts"][0]["text"] for m in sent if "transition" in m]
    assert targets == ["scene 50", "scene 150", "scene 250", "scene 350"]


async def test_nothing_is_sent_without_a_session_and_resync_takes_over():
    store = ParameterStore()
    sender = ParameterSender(store, rate=30)
    await sender.start()
    try:
        store.set("vace_context_scale", 0.7)
        params = store.initial_parameters()  # a new session takes the whole state
        assert params["vace_context_scale"] == 0.7
        channel = RecordingChannel()
        sender.attach(channel)
        store.set("kv_cache_attention_bias", 0.5)
        await asyncio.wait_for(channel.arrived.wait(), 1)
        assert [m for _, m in channel.messages] == [{"kv_cache_attention_bias": 0.5}]
    finally:
        await sender.stop()
