"""Two Link peers, one of them the daemon's clock (run by test_link.py in a namespace)."""

from __future__ import annotations

import asyncio
import json

import aalink

from link_wait import wait_for
from soundscape.mapping.link import LinkBridge
from soundscape.mapping.tempo import BeatClock, BeatClockRunner, Observation


async def main() -> None:
    loop = asyncio.get_running_loop()
    out: dict[str, float | None] = {}
    # A peer joins a daemon that has nothing to lead with yet (both at 120, so whichever
    # session Link keeps when they meet, nothing changes); then the audio tracker
    # reads 124 and the daemon publishes it.
    clock = BeatClock(("midi", "link", "scope", "tap", "audio"), now=loop.time())
    runner = BeatClockRunner(clock)
    await runner.start()
    bridge = LinkBridge(runner)
    await bridge.start()
    peer = aalink.Link(120.0)
    peer.quantum = 4
    peer.enabled = True
    await wait_for(lambda: peer.num_peers > 0 and bridge.link.num_peers > 0, 5.0)
    # Its beats half a beat from the session's (both counted from their start).
    t0 = loop.time()
    heard = runner.state().beats + 0.5
    runner.observe("audio", Observation(t0, 124.0, heard))
    out["peer_follows_124"] = await wait_for(lambda: abs(peer.tempo - 124.0) < 0.01, 5.0)

    # The phase is published once the tempo has settled and the clock has caught up
    # with the audio's beats: the peer's beats move onto them.
    def peer_on_audio() -> bool:
        heard_now = heard + (loop.time() - t0) * 124.0 / 60.0
        return abs((peer.beat - heard_now + 0.5) % 1 - 0.5) < 0.1

    out["peer_phase_follows"] = await wait_for(peer_on_audio, 5.0)
    # A peer sets 133: the daemon's clock follows.
    for _ in range(20):
        runner.observe("audio", Observation(loop.time(), 124.0, None))
        await asyncio.sleep(0.01)
    peer.tempo = 133.0
    out["clock_follows_133"] = await wait_for(lambda: abs(clock.bpm - 133.0) < 0.05, 5.0)
    out["active"] = clock.active == "link"
    await bridge.stop()
    await runner.stop()
    peer.enabled = False
    print(json.dumps(out))


asyncio.run(main())
