"""Video out: Scope's frames fanned out to NDI, Spout, Syphon and recordings."""

from soundscape.video.config import OutputConfig, ndi_output, validate_outputs
from soundscape.video.fanout import VideoFanout

__all__ = ["OutputConfig", "VideoFanout", "ndi_output", "validate_outputs"]
