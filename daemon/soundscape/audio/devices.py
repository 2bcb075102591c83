"""PyAudio (PortAudio) helpers: list input devices, pick one by name, open a capture stream.

PyAudio is the optional extra ``audio`` and is imported lazily. Hazards seen on
Linux and guarded against here: opening a device index that does not exist
segfaults inside PortAudio (we only open an index just read back with
``maxInputChannels > 0``); ``get_default_input_device_info`` raises OSError
when there is no input; ``PyAudio()`` prints dozens of ALSA/JACK lines on
stderr (silenced at the fd level); an unsupported rate raises
``OSError(-9997)`` and ``is_format_supported`` raises ValueError instead of
returning False. Two more, found while testing a JACK server that dies under
an open stream: every PortAudio teardown call (stop, close, terminate) then
hangs forever, and while a PyAudio instance lives, a new one reuses the old
device list. That is why streams are opened in a worker process
(``soundscape.audio.worker``), never in the daemon itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from soundscape.errors import BackendUnavailable


@dataclasses.dataclass(frozen=True)
class InputDevice:
    """An input device as PortAudio reports it."""

    index: int
    name: str
    host_api: str
    channels: int
    default_rate: float


class CaptureError(Exception):
    """A device cannot be opened; the message is the one-line reason that gets logged."""


def pyaudio_module() -> Any:
    """The ``pyaudio`` module, or BackendUnavailable saying how to install it."""
    try:
        import pyaudio
    except ImportError:
        raise BackendUnavailable(
            "PyAudio is not installed: pip install 'soundscape[audio]' "
            "(building it needs the PortAudio headers, e.g. apt-get install portaudio19-dev)"
        ) from None
    return pyaudio


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence fd 2 (C libraries' chatter) for the duration; Python's stderr is flushed first."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def new_pyaudio() -> Any:
    pyaudio = pyaudio_module()
    with quiet_stderr():
        return pyaudio.PyAudio()


def input_devices(pa: Any) -> list[InputDevice]:
    """The devices of a PyAudio instance that have at least one input channel."""
    out = []
    apis: dict[int, str] = {}
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        channels = int(info.get("maxInputChannels", 0))
        if channels <= 0:
            continue
        api = int(info.get("hostApi", -1))
        if api not in apis:
            try:
                apis[api] = str(pa.get_host_api_info_by_index(api).get("name", "?"))
            except (OSError, ValueError):
                apis[api] = "?"
        out.append(
            InputDevice(
                index=i,
                name=str(info.get("name", "")),
                host_api=apis[api],
                channels=channels,
                default_rate=float(info.get("defaultSampleRate", 0.0)),
            )
        )
    return out


def list_input_devices() -> list[InputDevice]:
    """Every input device PortAudio can see now (for ``soundscape audio-devices``).

    Opens and terminates PortAudio once, with no stream. Raises
    :class:`BackendUnavailable` when PyAudio is not installed.
    """
    pa = new_pyaudio()
    try:
        return input_devices(pa)
    finally:
        with quiet_stderr():
            pa.terminate()


def choose_device(devices: list[InputDevice], name: str, default: int | None) -> InputDevice | None:
    """The first device whose name contains ``name`` (any case); with no name, the default.

    ``default`` is PortAudio's default input index, if it has one; failing
    that, the first input device.
    """
    if name:
        wanted = name.casefold()
        return next((d for d in devices if wanted in d.name.casefold()), None)
    by_index = {d.index: d for d in devices}
    if default is not None and default in by_index:
        return by_index[default]
    return devices[0] if devices else None


def default_input_index(pa: Any) -> int | None:
    try:
        return int(pa.get_default_input_device_info()["index"])
    except (OSError, KeyError, ValueError, TypeError):  # raises when there is no input
        return None


def open_input(
    pa: Any,
    name: str,
    *,
    sample_rate: int,
    block_size: int,
    max_channels: int,
    callback: Callable[..., Any],
) -> tuple[Any, InputDevice, int]:
    """Open a float32 callback stream on the device ``name`` picks: (stream, device, channels).

    Raises :class:`CaptureError` with a one-line reason when it cannot.
    """
    pyaudio = pyaudio_module()
    devices = input_devices(pa)
    device = choose_device(devices, name, default_input_index(pa))
    if device is None:
        inputs = ", ".join(repr(d.name) for d in devices) or "none"
        want = f"no input device matches {name!r}" if name else "no input device"
        raise CaptureError(f"{want} (inputs: {inputs})")
    # Read the index back right before opening: a stale index segfaults PortAudio.
    info = pa.get_device_info_by_index(device.index)
    if int(info.get("maxInputChannels", 0)) <= 0:
        raise CaptureError(f"device {device.name!r} has no input channels")
    channels = max(1, min(max_channels, device.channels))
    try:
        pa.is_format_supported(
            sample_rate,
            input_device=device.index,
            input_channels=channels,
            input_format=pyaudio.paFloat32,
        )
    except ValueError as err:
        raise CaptureError(
            f"{device.name!r} cannot capture {channels} ch at {sample_rate} Hz ({err}); "
            f"its default rate is {device.default_rate:g} Hz (set audio.sample_rate)"
        ) from None
    try:
        with quiet_stderr():
            stream = pa.open(
                format=pyaudio.paFloat32,
                channels=channels,
                rate=sample_rate,
                input=True,
                input_device_index=device.index,
                frames_per_buffer=block_size,
                stream_callback=callback,
            )
    except OSError as err:
        raise CaptureError(f"cannot open {device.name!r}: {err}") from None
    return stream, device, channels
