"""A screen's failover on the event loop: the frame switch, standbys woken and put back.

The supervisors of the screen's servers (primary first, then standbys) each feed
one input of :class:`Failover` (``failover.input(name)`` is their frame sink); the
switch (:class:`~soundscape.screens.switch.FrameSwitch`) passes on the active
input's frames to the screen's outputs. Around it, on a short tick:

- a *warm* standby is woken (its session started) as soon as the active server is
  late — it takes over with its first frame;
- when the primary has streamed again for ``back_after`` seconds the outputs switch
  back: at once, on the next bar line of the beat clock, or never (``switch_back``);
- a warm standby no longer shown goes back to warm (its session closed: GPU time
  is money);
- a manual switch (:meth:`Failover.select`) makes its server the preferred one: the
  outputs come back to it after a failure, not to the config's primary; a warm
  standby asked for is shown from its first frame on.

Every switch is logged, told to listeners (OSC feedback, status) and counted.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import av
import structlog

from soundscape.scope.supervisor import FrameSink
from soundscape.screens.config import FailoverSection
from soundscape.screens.switch import FrameSwitch
from soundscape.tasks import Supervised, supervise

log = structlog.get_logger(__name__)

TICK = 0.02  # s: a warm standby is woken within this of the watchdog's verdict
ChangeListener = Callable[[dict[str, Any]], None]


class Standby(Protocol):
    """What the failover needs of a warm standby's supervisor."""

    @property
    def active(self) -> bool: ...

    def set_active(self, on: bool, reason: str = "") -> None: ...


class BarClock(Protocol):
    """The beat clock (``BeatClockRunner``): where the next bar line is, and a timer."""

    def state(self) -> Any: ...

    def call_at_beat(self, beats: float, callback: Callable[[], None]) -> Any: ...


class _Input:
    """The frame sink one server's supervisor writes to."""

    def __init__(self, failover: Failover, name: str) -> None:
        self._failover, self._name = failover, name

    def on_frame(self, frame: av.VideoFrame) -> None:
        self._failover.frame(self._name, frame)

    def on_stream_state(self, streaming: bool) -> None:
        self._failover.stream_state(self._name, streaming)


class Failover:
    """``Failover(screen, ["main", "standby"], outputs, config)``; ``await start()``."""

    def __init__(
        self,
        screen: str,
        names: list[str],
        sink: FrameSink,
        config: FailoverSection,
        *,
        warm: Mapping[str, Standby] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.screen = screen
        self.config = config
        self.switch = FrameSwitch(names, watchdog_frames=config.watchdog_frames)
        self.switch.on_switch(self._switched)
        self.bars: BarClock | None = None  # the beat clock, set once the mapping exists
        self._sink = sink
        self._warm = dict(warm or {})
        self._clock = clock
        self._inputs = {name: _Input(self, name) for name in names}
        self._listeners: list[ChangeListener] = []
        self._task: Supervised | None = None
        self._back_at: Any = None  # the bar-line timer of a planned switch back
        self._pending: tuple[str, str] | None = None  # (server, reason): shown at its 1st frame
        self._out_last = -math.inf  # the outputs' last frame, for the longest gap
        self._switched_at = -math.inf  # the last switch: back_after counts from it too
        self.longest_gap = 0.0  # s between two frames on the outputs, while streaming
        self.last_switch: dict[str, Any] | None = None

    # ----- wiring

    def add_warm(self, name: str, standby: Standby) -> None:
        """A warm standby this failover wakes when the shown server is late."""
        self._warm[name] = standby

    def input(self, name: str) -> FrameSink:
        return self._inputs[name]

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    @property
    def active(self) -> str:
        return self.switch.active

    async def start(self) -> None:
        self._task = supervise(f"failover-{self.screen}", self._run)

    async def stop(self) -> None:
        self._cancel_back()
        if self._task is not None:
            await self._task.stop()
            self._task = None

    # ----- frames (on the loop, from the supervisors)

    def frame(self, name: str, frame: av.VideoFrame) -> None:
        now = self._clock()
        if self._pending is not None and self._pending[0] == name:
            self._pending, (_, reason) = None, self._pending
            self.switch.select(name, reason)  # the warm standby asked for streams now
        if not self.switch.frame(name, now):
            return
        if self._out_last > -math.inf:
            self.longest_gap = max(self.longest_gap, now - self._out_last)
        self._out_last = now
        self._sink.on_frame(frame)

    def stream_state(self, name: str, streaming: bool) -> None:
        self.switch.stream_state(name, streaming)
        if name == self.switch.active:
            self._sink.on_stream_state(streaming)

    # ----- choices

    def select(self, name: str, *, source: str) -> bool:
        """A manual switch (OSC ``/soundscape/failover <name>``); False when already shown."""
        if name not in self._inputs:
            raise KeyError(name)
        self._cancel_back()
        self._pending = None
        reason = f"asked by {source}"
        # A hand's choice sticks: the outputs come back to it (not to the config's primary)
        # after a failure, until the next manual switch.
        self.switch.preferred = name
        if not self.switch.live(name, self._clock()):
            # A warm standby (or a server that is away) has no frame to show yet: keep the
            # outputs where they are until its first frame comes.
            standby = self._warm.get(name)
            if standby is not None and not standby.active:
                standby.set_active(True, f"switch to it {reason}")
            if name != self.switch.active:
                self._pending = (name, reason)
                log.info("failover_switch_pending", screen=self.screen, to=name, reason=reason)
            return False
        return self.switch.select(name, reason)

    # ----- the tick

    async def _run(self) -> None:
        while True:
            self.tick(self._clock())
            await asyncio.sleep(TICK)

    def tick(self, now: float) -> None:
        switch = self.switch
        shown = switch.inputs[switch.active]
        woken = any(s.active for n, s in self._warm.items() if n != switch.active)
        # Not before the shown server's first frame: at start it is loading, not failing.
        # One warm standby at a time: the first one takes over.
        if shown.frames and switch.active_late(now) and not woken:
            for name, standby in self._warm.items():
                if name != switch.active and not standby.active:
                    standby.set_active(True, f"{switch.active} is late")
                    break
        preferred = switch.preferred
        if switch.active != preferred:
            self._plan_back(now)
        else:
            self._cancel_back()
            # A blip of the primary must not start and stop the standby's session each time.
            settled = now - self._switched_at >= self.config.back_after
            if settled and switch.up_for(preferred, now) >= self.config.back_after:
                for name, standby in self._warm.items():
                    pending = self._pending is not None and self._pending[0] == name
                    if standby.active and name != switch.active and not pending:
                        standby.set_active(False, f"{preferred} shown again")

    def _plan_back(self, now: float) -> None:
        mode = self.config.switch_back
        preferred = self.switch.preferred
        back_after = self.config.back_after
        if (
            mode == "never"
            or self.switch.up_for(preferred, now) < back_after
            or now - self._switched_at < back_after  # a short stall: not a cut every bar
        ):
            self._cancel_back()
            return
        if mode == "now" or self.bars is None:
            self._switch_back()
        elif self._back_at is None:
            state = self.bars.state()
            per_bar = state.beats_per_bar
            next_bar = (math.floor(state.beats / per_bar + 1e-6) + 1) * per_bar
            self._back_at = self.bars.call_at_beat(next_bar, self._switch_back)
            log.info(
                "failover_back_planned", screen=self.screen, to=preferred, bar=next_bar // per_bar
            )

    def _switch_back(self) -> None:
        self._back_at = None
        preferred = self.switch.preferred
        if self.switch.live(preferred, self._clock()):
            self.switch.select(preferred, f"{preferred} streams again")

    def _cancel_back(self) -> None:
        if self._back_at is not None:
            self._back_at.cancel()
            self._back_at = None

    def _switched(self, previous: str, active: str, reason: str) -> None:
        self._switched_at = self._clock()
        self.last_switch = {"from": previous, "to": active, "reason": reason, "at": time.time()}
        log.warning(  # server= overrides the context of the frame callback that got here
            "failover_switched",
            screen=self.screen,
            server=active,
            shown_before=previous,
            shown=active,
            reason=reason,
        )
        self._sink.on_stream_state(self.switch.inputs[active].streaming)
        status = self.status()
        for listener in list(self._listeners):
            try:
                listener(status)
            except Exception:  # feedback is a courtesy: the switch has happened
                log.exception("failover_listener_failed")

    def status(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "screen": self.screen,
            "active": self.switch.active,
            "preferred": self.switch.preferred,
            "switches": self.switch.switches,
            "longest_gap_ms": round(self.longest_gap * 1000, 1),
            "last_switch": self.last_switch,
            "servers": {
                name: {
                    "live": self.switch.live(name, now),
                    "frames": inp.frames,
                    "interval_ms": round(inp.interval() * 1000, 1),
                    "warm": name in self._warm and not self._warm[name].active,
                }
                for name, inp in self.switch.inputs.items()
            },
        }
