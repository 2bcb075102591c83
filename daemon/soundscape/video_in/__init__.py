"""Video in: a camera, capture card, file, NDI source or test pattern sent to Scope.

In Scope's video mode the pipeline processes the client's own track; without
one nothing comes back. :class:`VideoIn` reads the configured source in a
thread (latest frame wins) and makes a fresh outgoing track for every session.
"""

from soundscape.video_in.config import VideoInConfig
from soundscape.video_in.feed import Feed
from soundscape.video_in.spec import SourceSpec, parse_spec
from soundscape.video_in.track import OutgoingTrack
from soundscape.video_in.video_in import VideoIn

__all__ = ["Feed", "OutgoingTrack", "SourceSpec", "VideoIn", "VideoInConfig", "parse_spec"]
