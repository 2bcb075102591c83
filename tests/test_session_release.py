"""A closed session gives its native memory back: its peer connection is freed without
waiting for the garbage collector, and glibc's free pages are trimmed once it is gone, in
a worker thread, one trim at a time (the soak's RSS crept up by reconnects with the heap in
use flat). Real aiortc against the emulator in this process."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref

import pytest

from soundscape.emulator import Emulator
from soundscape.scope import session as session_module
from soundscape.scope.api import ScopeClient
from soundscape.scope.session import HeapTrim, ScopeSession
from test_session import open_sessions

OFFER = {"pipeline_ids": ["longlive"], "input_mode": "text"}


async def new_session(
    client: ScopeClient, emulator: Emulator
) -> tuple[ScopeSession, asyncio.Event]:
    """A session on a loaded pipeline, not opened yet, and the event its first frame sets."""
    await client.load_pipeline(["longlive"], {"width": 320, "height": 192})
    await emulator.wait_for(lambda st: st["pipeline"]["status"] == "loaded", timeout=10)
    got = asyncio.Event()
    session = ScopeSession(
        client,
        ice_servers=[],
        on_frame=lambda frame: got.set(),
        on_message=lambda message: None,
        on_lost=lambda reason: None,
    )
    return session, got


async def finished(trim: HeapTrim) -> None:
    """Until the trim under way (started at the loop's next step) has finished."""
    await asyncio.sleep(0)  # soon() starts the trim with call_soon
    assert trim.running is not None
    await asyncio.wait_for(asyncio.shield(trim.running), 5)


async def test_trims_run_off_the_loop_one_at_a_time() -> None:
    loop = asyncio.get_running_loop()
    calls: list[str] = []
    started = asyncio.Event()
    release = threading.Event()

    def fake_trim(pad: int) -> int:
        calls.append(threading.current_thread().name)
        loop.call_soon_threadsafe(started.set)
        release.wait(5)
        return 1

    trim = HeapTrim(fake_trim)
    trim.soon()
    await asyncio.wait_for(started.wait(), 5)
    trim.soon()  # sessions closing while a trim runs: no second trim piles up
    trim.soon()
    assert trim.running is not None and not trim.running.done()
    release.set()
    await finished(trim)
    assert len(calls) == 1 and trim.runs == 1
    assert calls[0] != threading.current_thread().name  # not on the event loop's thread
    trim.soon()
    await finished(trim)
    assert len(calls) == 2 and trim.runs == 2


def test_without_glibc_nothing_is_trimmed() -> None:
    trim = HeapTrim(None)
    trim.soon()  # no loop needed: nothing is scheduled
    assert trim.running is None and trim.runs == 0


@pytest.mark.skipif(session_module.HEAP_TRIM._trim is None, reason="no glibc malloc_trim")
async def test_closing_a_session_trims_the_heap(emulator: Emulator) -> None:
    trim = session_module.HEAP_TRIM
    async with ScopeClient(emulator.url) as client:
        session, got = await new_session(client, emulator)
        await session.open(OFFER, timeout=10)
        await asyncio.wait_for(got.wait(), 10)
        before = trim.runs
        await session.close(polite=True)
        del session
        await finished(trim)
        assert trim.runs == before + 1
        assert trim.longest < 0.5


async def test_a_closed_session_is_freed_without_waiting_for_the_garbage_collector(
    emulator: Emulator,
) -> None:
    # aiortc's transports hold the peer connection's listeners: without release() a closed
    # connection (and its native buffers) lived until a full collection -- RSS grew by
    # reconnects in the soak.
    async with ScopeClient(emulator.url) as client:
        session, got = await new_session(client, emulator)
        gc.collect()
        gc.disable()
        try:
            await session.open(OFFER, timeout=10)
            await asyncio.wait_for(got.wait(), 10)
            pc = weakref.ref(session._pc)
            await session.close(polite=True)
            del session
            await emulator.wait_for(lambda st: not open_sessions(st), timeout=10)
            assert pc() is None, "the closed peer connection waits for a garbage collection"
        finally:
            gc.enable()
