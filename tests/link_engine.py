"""The mapping engine with [beat] link = true and a second Link peer (run by test_link.py)."""

from __future__ import annotations

import asyncio
import json

import aalink

from link_wait import wait_for
from soundscape.control.commands import CommandBus
from soundscape.mapping.config import BeatConfig, MappingConfig, ScenesConfig
from soundscape.mapping.engine import MappingEngine
from soundscape.mapping.tempo import Observation
from soundscape.scope.params import ParameterStore


async def main() -> None:
    engine = MappingEngine(
        MappingConfig(), BeatConfig(link=True), ScenesConfig(), ParameterStore({}), CommandBus()
    )
    await engine.start()
    out: dict[str, object] = {"bridge": engine.link is not None}
    # Both at 120: whichever session Link keeps when they meet, nothing changes.
    peer = aalink.Link(120.0)
    peer.quantum = 4
    peer.enabled = True
    await wait_for(lambda: peer.num_peers > 0, 5.0)
    # The daemon leads at 124 (a tap tempo reading; real taps jitter on a loaded machine),
    # its bar line half a beat from the session's (both counted from their start).
    t0 = engine.runner.now()
    tap = engine.runner.state().beats + 0.5
    engine.runner.observe("tap", Observation(t0, 124.0, tap, bar_aligned=True))
    out["daemon_source"] = engine.clock.active
    out["peer_follows_124"] = await wait_for(lambda: abs(peer.tempo - 124.0) < 0.01, 3.0)

    # The peer's bar takes the tap's phase once the daemon's clock has caught up with it
    # (the daemon forces its beat on the session). Only then does the peer change the
    # tempo: forcing the beat commits the daemon's whole timeline, tempo too, and Link
    # keeps the last commit, so a change made in the same few milliseconds is undone.
    def peer_on_tap() -> bool:
        tap_now = tap + (engine.runner.now() - t0) * 124.0 / 60.0
        return abs((peer.beat - tap_now + 2) % 4 - 2) < 0.1

    out["peer_phase_follows"] = await wait_for(peer_on_tap, 5.0)
    # A peer at 133: the daemon's clock follows.
    peer.tempo = 133.0
    out["clock_follows_133"] = await wait_for(lambda: abs(engine.clock.bpm - 133.0) < 0.05, 3.0)
    out["source"] = engine.clock.active
    await engine.stop()
    peer.enabled = False
    print(json.dumps(out))


asyncio.run(main())
