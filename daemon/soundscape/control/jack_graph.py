"""Spacing this process's JACK graph changes, so that libjack does not crash on a close.

libjack (jack2's client library, also the one python-rtmidi's wheels bundle)
tells every client of a graph change on that client's own notification thread:
a port registered or unregistered, a connection made or broken. There it walks
the client's list of ports to recompute their latencies
(``JackClient::HandleLatencyCallback``). ``jack_port_unregister`` erases the
port from that same list on the caller's thread, with no lock between the two.
A port unregistered while its client is still handling the notification of a
change made a moment before crashes the whole process: a segmentation fault in
``HandleLatencyCallback``. It was seen in a CI run, closing a test's virtual MIDI
port just after the daemon closed the port connected to it, and under ``gdb`` in
a loop that closes two connected ports one right after the other (the figures
are in docs/midi.md).

Each python-rtmidi port is a JACK client of its own, and rtmidi unregisters the
port before it closes the client (deactivating first would be safe, but rtmidi
does not expose it). JACK gives no signal that another client has handled a
notification, so the changes are spaced instead: every open and close of this
process's JACK MIDI ports waits until ``SETTLE`` has passed since the last one.
Each client's notification thread handles it as soon as it is scheduled; 50 ms
is a margin chosen, not a bound measured. Only port opens and closes made through
:func:`paced` are spaced (the JACK clients rtmidi makes and closes around them,
and port-less listers, are not). A change made by another program (a device
unplugged) is not either: the daemon closes its port at its next scan, which may
come at any time in the poll interval after it. The cost: a start or stop with N
ports open takes at least N x 50 ms.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

SETTLE = 0.05  # seconds between two JACK graph changes made by this process

_lock = threading.Lock()
_last_change = -SETTLE  # time.monotonic() of the last paced change
_holder: int | None = None  # the thread inside paced(), if any


@contextmanager
def paced() -> Iterator[None]:
    """Make one JACK graph change (open or close a port) at least ``SETTLE`` after
    the last one made here. Blocks: call it from a worker thread, not the event loop.
    """
    global _last_change, _holder
    if _holder == threading.get_ident():  # would wait on itself for ever
        raise RuntimeError("paced() entered again inside paced() on the same thread")
    with _lock:
        _holder = threading.get_ident()
        try:
            wait = _last_change + SETTLE - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # no event exists for "every client has been notified"
            yield
        finally:
            _last_change = time.monotonic()
            _holder = None
