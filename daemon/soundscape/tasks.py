"""Long-lived tasks: started supervised, stopped the one right way.

Every loop the daemon keeps running (the Scope session supervisor, the
parameter sender, the OSC and MIDI workers, the audio capture, the mapping
tick, the video output threads...) is started with :func:`supervise`, as
hypercorn and uvicorn own every task they start: a failure is seen at once,
never only at shutdown.

- An unexpected exception is logged once with its traceback (``task_failed``;
  the same failure again is one ``task_failed_again`` line without it).
- The part is started again after a backoff (the daemon's one schedule,
  :class:`soundscape.scope.backoff.Backoff`), reset once it has run for
  ``STABLE`` seconds.
- Inputs and outputs are restarted forever: a stage keeps running without
  them meanwhile. A **core** part (the session supervisor, the sender) that
  fails ``CORE_GIVE_UP`` times in a row, each within ``STABLE`` seconds of its
  start, is given up: its :class:`TaskOwner` hears of it and the daemon ends
  with a non-zero exit, so that systemd starts it afresh.
- Returning normally means the part is finished on purpose (a thread told to
  stop by its owner): it is not restarted.

:func:`cancel_and_wait` stays the one way to stop a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import structlog

from soundscape.errors import SoundscapeError
from soundscape.scope.backoff import Backoff

log = structlog.get_logger(__name__)

T = TypeVar("T")

RESTART_INITIAL = 0.5  # s before the first restart of a failed part
RESTART_MAX = 30.0  # s, the longest wait between restarts
STABLE = 30.0  # s a part must run for its failure to count as a fresh one
CORE_GIVE_UP = 5  # quick failures in a row after which a core part ends the daemon


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has finished.

    The task's own CancelledError is expected and absorbed; if the *caller*
    is being cancelled meanwhile, that cancellation is re-raised, never
    swallowed (a bare ``suppress(CancelledError)`` would eat it).
    """
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


class CoreFailed(SoundscapeError):
    """A core part kept failing; the daemon ends (non-zero exit) so systemd restarts it."""

    def __init__(self, part: str, failures: int, error: BaseException) -> None:
        self.part = part
        self.failures = failures
        self.error = error
        super().__init__(
            f"{part} failed {failures} times in a row, last: {type(error).__name__}: {error}"
        )


class TaskOwner:
    """The daemon's side of supervision: which core parts run, and whether one gave up.

    :func:`supervise` registers each part with the owner current in its context
    (:func:`owning`), so a part started anywhere below ``run()`` reports to the
    daemon without being handed the owner through every constructor.
    """

    def __init__(self) -> None:
        self.parts: list[Supervised] = []
        self.failure: CoreFailed | None = None
        self._failed = asyncio.Event()

    def add(self, part: Supervised) -> None:
        # Forget parts that are over, except a core part that ended unasked: it stays
        # "not alive" for the watchdog until the daemon is restarted.
        self.parts = [p for p in self.parts if not (p.ended and (p.stopping or not p.core))]
        self.parts.append(part)

    def core_failed(self, failure: CoreFailed) -> None:
        if self.failure is None:
            self.failure = failure
        self._failed.set()

    async def until(self, trigger: Callable[[], Awaitable[Any]]) -> None:
        """Wait until ``trigger()`` returns or a core part gives up, whichever comes first."""
        loop = asyncio.get_running_loop()
        waiters = [
            loop.create_task(_awaited(trigger), name="shutdown-trigger"),
            loop.create_task(self._failed.wait(), name="core-failure"),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                await cancel_and_wait(waiter)  # re-raises a trigger's own error

    def core_alive(self) -> bool:
        """True while no core part has given up or ended (the watchdog's first condition)."""
        if self.failure is not None:
            return False
        return all(p.alive for p in self.parts if p.core and not p.stopping)


async def _awaited(factory: Callable[[], Awaitable[Any]]) -> None:
    await factory()


_owner: contextvars.ContextVar[TaskOwner | None] = contextvars.ContextVar(
    "soundscape_task_owner", default=None
)


@contextlib.contextmanager
def owning(owner: TaskOwner) -> Iterator[TaskOwner]:
    """Parts supervised inside this block (and in tasks it creates) report to ``owner``."""
    token = _owner.set(owner)
    try:
        yield owner
    finally:
        _owner.reset(token)


class Supervised:
    """One long-lived part: runs ``factory()`` and starts it again when it fails."""

    def __init__(
        self,
        name: str,
        factory: Callable[[], Awaitable[Any]],
        *,
        core: bool = False,
        owner: TaskOwner | None = None,
        stable: float = STABLE,
        give_up_after: int = CORE_GIVE_UP,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.core = core
        self._factory = factory
        self._owner = owner
        self._stable = stable
        self._give_up_after = give_up_after
        self._backoff = backoff or Backoff(RESTART_INITIAL, RESTART_MAX, immediate_first=False)
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._seen: set[tuple[str, str]] = set()  # failures already logged with a traceback
        self.running = False  # the part itself runs (not a backoff wait)
        self.stopping = False
        self.failures = 0  # every unexpected exception, for status and tests
        self.restarts = 0
        self.quick_failures = 0  # in a row, each within ``stable`` of its start
        self.gave_up: CoreFailed | None = None

    @property
    def alive(self) -> bool:
        """Started, not ended and not given up (a backoff wait between restarts is alive)."""
        return self._task is not None and not self._task.done()

    @property
    def ended(self) -> bool:
        return self._task is not None and self._task.done()

    async def wait_ended(self) -> None:
        """Wait until the part has ended for good (finished, given up or stopped)."""
        if self._task is not None:
            await asyncio.wait([self._task])

    def start(self) -> Supervised:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)
        return self

    async def stop(self, *, grace: float = 0.0) -> None:
        """No more restarts; wait up to ``grace`` s for the part to end by itself, then cancel.

        The grace is for parts that end when their owner tells them to (a thread
        whose stop flag was set); a backoff wait is cancelled at once.
        """
        self.stopping = True
        task = self._task
        if task is None:
            return
        if grace > 0 and self.running and not task.done():
            await asyncio.wait([task], timeout=grace)
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while not self.stopping:
            began = self._clock()
            self.running = True
            try:
                await self._factory()
            except asyncio.CancelledError as err:
                current = asyncio.current_task()
                if current is None or current.cancelling():
                    raise  # we are being stopped
                # A cancellation nobody asked for (a library cancelled its own future).
                self.running = False
                if self._failed(err, self._clock() - began):
                    return
            except Exception as err:  # the point of supervision: see it, then restart
                self.running = False
                if self._failed(err, self._clock() - began):
                    return
            else:
                log.debug("task_finished", task=self.name)
                return
            finally:
                self.running = False
            delay = self._backoff.delay()
            if delay > 0:
                await asyncio.sleep(delay)  # the backoff is the point, not a stand-in
            self.restarts += 1

    def _failed(self, err: BaseException, ran: float) -> bool:
        """Log, count and decide; True when the part is given up."""
        self.failures += 1
        if ran >= self._stable:  # it ran well for a while: a fresh outage
            self._backoff.reset()
            self.quick_failures = 0
            self._seen.clear()
        self.quick_failures += 1
        delay = self._backoff.failed()
        give_up = self.core and self.quick_failures >= self._give_up_after
        key = (type(err).__name__, str(err))
        fields: dict[str, Any] = {
            "task": self.name,
            "core": self.core,
            "failures": self.quick_failures,
            "ran_s": round(ran, 2),
        }
        if not give_up:
            fields["restart_in"] = round(delay, 2)
        if key not in self._seen:
            self._seen.add(key)
            log.error("task_failed", **fields, exc_info=err)
        else:
            log.warning("task_failed_again", **fields, error=f"{key[0]}: {key[1]}")
        if not give_up:
            return False
        self.gave_up = CoreFailed(self.name, self.quick_failures, err)
        log.critical("core_failed", task=self.name, error=str(self.gave_up))
        if self._owner is not None:
            self._owner.core_failed(self.gave_up)
        return True


def supervise(
    name: str,
    factory: Callable[[], Awaitable[Any]],
    *,
    core: bool = False,
    **options: Any,
) -> Supervised:
    """Start ``factory()`` as a supervised part, reporting to the current :class:`TaskOwner`.

    ``factory`` is called again for every restart, so it must build a fresh
    coroutine (a bound ``async def`` method, or ``lambda: in_thread(...)``).
    """
    owner = options.pop("owner", None) or _owner.get()
    part = Supervised(name, factory, core=core, owner=owner, **options)
    if owner is not None:
        owner.add(part)
    return part.start()


async def in_thread(fn: Callable[[], T], *, name: str) -> T:
    """Run blocking ``fn`` in its own daemon thread; its result or exception comes back here.

    For workers that live as long as the daemon (the default executor has a
    handful of threads, all needed for short jobs). Cancelling the await does
    not stop the thread: its owner tells it to stop (an Event), as before.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def body() -> None:
        try:
            result = fn()
        except BaseException as err:  # carried to the loop, raised there
            if not isinstance(err, Exception):  # SystemExit in a thread ends only the thread
                err = RuntimeError(f"thread {name} ended by {err!r}")
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(settle, None, err)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=body, name=name, daemon=True).start()
    return await done
