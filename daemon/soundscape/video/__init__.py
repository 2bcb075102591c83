"""Video out: Scope's frames fanned out to NDI, Spout, Syphon and recordings."""

from soundscape.video.config import OutputConfig, ndi_output, validate_outputs
from soundscape.video.fanout import FrameSink, VideoFanout

__all__ = ["FrameSink", "OutputConfig", "VideoFanout", "ndi_output", "validate_outputs"]
