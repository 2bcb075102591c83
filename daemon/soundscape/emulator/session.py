"""One emulated Scope session: a peer connection, its video track and data channel.

The session owns the merged parameters and draws frames from them. What it sends
and when follows the real server (see ``/work/shared/scope-protocol.md``): frames
only when the offer named the loaded pipeline (and, in video mode, a client video
track came), the last frame repeated while paused, no acknowledgement of any
message, ``stream_stopped`` only when closed on purpose.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import structlog
from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from soundscape.emulator import catalog
from soundscape.emulator.pipeline import PipelineInstance
from soundscape.emulator.renderer import Renderer, frame_size, to_video_frame
from soundscape.emulator.tempo import BeatClock

log = structlog.get_logger(__name__)

# Keys Scope takes out of a message before the pipeline sees the rest.
STRIPPED_KEYS = frozenset(
    {
        "quantize_mode",
        "lookahead_ms",
        "output_sinks",
        "input_source",
        "modulations",
        "beat_cache_reset_rate",
        "node_id",
    }
)
VIDEO_CLOCK = 90000
OVERLAY_INTERVAL = 0.1  # redraw the text at most 10 times a second: people can't read faster
GRACEFUL_CLOSE_TIMEOUT = 1.0


class EmulatedTrack(MediaStreamTrack):
    """The server's outgoing video: asks its session for each frame."""

    kind = "video"

    def __init__(self, session: EmulatedSession) -> None:
        super().__init__()
        self._session = session

    async def recv(self) -> VideoFrame:
        return await self._session.next_frame()


class EmulatedSession:
    """State and behaviour of one session; the server owns the table of them."""

    def __init__(
        self,
        pc: RTCPeerConnection,
        pipeline: PipelineInstance,
        initial: dict[str, Any],
        *,
        fps: float,
        default_size: tuple[int, int],
        clock: BeatClock | None,
        on_change: Callable[[], None],
    ) -> None:
        self.id = str(uuid.uuid4())
        self.pc = pc
        self.pipeline = pipeline
        self.created_at = time.time()
        self.clock = clock
        self._on_change = on_change
        self._period = 1.0 / fps if fps > 0 else 1.0 / 30
        ids = initial.get("pipeline_ids")
        # Scope starts no frame processor without pipeline ids, or for one not loaded.
        self.pipeline_ok = (
            isinstance(ids, list) and bool(ids) and all(i in pipeline.pipeline_ids for i in ids)
        )
        self.input_mode = initial.get("input_mode") or catalog.default_mode(
            list(pipeline.pipeline_ids)
        )
        self.parameters: dict[str, Any] = {}
        self.quantize_mode: str | None = None
        self.lookahead_ms = 0.0
        self.session_settings: dict[str, Any] = {}
        self.messages_received = 0
        self.bad_messages = 0
        self.frames_sent = 0
        self.frames_received = 0
        self.counter = -1
        self.cache_resets = 0
        self.transition: dict[str, Any] | None = None
        self.stalled = False
        self.open = True
        self.dead = False  # killed by a restart: silent forever
        self.channel: RTCDataChannel | None = None
        self.input_track: MediaStreamTrack | None = None
        self._input_frame: VideoFrame | None = None
        load = pipeline.load_params
        self.width, self.height = frame_size(
            load.get("width", default_size[0]), load.get("height", default_size[1])
        )
        self._renderer: Renderer | None = None
        self._overlay_dirty = True
        self._overlay_at = 0.0
        self._last_buffer: np.ndarray | None = None
        self._wake = asyncio.Event()
        self._t0 = time.monotonic()
        self._due: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.track = EmulatedTrack(self)
        self._apply(self._take_session_keys(dict(initial)))
        pc.on("datachannel", self._on_datachannel)
        pc.on("track", self._on_track)

    # ------------------------------------------------------------------ state

    @property
    def paused(self) -> bool:
        return bool(self.parameters.get("paused"))

    @property
    def producing(self) -> bool:
        """Whether frames flow now (a paused stream with a last frame still flows)."""
        if not self.open or self.dead or self.stalled or not self.pipeline_ok:
            return False
        if self.parameters.get("input_mode", self.input_mode) == "video" and not self.input_track:
            return False
        return not (self.paused and self._last_buffer is None)

    def state(self) -> dict[str, Any]:
        """This session's entry in ``GET /_emulator/state``."""
        return {
            "id": self.id,
            "open": self.open and not self.dead,
            "parameters": copy.deepcopy(self.parameters),
            "messages_received": self.messages_received,
            "bad_messages": self.bad_messages,
            "frames_sent": self.frames_sent,
            "frame_counter": max(self.counter, 0) if self.frames_sent else None,
            "paused": self.paused,
            "stalled": self.stalled,
            "producing": self.producing,
            "created_at": self.created_at,
            "pipeline_ids": list(self.pipeline.pipeline_ids),
            "pipeline_generation": self.pipeline.generation,
            "input_mode": self.parameters.get("input_mode", self.input_mode),
            "has_input_track": self.input_track is not None,
            "frames_received": self.frames_received,
            "width": self.width,
            "height": self.height,
            "transition": copy.deepcopy(self.transition),
            "cache_resets": self.cache_resets,
            "quantize_mode": self.quantize_mode,
            "settings": copy.deepcopy(self.session_settings),
            "connection_state": self.pc.connectionState,
            "data_channel": self.channel.readyState if self.channel else None,
        }

    def _changed(self) -> None:
        self._wake.set()
        self._on_change()

    # ------------------------------------------------------------------ frames

    async def next_frame(self) -> VideoFrame:
        """The next frame, at the session's frame rate; blocks while not producing."""
        loop = asyncio.get_running_loop()
        while True:
            if not self.producing:
                self._wake.clear()
                await self._wake.wait()
                self._due = None  # no burst of catch-up frames after a gap
                continue
            now = loop.time()
            if self._due is None:
                self._due = now
            if self._due > now:
                await asyncio.sleep(self._due - now)
                continue  # something may have changed while we slept
            self._due = max(self._due + self._period, now - self._period)
            frame = to_video_frame(self._next_buffer())
            frame.pts = int((time.monotonic() - self._t0) * VIDEO_CLOCK)
            frame.time_base = Fraction(1, VIDEO_CLOCK)
            self.frames_sent += 1
            self._on_change()
            return frame

    def _next_buffer(self) -> np.ndarray:
        if self.paused and self._last_buffer is not None:
            return self._last_buffer
        renderer = self._renderer
        if renderer is None:
            renderer = self._renderer = Renderer(self.width, self.height)
        self.counter += 1
        if self.transition and self.transition["step"] < self.transition["num_steps"]:
            self.transition["step"] += 1
            self._overlay_dirty = True
        now = time.monotonic()
        if self._overlay_dirty and now - self._overlay_at >= OVERLAY_INTERVAL:
            self._overlay_dirty = False
            self._overlay_at = now
            renderer.set_overlay(self._overlay_info(), saturation=self._number("noise_scale", 0.5))
        speed = 0.05 + 0.25 * self._number("noise_scale", 0.5)
        buffer = renderer.buffer(self.counter, (now - self._t0) * speed)
        if self._input_frame is not None:
            renderer.inset(buffer, self._input_frame)  # show what the "pipeline" gets
        self._last_buffer = buffer
        return buffer

    def _number(self, key: str, default: float) -> float:
        value = self.parameters.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return default
        return max(0.0, min(1.0, float(value)))

    def _overlay_info(self) -> dict[str, Any]:
        transition = None
        if self.transition and self.transition["step"] < self.transition["num_steps"]:
            transition = self.transition
        return {
            "parameters": self.parameters,
            "pipeline": self.pipeline.name,
            "transition": transition,
            "cache_resets": self.cache_resets,
            "tempo_bpm": self.clock.bpm if self.clock else None,
        }

    # ------------------------------------------------------------------ input

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "video":
            return
        self.input_track = track
        self._spawn(self._consume(track))
        self._changed()

    async def _consume(self, track: MediaStreamTrack) -> None:
        # Read the client's video so aiortc's buffers never fill; Scope would feed it
        # to the pipeline.
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    self._input_frame = frame
                self.frames_received += 1
        except MediaStreamError:
            # The client's video ended: in video mode the pipeline has no input now.
            self.input_track = None
            self._input_frame = None
            self._changed()

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != "parameters":
            log.info("emulator_ignored_channel", session=self.id, label=channel.label)
            return
        self.channel = channel
        channel.on("message", self._on_message)
        channel.on("close", self._on_change)
        self._on_change()

    def _on_message(self, message: str | bytes) -> None:
        self.messages_received += 1
        if self.dead:
            return
        try:
            data = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            self.bad_messages += 1
            log.warning("emulator_message_not_json", session=self.id, message=str(message)[:80])
            self._on_change()
            return
        if not isinstance(data, dict):
            self.bad_messages += 1
            log.warning("emulator_message_not_object", session=self.id, message=str(data)[:80])
            self._on_change()
            return
        quantized = data.pop("_quantized", False) is True
        update = self._take_session_keys(data)
        delay = None
        if quantized and self.clock is not None and isinstance(self.quantize_mode, str):
            delay = self.clock.delay_to_boundary(time.time(), self.quantize_mode, self.lookahead_ms)
        if delay is None:
            self._apply(update)
        else:
            self.send({"type": "change_scheduled", "delay_ms": round(delay * 1000)})
            self._spawn(self._apply_later(update, delay))
        self._changed()

    def _take_session_keys(self, data: dict[str, Any]) -> dict[str, Any]:
        """Keep the keys Scope handles itself; return the rest, for the pipeline."""
        if "quantize_mode" in data:
            self.quantize_mode = data["quantize_mode"]
        if isinstance(data.get("lookahead_ms"), int | float):
            self.lookahead_ms = float(data["lookahead_ms"])
        for key in STRIPPED_KEYS - {"quantize_mode", "lookahead_ms"}:
            if key in data:
                self.session_settings[key] = data[key]
        return {k: v for k, v in data.items() if k not in STRIPPED_KEYS}

    async def _apply_later(self, update: dict[str, Any], delay: float) -> None:
        await asyncio.sleep(delay)
        if not self.open or self.dead:
            return
        self._apply(update)
        self.send({"type": "change_applied"})
        self._changed()

    def apply_external(self, update: dict[str, Any]) -> None:
        """Parameters changed by another path (REST): merge and tell the client."""
        self._apply(self._take_session_keys(dict(update)))
        self.send({"type": "parameters_updated", "parameters": update})
        self._changed()

    def _apply(self, update: dict[str, Any]) -> None:
        """Merge one update into the parameters, as Scope's pipeline does."""
        if update.pop("reset_cache", False):
            self.cache_resets += 1
        update.pop("_quantized", None)
        transition = update.pop("transition", None)
        before = self.parameters.get("prompts")
        self.parameters.update(update)
        if transition is not None:
            self._start_transition(transition, before)
        self._overlay_dirty = True

    def _start_transition(self, transition: Any, before: Any) -> None:
        target = transition.get("target_prompts") if isinstance(transition, dict) else None
        if target is None:
            log.warning("emulator_bad_transition", session=self.id, transition=str(transition)[:80])
            return
        steps = transition.get("num_steps", 4)
        steps = int(steps) if isinstance(steps, int | float) and steps > 0 else 0
        self.parameters["prompts"] = target
        self.transition = {
            "from": before,
            "to": target,
            "num_steps": steps,
            "step": 0,
            "temporal_interpolation_method": transition.get("temporal_interpolation_method"),
        }

    # ------------------------------------------------------------------ output

    def send(self, message: dict[str, Any]) -> bool:
        """Send a server message if the channel is open; never raises."""
        channel = self.channel
        if self.dead or channel is None or channel.readyState != "open":
            return False
        try:
            channel.send(json.dumps(message))
        except Exception as exc:  # a closing transport must not break the caller
            log.debug("emulator_send_failed", session=self.id, error=str(exc))
            return False
        return True

    # ------------------------------------------------------------------ endings

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel_tasks(self) -> None:
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def mark_closed(self) -> None:
        if self.open:
            self.open = False
            log.info("emulator_session_closed", session=self.id, frames_sent=self.frames_sent)
            self._changed()

    async def close(self, polite: bool) -> None:
        """End the session: with ``stream_stopped`` first if ``polite``, else abruptly."""
        if polite and self.channel is not None and self.send({"type": "stream_stopped"}):
            await self._drain(self.channel)
        self.mark_closed()
        await self._cancel_tasks()
        # Shielded: aiortc shares one future among concurrent close() calls, and
        # cancelling one waiter would cancel it for all (InvalidStateError in aiortc).
        await asyncio.shield(self.pc.close())

    async def _drain(self, channel: RTCDataChannel) -> None:
        # bufferedamountlow fires once the message has been handed to SCTP and sent,
        # so the close that follows cannot overtake it.
        if channel.bufferedAmount == 0:
            return
        drained = asyncio.get_running_loop().create_future()
        channel.once("bufferedamountlow", lambda: drained.done() or drained.set_result(None))
        try:
            await asyncio.wait_for(drained, GRACEFUL_CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("emulator_stream_stopped_not_drained", session=self.id)

    async def kill(self) -> None:
        """Die like a crashed server: stop everything, send nothing, not even a close.

        Only the ICE sockets are closed (nothing goes out on them); the client
        notices through its own watchdog, or ICE consent failure ~30 s later.
        """
        self.dead = True
        self._changed()
        await self._cancel_tasks()
        transports = []
        for transceiver in self.pc.getTransceivers():
            transports.append(transceiver.receiver.transport.transport)
        if self.pc.sctp is not None:
            transports.append(self.pc.sctp.transport.transport)
        for ice in {id(t): t for t in transports}.values():
            await ice.stop()
