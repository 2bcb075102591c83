"""One-time start-up costs, paid on a worker thread before the daemon runs on its loop.

Several libraries do expensive work the first time they are used, not when they
are imported: numpy loads ``numpy.fft`` and ``numpy.ma`` lazily (``np.median``
pulls in ``numpy.ma``), aiortc's first peer connection imports parts of
``cryptography`` and initialises OpenSSL's EC code, httpx loads the CA bundle for
every new client, anyio loads its asyncio backend for httpx's first connection.
Each of these took 10-100 ms on the event loop, inside the
first audio block, the first session or the daemon's construction, which holds
up every frame, OSC message and MIDI event behind it
(``tests/test_event_loop.py`` measures it). ``warm_up()`` does them once,
off the loop: ``await asyncio.to_thread(warm_up)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures.thread  # at import time: asyncio would import it lazily, on the loop
import contextlib
import gc
import importlib
import threading
import time
import weakref
from collections.abc import Iterator

import structlog

log = structlog.get_logger(__name__)

# Blocking jobs that may run at once: state and learn writes, MIDI port scans, heap
# trims, audio file reads, preview encodes, DNS lookups (aiortc, httpx). More queue.
WORKERS = 8
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object] = weakref.WeakKeyDictionary()


async def start_worker_pool() -> None:
    """Give the loop a default executor whose threads are all started now.

    asyncio's own pool starts a thread whenever jobs overlap more than ever before,
    so a show could start one mid-set, an hour in, and the thread count crept with
    rare overlaps (the soak saw 13 become 14). Started here, every thread exists
    before the first frame and the count is fixed. Once per loop.
    """
    loop = asyncio.get_running_loop()
    if loop in _pools:
        return
    pool = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="soundscape-worker")
    # Each job waits for all the others, so each runs on a thread of its own.
    barrier = threading.Barrier(WORKERS)
    jobs = [loop.run_in_executor(pool, barrier.wait, 5.0) for _ in range(WORKERS)]
    await asyncio.gather(*jobs, return_exceptions=True)
    loop.set_default_executor(pool)
    _pools[loop] = pool


# Modules some library imports on first use rather than at import: numpy's
# submodules, anyio's asyncio backend (httpcore's first connection).
LAZY_MODULES = (
    "numpy.fft",
    "numpy.ma",
    "anyio._backends._asyncio",
    "cryptography.hazmat.primitives.serialization",
)


def freeze_heap() -> None:
    """Take everything alive now out of all later garbage collections.

    A full collection walks every object the collector tracks, holding the GIL,
    so the loop too: with the libraries loaded that is some 80 000 objects (the
    modules' functions, classes and constants), 38 ms on the development VM,
    whenever the oldest generation came due mid-show. They live as long as the
    process; frozen (``gc.freeze``), later collections walk only what the show
    made since. Collected first, so no garbage is kept. Undone by
    :func:`thaw_heap` when the daemon stops (tests start many in one process).
    """
    gc.collect()
    gc.freeze()


_pauses = 0  # collections_paused() blocks open now
_enabled_before = True  # whether collection was enabled when the first opened


@contextlib.contextmanager
def collections_paused() -> Iterator[None]:
    """No automatic garbage collection inside: the daemon's first steps, until
    :func:`warm_up` has collected and frozen the heap off the loop.

    A process that has just imported everything holds tens of thousands of young
    objects, and the first collection to come due walks them: in the daemon's first
    step on the loop, a generation-1 run of 11-17 ms (tests/test_event_loop.py, in
    most runs of it alone). :func:`warm_up` makes that walk in a worker thread, the
    loop waiting on it, and freezes what survives. Pauses that overlap (daemons
    started together in one process, as tests do) re-enable collection only when
    the last ends, and only if it was enabled when the first began.
    """
    global _pauses, _enabled_before
    if _pauses == 0:  # daemons started together (tests): the last one out re-enables
        _enabled_before = gc.isenabled()
    _pauses += 1
    gc.disable()
    try:
        yield
    finally:
        _pauses -= 1
        if _pauses == 0 and _enabled_before:
            gc.enable()


def thaw_heap() -> None:
    """Return what :func:`freeze_heap` froze to the collector."""
    gc.unfreeze()


def warm_up() -> float:
    """Load and initialise what would otherwise be loaded on the loop; returns seconds."""
    from aiortc.rtcdtlstransport import RTCCertificate

    from soundscape.scope.api import default_tls_context

    started = time.perf_counter()
    for name in LAZY_MODULES:
        importlib.import_module(name)
    default_tls_context()
    RTCCertificate.generateCertificate()  # a peer connection's first certificate
    freeze_heap()
    seconds = time.perf_counter() - started
    log.debug("warmed_up", seconds=round(seconds, 3))
    return seconds
