"""Audio in: a sound card (through a PortAudio worker process) or a file (PyAV).

Both sources hand :class:`AudioBlock` objects to a callback on the asyncio
loop's thread. A block's ``t`` is the capture time of its first sample on the
monotonic clock, derived from the sample count (:class:`SampleClock`), not
from when a callback happened to run.

A missing device, a device that disappears, or an unreadable file is logged
once and retried with backoff; nothing here raises into the daemon.

Sound cards are read by ``soundscape.audio.worker`` in a child process:
PortAudio can segfault (a stale device index), and once a device vanishes
under an open stream its teardown calls hang forever and new instances keep
seeing the old device list. In a child, each of those ends one process that
is then replaced; the daemon keeps running.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

from soundscape.audio.clock import SampleClock
from soundscape.audio.config import AudioConfig
from soundscape.audio.devices import CaptureError, InputDevice, list_input_devices
from soundscape.audio.worker import BLOCK_HEADER, INFO_HEADER
from soundscape.scope.backoff import Backoff
from soundscape.tasks import Supervised, cancel_and_wait, supervise

log = structlog.get_logger(__name__)

__all__ = [
    "AudioBlock",
    "BlockCallback",
    "BlockSource",
    "CaptureError",
    "DeviceCapture",
    "FileSource",
    "InputDevice",
    "SampleClock",
    "list_input_devices",
    "open_source",
]


@dataclasses.dataclass(frozen=True, slots=True)
class AudioBlock:
    """Mono float32 samples in -1..1; ``t`` = monotonic capture time of the first sample."""

    samples: np.ndarray
    t: float


BlockCallback = Callable[[AudioBlock], None]


class BlockSource(Protocol):
    """What the audio engine needs from a source."""

    status: str
    changed: asyncio.Event

    @property
    def running(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


# --------------------------------------------------------------------------- sources


class _Retrying:
    """Run ``_attempt`` forever with backoff; log the first failure of each outage only."""

    def __init__(self, on_block: BlockCallback, retry_initial: float, retry_max: float) -> None:
        self._on_block = on_block
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._task: Supervised | None = None
        self._warned = False
        self._callback_failed = False
        self.attempts = 0  # failed attempts since the last success (for status and tests)
        self.status = "stopped"
        self.changed = asyncio.Event()  # set on every status change

    @property
    def running(self) -> bool:
        return self.status == "running"

    def _set_status(self, status: str) -> None:
        self.status = status
        self.changed.set()

    async def start(self) -> None:
        if self._task is not None:
            return
        self._task = supervise(f"audio-{type(self).__name__}", self._run)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await task.stop()
        self._set_status("stopped")

    def _deliver(self, block: AudioBlock) -> None:
        try:
            self._on_block(block)
        except Exception:  # a consumer bug must not stop the capture
            if not self._callback_failed:
                self._callback_failed = True
                log.exception("audio_consumer_failed")

    def _failed(self, what: str, reason: str, delay: float) -> None:
        self.attempts += 1
        self._set_status("retrying")
        if not self._warned:
            self._warned = True
            log.warning("audio_unavailable", source=what, reason=reason, retry_in=round(delay, 2))
        else:
            log.debug("audio_retry", source=what, reason=reason, retry_in=round(delay, 2))

    def _recovered(self, **fields: Any) -> None:
        self._warned = False
        self.attempts = 0
        log.info("audio_started", **fields)
        self._set_status("running")

    STABLE = 5.0  # s a source must have run for a loss to restart it at once

    async def _run(self) -> None:
        backoff = Backoff(self._retry_initial, self._retry_max, immediate_first=False)
        while True:
            began = time.monotonic()
            try:
                ran = await self._attempt()
            except asyncio.CancelledError:
                raise
            except CaptureError as err:
                self._failed(self._describe(), str(err), backoff.peek())
                ran = False
            except Exception as err:  # anything from a C library: retry, never crash
                self._failed(self._describe(), f"{type(err).__name__}: {err}", backoff.peek())
                ran = False
            if ran and time.monotonic() - began >= self.STABLE:
                backoff.reset()  # it worked for a while: start over at once
                continue
            await asyncio.sleep(backoff.failed())

    def _describe(self) -> str:
        raise NotImplementedError

    async def _attempt(self) -> bool:
        """Open and deliver until the source ends; True once it has run. Raise if it cannot open."""
        raise NotImplementedError


class DeviceCapture(_Retrying):
    """Capture from an input device (PyAudio, in a worker process), mixed down to mono float32."""

    OPEN_TIMEOUT = 15.0  # s for the worker to start and open the device

    def __init__(self, config: AudioConfig, on_block: BlockCallback) -> None:
        super().__init__(on_block, config.retry_initial, config.retry_max)
        self.config = config
        self.device: str | None = None
        self.worker_pid: int | None = None
        # The worker declares a device lost after this silence; we allow a
        # second more before deciding the worker itself hung.
        self.stall = max(0.5, 40 * config.block_size / config.sample_rate) + 1.0

    def _describe(self) -> str:
        return f"device {self.config.device!r}" if self.config.device else "default input"

    def _options(self) -> str:
        cfg = self.config
        return json.dumps(
            {
                "device": cfg.device,
                "sample_rate": cfg.sample_rate,
                "block_size": cfg.block_size,
                "channels": cfg.channels,
            }
        )

    @staticmethod
    async def _read(stdout: asyncio.StreamReader) -> tuple[str, Any] | None:
        """One message from the worker: ("block", AudioBlock), (event, fields) or None at EOF."""
        try:
            kind = await stdout.readexactly(1)
            if kind == b"B":
                t, n = BLOCK_HEADER.unpack(await stdout.readexactly(BLOCK_HEADER.size))
                data = await stdout.readexactly(4 * n)
                return "block", AudioBlock(np.frombuffer(data, dtype="<f4"), t)
            if kind == b"I":
                (size,) = INFO_HEADER.unpack(await stdout.readexactly(INFO_HEADER.size))
                fields = json.loads(await stdout.readexactly(size))
                return str(fields.pop("event", "?")), fields
        except asyncio.IncompleteReadError:
            return None
        raise CaptureError(f"audio worker sent garbage ({kind!r})")

    async def _attempt(self) -> bool:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "soundscape.audio.worker",
            self._options(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        # Keep the worker's last stderr lines (PortAudio's chatter, or a Python
        # traceback) to say why it died when it could not say so itself.
        tail: collections.deque[str] = collections.deque(maxlen=3)
        drain = asyncio.create_task(self._drain(proc.stderr, tail))
        try:
            try:
                async with asyncio.timeout(self.OPEN_TIMEOUT):
                    first = await self._read(proc.stdout)
            except TimeoutError:
                raise CaptureError("timed out opening the device") from None
            if first is None:
                code = await proc.wait()
                await asyncio.wait([drain], timeout=1.0)
                last = f": {tail[-1]}" if tail else ""
                raise CaptureError(f"audio worker exited with code {code}{last}")
            event, fields = first
            if event == "error":
                raise CaptureError(str(fields.get("reason", "unknown error")))
            if event != "started":
                raise CaptureError(f"audio worker said {event!r} first")
            self.device = str(fields.get("device", "?"))
            self.worker_pid = proc.pid
            self._recovered(
                device=self.device,
                channels=fields.get("channels"),
                rate=self.config.sample_rate,
                block=self.config.block_size,
            )
            reason = await self._pump(proc.stdout)
            log.warning("audio_device_lost", device=self.device, reason=reason)
            self._warned = True  # the retries that follow belong to this outage
            self._set_status("retrying")
            return True
        finally:
            await self._end(proc)
            await cancel_and_wait(drain)

    @staticmethod
    async def _drain(stderr: asyncio.StreamReader, tail: collections.deque[str]) -> None:
        async for line in stderr:
            text = line.decode(errors="replace").strip()
            if text:
                tail.append(text[:300])

    async def _pump(self, stdout: asyncio.StreamReader) -> str:
        """Deliver blocks until the worker reports a loss, ends or stalls; returns why."""
        deliver = self._deliver
        while True:
            try:
                async with asyncio.timeout(self.stall):
                    message = await self._read(stdout)
            except TimeoutError:
                return f"no audio for {self.stall:g} s"
            if message is None:
                return "audio worker ended"
            event, payload = message
            if event == "block":
                deliver(payload)
                # One block a step: after a stall the pipe holds many, and reading
                # buffered data never yields, so their analyses would run back to
                # back in one step and hold the loop (OSC, MIDI, WebRTC) meanwhile.
                await asyncio.sleep(0)
            elif event == "lost":
                return f"stream stopped (silent for {payload.get('silent_for')} s)"

    async def _end(self, proc: asyncio.subprocess.Process) -> None:
        """Stop the worker: close its stdin (it exits at once), kill it if it does not."""
        self.worker_pid = None
        if proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                async with asyncio.timeout(2.0):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


class FileSource(_Retrying):
    """Any file PyAV decodes, resampled to mono float32 at the configured rate, in blocks.

    ``realtime=True`` paces blocks on the monotonic clock (for live use);
    ``realtime=False`` delivers as fast as the consumer takes them, with
    ``t`` counted from ``start_time`` (offline analysis). ``loop=True``
    starts again at the end; otherwise :attr:`finished` is set at the end.
    """

    CHUNK_SECONDS = 0.25  # audio decoded per trip to the worker thread

    def __init__(
        self,
        path: str | Path,
        on_block: BlockCallback,
        *,
        block_size: int = 512,
        sample_rate: int = 48000,
        loop: bool = True,
        realtime: bool = True,
        start_time: float = 0.0,
        retry_initial: float = 0.5,
        retry_max: float = 10.0,
    ) -> None:
        super().__init__(on_block, retry_initial, retry_max)
        self.path = Path(path)
        self.block_size = block_size
        self.sample_rate = sample_rate
        self.loop = loop
        self.realtime = realtime
        self.start_time = start_time
        self.loops = 0  # completed passes through the file
        self.finished = asyncio.Event()
        self._frames_out = 0

    @classmethod
    def from_config(cls, config: AudioConfig, on_block: BlockCallback) -> FileSource:
        return cls(
            config.file,
            on_block,
            block_size=config.block_size,
            sample_rate=config.sample_rate,
            retry_initial=config.retry_initial,
            retry_max=config.retry_max,
        )

    def _describe(self) -> str:
        return f"file {str(self.path)!r}"

    def _decoder(self) -> Iterator[np.ndarray]:
        """Decoded, resampled mono float32 chunks of one pass through the file."""
        import av

        try:
            container = av.open(str(self.path))
        except (OSError, av.FFmpegError) as err:
            raise CaptureError(f"cannot open: {err}") from None
        with container:
            if not container.streams.audio:
                raise CaptureError("no audio stream in the file")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
            try:
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        yield out.to_ndarray().reshape(-1)
                for out in resampler.resample(None):  # flush the resampler's tail
                    yield out.to_ndarray().reshape(-1)
            except av.FFmpegError as err:
                raise CaptureError(f"decoding failed: {err}") from None

    def _read_chunk(self, decoder: Iterator[np.ndarray]) -> np.ndarray | None:
        """In a worker thread: about CHUNK_SECONDS of audio, or None at the end."""
        want = int(self.CHUNK_SECONDS * self.sample_rate)
        parts: list[np.ndarray] = []
        have = 0
        for part in decoder:
            parts.append(part)
            have += len(part)
            if have >= want:
                break
        if not parts:
            return None
        return np.concatenate(parts).astype(np.float32, copy=False)

    async def _attempt(self) -> bool:
        n = self.block_size
        rate = self.sample_rate
        pending = np.zeros(0, dtype=np.float32)
        started = False
        origin = time.monotonic() if self.realtime else self.start_time
        self._frames_out = 0
        while True:
            decoder = self._decoder()
            got_any = False
            while True:
                try:
                    chunk = await asyncio.to_thread(self._read_chunk, decoder)
                except asyncio.CancelledError:
                    # Close the file now, unless the thread is still inside the
                    # generator (then garbage collection closes it).
                    with contextlib.suppress(ValueError):
                        decoder.close()
                    raise
                if chunk is None:
                    break
                got_any = True
                if not started:
                    started = True
                    self._recovered(file=str(self.path), rate=rate, block=n)
                pending = np.concatenate((pending, chunk)) if len(pending) else chunk
                usable = len(pending) - len(pending) % n
                for i in range(0, usable, n):
                    origin = await self._emit(pending[i : i + n], origin)
                pending = pending[usable:]
            if not got_any:
                raise CaptureError("the file holds no audio")
            self.loops += 1
            if not self.loop:
                if len(pending):  # the last partial block, padded with silence
                    tail = np.zeros(n, dtype=np.float32)
                    tail[: len(pending)] = pending
                    await self._emit(tail, origin)
                self.finished.set()
                self._set_status("finished")
                await asyncio.Event().wait()  # idle until stopped

    async def _emit(self, block: np.ndarray, origin: float) -> float:
        """Deliver one block (paced in real time if asked); returns the possibly moved origin."""
        rate = self.sample_rate
        t = origin + self._frames_out / rate
        if self.realtime:
            due = t + len(block) / rate  # the block's last sample has "arrived"
            lag = time.monotonic() - due
            if lag > 1.0:  # the loop was stalled: restart the timeline instead of bursting
                origin += lag
                t += lag
            if lag < 0:
                await asyncio.sleep(-lag)
            else:  # overdue: still one block a step (see DeviceCapture._pump)
                await asyncio.sleep(0)
        elif self._frames_out % (64 * len(block)) == 0:
            await asyncio.sleep(0)  # let others run during offline analysis
        self._frames_out += len(block)
        self._deliver(AudioBlock(block, t))
        return origin


def open_source(config: AudioConfig, on_block: BlockCallback) -> DeviceCapture | FileSource:
    """The source the config asks for: the file when ``audio.file`` is set, else the device."""
    if config.file:
        return FileSource.from_config(config, on_block)
    return DeviceCapture(config, on_block)
