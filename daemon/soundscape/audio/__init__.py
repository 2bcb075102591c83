"""Audio in and what it sounds like: capture, features, onsets, beats (pure numpy).

See docs/audio.md. The component is :class:`~soundscape.audio.engine.AudioEngine`
(a source feeding an :class:`~soundscape.audio.features.AudioAnalyzer`); its
config section is :class:`~soundscape.audio.config.AudioConfig`.
"""

from soundscape.audio.capture import AudioBlock, DeviceCapture, FileSource, open_source
from soundscape.audio.config import AudioConfig
from soundscape.audio.devices import InputDevice, list_input_devices
from soundscape.audio.engine import AudioEngine
from soundscape.audio.features import AudioAnalyzer, Features

__all__ = [
    "AudioAnalyzer",
    "AudioBlock",
    "AudioConfig",
    "AudioEngine",
    "DeviceCapture",
    "Features",
    "FileSource",
    "InputDevice",
    "list_input_devices",
    "open_source",
]
