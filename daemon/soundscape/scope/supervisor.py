"""Keeps one Scope session alive, whatever happens to it.

The loop: health → pipeline status → load when needed (and wait for it) →
offer carrying the complete parameter state → stream. The session is rebuilt
on ``stream_stopped``, a closed data channel, a failed or closed connection,
and when the frame watchdog sees no frame for ``stall_timeout`` while not
paused. Most real failures send no message at all (a restarted server just
goes quiet), so after ``probe_after`` without frames the supervisor asks the
server directly: is it alive, is the pipeline still loaded, does it still know
the session? Retries back off exponentially with jitter, capped, forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import av
import structlog

from soundscape.config import PipelineSection, SessionSection
from soundscape.errors import (
    PipelineLoadError,
    ScopeError,
    ScopeHTTPError,
)
from soundscape.scope.api import ScopeClient
from soundscape.scope.params import ParameterStore
from soundscape.scope.sender import ParameterSender
from soundscape.scope.session import ScopeSession
from soundscape.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

SERVER_MESSAGES = (
    "stream_stopped",
    "parameters_updated",
    "tempo_update",
    "change_scheduled",
    "change_applied",
)


@runtime_checkable
class FrameSink(Protocol):
    """Where the session's video goes (``soundscape.video.VideoFanout``)."""

    def on_frame(self, frame: av.VideoFrame) -> None:
        """Every decoded frame from Scope (yuv420p usually); must return in microseconds."""

    def on_stream_state(self, streaming: bool) -> None:
        """False when the session is lost or reconnecting, True when frames flow again."""


@dataclass
class Status:
    """What the supervisor is doing now; sent to listeners on every change."""

    state: str = "starting"  # starting|checking|loading|connecting|streaming|reconnecting|stopped
    reason: str = ""
    attempt: int = 0
    session_id: str | None = None
    fps: float = 0.0
    frames: int = 0
    reconnects: int = 0
    since: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "attempt": self.attempt,
            "session_id": self.session_id,
            "fps": round(self.fps, 2),
            "frames": self.frames,
            "reconnects": self.reconnects,
        }


def backoff_delay(
    attempt: int,
    initial: float,
    cap: float,
    jitter: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Delay before retry ``attempt`` (1-based): 0 for the first, then exponential.

    The first retry after a loss is immediate: most losses (a dropped
    connection, a restarted server) are over by the time we notice them.
    """
    if attempt <= 1:
        return 0.0
    base = min(cap, initial * 2 ** (attempt - 2))
    return base * (1.0 + jitter * rand())


class _Lost(Exception):
    """The current session ended; carries the reason for the log."""


class SessionSupervisor:
    def __init__(
        self,
        client: ScopeClient,
        store: ParameterStore,
        *,
        pipeline: PipelineSection,
        session: SessionSection,
        use_server_ice: bool = True,
        frame_sink: FrameSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._store = store
        self._pipeline = pipeline
        self._cfg = session
        self._use_server_ice = use_server_ice
        self._sink = frame_sink
        self._clock = clock
        self.sender = ParameterSender(store, rate=session.max_messages_per_second, clock=clock)
        self.status = Status()
        self._status_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._message_listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._session: ScopeSession | None = None
        self._lost: asyncio.Future[str] | None = None
        self._kick = asyncio.Event()  # "reconnect now" (OSC, CLI, skip a backoff)
        self._last_frame = 0.0
        self._frames_window = 0
        self._window_start = 0.0
        self._streaming = False

    # ----- public API

    def on_status(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._status_listeners.append(listener)

    def on_message(self, kind: str, listener: Callable[[dict[str, Any]], None]) -> None:
        """Listen to one kind of server message (e.g. ``tempo_update``)."""
        self._message_listeners.setdefault(kind, []).append(listener)

    async def start(self) -> None:
        await self.sender.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="supervisor")

    async def stop(self) -> None:
        """End the session politely (DELETE) and stop."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        await self.sender.stop()
        await self._close_session(polite=True)
        self._set_status("stopped", "shutdown")

    def reconnect(self, reason: str = "requested") -> None:
        """Drop the current session (or skip a backoff wait) and build a new one."""
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)
        self._kick.set()

    # ----- main loop

    async def _run(self) -> None:
        attempt = 0
        while True:
            attempt += 1
            delay = backoff_delay(
                attempt, self._cfg.backoff_initial, self._cfg.backoff_max, self._cfg.backoff_jitter
            )
            if delay:
                self._kick.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._kick.wait()
            try:
                await self._connect(attempt)
                attempt = 0  # streaming: the next loss retries at once
                reason = await self._watch()
            except ScopeError as err:
                reason = str(err)
            except TimeoutError:
                reason = "timed out connecting"
            await self._close_session(polite=False)
            self.status.reconnects += 1
            self._set_status("reconnecting", reason, attempt=attempt + 1)
            log.warning(
                "session_lost",
                reason=reason,
                next_attempt=attempt + 1,
                retry_in=round(
                    backoff_delay(
                        attempt + 1, self._cfg.backoff_initial, self._cfg.backoff_max, 0.0
                    ),
                    2,
                ),
            )

    async def _connect(self, attempt: int) -> None:
        self._set_status("checking", attempt=attempt)
        health = await self._client.health(timeout=self._cfg.connect_timeout)
        if not health.healthy:
            raise ScopeError(f"server reports unhealthy ({health.raw.get('status')})")
        await self._ensure_pipeline()
        self._set_status("connecting", attempt=attempt)
        ice = await self._client.ice_servers() if self._use_server_ice else []
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        session = self._session = ScopeSession(
            self._client,
            ice_servers=ice,
            on_frame=self._frame,
            on_message=self._message,
            on_lost=self._session_lost,
        )
        await session.open(self._store.initial_parameters(), timeout=self._cfg.connect_timeout)
        self._last_frame = self._clock()
        self._window_start, self._frames_window = self._last_frame, 0
        self.sender.attach(session)
        self.status.session_id = session.session_id
        self._set_status("connecting", "waiting for the first frame", attempt=attempt)

    async def _ensure_pipeline(self) -> None:
        """Load the configured pipeline unless the server already has it loaded."""
        wanted_ids = list(self._store.get("pipeline_ids") or self._pipeline.pipeline_ids)
        wanted_params = self._pipeline.load_params()
        if wanted_params.get("quantization") and wanted_params.get("vace_enabled"):
            raise PipelineLoadError("FP8 quantization cannot be combined with VACE")
        status = await self._client.pipeline_status(timeout=self._cfg.connect_timeout)
        if status.loaded and self._matches(
            status.pipeline_ids, status.load_params, wanted_ids, wanted_params
        ):
            return
        if status.status != "loading":
            self._set_status("loading", f"loading {'+'.join(wanted_ids)}")
            log.info(
                "pipeline_load",
                pipeline_ids=wanted_ids,
                load_params=wanted_params,
                server_status=status.status,
            )
            await self._client.load_pipeline(wanted_ids, wanted_params)
        await self._wait_loaded(wanted_ids, wanted_params)

    @staticmethod
    def _matches(
        have_ids: tuple[str, ...],
        have_params: Mapping[str, Any],
        want_ids: list[str],
        want_params: Mapping[str, Any],
    ) -> bool:
        if have_ids and want_ids[-1] not in have_ids:
            return False
        return all(
            have_params.get(k, v) == v for k, v in want_params.items() if k in ("width", "height")
        )

    async def _wait_loaded(self, wanted_ids: list[str], wanted_params: Mapping[str, Any]) -> None:
        deadline = self._clock() + self._pipeline.load_timeout
        last_report: tuple[Any, ...] = ()
        delay = 0.05
        while True:
            status = await self._client.pipeline_status(timeout=self._cfg.connect_timeout)
            if status.status == "loaded":
                log.info("pipeline_loaded", pipeline_ids=list(status.pipeline_ids) or wanted_ids)
                return
            if status.status == "error":
                raise PipelineLoadError(f"pipeline load failed: {status.error or 'no detail'}")
            if status.status == "not_loaded":
                # Another client unloaded it, or the server restarted mid-load.
                raise PipelineLoadError("pipeline load did not start or was lost")
            report = (status.status, status.loading_stage, status.progress)
            if report != last_report:
                log.info("pipeline_loading", stage=status.loading_stage, progress=status.progress)
                self._set_status("loading", status.loading_stage or "loading")
                last_report = report
            if self._clock() > deadline:
                raise PipelineLoadError(
                    f"pipeline still {status.status} after {self._pipeline.load_timeout:g}s"
                )
            # Polling is the only way: Scope has no load-finished event.
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 1.5)

    async def _watch(self) -> str:
        """Return the reason the session ended; probes the server when frames stop."""
        assert self._lost is not None
        probe_after, stall = self._cfg.probe_after, self._cfg.stall_timeout
        next_stats = self._clock() + self._cfg.stats_interval
        last_probe = 0.0
        while True:
            try:
                async with asyncio.timeout(min(probe_after, 0.25)):
                    return await asyncio.shield(self._lost)
            except TimeoutError:
                pass
            now = self._clock()
            if self._store.get("paused"):
                self._last_frame = now  # paused: silence is expected
            silent = now - self._last_frame
            if silent >= stall:
                return f"no frame for {silent:.1f}s (stall)"
            if silent >= probe_after and now - last_probe >= probe_after:
                last_probe = now
                if self._streaming:
                    self._streaming = False
                    if self._sink is not None:
                        self._sink.on_stream_state(False)
                reason = await self._probe()
                if reason:
                    return reason
            if now >= next_stats:
                next_stats = now + self._cfg.stats_interval
                self._log_stats(now)

    async def _probe(self) -> str | None:
        """Ask the server why frames stopped; a reason means the session is gone."""
        timeout = max(0.5, self._cfg.probe_after)
        try:
            await self._client.health(timeout=timeout)
            status = await self._client.pipeline_status(timeout=timeout)
            if not status.loaded:
                return f"pipeline {status.status} on the server (restarted?)"
            if self._session is not None and self._session.session_id is not None:
                await self._client.add_ice_candidates(self._session.session_id, [], timeout=timeout)
        except ScopeHTTPError as err:
            if err.status == 404:
                return "the server no longer knows this session (restarted?)"
            log.debug("probe_http_error", error=str(err))
        except ScopeError as err:
            return f"server unreachable: {err}"
        return None

    # ----- session callbacks

    def _session_lost(self, reason: str) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)

    def _frame(self, frame: av.VideoFrame) -> None:
        now = self._clock()
        self._last_frame = now
        self._frames_window += 1
        self.status.frames += 1
        if not self._streaming:
            self._streaming = True
            self._set_status("streaming")
            if self._sink is not None:
                self._sink.on_stream_state(True)
        if self._sink is not None:
            self._sink.on_frame(frame)

    def _message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "stream_stopped":
            detail = message.get("error_message")
            self._session_lost("stream_stopped" + (f": {detail}" if detail else ""))
        elif kind == "parameters_updated":
            params = message.get("parameters")
            if isinstance(params, dict):
                applied = self._store.merge_from_server(params)
                log.debug("parameters_updated", keys=sorted(applied))
        elif kind in SERVER_MESSAGES:
            log.debug("scope_message", type=kind)
        else:
            log.debug("scope_message_unknown", type=kind)
        for listener in self._message_listeners.get(str(kind), []):
            try:
                listener(message)
            except Exception:  # a listener's bug must not end the session
                log.exception("message_listener_failed", type=kind)

    # ----- helpers

    async def _close_session(self, *, polite: bool) -> None:
        self.sender.attach(None)
        session, self._session = self._session, None
        if self._streaming:
            self._streaming = False
            if self._sink is not None:
                self._sink.on_stream_state(False)
        if session is not None:
            try:
                await session.close(polite=polite)
            except Exception:  # closing a broken connection may fail; it is gone anyway
                log.debug("session_close_failed", exc_info=True)

    def _log_stats(self, now: float) -> None:
        elapsed = now - self._window_start
        self.status.fps = self._frames_window / elapsed if elapsed > 0 else 0.0
        self._window_start, self._frames_window = now, 0
        log.info(
            "stream_stats",
            fps=round(self.status.fps, 1),
            frames=self.status.frames,
            messages_sent=self.sender.sent,
        )
        self._emit()

    def _set_status(self, state: str, reason: str = "", *, attempt: int | None = None) -> None:
        changed = state != self.status.state or reason != self.status.reason
        self.status.state, self.status.reason = state, reason
        if attempt is not None:
            self.status.attempt = attempt
        if changed:
            self.status.since = self._clock()
            if state in ("streaming", "stopped", "reconnecting"):
                pass  # logged by the caller with more context, or below
            fields = {"reason": reason} if reason else {}
            if state == "streaming":
                log.info(
                    "session_streaming", session=self.status.session_id, attempt=self.status.attempt
                )
            elif state not in ("reconnecting",):
                log.info(f"session_{state}", attempt=self.status.attempt, **fields)
            self._emit()

    def _emit(self) -> None:
        status = self.status.as_dict()
        for listener in list(self._status_listeners):
            try:
                listener(status)
            except Exception:
                log.exception("status_listener_failed")
