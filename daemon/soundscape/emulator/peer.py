"""A bare Scope client (httpx + aiortc) that checks a server from outside.

Independent of the daemon's session code on purpose: the contract tests use it to
replay, against the emulator, what the recordings of the real server show. It offers
video with the direction asked (``sendrecv`` without a track, as Scope's own front end
does; ``recvonly`` to show the trap), optionally sends a :class:`NumberedTrack`, and
records every frame (size, pts, counter, colour), every data-channel message and every
connection state, each with its arrival time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from soundscape.emulator.renderer import decode_counter, stamp_barcode

VIDEO_CLOCK = 90000


@dataclass(frozen=True)
class Received:
    """One decoded frame as the client saw it."""

    t: float
    width: int
    height: int
    pts: int | None
    time_base: Fraction | None
    counter: int | None
    colourful: bool


class Watch:
    """Something that changes; ``until(pred)`` waits for it without polling."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def changed(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._event.wait()


class NumberedTrack(MediaStreamTrack):
    """A client camera: frame n carries n in the emulator's barcode, on a red picture.

    ``stop_sending()`` makes it go silent (no frame, no BYE), as a stalled camera does;
    ``size`` can change mid-stream.
    """

    kind = "video"

    def __init__(self, width: int = 320, height: int = 192, fps: float = 30.0) -> None:
        super().__init__()
        self.size = (width, height)
        self.fps = fps
        self.sent = 0
        self.silent = False
        self._resume = asyncio.Event()
        self._resume.set()
        self._next_at: float | None = None

    def stop_sending(self) -> None:
        self.silent = True
        self._resume.clear()

    def resume(self) -> None:
        self.silent = False
        self._next_at = None
        self._resume.set()

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError  # stop(): the sender ends, as aiortc's own tracks do
        await self._resume.wait()
        now = time.monotonic()
        if self._next_at is None:
            self._next_at = now
        if self._next_at > now:
            await asyncio.sleep(self._next_at - now)
        self._next_at += 1 / self.fps
        await self._resume.wait()
        frame = numbered_frame(self.sent, *self.size)
        frame.pts = round(self.sent * VIDEO_CLOCK / self.fps)
        frame.time_base = Fraction(1, VIDEO_CLOCK)
        self.sent += 1
        return frame


def numbered_frame(n: int, width: int, height: int) -> VideoFrame:
    """A yuv420p frame carrying ``n`` (barcode) on a strongly red background."""
    buf = np.empty((height * 3 // 2, width), np.uint8)
    buf[:height] = 82  # luma of pure red (BT.601 studio range)
    stamp_barcode(buf[:height], n)
    cw, ch = width // 2, height // 2
    chroma = buf[height:].reshape(-1)
    chroma[: cw * ch] = 90  # U
    chroma[cw * ch : 2 * cw * ch] = 240  # V: red
    return VideoFrame.from_ndarray(buf, format="yuv420p")


def is_colourful(frame: VideoFrame) -> bool:
    planes = frame.to_ndarray(format="yuv420p")
    chroma = planes[frame.height :].astype(np.int16)
    return float(np.abs(chroma - 128).mean()) > 8.0


class ScopePeer:
    """One client session: ``await connect(initial)``, then frames, messages, states."""

    def __init__(
        self,
        url: str,
        *,
        direction: str = "sendrecv",
        track: MediaStreamTrack | None = None,
        audio: bool = True,
    ) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=10.0)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.channel = self.pc.createDataChannel("parameters", ordered=True)
        self.direction = direction
        self.track = track
        self.audio = audio
        self.frames: list[Received] = []
        self.messages: list[Any] = []
        self.states: list[str] = []
        self.channel_open = False
        self.channel_closed = False
        self.remote_track_ended = False
        self.session_id: str | None = None
        self.answer_sdp: str | None = None
        self.watch = Watch()
        self._reader: asyncio.Task[None] | None = None
        self.channel.on("open", self._on_open)
        self.channel.on("close", self._on_close)
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    def _on_open(self) -> None:
        self.channel_open = True
        self.watch.changed()

    def _on_close(self) -> None:
        self.channel_closed = True
        self.watch.changed()

    def _on_message(self, message: str) -> None:
        try:
            self.messages.append(json.loads(message))
        except ValueError:
            self.messages.append(message)
        self.watch.changed()

    def _on_state(self) -> None:
        self.states.append(self.pc.connectionState)
        self.watch.changed()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._reader = asyncio.create_task(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                luma = frame.to_ndarray(format="yuv420p")[: frame.height]
                self.frames.append(
                    Received(
                        t=time.monotonic(),
                        width=frame.width,
                        height=frame.height,
                        pts=frame.pts,
                        time_base=frame.time_base,
                        counter=decode_counter(luma),
                        colourful=is_colourful(frame),
                    )
                )
                self.watch.changed()
        except MediaStreamError:
            self.remote_track_ended = True
            self.watch.changed()

    async def offer_body(self, initial: dict[str, Any] | None) -> dict[str, Any]:
        """The offer request body (media as configured; creates the local description once)."""
        if self.pc.localDescription is None:
            if self.track is not None:
                self.pc.addTransceiver(self.track, direction=self.direction)
            else:
                self.pc.addTransceiver("video", direction=self.direction)
            if self.audio:
                self.pc.addTransceiver("audio", direction="recvonly")
            await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = self.pc.localDescription
        body: dict[str, Any] = {"sdp": offer.sdp, "type": offer.type}
        if initial is not None:
            body["initialParameters"] = initial
        return body

    async def connect(self, initial: dict[str, Any] | None) -> httpx.Response:
        """POST the offer; on 200 apply the answer."""
        response = await self.http.post("/api/v1/webrtc/offer", json=await self.offer_body(initial))
        if response.status_code == 200:
            answer = response.json()
            self.session_id = answer["sessionId"]
            self.answer_sdp = answer["sdp"]
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=answer["sdp"], type=answer["type"])
            )
        return response

    def send(self, message: dict[str, Any] | str) -> None:
        self.channel.send(message if isinstance(message, str) else json.dumps(message))

    async def delete(self) -> httpx.Response:
        return await self.http.delete(f"/api/v1/webrtc/offer/{self.session_id}")

    def counters(self) -> list[int]:
        return [f.counter for f in self.frames if f.counter is not None]

    async def frames_after(self, n: int, timeout: float = 10.0) -> list[Received]:
        """The next ``n`` frames."""
        start = len(self.frames)
        await self.watch.until(lambda: len(self.frames) >= start + n, timeout)
        return self.frames[start : start + n]

    async def quiet(self, predicate: Callable[[], bool], seconds: float) -> bool:
        """True if ``predicate`` stayed false for ``seconds`` (for what must NOT happen)."""
        try:
            await self.watch.until(predicate, seconds)
        except TimeoutError:
            return True
        return False

    def answer_direction(self, kind: str = "video") -> str | None:
        """The direction the answer gives the first m-line of ``kind``."""
        if self.answer_sdp is None:
            return None
        for section in self.answer_sdp.split("m=")[1:]:
            if section.startswith(kind):
                for direction in ("sendrecv", "sendonly", "recvonly", "inactive"):
                    if f"a={direction}" in section:
                        return direction
        return None

    async def close(self) -> None:
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait({self._reader})
        await self.http.aclose()
