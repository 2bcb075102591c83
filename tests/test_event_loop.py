"""Nothing the daemon does blocks its event loop for more than 20 ms.

The whole daemon (``soundscape.app.run``) runs in asyncio's debug mode
(``slow_callback_duration`` 20 ms; it also checks that no thread touches the
loop unsafely) against a Scope emulator in another process (it renders frames
on its own loop, which would otherwise pollute the measurement). Meanwhile it
streams, takes a 200 Hz OSC stream with prompt transitions, learns and saves a
MIDI mapping over JACK, analyses an audio file and maps it, records the video,
and reconnects after a dropped session and after a server restart.

Every callback on the loop is timed, and one whose own time is over 20 ms fails
the test, listed with the task it belongs to and asyncio's own "Executing ...
took" warnings. asyncio's warnings are wall-clock time, which also counts other
processes preempting us: on a shared 2-core machine that made the test fail on
the neighbours' load rather than on the daemon. "Own time" (see
:class:`LoopTimer`) takes that out and keeps everything the daemon does:
CPU work, blocking I/O, waits for a lock or the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import linecache
import logging
import os
import re
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import mido
import pytest
import rtmidi
from pythonosc.osc_message_builder import build_msg

from soundscape.app import Daemon, run
from soundscape.audio.synth import drum_loop, write_wav
from soundscape.config import load
from virtual_midi import virtual_output

SLOW = 0.020  # seconds: a callback longer than this holds up frames, OSC and MIDI
CONTROLLER = "loopctl"


class StackSampler:
    """Samples the loop thread's stack every few ms, to say where a slow callback was.

    A diagnostic (SOUNDSCAPE_SAMPLE_STACKS=1): its thread takes the GIL, so it is
    off by default.
    """

    def __init__(self, interval: float = 0.003) -> None:
        self._interval = interval
        self._target = threading.get_ident()
        self._samples: deque[tuple[float, tuple[str, ...]]] = deque(maxlen=4000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)

    def __enter__(self) -> StackSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            frame = sys._current_frames().get(self._target)
            stack = []
            while frame is not None and len(stack) < 40:
                code = frame.f_code
                stack.append(f"{code.co_filename}:{frame.f_lineno} {code.co_name}")
                frame = frame.f_back
            self._samples.append((time.monotonic(), tuple(stack)))

    def during(self, seconds: float) -> str:
        """The most sampled stacks of the last ``seconds``, innermost first."""
        since = time.monotonic() - seconds
        stacks = Counter(s for t, s in list(self._samples) if t >= since)
        lines = []
        for stack, count in stacks.most_common(3):
            lines.append(f"  {count} samples:")
            lines += [f"    {frame}" for frame in stack[:16] if "/asyncio/" not in frame]
        return "\n".join(lines)


def innermost_frame(coro: Any) -> Any:
    """The frame of the innermost coroutine ``coro`` awaits (through ``cr_await`` and
    ``gi_yieldfrom``), or None when it has finished."""
    while True:
        inner = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if inner is None or (not hasattr(inner, "cr_frame") and not hasattr(inner, "gi_frame")):
            return getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        coro = inner


class ThreadDelays:
    """Time each of this process's threads spent on a CPU, and runnable but without one
    (schedstat)."""

    REFRESH = 0.2  # seconds between re-reading the thread list

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self._listed = -1.0

    def read(self, exclude: str, *, refresh: bool = False) -> tuple[dict[str, int], dict[str, int]]:
        """Each other thread's nanoseconds waiting for a CPU, and on one, by native id.

        Only ints go in the dicts: the timer reads twice a callback, and a tuple per
        thread there (objects the garbage collector tracks) moved a collection into
        the daemon's first step (a gen 1 run of 11-21 ms, in 3 of 4 runs of the test).
        """
        now = time.monotonic()
        if refresh or now - self._listed > self.REFRESH:
            self._listed = now
            tids = set(os.listdir("/proc/self/task"))
            for tid in set(self._fds) - tids:
                os.close(self._fds.pop(tid))
            for tid in tids - set(self._fds):
                with contextlib.suppress(OSError):
                    self._fds[tid] = os.open(f"/proc/self/task/{tid}/schedstat", os.O_RDONLY)
        waited: dict[str, int] = {}
        ran: dict[str, int] = {}
        for tid, fd in self._fds.items():
            if tid != exclude:
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = os.pread(fd, 64, 0).split()
                    waited[tid] = int(fields[1])
                    ran[tid] = int(fields[0])
        return waited, ran

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


class JackClientOpens:
    """When this process's threads were inside python-rtmidi's JACK client open.

    python-rtmidi holds the interpreter lock while libjack opens a client (29-35 ms
    measured, docs/midi.md): the daemon does it on a worker thread, but a loop step that
    needed the lock meanwhile was blocked that long. That is the library's pause (the
    daemon's port opens at start and on hot-plug), not the daemon blocking its loop: it is
    excused like a CPU wait (counted in a slow step's "excused"), never beyond the step's
    blocked time, and never its CPU time.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.spans: list[tuple[float, float]] = []
        for name in ("MidiIn", "MidiOut"):
            monkeypatch.setattr(rtmidi, name, self._timed(getattr(rtmidi, name)))

    def _timed(self, open_client: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return open_client(*args, **kwargs)
            finally:
                self.spans.append((start, time.perf_counter()))

        return timed

    def during(self, start: float, end: float) -> float:
        """Seconds of [start, end] some thread spent opening a JACK client."""
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b in self.spans)


class Collections:
    """The garbage collector's runs over 5 ms, on any thread: a diagnostic for a failure.

    A collection holds the GIL, so one on a worker thread holds the loop too, and
    one on the loop thread is the callback's own time; a slow callback that
    overlaps one says where its time went (the test's process carries the whole
    suite's heap, which the daemon in a show does not).
    """

    NOTABLE = 0.005  # seconds

    def __init__(self) -> None:
        self.runs: list[tuple[float, float, int, str]] = []  # (start, seconds, generation, thread)
        self._started: dict[int, float] = {}

    def _hook(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started[threading.get_ident()] = now
            return
        start = self._started.pop(threading.get_ident(), now)
        if now - start > self.NOTABLE:
            name = threading.current_thread().name
            self.runs.append((start, now - start, info["generation"], name))

    def during(self, start: float, end: float) -> str:
        return "; ".join(
            f"gen {gen} on {thread}: {seconds * 1000:.1f} ms"
            for begun, seconds, gen, thread in self.runs
            if begun < end and begun + seconds > start
        )

    def __enter__(self) -> Collections:
        gc.callbacks.append(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._hook)


class LoopTimer:
    """Times every callback on the loop thread, minus what other processes cost it.

    A callback's own time is its CPU time plus the time it was blocked (I/O, a
    lock, the GIL). On a shared machine two things that are not the daemon's
    doing also show up in its wall time, and are taken out (from
    ``/proc/self/task/*/schedstat``): the loop thread waiting for a CPU, and the
    loop blocked on the GIL while the thread holding it waited for a CPU. The
    second is excused only up to the time our other threads spent waiting for a
    CPU during the callback, and never the callback's own CPU time. Given
    ``jack_opens``, so is the time a thread spent opening a JACK client meanwhile (see
    :class:`JackClientOpens`).
    """

    def __init__(
        self,
        limit: float,
        sampler: StackSampler | None = None,
        calls: BlockingCalls | None = None,
        collector: Collections | None = None,
        jack_opens: JackClientOpens | None = None,
    ) -> None:
        self.limit = limit
        self.jack_opens = jack_opens
        self.sampler = sampler
        self.calls = calls
        self.collector = collector
        self.slow: list[tuple[float, float, str]] = []  # (own, wall, what)
        self.worst = 0.0
        self.worst_what = ""
        self.count = 0
        self.breakdown = ""  # the last slow callback's, from own_time
        self._tid = str(threading.get_native_id())
        self._fd = os.open(f"/proc/self/task/{self._tid}/schedstat", os.O_RDONLY)
        self._others = ThreadDelays()
        self._thread = threading.get_ident()
        self._original = asyncio.events.Handle._run

    def describe(self, handle: asyncio.events.Handle, wall: float) -> str:
        owner = getattr(handle._callback, "__self__", None)  # the task a step belongs to
        if isinstance(owner, asyncio.Task):
            coro = owner.get_coro()
            code = getattr(coro, "cr_code", None)
            what = f"task {owner.get_name()} ({code.co_qualname if code else coro})"
            frame = innermost_frame(coro)  # where the step ended: the await it waits in
            if frame is not None:
                what += f" up to {Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
        else:
            what = repr(handle)[:200]
        if self.collector is not None:
            end = time.perf_counter()
            overlapping = self.collector.during(end - wall, end)
            what += f" [garbage collection meanwhile: {overlapping}]" if overlapping else ""
        if self.sampler is not None:
            what += "\n" + self.sampler.during(wall)
        return what

    def _delay(self) -> int:
        return int(os.pread(self._fd, 64, 0).split()[1])

    def own_time(self, handle: asyncio.events.Handle) -> tuple[float, float]:
        """Run ``handle``; return (own time, wall time) in seconds.

        ``self.breakdown`` then says where the wall time went, for a failure report.
        """
        (waited0, ran0), d0, c0 = self._others.read(self._tid), self._delay(), time.thread_time()
        t0 = time.perf_counter()
        if self.calls is not None:
            self.calls.inside = True
        try:
            self._original(handle)
        finally:
            if self.calls is not None:
                self.calls.inside = False
            wall = time.perf_counter() - t0
            cpu = time.thread_time() - c0
            waited = (self._delay() - d0) / 1e9
            # A slow one re-reads the thread list, to count a thread it started and
            # waited for. A thread first listed now may be up to REFRESH older than
            # the callback: all its waiting is excused, and all its CPU reported.
            waited1, ran1 = self._others.read(self._tid, refresh=wall > self.limit)
        others = sum(w - waited0.get(t, 0) for t, w in waited1.items()) / 1e9
        opening = self.jack_opens.during(t0, t0 + wall) if self.jack_opens else 0.0
        blocked = max(0.0, wall - waited - cpu)
        own = cpu + max(0.0, blocked - others - opening)
        if own > self.limit:
            ran = {t: (r - ran0.get(t, 0)) / 1e9 for t, r in ran1.items()}
            self.breakdown = self._breakdown(cpu, waited, blocked, others + opening, ran)
        return own, wall

    @staticmethod
    def _breakdown(
        cpu: float, waited: float, blocked: float, others: float, ran: dict[str, float]
    ) -> str:
        """Where a slow callback's time went, and which threads were on a CPU meanwhile.

        A callback blocked with little CPU of its own waited for the GIL (or I/O);
        the threads that ran meanwhile are the ones that may have held it.
        """
        names = {str(t.native_id): t.name for t in threading.enumerate()}
        busiest = sorted(ran.items(), key=lambda item: -item[1])[:3]
        running = ", ".join(
            f"{names.get(tid, 'native ' + tid)} {seconds * 1000:.1f} ms"
            for tid, seconds in busiest
            if seconds >= 0.001
        )
        return (
            f"{{cpu {cpu * 1000:.1f} ms, blocked {blocked * 1000:.1f} ms"
            f" (excused {min(blocked, others) * 1000:.1f} ms), waiting for a CPU"
            f" {waited * 1000:.1f} ms; other threads on a CPU: {running or 'none'}}}"
        )

    def __enter__(self) -> LoopTimer:
        timer, original = self, self._original

        def timed_run(handle: asyncio.events.Handle) -> None:
            if threading.get_ident() != timer._thread:
                original(handle)
                return
            own, wall = timer.own_time(handle)
            timer.count += 1
            if own > timer.worst:
                timer.worst, timer.worst_what = own, timer.describe(handle, wall)
            if own > timer.limit:
                what = timer.describe(handle, wall)
                timer.slow.append((own, wall, f"{timer.breakdown} {what}"))

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.events.Handle._run = self._original  # type: ignore[method-assign]
        os.close(self._fd)
        self._others.close()


class BlockingCalls:
    """Blocking calls made inside a loop callback, seen through Python's audit hooks.

    Timing alone misses a file write that happens to be quick on this machine and
    takes 200 ms on a stage laptop's SD card; these are refused whatever they
    cost: writing, renaming or removing files, creating directories, sleeping.
    Reads are listed (``reads``) but allowed: the config and state are read once
    at start, and imports read files.
    """

    EVENTS = frozenset(
        {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.truncate", "time.sleep"}
        | {"shutil.copyfile", "shutil.move", "shutil.rmtree", "tempfile.mkstemp"}
    )
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def __init__(self) -> None:
        self.inside = False  # set by LoopTimer around each callback
        self.found: list[str] = []
        self.reads: Counter[str] = Counter()
        self._thread = threading.get_ident()
        sys.addaudithook(self._hook)  # audit hooks cannot be removed: `active` gates it
        self.active = True

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not (self.active and self.inside) or threading.get_ident() != self._thread:
            return
        if event == "open":
            path, mode, flags = (*args, None, None)[:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & self.WRITE_FLAGS
            )
            if not writes:
                self.reads[str(path)] += 1
                return
        elif event not in self.EVENTS:
            return
        self.found.append(f"{event} {args[:2]} at\n{''.join(traceback.format_stack()[-12:-1])}")


class SlowCallbacks(logging.Handler):
    """Collects asyncio's 'Executing <handle> took N seconds' warnings (wall time)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing ") and " took " in message:
            self.seen.append(message)


@contextlib.contextmanager
def emulator_process() -> Iterator[str]:
    """``soundscape emulate`` in a child process, started before our loop; yields its URL."""
    code = (
        "from soundscape.cli import main; raise SystemExit(main(['emulate', '--port', '0', "
        "'--width', '320', '--height', '192', '--fps', '30', '--load-time', '0.2']))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        url = None
        for line in proc.stderr:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("event") == "emulator_listening":
                    url = entry["url"]
                    break
        if url is None:
            raise RuntimeError("the emulator exited before listening")
        # Keep reading its log so the pipe never fills and blocks the child.
        drain = threading.Thread(target=proc.stderr.read, daemon=True)
        drain.start()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_config(tmp_path: Path, url: str) -> Path:
    wav = write_wav(tmp_path / "loop.wav", drum_loop(bpm=124, seconds=8).audio)
    path = tmp_path / "soundscape.toml"
    path.write_text(
        f"""
[scope]
url = "{url}"

[session]
stall_timeout = 1.5
backoff_initial = 0.1

[osc]
port = 0
prompt_transition_steps = 4

[midi]
enabled = true
backend = "auto"  # with MIDO_BACKEND unset: probes for a JACK server
inputs = ["{CONTROLLER}"]
poll_interval = 0.2
learn_settle = 0.1

[audio]
enabled = true
file = "{wav}"

[[mapping.rules]]
name = "energy to vace"
source = "energy"
target = "vace_context_scale"
min = 0.2
max = 1.8

[[outputs]]
type = "record"
path = "{tmp_path / "show.mkv"}"
""",
        encoding="utf-8",
    )
    return path


class Watch:
    """The daemon's status and parameter changes, as events a test can await."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.states: list[str] = []
        self.sources: set[str] = set()
        self._changed = asyncio.Event()
        self._on_status(daemon.supervisor.status.as_dict())
        daemon.supervisor.on_status(self._on_status)
        daemon.store.subscribe(self._on_change)

    def _on_status(self, status: dict[str, Any]) -> None:
        if not self.states or self.states[-1] != status["state"]:
            self.states.append(status["state"])
        self._changed.set()

    def _on_change(self, changes: dict[str, Any], source: str) -> None:
        self.sources.add(source.split(":")[0])
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; states {self.states}") from None

    async def recovers_from(
        self, fault: Callable[[], Awaitable[None]], timeout: float = 15
    ) -> None:
        """Inject ``fault``; wait until the stream went away and came back."""
        mark = len(self.states)  # before the fault: the daemon may react before it returns
        await fault()

        def recovered() -> bool:
            after = self.states[mark:]
            return bool(after) and after[-1] == "streaming" and len(after) > 1

        await self.until(recovered, timeout, "a recovered stream")


async def osc_stream(address: tuple[str, int], seconds: float, rate: float) -> int:
    """A controller: the cache bias at ``rate`` Hz, a prompt (a transition) every 10th."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=address
    )
    sent = 0
    try:
        start = loop.time()
        while (now := loop.time()) - start < seconds:
            x = (sent % 100) / 100
            transport.sendto(build_msg("/scope/kv_cache_attention_bias", 0.05 + x * 0.9).dgram)
            if sent % 10 == 0:
                transport.sendto(build_msg("/scope/prompt", f"a city at {sent}").dgram)
            sent += 1
            # Pacing a fake controller: the interval is the point.
            await asyncio.sleep(max(0.0, start + sent / rate - now))
    finally:
        transport.close()
    return sent


async def learn_from_controller(daemon: Daemon, port: mido.ports.BaseOutput) -> None:
    """Arm MIDI learn, turn a knob on the controller, wait for the binding."""
    await controller_opened(daemon)
    learned = daemon.midi.learn("noise_scale")
    for value in range(0, 128, 8):
        port.send(mido.Message("control_change", control=21, value=value))
        await asyncio.sleep(0.005)  # a hand on a knob, not a burst JACK would garble
    mapping = await asyncio.wait_for(learned, 10)
    assert mapping is not None and mapping.number == 21
    for value in (10, 60, 100, 127, 90):  # the learned knob now moves noise_scale
        port.send(mido.Message("control_change", control=21, value=value))
        await asyncio.sleep(0.005)


async def controller_opened(daemon: Daemon) -> None:
    opened = asyncio.Event()
    daemon.midi.subscribe_ports(lambda event, port: event == "input_opened" and opened.set())
    if not daemon.midi.counters().get("inputs_open"):
        await asyncio.wait_for(opened.wait(), 10)


async def scenario(
    config_path: Path, http: httpx.AsyncClient, controller: mido.ports.BaseOutput
) -> dict[str, Any]:
    config = await asyncio.to_thread(load, config_path)
    loop = asyncio.get_running_loop()
    loop.slow_callback_duration = SLOW
    report: dict[str, Any] = {}
    started: asyncio.Future[Daemon] = loop.create_future()
    stop = asyncio.Event()
    runner = asyncio.create_task(
        run(
            config,
            shutdown_trigger=stop.wait,
            on_started=started.set_result,
            config_path=config_path,
        )
    )
    daemon = await asyncio.wait_for(started, 30)
    watch = Watch(daemon)
    try:
        await watch.until(lambda: "streaming" in watch.states, 20, "the first stream")
        sent = await asyncio.gather(
            osc_stream(daemon.osc.address, seconds=3.0, rate=200),
            learn_from_controller(daemon, controller),
        )
        report["osc_sent"] = sent[0]
        await watch.until(lambda: "mapping" in watch.sources, 10, "audio mapping changes")

        async def fault(name: str, **params: Any) -> None:
            (await http.post(f"/_emulator/{name}", params=params)).raise_for_status()

        await watch.recovers_from(lambda: fault("drop"))
        await watch.recovers_from(lambda: fault("restart", downtime=0.5), timeout=30)
        report["states"] = list(watch.states)
        report["sources"] = sorted(watch.sources)
        report["frames"] = daemon.supervisor.status.frames
    finally:
        stop.set()
        await runner
        await http.aclose()
    # The learned binding was written (stop() waits for the write), so the hooks saw it.
    assert daemon.learned is not None
    saved = await asyncio.to_thread(daemon.learned.load)
    assert [m.number for m in saved if m.target == "noise_scale"] == [21]
    return report


def warm_debug_tracebacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make debug mode's own bookkeeping cheap: it is the measuring tool, not the daemon.

    Debug mode records where every handle, future and task was created, and
    ``traceback`` then reads each file in that stack into linecache and stats
    every one of them again on each capture (``linecache.checkcache``): 2-3 ms
    per stat on this loaded machine, 40+ ms in one callback. The sources are
    read once here and not re-validated (they do not change during the test).
    """
    import soundscape.warmup  # noqa: F401  (and what it imports)

    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if filename and filename.endswith(".py"):
            linecache.getlines(filename)
    monkeypatch.setattr(linecache, "checkcache", lambda filename=None: None)


@pytest.mark.skipif(
    not Path("/proc/thread-self/schedstat").exists(), reason="needs Linux schedstat"
)
def test_no_callback_holds_the_loop_over_20ms(
    tmp_path: Path, jack_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio_log = logging.getLogger("asyncio")
    old_level = asyncio_log.level
    # The test's own set-up (a child process, a MIDI port, a WAV file) stays off the loop.
    sampling = os.environ.get("SOUNDSCAPE_SAMPLE_STACKS") == "1"
    jack = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
    monkeypatch.delenv("MIDO_BACKEND", raising=False)  # the daemon finds JACK itself
    calls = BlockingCalls()
    jack_opens = JackClientOpens(monkeypatch)
    with (
        emulator_process() as url,
        virtual_output(jack, CONTROLLER, "fakectl") as controller,
        StackSampler() if sampling else contextlib.nullcontext() as sampler,
        Collections() as collector,
        LoopTimer(SLOW, sampler, calls, collector, jack_opens) as timer,
    ):
        http = httpx.AsyncClient(base_url=url, timeout=10)
        config_path = write_config(tmp_path, url)
        warm_debug_tracebacks(monkeypatch)
        slow = SlowCallbacks()
        asyncio_log.addHandler(slow)
        asyncio_log.setLevel(logging.WARNING)
        try:
            # What earlier tests left is collected now, in the set-up: the first
            # collection due would otherwise walk it inside the first timed step (a
            # generation-1 run of 26.6 ms in the scenario's first step, in a CI rehearsal).
            gc.collect()
            started = time.monotonic()
            report = asyncio.run(scenario(config_path, http, controller), debug=True)
            report["seconds"] = round(time.monotonic() - started, 1)
        finally:
            calls.active = False
            asyncio_log.removeHandler(slow)
            asyncio_log.setLevel(old_level)
    report["callbacks"] = timer.count
    report["worst_ms"] = round(timer.worst * 1000, 1)
    report["worst"] = timer.worst_what.split("\n")[0]
    report["asyncio_warnings"] = len(slow.seen)
    report["files_read_on_loop"] = sorted(calls.reads)
    report["jack_client_opens_ms"] = [round((b - a) * 1000, 1) for a, b in jack_opens.spans]
    print(report)
    assert report["frames"] > 30
    assert {"osc", "midi"} <= set(report["sources"])
    assert jack_opens.spans  # the daemon's JACK MIDI clients were seen opening
    blocking = [
        f"{own * 1000:.1f} ms own ({wall * 1000:.1f} ms wall): {what}"
        for own, wall, what in timer.slow
    ]
    assert not calls.found, "blocking calls on the loop:\n" + "\n".join(calls.found)
    hint = "" if sampling else "\n(SOUNDSCAPE_SAMPLE_STACKS=1 shows where the time went)"
    assert not blocking, "\n".join(blocking) + hint + "\n\nasyncio said:\n" + "\n".join(slow.seen)


def test_only_the_part_of_a_step_spent_opening_a_jack_client_is_excused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opens = JackClientOpens(monkeypatch)
    opens.spans += [(1.0, 1.03), (2.0, 2.01)]
    assert opens.during(0.5, 0.9) == 0.0  # before any open
    assert opens.during(1.01, 1.05) == pytest.approx(0.02)  # the open's part of the step
    assert opens.during(0.9, 2.5) == pytest.approx(0.04)  # two opens inside it


@pytest.mark.skipif(
    not Path("/proc/thread-self/schedstat").exists(), reason="needs Linux schedstat"
)
def test_the_loop_timer_catches_a_callback_that_blocks_and_one_that_computes() -> None:
    # What the excuses (other processes keeping us off a CPU) must never hide: the
    # callback's own blocking and its own CPU time.
    def block() -> None:
        time.sleep(0.05)

    def compute() -> None:
        start = time.thread_time()
        while time.thread_time() - start < 0.05:
            pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.call_soon(block)
        loop.call_soon(compute)
        loop.call_soon(done.set_result, None)
        await done

    with LoopTimer(SLOW) as timer:
        asyncio.run(main())
    caught = [what for own, _, what in timer.slow if own >= 0.045]
    assert len(caught) == 2, timer.slow
    assert "block" in caught[0] and "compute" in caught[1]
    # The report says which it was: the sleep blocked, the loop computed.
    cpu_ms = [float(re.search(r"cpu ([0-9.]+) ms", what)[1]) for what in caught]  # type: ignore[index]
    assert cpu_ms[0] < 20 and cpu_ms[1] >= 45, caught
