"""One output's worker: its own thread, its own latest-wins queue, its own hold timer.

The event loop only ever calls ``offer`` and ``set_streaming`` (a lock, an
append, a notify: microseconds). Everything that can block or take time —
opening the backend, converting, sending, encoding, retrying — happens on
this output's thread, so a slow NDI host or disk delays nothing else.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from fractions import Fraction
from typing import Any

import av
import structlog

from soundscape.scope.backoff import backoff_delay
from soundscape.tasks import Supervised, in_thread, supervise
from soundscape.video.config import OutputConfig
from soundscape.video.frames import black_frame, conform, load_still
from soundscape.video.hold import HoldClock
from soundscape.video.mailbox import LatestMailbox
from soundscape.video.outputs.base import Output, frame_rate
from soundscape.video.stats import OutputStats

log = structlog.get_logger(__name__)

RETRY_INITIAL = 0.5
RETRY_MAX = 30.0
ERRORS_BEFORE_REOPEN = 3  # consecutive failed sends before the backend is reopened
ERROR_LOG_INTERVAL = 10.0  # seconds between repeated send-error log lines
MAX_WAIT = 1.0  # the worker re-checks its state at least this often


class OutputRunner:
    def __init__(
        self,
        config: OutputConfig,
        backend_cls: type[Output],
        default_size: tuple[int, int] = (576, 320),
    ) -> None:
        self.config = config
        self.label = config.label
        self.stats = OutputStats()
        self.state = "idle"
        self.reason: str | None = None
        self._backend_cls = backend_cls
        self._backend: Output | None = None
        self._size = config.fixed_size or default_size
        self._mailbox: LatestMailbox[tuple[av.VideoFrame, int]] = LatestMailbox(
            config.queue_depth, max_age=config.max_age, on_drop=self.stats.add_dropped
        )  # on_drop(n, late): late frames count as dropped and as late
        self._state_events: deque[bool] = deque()
        self._clock = HoldClock(config.fps, config.hold_after)
        self._stop = threading.Event()
        self._part: Supervised | None = None
        self._last_frame: av.VideoFrame | None = None
        self._hold_cache: dict[tuple[str, tuple[int, int]], av.VideoFrame] = {}
        self._open_failures = 0
        self._send_failures = 0
        self._last_error_log = 0.0
        self._measured_fps: float | None = None  # written by the worker, read by snapshot

    # -- event loop side -----------------------------------------------------
    def start(self) -> None:
        """Start the worker thread, supervised: a crash is logged and the worker restarted."""
        name = f"video-{self.label}"
        self._part = supervise(name, lambda: in_thread(self._run, name=name))

    def offer(self, frame: av.VideoFrame, t_in_ns: int) -> None:
        """Queue a frame for this output; never blocks."""
        self.stats.frames_in += 1
        self._mailbox.put((frame, t_in_ns))  # a drop is counted by the mailbox's on_drop

    def set_streaming(self, streaming: bool) -> None:
        self._state_events.append(streaming)
        self._mailbox.wake()

    async def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._mailbox.close()
        part = self._part
        if part is None:
            return
        # The thread sees the flag and ends ("stopped"); one stuck in a library call does not.
        await part.stop(grace=timeout)
        # Frames still queued were never sent: frames_in == sent + dropped holds.
        self.stats.add_dropped(self._mailbox.drain())
        if self.state not in ("idle", "stopped", "failed"):
            # A library call is stuck; the thread is a daemon and dies with the process.
            log.warning("output_stop_timeout", output=self.label, timeout=timeout)

    def snapshot(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "type": self.config.type,
            "name": self.config.name,
            "state": self.state,
            "width": self._size[0],
            "height": self._size[1],
        }
        fps = self._measured_fps
        info["fps"] = round(fps, 2) if fps else None
        if self.reason:
            info["reason"] = self.reason
        info.update(self.stats.snapshot())
        backend = self._backend
        if backend is not None:
            # describe is informative only; it must never break counters.
            with contextlib.suppress(Exception):
                info.update(backend.describe())
        return info

    # -- worker thread -------------------------------------------------------
    def _run(self) -> None:
        self._backend = self._backend_cls(self.config)
        opened = False
        try:
            while not self._stop.is_set():
                if not opened:
                    opened = self._open()
                    if not opened:
                        self._wait_for_retry()
                        continue
                opened = self._step()
        except Exception:
            # A bug here must not take the daemon down; the other outputs run on. The
            # supervisor (tasks.py) logs the traceback and starts this worker again.
            self.state, self.reason = "failed", "crashed (see log); restarting"
            raise
        finally:
            self._close()
            if self.state != "failed":
                self.state = "stopped"

    def _step(self) -> bool:
        """Wait for a frame or the next hold deadline, then send; False if the backend closed."""
        self._apply_state_events()
        now = time.monotonic()
        if self.config.hold == "none" and self._clock.away(now):
            timeout = MAX_WAIT
        else:
            timeout = min(MAX_WAIT, max(0.0, self._clock.next_deadline(now) - now))
        item = self._mailbox.get(timeout)
        self._apply_state_events()
        now = time.monotonic()
        if item is not None:
            self._clock.on_real(now)
            self._measured_fps = self._clock.measured_fps()
            return self._send_real(*item)
        if self.config.hold != "none" and self._clock.hold_due(now):
            self.state = "holding"
            self._clock.on_hold_sent(now)
            return self._send(self._hold_frame(now), real=False)
        return True

    def _apply_state_events(self) -> None:
        while self._state_events:
            self._clock.set_streaming(self._state_events.popleft())

    def _send_real(self, frame: av.VideoFrame, t_in_ns: int) -> bool:
        try:
            frame = conform(frame, self.config.fixed_size)
        except (ValueError, av.FFmpegError) as err:
            self.stats.add_dropped()
            self._log_send_error(err)
            return True
        size = (frame.width, frame.height)
        if size != self._size and not self._resize(size):
            self.stats.add_dropped()
            return False
        self.state = "running"
        if not self._send(frame, real=True):
            return False
        self.stats.record_sent(time.perf_counter_ns() - t_in_ns)
        self._last_frame = frame
        return True

    def _send(self, frame: av.VideoFrame, *, real: bool) -> bool:
        """Send one frame; False when repeated failures closed the backend."""
        assert self._backend is not None
        try:
            self._backend.send(frame)
        except Exception as err:
            self.stats.add_error()
            if real:
                self.stats.add_dropped()
            self._send_failures += 1
            self._log_send_error(err)
            if self._send_failures >= ERRORS_BEFORE_REOPEN:
                self.reason = f"send failed: {err}"
                self._close()
                return False
            return True
        self._send_failures = 0
        if not real:
            self.stats.held += 1
        return True

    def _hold_frame(self, now: float) -> av.VideoFrame:
        mode = self.config.hold
        if self._last_frame is not None and (mode == "last" or self._clock.show_last(now)):
            return self._last_frame
        if mode == "still":
            key = ("still", self._size)
            if key not in self._hold_cache:
                still = load_still(self.config.still_image, *self._size)
                # Unreadable image: black (logged once by load_still), cached so it is not retried.
                self._hold_cache[key] = still or black_frame(*self._size)
            return self._hold_cache[key]
        key = ("black", self._size)
        if key not in self._hold_cache:
            self._hold_cache[key] = black_frame(*self._size)
        return self._hold_cache[key]

    def _fps(self) -> Fraction:
        return frame_rate(self._clock.measured_fps() or self.config.fps)

    def _open(self) -> bool:
        assert self._backend is not None
        self.state = "opening"
        fps = self._fps()
        try:
            self._backend.open(*self._size, fps)
        except Exception as err:
            self.stats.add_error()
            self._open_failures += 1
            delay = self._retry_delay()
            self.state, self.reason = "retrying", f"open failed: {err}"
            log.warning("output_open_failed", output=self.label, error=str(err), retry_in=delay)
            return False
        self._open_failures = 0
        self._send_failures = 0
        self.state, self.reason = "running", None
        log.info(
            "output_open",
            output=self.label,
            width=self._size[0],
            height=self._size[1],
            fps=str(fps),
        )
        return True

    def _resize(self, size: tuple[int, int]) -> bool:
        assert self._backend is not None
        old, self._size = self._size, size
        self._last_frame = None
        fps = self._fps()
        log.info(
            "output_resize",
            output=self.label,
            old=f"{old[0]}x{old[1]}",
            new=f"{size[0]}x{size[1]}",
            fps=str(fps),
        )
        self.stats.reopens += 1
        try:
            self._backend.resize(*size, fps)
        except Exception as err:
            self.stats.add_error()
            self.reason = f"resize failed: {err}"
            log.warning("output_resize_failed", output=self.label, error=str(err))
            self._close()
            return False
        return True

    def _retry_delay(self) -> float:
        return backoff_delay(self._open_failures + 1, RETRY_INITIAL, RETRY_MAX)

    def _wait_for_retry(self) -> None:
        """Sleep until the next open attempt; frames meanwhile are dropped and counted."""
        deadline = time.monotonic() + self._retry_delay()
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._mailbox.get(remaining) is not None:
                self.stats.add_dropped()
            self._apply_state_events()

    def _close(self) -> None:
        backend = self._backend
        if backend is None:
            return
        try:
            backend.close()
        except Exception as err:
            self.stats.add_error()
            log.warning("output_close_failed", output=self.label, error=str(err))

    def _log_send_error(self, err: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL:
            self._last_error_log = now
            log.warning(
                "output_send_failed", output=self.label, error=str(err), errors=self.stats.errors
            )
