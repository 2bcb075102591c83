"""The daemon's worker threads all exist from the start: a burst of blocking jobs later
starts no thread (the soak saw asyncio's own pool grow by one an hour in)."""

from __future__ import annotations

import asyncio
import gc
import threading

from soundscape.warmup import (
    WORKERS,
    collections_paused,
    freeze_heap,
    start_worker_pool,
    thaw_heap,
)


async def test_the_pool_starts_every_thread_at_once_and_a_burst_adds_none() -> None:
    before = threading.active_count()
    await start_worker_pool()
    started = threading.active_count()
    assert started - before == WORKERS

    # More jobs at once than workers, each waiting for the next to start: they queue.
    gate = threading.Event()
    jobs = [asyncio.to_thread(gate.wait, 5.0) for _ in range(3 * WORKERS)]
    waiting = asyncio.gather(*jobs)
    await asyncio.sleep(0)  # hand the jobs to the pool
    during = threading.active_count()
    gate.set()
    assert all(await waiting)
    assert during == started
    names = {t.name for t in threading.enumerate()}
    assert sum(n.startswith("soundscape-worker") for n in names) == WORKERS

    await start_worker_pool()  # once per loop
    assert threading.active_count() == started


def test_the_heap_loaded_at_start_is_out_of_later_collections_until_the_daemon_stops() -> None:
    # A full collection walks every tracked object with the GIL held, the loop's too:
    # what start-up loaded (modules, classes, functions) is frozen out of it.
    gc.unfreeze()
    freeze_heap()
    try:
        frozen = gc.get_freeze_count()
        walked = len(gc.get_objects())  # what a full collection still walks
    finally:
        thaw_heap()
    assert frozen > 10_000  # the libraries' objects, not a handful
    assert walked < frozen / 10
    assert gc.get_freeze_count() == 0  # back to the collector when the daemon stops


def test_collections_stay_paused_until_the_last_overlapping_pause_ends() -> None:
    # Two daemons starting together: the first to finish its start-up must not turn
    # collection back on under the other; and a process that had it off keeps it off.
    assert gc.isenabled()
    first, second = collections_paused(), collections_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()
    gc.disable()
    try:
        with collections_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
