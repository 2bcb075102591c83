"""The video-in part: a source read in a supervised thread, and a track per session."""

from __future__ import annotations

import asyncio
import threading

import av
import structlog

from soundscape.tasks import Supervised, in_thread, supervise
from soundscape.video_in.config import VideoInConfig
from soundscape.video_in.feed import Feed
from soundscape.video_in.sources import Reader, reader_for
from soundscape.video_in.spec import SourceSpec, parse_spec
from soundscape.video_in.track import OutgoingTrack

log = structlog.get_logger(__name__)

STOP_GRACE = 1.0  # s a reader thread gets to notice its stop flag


class VideoIn:
    """``start()``/``stop()`` like the daemon's other parts; ``track()`` for each offer."""

    def __init__(
        self, config: VideoInConfig, pipeline_size: tuple[int, int], reader: Reader | None = None
    ) -> None:
        self.config = config
        self.spec: SourceSpec = parse_spec(config.source)
        self.size = (config.width or pipeline_size[0], config.height or pipeline_size[1])
        self.feed = Feed(
            self.size,
            when_away=config.when_away,
            away_after=config.away_after,
            label=str(self.spec),
        )
        self._reader = reader or reader_for(self.spec, self.size, config.fps, loop=config.loop)
        self._stop = threading.Event()
        self._part: Supervised | None = None
        self._track: OutgoingTrack | None = None  # the main server's (counters)
        self._tracks: dict[str, OutgoingTrack] = {}  # each server's current track
        self._main = ""

    def _put(self, frame: av.VideoFrame) -> None:
        # On the reader's thread: the scaling stays off the event loop.
        width, height = self.size
        if frame.width != width or frame.height != height or frame.format.name != "yuv420p":
            frame = frame.reformat(width=width, height=height, format="yuv420p")
        self.feed.put(frame)

    async def _read(self) -> None:
        self._stop.clear()
        await in_thread(lambda: self._reader(self._stop, self._put), name="video-in")

    async def start(self) -> None:
        self.feed.bind(asyncio.get_running_loop())
        log.info("video_in_start", source=str(self.spec), size=f"{self.size[0]}x{self.size[1]}")
        self._part = supervise("video-in", self._read)

    async def stop(self) -> None:
        self._stop.set()
        for track in self._tracks.values():
            track.stop()
        if self._part is not None:
            await self._part.stop(grace=STOP_GRACE)
            self._part = None

    def track(self, server: str = "") -> OutgoingTrack:
        """A fresh track for a new session; the previous session's track (to the same
        ``server``: a standby has its own) ends."""
        previous = self._tracks.pop(server, None)
        if previous is not None:
            previous.stop()
        track = self._tracks[server] = OutgoingTrack(self.feed, self.config.fps)
        if server == self._main or self._track is None:
            self._main, self._track = server, track
        return track

    def counters(self) -> dict[str, object]:
        track = self._track
        return {
            "source": str(self.spec),
            "frames_in": self.feed.seq,
            "live": self.feed.live,
            "sent": track.sent if track else 0,
            "repeats": track.repeats if track else 0,
        }
