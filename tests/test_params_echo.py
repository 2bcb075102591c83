"""The performer's latest value wins over Scope's echo, end to end.

Scope v0.2.4 answers another client's ``POST /api/v1/session/parameters`` with
a ``parameters_updated`` that carries its defaults
(``prompt_interpolation_method: linear``, ``vace_context_scale: 1.0``), even
for ``{}`` (``../shared/scope-v0.2.4/session-parameters.post.empty.json``). The
emulator does the same; the daemon must keep what the performer just set and
leave the server on it too, while a key nobody touched here follows the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from soundscape.app import Daemon
from soundscape.config import load
from soundscape.emulator import Emulator
from soundscape.scope.api import ScopeClient


@pytest.fixture
async def daemon(emulator: Emulator) -> AsyncIterator[Daemon]:
    config = load(None)
    config = dataclasses.replace(config, scope=dataclasses.replace(config.scope, url=emulator.url))
    d = Daemon(config)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


def live_parameters(state: dict[str, Any]) -> dict[str, Any]:
    sessions = [s for s in state["sessions"] if s["open"] and s["frames_sent"] > 0]
    return sessions[0]["parameters"] if len(sessions) == 1 else {}


async def test_the_performers_change_survives_the_servers_default_echo(
    emulator: Emulator, daemon: Daemon
) -> None:
    await emulator.wait_for(lambda s: bool(live_parameters(s)), timeout=15)
    echoes: list[dict[str, Any]] = []
    echoed = asyncio.Event()

    def on_echo(message: dict[str, Any]) -> None:
        echoes.append(message["parameters"])
        echoed.set()

    daemon.supervisor.on_message("parameters_updated", on_echo)  # called after the merge
    daemon.store.set("vace_context_scale", 0.4, source="osc:127.0.0.1:9000")
    await emulator.wait_for(lambda s: live_parameters(s).get("vace_context_scale") == 0.4, 5)

    async with ScopeClient(emulator.url) as other:  # another client of the same server
        await other.update_session_parameters({})
        await asyncio.wait_for(echoed.wait(), 5)
        assert echoes[-1]["vace_context_scale"] == 1.0  # the server took its default
        assert daemon.store.get("vace_context_scale") == 0.4
        # Sent again: the server ends on the performer's value, not on its default.
        await emulator.wait_for(lambda s: live_parameters(s).get("vace_context_scale") == 0.4, 5)

        # A key nobody changed here follows the server.
        echoed.clear()
        await other.update_session_parameters({"kv_cache_attention_bias": 0.77})
        await asyncio.wait_for(echoed.wait(), 5)
    assert daemon.store.get("kv_cache_attention_bias") == 0.77
    assert daemon.store.get("pipeline_ids") == ["longlive"]
