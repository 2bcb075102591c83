"""A test's virtual JACK MIDI output: a controller as it appears on the system.

Opened and closed inside ``paced()``, spaced from this process's other JACK port
changes as the daemon's own are (libjack's close race, see control/jack_graph).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import mido

from soundscape.control.jack_graph import paced


def open_virtual_output(backend: mido.Backend, port: str, client: str) -> Any:
    """A virtual output ``port`` of a JACK client named ``client``."""
    with paced():
        return backend.open_output(port, virtual=True, client_name=client)


def close_virtual_output(port: Any) -> None:
    with paced():
        port.close()


@contextlib.contextmanager
def virtual_output(backend: mido.Backend, port: str, client: str) -> Iterator[Any]:
    """A virtual output for the ``with`` block, closed even when the block fails."""
    opened = open_virtual_output(backend, port, client)
    try:
        yield opened
    finally:
        close_virtual_output(opened)
