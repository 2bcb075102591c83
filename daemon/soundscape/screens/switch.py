"""Which server's frames a screen's outputs show: the frame watchdog of a failover.

Pure logic, the time passed in. Each input is one Scope server's session (the
primary first, then its standbys). The watchdog counts in *frame intervals*,
not seconds: the active input is late once it has sent nothing for
``watchdog_frames`` of its own recent intervals (the median of the last ones),
so a 30 fps stream is given up after ~133 ms at the default of 4, whatever the
frame rate. The interval is the mean over the last frames (frames over time),
not a median of gaps: WebRTC decoders often hand over frames in bursts, whose
near-zero gaps would make a median meaningless.

A late active input is replaced by another input whose frame arrives while it
streams *steadily* (without a break for as long as the watchdog's window), or by
any live input once the active one has been silent twice that long or has lost
its session. With a hot standby that frame is already on its way, so the outputs
freeze for the watchdog time plus at most one frame; and two servers that are
both jittery (a loaded machine) do not make the outputs cut back and forth.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

DEFAULT_INTERVAL = 1 / 30  # s, assumed until an input has shown its own rate
SHORTEST_INTERVAL = 1 / 120
LONGEST_INTERVAL = 0.5  # a slow pipeline (a few fps) still counts as streaming
FRAMES_KEPT = 31
OUTAGE = 0.5  # s without a frame: away for sure, not merely jittery (at most)

SwitchListener = Callable[[str, str, str], None]  # (from, to, reason)


@dataclass
class Input:
    """One server's frames as the switch sees them."""

    name: str
    streaming: bool = False  # the session says frames flow (FrameSink.on_stream_state)
    last_frame: float = -math.inf
    live_since: float | None = None  # first frame of the current run without a late frame
    up_since: float | None = None  # first frame since the last outage (a gap > OUTAGE)
    frames: int = 0
    times: deque[float] = field(default_factory=lambda: deque(maxlen=FRAMES_KEPT))

    def interval(self) -> float:
        """This input's frame interval: the mean over its recent frames of this run."""
        if len(self.times) < 3:
            return DEFAULT_INTERVAL
        mean = (self.times[-1] - self.times[0]) / (len(self.times) - 1)
        return min(LONGEST_INTERVAL, max(SHORTEST_INTERVAL, mean))

    def late(self, now: float, watchdog_frames: float) -> bool:
        return not self.streaming or now - self.last_frame > watchdog_frames * self.interval()

    def record(self, now: float, watchdog_frames: float) -> None:
        if self.late(now, watchdog_frames):
            self.live_since = now  # a new run starts (after a gap, or the first frame)
            if now - self.last_frame > LONGEST_INTERVAL:
                self.times.clear()  # an outage says nothing of the frame rate
        # An outage: silent for as long as a take-over needs (twice the window), or 0.5 s.
        outage = min(OUTAGE, 2 * watchdog_frames * self.interval())
        if self.up_since is None or now - self.last_frame > outage:
            self.up_since = now
        self.times.append(now)
        self.last_frame = now
        self.frames += 1
        self.streaming = True  # a frame proves it, whatever the session said last

    def live_for(self, now: float, watchdog_frames: float) -> float:
        """Seconds this input has delivered without a late frame (0 when it is late now):
        how steady it is, before it may take over from a late one."""
        if self.live_since is None or self.late(now, watchdog_frames):
            return 0.0
        return now - self.live_since

    def up_for(self, now: float, watchdog_frames: float) -> float:
        """Seconds since this input's last outage (0 when it is late now): jitter on a
        loaded machine does not count, so a returning primary is taken back in time."""
        if self.up_since is None or self.late(now, watchdog_frames):
            return 0.0
        return now - self.up_since


class FrameSwitch:
    """Decides, frame by frame, which input the outputs show."""

    def __init__(self, names: Sequence[str], *, watchdog_frames: float = 4.0) -> None:
        if not names:
            raise ValueError("a switch needs at least one input")
        self.inputs = {name: Input(name) for name in names}
        self.preferred = names[0]  # the primary: what the outputs come back to
        self.active = names[0]
        self.watchdog_frames = watchdog_frames
        self.switches = 0
        self._listeners: list[SwitchListener] = []

    def on_switch(self, listener: SwitchListener) -> None:
        self._listeners.append(listener)

    # ----- what happens to the inputs

    def frame(self, name: str, now: float) -> bool:
        """A frame of ``name`` arrived at ``now``; True when the outputs should show it."""
        source = self.inputs[name]
        source.record(now, self.watchdog_frames)
        if name == self.active:
            return True
        active = self.inputs[self.active]
        if self._may_take_over(source, active, now):
            silent = now - active.last_frame
            if not active.frames:
                why = "no picture yet (the show starts on the first server that streams)"
            elif not active.streaming:
                why = "session lost"
            else:
                why = (
                    f"no frame for {silent * 1000:.0f} ms"
                    f" ({silent / active.interval():.1f} frame intervals)"
                )
            self._switch(name, f"{self.active}: {why}")
            return True
        return False

    def _may_take_over(self, source: Input, active: Input, now: float) -> bool:
        if not active.late(now, self.watchdog_frames):
            return False
        if not active.streaming:
            return True  # its session is lost: any live frame is better than none
        window = self.watchdog_frames
        steady = source.live_for(now, window) >= window * source.interval()
        gone = now - active.last_frame > 2 * window * active.interval()
        return steady or gone

    def stream_state(self, name: str, streaming: bool) -> None:
        self.inputs[name].streaming = streaming
        if not streaming:
            self.inputs[name].live_since = self.inputs[name].up_since = None

    # ----- reading

    def active_late(self, now: float) -> bool:
        return self.inputs[self.active].late(now, self.watchdog_frames)

    def live(self, name: str, now: float) -> bool:
        return not self.inputs[name].late(now, self.watchdog_frames)

    def live_for(self, name: str, now: float) -> float:
        return self.inputs[name].live_for(now, self.watchdog_frames)

    def up_for(self, name: str, now: float) -> float:
        return self.inputs[name].up_for(now, self.watchdog_frames)

    def streaming(self, now: float) -> bool:
        """Whether the outputs get live frames (the active input streams)."""
        return self.inputs[self.active].streaming

    # ----- choices

    def select(self, name: str, reason: str) -> bool:
        """Show ``name`` from now on (a manual switch, a switch back); False if already."""
        if name not in self.inputs:
            raise KeyError(name)
        if name == self.active:
            return False
        self._switch(name, reason)
        return True

    def _switch(self, name: str, reason: str) -> None:
        previous, self.active = self.active, name
        self.switches += 1
        for listener in list(self._listeners):
            listener(previous, name, reason)
