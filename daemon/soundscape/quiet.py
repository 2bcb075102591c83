"""Silence native libraries' own stderr chatter (ALSA, JACK) while probing for devices.

rtmidi's and PortAudio's C code print straight to file descriptor 2 when no
MIDI or sound system is there; the daemon says what that means in one line of
its own instead. Python's ``sys.stderr`` is flushed first and works again after.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (a detached process): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
