"""Supervised parts: a failure is seen at once (with its traceback), the part comes back
with backoff, a core part that keeps failing ends the daemon, and stopping is clean."""

from __future__ import annotations

import asyncio
import threading
import time
from fractions import Fraction
from typing import Any, ClassVar

import av
import pytest
from structlog.testing import capture_logs

from soundscape.scope.backoff import Backoff
from soundscape.tasks import (
    CoreFailed,
    Supervised,
    TaskOwner,
    cancel_and_wait,
    in_thread,
    owning,
    supervise,
)
from soundscape.video.config import OutputConfig
from soundscape.video.outputs.base import Output
from soundscape.video.runner import OutputRunner


def fast() -> Backoff:
    return Backoff(0.001, 0.004, immediate_first=False)


class Crashing:
    """A part that raises on each of its first ``crashes`` runs, then runs until cancelled."""

    def __init__(self, crashes: int, error: type[Exception] = RuntimeError) -> None:
        self.crashes = crashes
        self.error = error
        self.runs = 0
        self.steady = asyncio.Event()  # set when a run survives its crashes
        self.crashed = asyncio.Event()  # set by each crash

    async def __call__(self) -> None:
        self.runs += 1
        if self.runs <= self.crashes:
            self.crashed.set()
            raise self.error(f"bug number {self.runs}")
        self.steady.set()
        await asyncio.Event().wait()


async def test_a_failing_part_is_logged_with_its_traceback_and_restarted() -> None:
    part = Crashing(crashes=1)
    with capture_logs() as logs:
        supervised = supervise("osc-commands", part, backoff=fast())
        async with asyncio.timeout(5):
            await part.steady.wait()
    failed = [entry for entry in logs if entry["event"] == "task_failed"]
    assert len(failed) == 1
    assert failed[0]["task"] == "osc-commands" and failed[0]["log_level"] == "error"
    assert isinstance(failed[0]["exc_info"], RuntimeError)  # rendered as a traceback
    assert supervised.restarts == 1 and supervised.alive
    await supervised.stop()
    assert not supervised.alive


async def test_the_same_failure_again_is_one_line_without_the_traceback() -> None:
    part = Crashing(crashes=4)
    part_errors = iter(["same"] * 4)
    original = part.__call__

    async def same_message() -> None:
        try:
            await original()
        except RuntimeError:
            raise RuntimeError(next(part_errors)) from None

    with capture_logs() as logs:
        supervised = supervise("mapping", same_message, backoff=fast())
        async with asyncio.timeout(5):
            await part.steady.wait()
    events = [entry["event"] for entry in logs if entry["event"].startswith("task_failed")]
    assert events == ["task_failed"] + ["task_failed_again"] * 3
    again = [entry for entry in logs if entry["event"] == "task_failed_again"]
    assert all("exc_info" not in entry for entry in again)
    assert again[-1]["error"] == "RuntimeError: same"
    await supervised.stop()


async def test_an_input_is_restarted_forever_with_growing_delays() -> None:
    part = Crashing(crashes=12)
    backoff = Backoff(0.001, 0.008, immediate_first=False)
    with capture_logs() as logs:
        supervised = supervise("midi-ports", part, backoff=backoff)
        async with asyncio.timeout(10):
            await part.steady.wait()
    delays = [entry["restart_in"] for entry in logs if "restart_in" in entry]
    assert len(delays) == 12, "never given up: not a core part"
    assert delays == sorted(delays) and delays[-1] == 0.01  # doubling up to the cap
    assert supervised.alive and supervised.gave_up is None
    await supervised.stop()


async def test_a_core_part_that_keeps_failing_ends_the_daemon() -> None:
    owner = TaskOwner()
    part = Crashing(crashes=100)
    with owning(owner), capture_logs() as logs:
        supervised = supervise("supervisor", part, core=True, backoff=fast(), give_up_after=3)
        assert owner.core_alive()
        async with asyncio.timeout(5):
            await owner.until(asyncio.Event().wait)  # returns because the core gave up
    assert part.runs == 3
    assert isinstance(owner.failure, CoreFailed) and owner.failure.part == "supervisor"
    assert "bug number 3" in str(owner.failure)
    assert not supervised.alive and not owner.core_alive()
    assert [entry["event"] for entry in logs][-1] == "core_failed"
    await supervised.stop()  # stopping a part that ended is harmless


async def test_a_core_part_that_ran_for_a_while_starts_its_count_again() -> None:
    now = [0.0]
    owner = TaskOwner()
    six = asyncio.Event()
    runs = 0

    async def long_runs_then_crashes() -> None:
        nonlocal runs
        runs += 1
        if runs > 6:
            six.set()
            await asyncio.Event().wait()
        now[0] += 60.0  # each run lasts a minute (stable), then fails
        raise RuntimeError("rare bug")

    with owning(owner), capture_logs():
        supervised = supervise(
            "param-sender",
            long_runs_then_crashes,
            core=True,
            backoff=fast(),
            give_up_after=2,
            clock=lambda: now[0],
        )
        async with asyncio.timeout(5):
            await six.wait()
    assert supervised.alive and owner.failure is None
    assert supervised.quick_failures == 1
    await supervised.stop()


async def test_returning_means_finished_and_is_not_restarted() -> None:
    runs = 0

    async def finishes() -> None:
        nonlocal runs
        runs += 1

    supervised = supervise("video-stats", finishes)
    async with asyncio.timeout(5):
        await supervised.wait_ended()
    assert runs == 1 and supervised.ended and not supervised.alive


async def test_stop_cancels_a_backoff_wait_at_once() -> None:
    part = Crashing(crashes=100)
    supervised = supervise("audio", part, backoff=Backoff(3600, 3600, immediate_first=False))
    await part.crashed.wait()
    async with asyncio.timeout(1):
        await supervised.stop()  # cancelled in its hour-long backoff wait
    assert supervised.ended and supervised.restarts == 0


async def test_a_thread_part_ends_when_told_and_its_crash_comes_back_to_the_loop() -> None:
    stop = threading.Event()
    started = threading.Event()
    runs = 0

    def worker() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise OSError("device vanished")
        started.set()
        stop.wait()

    with capture_logs() as logs:
        supervised = supervise("video-ndi:x", lambda: in_thread(worker, name="w"), backoff=fast())
        assert await asyncio.to_thread(started.wait, 5)
    assert [e["event"] for e in logs if e["event"].startswith("task_")] == ["task_failed"]
    stop.set()
    async with asyncio.timeout(5):
        await supervised.stop(grace=5)
    assert runs == 2 and supervised.ended


async def test_in_thread_returns_the_result() -> None:
    assert await in_thread(lambda: threading.current_thread().name, name="probe") == "probe"


async def test_cancel_and_wait_reraises_the_callers_cancellation() -> None:
    inner = asyncio.get_running_loop().create_task(asyncio.Event().wait())

    async def stopper() -> None:
        await cancel_and_wait(inner)

    outer = asyncio.get_running_loop().create_task(stopper())
    await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert inner.cancelled()


def test_supervised_without_owner_still_reports_its_give_up() -> None:
    async def scenario() -> Any:
        part = Crashing(crashes=100)
        supervised = Supervised("supervisor", part, core=True, backoff=fast(), give_up_after=2)
        supervised.start()
        await supervised.wait_ended()
        return supervised.gave_up

    with capture_logs():
        gave_up = asyncio.run(scenario())
    assert isinstance(gave_up, CoreFailed) and gave_up.failures == 2


class _FlakyOutput(Output):
    """A video backend whose first instance crashes the worker (a bug in its constructor)."""

    made: ClassVar[int] = 0
    sent: ClassVar[list[int]] = []
    got_frame: ClassVar[threading.Event]

    def __init__(self, config: OutputConfig) -> None:
        type(self).made += 1
        if type(self).made == 1:
            raise RuntimeError("backend bug")
        super().__init__(config)

    def open(self, width: int, height: int, fps: Fraction) -> None:
        pass

    def send(self, frame: av.VideoFrame) -> None:
        type(self).sent.append(frame.pts or 0)
        type(self).got_frame.set()

    def close(self) -> None:
        pass


async def test_a_video_output_whose_worker_crashes_is_started_again() -> None:
    _FlakyOutput.got_frame = threading.Event()
    runner = OutputRunner(OutputConfig(type="test", name="flaky", hold="none"), _FlakyOutput)
    with capture_logs() as logs:
        runner.start()
        frame = av.VideoFrame(width=64, height=32, format="yuv420p")
        frame.pts = 7
        runner.offer(frame, time.perf_counter_ns())  # waits in the mailbox across the crash
        assert await asyncio.to_thread(_FlakyOutput.got_frame.wait, 10)
        await runner.stop()
    failed = [entry for entry in logs if entry["event"] == "task_failed"]
    assert [entry["task"] for entry in failed] == ["video-test:flaky"]
    assert _FlakyOutput.made == 2 and 7 in _FlakyOutput.sent
    assert runner.state == "stopped"


async def test_a_core_part_that_ended_unasked_stays_dead_for_the_owner() -> None:
    owner = TaskOwner()

    async def returns() -> None:
        return None

    with owning(owner):
        core = supervise("supervisor", returns, core=True)
        await core.wait_ended()
        assert not owner.core_alive()
        later = supervise("osc-commands", asyncio.Event().wait)  # a part started later
        assert not owner.core_alive(), "a dead core is not forgotten"
        await later.stop()
        await core.stop()
        assert owner.core_alive(), "a core stopped on purpose is not a dead core"
