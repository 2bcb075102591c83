"""Ableton Link: follow the session's tempo, phase and start/stop, or lead it.

:class:`LinkBridge` joins the Link session (the optional ``aalink`` package,
extra ``link``) and polls it every ``interval`` seconds:

- **Following.** When a peer changes the session's tempo (or starts it), the
  bridge feeds the beat clock a ``"link"`` observation — tempo, and the
  position in beats with bar lines every *quantum* beats — on every poll,
  so the clock follows within a poll or two. When the session stops
  (start/stop sync), or the last peer leaves, the source is silenced and the
  clock falls back down its order of trust. Put ``"link"`` next to
  ``"midi"`` in the sources.
- **Leading.** While the clock is driven by anything else (audio tracker,
  tap, MIDI clock), the bridge publishes the clock's tempo and phase to the
  session, so Live, Resolume or TouchDesigner on the network follow.

Quantum = the clock's beats per bar. Link's clock is the host's monotonic
clock, like the event loop's, so a Link beat read now is the clock's now.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

import structlog

from soundscape.mapping.tempo import BeatClockRunner, Observation

log = structlog.get_logger(__name__)

SOURCE = "link"
TEMPO_EPSILON = 0.005  # BPM: a session tempo further from ours was set by a peer
PHASE_EPSILON = 0.1  # beats: publish a phase correction beyond this (~50 ms)
FORCE_INTERVAL = 2.0  # s: at most one phase correction per interval


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("aalink") is not None


class LinkBridge:
    """The beat clock <-> an Ableton Link session."""

    def __init__(self, runner: BeatClockRunner, *, interval: float = 0.05) -> None:
        self.runner = runner
        self.interval = interval
        self.link: Any = None
        self.following = False  # a peer set the session's tempo: we follow
        self._expected = 0.0  # the session tempo we last saw or set
        self._playing = False
        self._forced = -math.inf  # when we last forced the session's beat
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        import aalink

        clock = self.runner.clock
        self.link = link = aalink.Link(clock.bpm)
        link.quantum = clock.beats_per_bar
        link.start_stop_sync_enabled = True
        link.enabled = True
        # Ours, not read back: joining a running session changes the tempo,
        # and that change is what says a peer leads.
        self._expected = float(clock.bpm)
        self._task = asyncio.create_task(self._poll(), name="link-poll")
        log.info("link_joined", bpm=round(clock.bpm, 2), quantum=clock.beats_per_bar)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.link is not None:
            self.link.enabled = False
            self.link = None

    async def _poll(self) -> None:
        while True:
            try:
                self.step()
            except Exception:  # a broken poll must not end the session
                log.exception("link_poll_failed")
            await asyncio.sleep(self.interval)

    def step(self) -> None:
        """One poll: notice a peer's change, follow it, or publish ours."""
        link = self.link
        runner = self.runner
        clock = runner.clock
        link.quantum = clock.beats_per_bar
        tempo = float(link.tempo)
        peers = int(link.num_peers)
        playing = bool(link.playing)
        if abs(tempo - self._expected) > TEMPO_EPSILON:
            self._expected = tempo
            if peers > 0:
                self.following = True
        if playing and not self._playing and peers > 0:
            self.following = True  # a peer pressed play: its bar line is the one
        stopped = self._playing and not playing
        self._playing = playing
        if peers == 0 or stopped:
            if self.following:
                log.info("link_released", reason="no peers" if peers == 0 else "stopped")
            self.following = False
            if clock.active == SOURCE:
                runner.observe(SOURCE, None)
        if self.following:
            runner.observe(
                SOURCE, Observation(runner.now(), tempo, float(link.beat), bar_aligned=True)
            )
            return
        if clock.active in (SOURCE, None) and peers == 0:
            return  # nothing to lead
        self._publish(tempo)

    def _publish(self, tempo: float) -> None:
        """Lead: set the session's tempo (``tempo``, as this poll read it) to ours, or
        force its beat onto ours. Not read again here: a peer's change that lands
        between the two reads would be taken for ours and overwritten, not followed."""
        link = self.link
        state = self.runner.state()
        if abs(state.bpm - tempo) > TEMPO_EPSILON:
            link.tempo = state.bpm
            self._expected = float(link.tempo)
            return  # the phase next time, once the tempo has settled
        # Forcing the beat commits our whole timeline (tempo too) to the
        # session: seldom, so a peer's tempo change in flight is not undone.
        if state.t - self._forced < FORCE_INTERVAL:
            return
        beat = float(link.beat)
        quantum = state.beats_per_bar
        diff = (state.beats - beat + quantum / 2) % quantum - quantum / 2
        if abs(diff) > PHASE_EPSILON and math.isfinite(diff):
            link.force_beat(beat + diff)
            self._forced = state.t
