"""The outgoing WebRTC track: the feed's latest frame, paced at the pipeline's rate.

It never goes silent while it lives: Scope's output stops without a word when
the client's track stops sending (``scope-v0.2.4`` behaviour 24), so while the
source is away the track keeps sending the feed's last frame (or black).

One track per session: aiortc cannot move a track to a new peer connection
once its sender stopped, so :class:`~soundscape.video_in.VideoIn` makes a new
one for every offer, all reading the one feed.
"""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from soundscape.video_in.feed import Feed

VIDEO_CLOCK = 90_000  # RTP video clock
# A new source frame is sent as soon as it comes, but never sooner than this share of
# a frame interval after the last one (a faster source is thinned to about the rate);
# without a new frame the last one is repeated after this many intervals.
EARLIEST = 0.9
LATEST_LIVE = 1.5
LATEST_AWAY = 1.0


class OutgoingTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, feed: Feed, fps: float) -> None:
        super().__init__()
        self._feed = feed
        self._interval = 1.0 / fps
        self._seen = -1
        self._last_sent: float | None = None
        self._start: float | None = None
        self.sent = 0
        self.repeats = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._last_sent is not None:
            earliest = self._last_sent + EARLIEST * self._interval
            if earliest > now:
                await asyncio.sleep(earliest - now)  # pacing is the point of this wait
            factor = LATEST_LIVE if self._feed.live else LATEST_AWAY
            latest = self._last_sent + factor * self._interval
            await self._feed.wait_new(self._seen, latest - time.monotonic())
        if self.readyState != "live":
            raise MediaStreamError
        frame, seq = self._feed.current()
        now = time.monotonic()
        if self._start is None:
            self._start = now
        self.repeats += seq == self._seen
        self._seen = seq
        self._last_sent = now
        # The RTP timestamp follows the wall clock, so repeats and gaps keep real timing.
        frame.pts = round((now - self._start) * VIDEO_CLOCK)
        frame.time_base = Fraction(1, VIDEO_CLOCK)
        self.sent += 1
        return frame
