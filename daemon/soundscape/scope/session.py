"""One WebRTC session with Scope: a peer connection, the ``parameters`` data
channel and the incoming video track.

A session lives once: when it ends (for whatever reason) it reports the reason
through ``on_lost`` exactly once, and the supervisor builds a new one. It
never reconnects by itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

import av
import structlog
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from soundscape.errors import ScopeError
from soundscape.scope.api import IceServer, ScopeClient
from soundscape.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

FrameCallback = Callable[[av.VideoFrame], None]
MessageCallback = Callable[[dict[str, Any]], None]
LostCallback = Callable[[str], None]


class ScopeSession:
    def __init__(
        self,
        client: ScopeClient,
        *,
        ice_servers: list[IceServer],
        on_frame: FrameCallback,
        on_message: MessageCallback,
        on_lost: LostCallback,
    ) -> None:
        self._client = client
        self._ice = [RTCIceServer(list(s.urls), s.username, s.credential) for s in ice_servers]
        self._on_frame = on_frame
        self._on_message = on_message
        self._on_lost = on_lost
        self._pc: RTCPeerConnection | None = None
        self._channel: RTCDataChannel | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lost = False
        self.session_id: str | None = None
        self.messages_sent = 0

    # ----- lifecycle

    async def open(self, initial_parameters: Mapping[str, Any], timeout: float) -> None:
        """Offer, answer, and wait until the data channel is open.

        Raises ScopeError (e.g. 400 pipeline not loaded, 422 bad parameters)
        or TimeoutError; the caller closes the session either way.
        """
        pc = self._pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice))
        channel = self._channel = pc.createDataChannel("parameters", ordered=True)
        opened = asyncio.Event()
        channel.on("open", opened.set)
        channel.on("message", self._message)
        channel.on("close", lambda: self._lose("data channel closed"))
        pc.addTransceiver("video", direction="recvonly")
        pc.on("track", self._track)
        pc.on("connectionstatechange", self._connection_state)

        await pc.setLocalDescription(await pc.createOffer())
        answer = await self._client.offer(pc.localDescription.sdp, initial_parameters)
        self.session_id = answer.session_id
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type=answer.type))
        async with asyncio.timeout(timeout):
            await opened.wait()

    @property
    def channel_open(self) -> bool:
        return self._channel is not None and self._channel.readyState == "open"

    def send(self, message: Mapping[str, Any]) -> bool:
        """Send one JSON message on the data channel; False if it is not open."""
        if not self.channel_open or self._lost:
            return False
        assert self._channel is not None
        self._channel.send(json.dumps(message, separators=(",", ":")))
        self.messages_sent += 1
        return True

    async def close(self, *, polite: bool, timeout: float = 1.0) -> None:
        """End the session; ``polite`` asks the server to end it first (DELETE)."""
        self._lost = True  # whatever happens now is our own doing, not a loss
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

    # ----- events

    def _lose(self, reason: str) -> None:
        if not self._lost:
            self._lost = True
            self._on_lost(reason)

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
        self._reader = asyncio.get_running_loop().create_task(self._read_frames(track))

    async def _read_frames(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    self._on_frame(frame)
        except MediaStreamError:
            self._lose("video track ended")
