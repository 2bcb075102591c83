"""One emulated Scope session: a peer connection, its video track and data channel.

What it sends and when follows the real Scope v0.2.4 server (``scope-v0.2.4/``):

* output starts only once the client's video transceiver can send (the server's
  ``track`` event): a ``recvonly`` offer gets a ``sendonly`` answer and zero frames;
* a session runs the pipelines its offer named, fixed at the offer: a later REST load,
  or ``input_mode``/``pipeline_ids`` on the data channel, change nothing. An offer
  without ``pipeline_ids``, or naming a pipeline not loaded, connects and sends
  nothing (and gets no ``stream_stopped`` on DELETE: its processor never started);
* generators (controller-viz, the diffusion pipelines in text mode) draw at their own
  rate; processors (passthrough, gray, …; diffusion in video mode) answer the client's
  frames, each once, in order, at the client's size and rate, in chunks (passthrough
  holds 4) — no input, no output, no frozen frame, no message;
* ``paused`` repeats the last drawn frame at the normal rate;
* the data channel never answers and never validates: values are merged as they are
  (only ``input_source`` is dropped).
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import time
import uuid
from collections import deque
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

# Keys newer Scope versions (with tempo sync) take out of a message; v0.2.4 stores them.
TEMPO_KEYS = frozenset(
    {"quantize_mode", "lookahead_ms", "output_sinks", "modulations", "beat_cache_reset_rate"}
)
VIDEO_CLOCK = 90000
OVERLAY_INTERVAL = 0.1  # redraw the text at most 10 times a second: people can't read faster
GRACEFUL_CLOSE_TIMEOUT = 1.0
MAX_HELD = 64  # processed frames waiting for the encoder; older ones are dropped
MAX_INPUT_GAP = 0.2  # pacing of a chunk's frames never spreads wider than this


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
        ready: asyncio.Event | None = None,
    ) -> None:
        self.id = str(uuid.uuid4())
        self.pc = pc
        self.pipeline = pipeline
        self.created_at = time.time()
        self.clock = clock
        self._on_change = on_change
        self._ready = ready or _set_event()
        ids = initial.get("pipeline_ids")
        # Scope starts no frame processor without pipeline ids, or for one not loaded.
        self.active_ids: tuple[str, ...] | None = (
            tuple(ids)
            if isinstance(ids, list) and ids and all(i in pipeline.pipeline_ids for i in ids)
            else None
        )
        self.input_mode = str(
            initial.get("input_mode") or catalog.default_mode(list(self.active_ids or ()))
        )
        behaviours = [catalog.behaviour(p) for p in self.active_ids or ()]
        main = behaviours[-1] if behaviours else catalog.Behaviour()
        self.generates = main.generator and not (main.diffusion and self.input_mode == "video")
        self._chunk = max((b.chunk for b in behaviours), default=1)
        self._gray = any(b.gray for b in behaviours)
        self._draws = main.diffusion  # a diffusion pipeline shows its own picture
        gen_fps = main.fps or fps
        self.pipeline_fps = gen_fps if self.generates else 30.0
        self._period = 1.0 / gen_fps if gen_fps > 0 else 1.0 / 30
        self._pts_step = main.pts_step or round(VIDEO_CLOCK / max(gen_fps, 1.0))
        self.input_source = initial.get("input_source")
        self.parameters: dict[str, Any] = catalog.with_defaults(
            {k: v for k, v in initial.items() if k != "input_source"}
        )
        # The picture follows the parameters this late (controller-viz: ~0.6 s recorded).
        self._latency = main.visible_latency
        self._shown: deque[tuple[float, dict[str, Any]]] = deque()
        self._shown.append((-math.inf, dict(self.parameters)))
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
        self.receives_video = False  # the offer's video can send: the server's output starts
        self.input_track: MediaStreamTrack | None = None
        self._input_frame: VideoFrame | None = None
        self._chunk_frames: list[VideoFrame] = []
        self._held: deque[tuple[VideoFrame, float]] = deque(maxlen=MAX_HELD)
        self._last_input_at: float | None = None
        self._input_gap = 1 / 30
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
        if self.active_ids is None:
            log.error("emulator_no_frame_processor", session=self.id, pipeline_ids=ids)
        if self.input_source is not None:
            log.error("emulator_input_source_unavailable", session=self.id)
        pc.on("datachannel", self._on_datachannel)
        pc.on("track", self._on_track)

    # ------------------------------------------------------------------ state

    @property
    def processor_started(self) -> bool:
        """Whether a frame processor runs (only then does DELETE send ``stream_stopped``)."""
        return self.active_ids is not None

    @property
    def paused(self) -> bool:
        return bool(self.parameters.get("paused"))

    @property
    def producing(self) -> bool:
        """Whether frames flow now (a paused stream with a last frame still flows)."""
        if not self._can_send():
            return False
        if not self.generates:
            return self.input_track is not None
        return not (self.paused and self._last_buffer is None)

    def _can_send(self) -> bool:
        return (
            self.open
            and not self.dead
            and not self.stalled
            and self.processor_started
            and self.receives_video
        )

    def state(self) -> dict[str, Any]:
        """This session's entry in ``GET /_emulator/state``."""
        return {
            "id": self.id,
            "open": self.open and not self.dead,
            "parameters": copy.deepcopy(self.parameters),
            "messages_received": self.messages_received,
            "bad_messages": self.bad_messages,
            "frames_sent": self.frames_sent,
            "frame_counter": max(self.counter, 0) if self.frames_sent and self.generates else None,
            "paused": self.paused,
            "stalled": self.stalled,
            "producing": self.producing,
            "created_at": self.created_at,
            "pipeline_ids": list(self.pipeline.pipeline_ids),
            "active_pipeline_ids": list(self.active_ids) if self.active_ids else None,
            "pipeline_generation": self.pipeline.generation,
            "input_mode": self.input_mode,
            "receives_video": self.receives_video,
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

    def metrics(self) -> dict[str, Any]:
        """This session's entry in ``GET /api/v1/session/metrics`` (recorded shape)."""
        elapsed = max(time.time() - self.created_at, 1e-6)
        return {
            "frames_in": self.frames_received,
            "frames_out": self.frames_sent,
            "elapsed_seconds": elapsed,
            "fps_in": self.frames_received / elapsed,
            "fps_out": self.frames_sent / elapsed,
            "pipeline_fps": self.pipeline_fps,
            "output_sinks": {},
            "input_source_enabled": False,  # no NDI/Spout/Syphon here: ignored, as recorded
            "input_source_type": "",
            "relay_mode": False,
        }

    def _changed(self) -> None:
        self._wake.set()
        self._on_change()

    # ------------------------------------------------------------------ frames

    async def next_frame(self) -> VideoFrame:
        """The next frame to send; blocks while there is none (never a frozen filler)."""
        while True:
            await self._ready.wait()  # the pipeline manager is unloading: output pauses
            if not self._can_send():
                await self._wait_change()
                continue
            frame = await (self._generated() if self.generates else self._processed())
            if frame is None:
                continue
            self.frames_sent += 1
            self._on_change()
            return frame

    async def _wait_change(self) -> None:
        self._wake.clear()
        await self._wake.wait()
        self._due = None  # no burst of catch-up frames after a gap

    async def _generated(self) -> VideoFrame | None:
        if self._picture_paused() and self._last_buffer is None:
            await self._wait_change()
            return None
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._due is None:
            self._due = now
        if self._due > now:
            await asyncio.sleep(self._due - now)
            return None  # something may have changed while we slept
        self._due = max(self._due + self._period, now - self._period)
        buffer = self._next_buffer()
        frame = to_video_frame(buffer)
        frame.pts = (self.frames_sent + 1) * self._pts_step
        frame.time_base = Fraction(1, VIDEO_CLOCK)
        return frame

    async def _processed(self) -> VideoFrame | None:
        if not self._held:
            await self._wait_change()
            return None
        frame, due = self._held[0]
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
            return None
        self._held.popleft()
        return frame

    def _next_buffer(self) -> np.ndarray:
        if self._picture_paused() and self._last_buffer is not None:
            return self._last_buffer
        renderer = self._renderer
        if renderer is None or (renderer.width, renderer.height) != (self.width, self.height):
            renderer = self._renderer = Renderer(self.width, self.height)
            self._overlay_dirty = True
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

    def _visible(self) -> dict[str, Any]:
        """The parameters the picture shows now (``visible_latency`` behind the last ones)."""
        if not self._latency:
            return self.parameters
        now = time.monotonic() - self._latency
        while len(self._shown) > 1 and self._shown[1][0] <= now:
            self._shown.popleft()
            self._overlay_dirty = True
        return self._shown[0][1]

    def _picture_paused(self) -> bool:
        return bool(self._visible().get("paused"))

    def _number(self, key: str, default: float) -> float:
        value = self._visible().get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return default
        return max(0.0, min(1.0, float(value)))

    def _overlay_info(self) -> dict[str, Any]:
        transition = None
        if self.transition and self.transition["step"] < self.transition["num_steps"]:
            transition = self.transition
        return {
            "parameters": self._visible(),
            "pipeline": "+".join(self.active_ids or ()) or self.pipeline.name,
            "transition": transition,
            "cache_resets": self.cache_resets,
            "tempo_bpm": self.clock.bpm if self.clock else None,
        }

    # ------------------------------------------------------------------ input

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "video":
            return
        # Fired for an offer whose video can send (sendrecv/sendonly), track or not.
        self.receives_video = True
        self.input_track = track
        self._spawn(self._consume(track))
        self._changed()

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    self._take_input(frame)
                self.frames_received += 1
        except MediaStreamError:
            # The client's sender ended: output stops; the server tells nobody.
            self.input_track = None
            self._input_frame = None
            self._changed()

    def _take_input(self, frame: VideoFrame) -> None:
        now = time.monotonic()
        if self._last_input_at is not None:
            gap = min(MAX_INPUT_GAP, max(0.0, now - self._last_input_at))
            self._input_gap = 0.8 * self._input_gap + 0.2 * gap
        self._last_input_at = now
        self._input_frame = frame
        if self.generates or not self._can_send():
            return  # a generator ignores its input; a session not sending drops it
        self._chunk_frames.append(frame)
        if len(self._chunk_frames) < self._chunk:
            return
        chunk, self._chunk_frames = self._chunk_frames, []
        for i, item in enumerate(chunk):
            self._held.append((self._process(item), now + i * self._input_gap))
        self._changed()

    def _process(self, frame: VideoFrame) -> VideoFrame:
        if self._draws:  # diffusion in video mode: its own picture, at the input's pace
            self.width, self.height = frame_size(frame.width, frame.height)
            out = to_video_frame(self._next_buffer())
        elif self._gray:
            planes = frame.to_ndarray(format="yuv420p").copy()
            planes[frame.height :] = 128  # neutral chroma: R=G=B
            out = VideoFrame.from_ndarray(planes, format="yuv420p")
        else:
            return frame  # passthrough: the client's own frame, size and pts
        out.pts, out.time_base = frame.pts, frame.time_base
        return out

    # ------------------------------------------------------------------ data channel

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
        data.pop("input_source", None)  # dropped without a word, as recorded
        if self.clock is None:
            self._apply(data)
        else:
            self._apply_tempo_aware(data)
        self._changed()

    def _apply_tempo_aware(self, data: dict[str, Any]) -> None:
        """Newer Scope (tempo sync on): session keys taken out, quantized changes scheduled."""
        assert self.clock is not None
        quantized = data.pop("_quantized", False) is True
        if "quantize_mode" in data:
            self.quantize_mode = data["quantize_mode"]
        if isinstance(data.get("lookahead_ms"), int | float):
            self.lookahead_ms = float(data["lookahead_ms"])
        for key in TEMPO_KEYS - {"quantize_mode", "lookahead_ms"}:
            if key in data:
                self.session_settings[key] = data[key]
        update = {k: v for k, v in data.items() if k not in TEMPO_KEYS}
        delay = None
        if quantized and isinstance(self.quantize_mode, str):
            delay = self.clock.delay_to_boundary(time.time(), self.quantize_mode, self.lookahead_ms)
        if delay is None:
            self._apply(update)
        else:
            self.send({"type": "change_scheduled", "delay_ms": round(delay * 1000)})
            self._spawn(self._apply_later(update, delay))

    async def _apply_later(self, update: dict[str, Any], delay: float) -> None:
        await asyncio.sleep(delay)
        if not self.open or self.dead:
            return
        self._apply(update)
        self.send({"type": "change_applied"})
        self._changed()

    def apply_external(self, applied: dict[str, Any]) -> None:
        """A REST ``session/parameters`` update: merge and tell the client what was applied."""
        self._apply(dict(applied))
        self.send({"type": "parameters_updated", "parameters": applied})
        self._changed()

    def _apply(self, update: dict[str, Any]) -> None:
        """Merge one update into the parameters as it is (v0.2.4 validates nothing here)."""
        if update.get("reset_cache") is True:
            self.cache_resets += 1
        transition = update.get("transition")
        before = self.parameters.get("prompts")
        self.parameters.update(update)
        if self._latency:
            self._shown.append((time.monotonic(), dict(self.parameters)))
            self._visible()  # drops what is past, also for a session that draws nothing
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
        """End the session: ``stream_stopped`` first if ``polite`` and its processor ran."""
        polite = polite and self.processor_started and self.channel is not None
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


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event
