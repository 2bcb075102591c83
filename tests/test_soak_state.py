"""The soak's one unexplained state difference, reproduced: a transition made while a
session opens (after the offer took the state, before the sender was attached).

The daemon sends it on the new session's data channel, as it should; Scope keeps the
prompts it had before the transition and holds the target in ``transition`` (recorded in
``scope-v0.2.4/session-parameters.get.json``), so comparing ``prompts`` alone saw a loss
where there was none. Real aiortc, the emulator in this process.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from bench.soak import server_view, state_differences

from soundscape.app import Daemon
from soundscape.config import load
from soundscape.emulator import Emulator

TARGET = [{"text": "a quiet shore", "weight": 1.0}, {"text": "mist", "weight": 0.4}]


async def test_a_transition_made_while_a_session_opens_reaches_the_server(
    emulator: Emulator,
) -> None:
    config = load(None)
    config = dataclasses.replace(config, scope=dataclasses.replace(config.scope, url=emulator.url))
    daemon = Daemon(config)
    before = daemon.store.get("prompts")
    loop = asyncio.get_running_loop()
    fired: list[bool] = []

    def on_status(status: dict[str, Any]) -> None:
        # "connecting" is reported just before the offer takes initial_parameters(); the
        # transition runs at the offer's first await, while the session opens.
        if status["state"] == "connecting" and not status["reason"] and not fired:
            fired.append(True)
            loop.call_soon(lambda: daemon.store.transition(TARGET, num_steps=8))

    daemon.supervisor.on_status(on_status)
    await daemon.start()
    try:
        state = await emulator.wait_for(
            lambda st: any(s["open"] and s["transition"] for s in st["sessions"]), timeout=15
        )
        (session,) = [s for s in state["sessions"] if s["open"]]
        assert fired
        # The offer carried the prompts from before the transition...
        assert session["parameters"]["prompts"] == before
        # ...and the transition followed on the data channel, to the daemon's prompts.
        assert session["transition"]["to"] == TARGET == daemon.store.get("prompts")
        wire = daemon.store.wire_view()
        assert "prompts" in state_differences(wire, session["parameters"])  # the old check
        assert state_differences(wire, server_view(session)) == {}
    finally:
        await daemon.stop()
