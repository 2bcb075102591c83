"""One WebRTC session with Scope: a peer connection, the ``parameters`` data
channel and the incoming video track.

A session lives once: when it ends (for whatever reason) it reports the reason
through ``on_lost`` exactly once, and the supervisor builds a new one. It
never reconnects by itself.

The video transceiver is ``sendrecv``: the real server answers a ``recvonly``
offer with ``sendonly`` and then never starts its output track (zero frames,
forever; ``scope-v0.2.4/recvonly-no-frames.json``). Scope's own browser client
offers ``sendrecv`` with no track in text mode; so do we. ``outgoing`` is the
track to send in video mode (the video-in feature); None sends nothing.

This module is the boundary to aiortc: its exceptions (``ValueError`` for an
SDP that is not SDP, ``InvalidStateError``, ``InvalidAccessError``,
``OperationError``) become :class:`~soundscape.errors.ScopeSessionError`, and an
exception raised by a callback ends the session with a reason instead of
vanishing inside aiortc's event emitter.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import av
import structlog
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from soundscape.errors import ScopeError, ScopeSessionError
from soundscape.scope.api import IceServer, ScopeClient
from soundscape.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

FrameCallback = Callable[[av.VideoFrame], None]
MessageCallback = Callable[[dict[str, Any]], None]
LostCallback = Callable[[str], None]

# Never "recvonly": the real server then answers "sendonly" and sends zero frames.
VIDEO_DIRECTION = "sendrecv"

# What aiortc raises on a description it refuses or a connection in the wrong state.
AIORTC_ERRORS = (
    ValueError,
    InvalidStateError,
    InvalidAccessError,
    OperationError,
    InternalError,
)


def release(pc: RTCPeerConnection) -> None:
    """Break the reference cycles a closed peer connection keeps with its transports.

    Each ICE/DTLS/SCTP transport holds the connection's bound methods as event listeners
    while the connection holds the transports, so a closed connection -- and the native
    codec and socket buffers behind it -- waited for a full garbage collection, which may
    come minutes later: the soak saw RSS climb by reconnects. With the listeners gone,
    reference counting frees it at once.
    """
    transports: dict[int, Any] = {}
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if dtls is not None:
            transports[id(dtls)] = dtls
    if pc.sctp is not None:
        pc.sctp.remove_all_listeners()
        transports[id(pc.sctp.transport)] = pc.sctp.transport
    for dtls in transports.values():
        dtls.remove_all_listeners()
        dtls.transport.remove_all_listeners()
        dtls.transport.iceGatherer.remove_all_listeners()
    pc.remove_all_listeners()


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class HeapTrim:
    """Hands the C heap's free pages back to the system once a session is gone.

    A session's native buffers (the VP8 decoder's frames in its own thread, DTLS and
    SRTP contexts, RTP queues) are freed when it closes, but glibc keeps the pages in
    its arenas (one per thread that allocated), and fragmentation moved their high-water
    marks up reconnect by reconnect: 200 reconnects under a show's load grew RSS by
    8.2 MB with the heap in use flat, 2.8 MB with this (2 of them Python's own
    allocator, early). ``malloc_trim`` runs in a worker thread (ctypes releases the
    GIL), at most one at a time, after the closing task's current step, by when the
    closed connection has been dropped; it took at most a few ms.
    """

    def __init__(self, trim: Callable[[int], int] | None) -> None:
        self._trim = trim
        self._starting: asyncio.AbstractEventLoop | None = None  # a start is scheduled there
        self.running: asyncio.Future[None] | None = None  # the latest trim
        self.runs = 0
        self.longest = 0.0  # seconds, the longest trim so far (it holds each arena's lock)

    def soon(self) -> None:
        """Trim in the background (a no-op without glibc or while one is under way)."""
        if self._trim is None:
            return
        loop = asyncio.get_running_loop()
        running = self.running
        if self._starting is loop or (
            running is not None and not running.done() and running.get_loop() is loop
        ):
            return
        self._starting = loop
        loop.call_soon(self._start)

    def _start(self) -> None:
        self._starting = None
        try:
            self.running = asyncio.get_running_loop().run_in_executor(None, self._run)
        except RuntimeError:  # the loop's executor is shut down: the process is ending
            return
        self.running.add_done_callback(self._done)

    def _run(self) -> None:
        assert self._trim is not None
        start = time.perf_counter()
        self._trim(0)
        self.longest = max(self.longest, time.perf_counter() - start)

    def _done(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.runs += 1


HEAP_TRIM = HeapTrim(_malloc_trim())


class ScopeSession:
    def __init__(
        self,
        client: ScopeClient,
        *,
        ice_servers: list[IceServer],
        on_frame: FrameCallback,
        on_message: MessageCallback,
        on_lost: LostCallback,
        outgoing: MediaStreamTrack | None = None,
    ) -> None:
        self._client = client
        self._ice = [RTCIceServer(list(s.urls), s.username, s.credential) for s in ice_servers]
        self._on_frame = on_frame
        self._on_message = on_message
        self._on_lost = on_lost
        self._outgoing = outgoing
        self._pc: RTCPeerConnection | None = None
        self._channel: RTCDataChannel | None = None
        self._video: RTCRtpTransceiver | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lost = False
        self._ended: asyncio.Event = asyncio.Event()  # set on the first loss
        self.lost_reason: str | None = None
        self.session_id: str | None = None
        self.messages_sent = 0

    # ----- lifecycle

    async def open(self, initial_parameters: Mapping[str, Any], timeout: float) -> None:
        """Offer, answer, and wait until the data channel is open.

        Raises ScopeError: the server's 400/422 (:class:`ScopeHTTPError`), an
        answer aiortc refuses or one without video (:class:`ScopeSessionError`),
        a session lost before its channel opened; or TimeoutError. The caller
        closes the session either way.
        """
        try:
            await self._negotiate(initial_parameters)
        except AIORTC_ERRORS as err:
            raise ScopeSessionError(f"WebRTC: {type(err).__name__}: {err}") from err
        opened = asyncio.Event()
        assert self._channel is not None
        if self._channel.readyState == "open":
            opened.set()
        self._channel.on("open", opened.set)
        async with asyncio.timeout(timeout):
            waits = [asyncio.ensure_future(e.wait()) for e in (opened, self._ended)]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
        if not opened.is_set():
            raise ScopeSessionError(f"session lost while opening: {self.lost_reason}")

    async def _negotiate(self, initial_parameters: Mapping[str, Any]) -> None:
        pc = self._pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice))
        channel = self._channel = pc.createDataChannel("parameters", ordered=True)
        channel.on("message", self._guard("data channel message", self._message))
        channel.on("close", self._guard("data channel close", self._channel_closed))
        self._video = pc.addTransceiver(self._outgoing or "video", direction=VIDEO_DIRECTION)
        pc.on("track", self._guard("track", self._track))
        pc.on("connectionstatechange", self._guard("connection state", self._connection_state))

        await pc.setLocalDescription(await pc.createOffer())
        answer = await self._client.offer(pc.localDescription.sdp, initial_parameters)
        self.session_id = answer.session_id
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type=answer.type))
        except Exception as err:  # whatever aiortc's parser trips on, the answer is at fault
            raise ScopeSessionError(
                f"the server's answer is not usable SDP: {type(err).__name__}: {err}"
            ) from err
        # The server must send video: its answer's direction seen from our side.
        direction = self._video.currentDirection
        if direction not in ("recvonly", "sendrecv"):
            raise ScopeSessionError(f"the answer offers no video (direction {direction})")

    @property
    def channel_open(self) -> bool:
        return self._channel is not None and self._channel.readyState == "open"

    @property
    def video_direction(self) -> str | None:
        """What we offered for video (``sendrecv``); None before ``open``."""
        return None if self._video is None else self._video.direction

    def send(self, message: Mapping[str, Any]) -> bool:
        """Send one JSON message on the data channel; False if it is not open."""
        if not self.channel_open or self._lost:
            return False
        assert self._channel is not None
        try:
            self._channel.send(json.dumps(message, separators=(",", ":")))
        except AIORTC_ERRORS as err:  # closed between the check and the send
            self._lose(f"data channel send failed: {err}")
            return False
        self.messages_sent += 1
        return True

    async def close(self, *, polite: bool, timeout: float = 1.0) -> None:
        """End the session; ``polite`` asks the server to end it first (DELETE)."""
        self._lost = True  # whatever happens now is our own doing, not a loss
        self._ended.set()
        if polite and self.session_id is not None:
            try:
                await self._client.delete_session(self.session_id, timeout=timeout)
            except ScopeError as err:
                log.debug("session_delete_failed", session=self.session_id, error=str(err))
        if self._reader is not None:
            await cancel_and_wait(self._reader)
        if self._pc is not None:
            # Shielded: a close cancelled half-way leaves aiortc with a failing orphan task.
            await asyncio.shield(self._pc.close())
            release(self._pc)
            HEAP_TRIM.soon()

    # ----- events

    def _lose(self, reason: str) -> None:
        if not self._lost:
            self._lost = True
            self.lost_reason = reason
            self._ended.set()
            self._on_lost(reason)

    def _guard(self, what: str, handler: Callable[..., None]) -> Callable[..., None]:
        """Run an event handler; its exception ends the session with a reason.

        pyee would otherwise raise it inside aiortc (or drop it), and nobody
        would hear of it.
        """

        def guarded(*args: Any) -> None:
            try:
                handler(*args)
            except Exception as err:
                log.exception("session_callback_failed", callback=what, session=self.session_id)
                self._lose(f"internal error in {what}: {type(err).__name__}: {err}")

        return guarded

    def _channel_closed(self) -> None:
        self._lose("data channel closed")

    def _connection_state(self) -> None:
        assert self._pc is not None
        state = self._pc.connectionState
        log.debug("peer_connection_state", state=state, session=self.session_id)
        if state in ("failed", "closed"):
            self._lose(f"peer connection {state}")

    def _message(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            log.warning("scope_message_not_json", size=len(raw))
            return
        if not isinstance(message, dict):
            log.warning("scope_message_not_object", message=str(message)[:100])
            return
        self._on_message(message)

    def _track(self, track: MediaStreamTrack) -> None:
        if track.kind != "video" or self._reader is not None:
            return
        self._reader = asyncio.get_running_loop().create_task(
            self._read_frames(track), name="scope-video"
        )

    async def _read_frames(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    self._on_frame(frame)
        except MediaStreamError:
            self._lose("video track ended")
        except Exception as err:  # a decoder or callback failure: a loss, not a silent end
            log.exception("session_video_failed", session=self.session_id)
            self._lose(f"video: {type(err).__name__}: {err}")
