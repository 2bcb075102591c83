"""What the daemon is doing, as one JSON-able dict: ``soundscape status`` and the page.

:class:`StatusBook` remembers what the parts do not keep themselves: the
session's state changes (the reconnect history), the last loss and its reason,
and an fps history. :func:`collect` reads everything else from the parts at the
moment it is called.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from soundscape import __version__
from soundscape.logring import RING

if TYPE_CHECKING:
    from soundscape.app import Daemon

HISTORY = 50  # state changes kept
FPS_HISTORY = 120  # samples kept (one a second: two minutes)


class StatusBook:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.started = clock()
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.fps: deque[tuple[float, float]] = deque(maxlen=FPS_HISTORY)
        self.last_loss: dict[str, Any] | None = None
        self.measured_fps = 0.0
        self._last_sample: tuple[float, int] | None = None
        self._state: str | None = None

    def on_status(self, status: dict[str, Any]) -> None:
        """The supervisor's status listener: note state changes and losses."""
        now = self._clock()
        state, reason = status.get("state", "?"), status.get("reason", "")
        if state == "reconnecting" and self._state != "reconnecting":
            self.last_loss = {"at": now, "reason": reason, "after": self._state}
        if state != self._state:
            self.history.append({"t": now, "state": state, "reason": reason})
        self._state = state

    def sample_frames(self, frames: int, now: float) -> None:
        """Called about once a second with the session's frame count (and a monotonic time).

        The supervisor's own fps is refreshed only with its stats line (every 10 s or
        so); the page wants the rate of the last second.
        """
        if self._last_sample is not None:
            then, before = self._last_sample
            fresh = frames - before if frames >= before else frames  # a new session
            self.measured_fps = fresh / (now - then) if now > then else 0.0
            self.fps.append((self._clock(), round(self.measured_fps, 2)))
        self._last_sample = (now, frames)


def collect(daemon: Daemon, book: StatusBook) -> dict[str, Any]:
    """The whole picture, read now; every value JSON-able."""
    now = book._clock()
    config = daemon.config
    session = daemon.supervisor.status.as_dict()
    params = daemon.store.snapshot()
    mapping = daemon.mapping.status()
    last_loss = dict(book.last_loss) if book.last_loss else None
    if last_loss:
        last_loss["ago"] = round(now - last_loss["at"], 1)
    session.update(
        {
            "scope_url": config.scope.url,
            "pipeline": list(params.get("pipeline_ids") or config.pipeline.pipeline_ids),
            "last_loss": last_loss,
            "state_for": round(time.monotonic() - daemon.supervisor.status.since, 1),
            "fps": round(book.measured_fps, 1) if session["state"] == "streaming" else 0.0,
        }
    )
    return {
        "version": __version__,
        "time": now,
        "uptime": round(now - book.started, 1),
        "session": session,
        "history": list(book.history),
        "fps_history": [list(s) for s in book.fps],
        "scene": {
            "current": mapping.get("scene"),
            "scenes": list(daemon.mapping.director.book.names),
        },
        "prompts": params.get("prompts", []),
        "lora_scales": params.get("lora_scales", []),
        "paused": bool(params.get("paused", False)),
        "tempo": {
            "bpm": mapping.get("bpm"),
            "source": mapping.get("beat_source"),
            "bar": mapping.get("bar"),
            "beat": mapping.get("beat"),
            "phase": _beat_phase(daemon),
            **_corrections(daemon),
        },
        "outputs": daemon.video.counters(),
        # Every screen and its servers: which one the outputs show (soundscape.screens).
        "screens": daemon.screens_status(),
        "inputs": inputs(daemon),
        "log": RING.events(),
    }


def _corrections(daemon: Daemon) -> dict[str, Any]:
    """What a performer holds the audio beat clock to (audio/controls.py): a marked one,
    an octave; the page and ``soundscape status`` show them, so none is held unseen."""
    audio = daemon.audio
    beats = audio.analyzer.beats if audio is not None else None
    lean = beats.lean_bpm if beats is not None else None
    return {
        "downbeat_held": bool(beats is not None and beats.marked),
        "octave_bpm": round(lean, 2) if lean is not None else None,
    }


def _beat_phase(daemon: Daemon) -> float:
    """0 on a beat rising to 1: the page flashes on its own clock between pushes."""
    try:
        return round(daemon.mapping.clock.state(daemon.mapping.now()).phase, 3)
    except Exception:  # a status page must never fail on one figure
        return 0.0


def inputs(daemon: Daemon) -> dict[str, Any]:
    config = daemon.config
    osc = daemon.osc
    osc_info: dict[str, Any] = {"enabled": config.osc.enabled}
    if config.osc.enabled:
        osc_info["health"] = "listening" if osc.address else "down"
        osc_info["address"] = f"{osc.address[0]}:{osc.address[1]}" if osc.address else None
        osc_info["counters"] = osc.counters()

    midi = daemon.midi
    wanted = list(config.midi.inputs)
    ports = midi.ports
    open_inputs = ports.inputs if ports is not None else []
    midi_info: dict[str, Any] = {
        "enabled": config.midi.enabled,
        "wanted": wanted,
        "open": open_inputs,
        "output": ports.output if ports is not None else None,
        "counters": midi.counters(),
    }
    if config.midi.enabled:
        midi_info["health"] = (
            "ok" if len(open_inputs) >= len(wanted) else ("missing" if wanted else "idle")
        )

    audio_info: dict[str, Any] = {"enabled": daemon.audio is not None}
    if daemon.audio is not None:
        latest = daemon.audio.latest
        audio_info.update(
            {
                "health": "running" if daemon.audio.running else "waiting for the device",
                "source": config.audio.file or config.audio.device or "default input",
                "level_db": round(latest.level_db, 1),
                "energy": round(latest.energy, 3),
                "bands": {k: round(v, 3) for k, v in latest.bands.items()},
                "bpm": round(latest.bpm, 1),
            }
        )
    return {
        "osc": osc_info,
        "midi": midi_info,
        "audio": audio_info,
        "video_in": _video_in(daemon),
    }


def _video_in(daemon: Any) -> dict[str, Any]:
    """The video source sent to Scope (``[video_in]``/``--video-in``), with its counters."""
    video_in = getattr(daemon, "video_in", None)
    if video_in is None:
        return {"enabled": False}
    counters = video_in.counters()
    health = "live" if counters.get("live") else "away (sending the last frame or black)"
    return {"enabled": True, "health": health, **counters}
