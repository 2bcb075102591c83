"""Keeps one Scope session alive, whatever happens to it.

The cycle: health → pipeline check (load when needed, and wait for it) →
reference images still on the server → offer carrying the complete parameter
state → stream. The session is rebuilt on ``stream_stopped``, a closed data
channel, a failed or closed connection, and when the frame watchdog sees no
frame for ``stall_timeout`` while not paused. Most real failures send no
message at all (a restarted server just goes quiet), so after ``probe_after``
without frames the supervisor asks the server directly: is it alive (and the
same process: ``server_start_time``), is the pipeline still loaded, does
``GET /api/v1/session/metrics`` still list our session? (An empty PATCH
proves nothing on the real server: 204 even for an unknown session.)

**Nothing ends the loop but cancellation.** Every failure of a cycle — a
ScopeError, a timeout, an aiortc error (translated in ``session.py``) or a bug
of our own — is a session loss with a reason: logged once (a traceback for the
unexpected), then retried.

**The retry schedule** (``docs/operations.md``): while the server does not
answer ``/health``, only that cheap check runs, every ``health_interval``
(≤ 0.5 s), so a returning server is used at once; it does not count as a
failure. The heavy steps (load, offer) back off (:class:`Backoff`): the first
retry after a loss is immediate, then ``backoff_initial`` doubling up to
``backoff_max``. The count starts over only once frames have flowed for
``stable_after`` seconds — a session that opens and dies at once, or never
delivers a frame, backs off like any failure — or when the server comes back
after being away (a new process).

**Standbys** (``soundscape.screens``): a supervisor of a standby server shares the
primary's parameter store, so every change goes to both, but never writes to it
(``writes_store=False``: the primary's ``parameters_updated`` and asset paths rule).
A *warm* standby (``warm=True``) keeps its server healthy and the pipeline loaded but
offers no session until :meth:`SessionSupervisor.set_active` asks for one; it goes
back to warm, closing the session, when asked to.

**Health for the systemd watchdog:** :attr:`SessionSupervisor.alive` is true
while the supervisor's task runs; :attr:`SessionSupervisor.progress_at` is the
monotonic time of the last frame or the last step of a reconnect (a health
check, a load poll, an offer). A supervisor that is alive and whose
``progress_at`` is recent is doing its job, streaming or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import av
import structlog
from aiortc.mediastreams import MediaStreamTrack

from soundscape.errors import PipelineLoadError, ScopeError, ScopeHTTPError
from soundscape.scope.api import Health, ScopeClient
from soundscape.scope.assets import ReferenceImages
from soundscape.scope.backoff import Backoff, backoff_delay
from soundscape.scope.config import PipelineSection, SessionSection
from soundscape.scope.ice import IceFilter
from soundscape.scope.params import SESSION_KEYS, ParameterStore
from soundscape.scope.pipeline_check import (
    LoadOutcome,
    LoadRecord,
    LoadWatch,
    load_conflicts,
    reload_reason,
    signature,
)
from soundscape.scope.sender import ParameterSender
from soundscape.scope.session import ScopeSession
from soundscape.tasks import Supervised, cancel_and_wait, supervise

log = structlog.get_logger(__name__)

SERVER_MESSAGES = (
    "stream_stopped",
    "parameters_updated",
    "tempo_update",
    "change_scheduled",
    "change_applied",
)
WARM_CHECK_INTERVAL = 2.0  # s between checks of a warm standby's server and pipeline
PAUSED_PROBE_INTERVAL = 2.0  # s between probes of a session offered paused (no frame to watch)
DELETE_TIMEOUT = 30.0  # s a lost session's DELETE may wait (a SIGSTOPped server gets it on waking)


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

    # starting|checking|loading|connecting|streaming|reconnecting|warm|stopped
    state: str = "starting"
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


class SessionSupervisor:
    def __init__(
        self,
        client: ScopeClient,
        store: ParameterStore,
        *,
        pipeline: PipelineSection,
        session: SessionSection,
        use_server_ice: bool = True,
        ice_probe_timeout: float = 0.3,
        frame_sink: FrameSink | None = None,
        outgoing: MediaStreamTrack | Callable[[], MediaStreamTrack | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        warm: bool = False,
        writes_store: bool = True,
        assets: ReferenceImages | None = None,
        name: str = "",
    ) -> None:
        self.name = name  # the server's name in logs, when the daemon has several
        self._client = client
        self._store = store
        self._pipeline = pipeline
        self._cfg = session
        self._use_server_ice = use_server_ice
        self._ice = IceFilter(timeout=ice_probe_timeout)
        self._sink = frame_sink
        # Video mode's track (the video-in feature), or a factory called for every offer: an
        # aiortc track cannot move to a new peer connection. None (or a None made): text mode.
        self._outgoing = outgoing
        self._clock = clock
        # A standby's sender has its own outbox: every change goes to every server.
        outbox = store.outbox if writes_store else store.add_outbox()
        self.assets = assets or ReferenceImages(client.upload_asset, client.assets)
        self.sender = ParameterSender(
            store,
            rate=session.max_messages_per_second,
            clock=clock,
            outbox=outbox,
            transform=None if writes_store else self.assets.translate,
        )
        self._writes_store = writes_store
        self._active = asyncio.Event()  # a warm standby offers only while this is set
        if not warm:
            self._active.set()
        self.backoff = Backoff(session.backoff_initial, session.backoff_max, session.backoff_jitter)
        self.status = Status()
        self.progress_at = clock()
        self.offers = 0  # offers sent (tests count them over a window)
        self._status_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._message_listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = {}
        self._task: Supervised | None = None
        self._session: ScopeSession | None = None
        self._lost: asyncio.Future[str] | None = None
        self._kick = asyncio.Event()  # "reconnect now" (OSC, CLI, skip a backoff)
        self._retry_at = 0.0
        self._server_start: float | None = None
        self._load_record: LoadRecord | None = None
        self._last_unexpected: tuple[type, str] | None = None
        self._deletes: set[asyncio.Task[None]] = set()
        self._leftover: str | None = None  # a previous run's session to DELETE (forget_leftover)
        self._last_frame = 0.0
        self._first_frame: float | None = None
        self._stable = False
        self._frames_window = 0
        self._window_start = 0.0
        self._streaming = False
        self._sink_failed = False
        self._rebuild = False  # the session ends on purpose (a new mode): no backoff
        store.subscribe(self._store_changed)

    # ----- public API

    @property
    def alive(self) -> bool:
        """True while the supervisor's loop runs (it ends only when stopped)."""
        return self._task is not None and self._task.alive

    def on_status(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._status_listeners.append(listener)

    def on_message(self, kind: str, listener: Callable[[dict[str, Any]], None]) -> None:
        """Listen to one kind of server message (e.g. ``tempo_update``)."""
        self._message_listeners.setdefault(kind, []).append(listener)

    async def start(self) -> None:
        await self.sender.start()
        # Core part (tasks.py): a failure escaping the loop is logged with its traceback and
        # the loop restarted; if that keeps happening, the daemon ends and systemd restarts it.
        self._task = supervise("supervisor", self._run, core=True)

    async def stop(self) -> None:
        """End the session politely (DELETE) and stop."""
        if self._task is not None:
            await self._task.stop()
            self._task = None
        await self.sender.stop()
        await self._close_session(polite=True)
        if self._deletes:
            await asyncio.wait(list(self._deletes), timeout=1.0)
            for task in list(self._deletes):
                await cancel_and_wait(task)
        self._set_status("stopped", "shutdown")

    def reconnect(self, reason: str = "requested") -> None:
        """Drop the current session (or skip a backoff wait) and build a new one."""
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)
        self._retry_at = 0.0
        self._kick.set()

    @property
    def active(self) -> bool:
        """False while a warm standby waits without a session."""
        return self._active.is_set()

    def set_active(self, on: bool, reason: str = "") -> None:
        """A warm standby: start a session now (``True``) or go back to warm (``False``)."""
        if on == self._active.is_set():
            return
        if on:
            self._active.set()
            self._retry_at = 0.0  # no backoff wait stands between a takeover and its offer
            self._kick.set()
            log.info("standby_activated", server=self.name, reason=reason)
        else:
            self._active.clear()
            log.info("standby_back_to_warm", server=self.name, reason=reason)
            if self._session is not None:
                self._rebuild = True  # on purpose, not a failure: no backoff
                self.reconnect(reason or "back to warm standby")

    def update_pipeline(self, pipeline: PipelineSection) -> None:
        """A new ``[pipeline]`` (a config reload): the next session checks and loads it.

        Call :meth:`reconnect` after it; Scope has no renegotiation.
        """
        self._pipeline = pipeline

    def _store_changed(self, changes: dict[str, Any], source: str) -> None:
        # input_mode and pipeline_ids on the data channel change nothing on the real server
        # (no renegotiation either): a new session (DELETE, new peer connection, offer) does.
        keys = sorted(changes.keys() & SESSION_KEYS)
        if keys and self._session is not None:
            log.info("session_rebuild", changed=keys, source=source)
            self._rebuild = True
            self.reconnect(f"{', '.join(keys)} changed: a new session")

    # ----- main loop

    async def _run(self) -> None:
        if self.name:  # every line this task (and the session's) logs says which server
            structlog.contextvars.bind_contextvars(server=self.name)
        while True:
            try:
                await self._cycle()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # our own bug must not end the supervision
                await self._after_loss(self._unexpected(err))

    async def _cycle(self) -> None:
        health = await self._wait_for_server()
        if self._leftover is not None:
            self._delete_later(self._leftover)
            self._leftover = None
        wait = self._retry_at - self._clock()
        if wait > 0:
            await self._pause(wait)
            return  # check the server again before the heavy steps
        load_failed = False
        try:
            checked = None
            if not self._active.is_set():
                checked = await self._stand_by(health)
                if checked is None:
                    return  # still warm: check the server again
            await self._connect(health, checked=checked)
            reason = await self._watch()
        except PipelineLoadError as err:
            reason, load_failed = str(err), True
        except ScopeError as err:
            reason = str(err)
        except TimeoutError:
            reason = "timed out connecting"
        await self._after_loss(reason, load_failed=load_failed)

    async def _after_loss(self, reason: str, *, load_failed: bool = False) -> None:
        await self._close_session(polite=True)
        self.status.reconnects += 1
        if self._rebuild:  # asked for, not a failure: the new session is offered at once
            self._rebuild = False
            self._retry_at = 0.0
            self._mark_progress()
            self._set_status("reconnecting", reason, attempt=self.backoff.failures + 1)
            log.info("session_rebuilding", reason=reason)
            return
        delay = self.backoff.failed()
        if load_failed:  # a load is heavy for the server: the same schedule, a longer cap
            b = self.backoff
            longer = backoff_delay(b.failures, b.initial, self._pipeline.load_retry_max, b.jitter)
            delay = max(delay, longer)
        self._retry_at = self._clock() + delay
        self._mark_progress()
        self._set_status("reconnecting", reason, attempt=self.backoff.failures + 1)
        log.warning(
            "session_lost", reason=reason, failures=self.backoff.failures, retry_in=round(delay, 2)
        )

    def _unexpected(self, err: Exception) -> str:
        """Log an exception we did not expect: with its traceback the first time in a row."""
        key = (type(err), str(err))
        if key != self._last_unexpected:
            self._last_unexpected = key
            log.error("supervisor_unexpected_error", exc_info=err)
        else:
            log.warning("supervisor_unexpected_error_again", error=repr(err))
        return f"internal error: {type(err).__name__}: {err}"

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if someone asks for a reconnect now."""
        self._kick.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._kick.wait()

    def _mark_progress(self) -> None:
        self.progress_at = self._clock()

    # ----- steps

    async def _wait_for_server(self) -> Health:
        """Poll ``/health`` every ``health_interval`` until the server answers healthy."""
        away_since: float | None = None
        while True:
            self._mark_progress()
            began = self._clock()
            try:
                health = await self._client.health(timeout=self._cfg.probe_timeout)
            except ScopeError as err:
                problem = str(err)
            else:
                if health.healthy:
                    self._server_seen(health, away_since)
                    return health
                problem = f"server reports unhealthy ({health.raw.get('status')})"
            if away_since is None:
                away_since = began
                log.warning("scope_server_away", reason=problem)
                self._set_status("reconnecting", f"server away: {problem}")
            await self._pause(max(0.0, self._cfg.health_interval - (self._clock() - began)))

    def _server_seen(self, health: Health, away_since: float | None) -> None:
        start = health.server_start_time
        restarted = (
            start is not None and self._server_start is not None and start != self._server_start
        )
        if start is not None:
            self._server_start = start
        if away_since is not None or restarted:
            # A server back from away is a new start: no backoff earned from the old one.
            log.info(
                "scope_server_back",
                away_for=None if away_since is None else round(self._clock() - away_since, 2),
                restarted=restarted,
                version=health.version,
            )
            self.backoff.reset()
            self._retry_at = 0.0

    async def _stand_by(self, health: Health) -> list[Any] | None:
        """A warm standby: pipeline loaded and assets there, no session, until activated.

        Returns the ICE servers when activated within this check (the offer follows at
        once, without checking again: a takeover costs one session start), else None.
        """
        await self._ensure_pipeline(health)
        await self._refresh_assets()
        ice = await self._ice_servers()
        self._mark_progress()
        self._set_status("warm", "pipeline loaded, no session (takes over in one session start)")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WARM_CHECK_INTERVAL):
                await self._active.wait()
                return ice
        return None

    async def _connect(self, health: Health, *, checked: list[Any] | None = None) -> None:
        """Pipeline, assets, offer; ``checked``: a warm standby's ICE servers, all checked."""
        if checked is None:
            self._set_status("checking", attempt=self.backoff.failures + 1)
            await self._ensure_pipeline(health)
            await self._refresh_assets()
            ice = await self._ice_servers()
        else:
            ice = checked
        self._mark_progress()
        self._set_status("connecting", attempt=self.backoff.failures + 1)
        self._lost = asyncio.get_running_loop().create_future()
        session = self._session = ScopeSession(
            self._client,
            ice_servers=ice,
            on_frame=self._frame,
            on_message=self._message,
            on_lost=self._session_lost,
            outgoing=self._outgoing() if callable(self._outgoing) else self._outgoing,
        )
        self.offers += 1
        # Reset before the offer: the first frame can arrive before open() returns.
        self._first_frame, self._stable = None, False
        initial = self._store.initial_parameters(self.sender.outbox)
        if not self._writes_store:
            initial = self.assets.translate(initial)
        await session.open(initial, timeout=self._cfg.connect_timeout)
        self._mark_progress()
        self._last_frame = self._clock()
        self._window_start, self._frames_window = self._last_frame, 0
        self.sender.attach(session)
        self.status.session_id = session.session_id
        if not self._streaming:  # else a frame already said "streaming"
            self._set_status("connecting", "waiting for the first frame")

    async def _ice_servers(self) -> list[Any]:
        if not self._use_server_ice:
            return []
        try:
            servers = await self._client.ice_servers()
        except ScopeError as err:
            log.debug("ice_servers_unavailable", error=str(err))
            return []
        return await self._ice.filter(servers)

    async def _refresh_assets(self) -> None:
        """Reference images the server lost (restart, new pod) go up again before the offer."""
        try:
            moved = await self.assets.refresh()
        except ScopeError as err:
            log.warning("assets_check_failed", error=str(err))
            return
        current = self._store.get("vace_ref_images")
        if moved and isinstance(current, list) and self._writes_store:
            updated = [moved.get(path, path) for path in current]
            if updated != current:
                self._store.set("vace_ref_images", updated, source="assets")

    async def _ensure_pipeline(self, health: Health) -> None:
        """Load the configured pipeline unless the server has exactly it loaded."""
        want_ids = tuple(self._store.get("pipeline_ids") or self._pipeline.pipeline_ids)
        want_params = self._pipeline.load_params()
        for _key, problem in load_conflicts(want_params):
            raise PipelineLoadError(problem)
        server = health.server_start_time
        status = await self._client.pipeline_status(timeout=self._cfg.connect_timeout)
        reason = reload_reason(status, want_ids, want_params, self._load_record, server)
        if reason is None:
            return
        watch = LoadWatch(want_ids, want_params, signature(status), self._pipeline.load_grace)
        if status.status == "loading":
            watch.saw_loading = True  # a load is under way (ours from a cycle before?): wait
        else:
            self._set_status("loading", f"loading {'+'.join(want_ids)}")
            log.info("pipeline_load", pipeline_ids=want_ids, load_params=want_params, why=reason)
            self._load_record = None
            await self._client.load_pipeline(list(want_ids), want_params)
        await self._wait_loaded(watch)
        self._load_record = LoadRecord(server, want_ids, dict(want_params))

    async def _wait_loaded(self, watch: LoadWatch) -> None:
        deadline = self._clock() + self._pipeline.load_timeout
        last_report: tuple[Any, ...] = ()
        delay = 0.05
        names = "+".join(watch.want_ids)
        while True:
            status = await self._client.pipeline_status(timeout=self._cfg.connect_timeout)
            now = self._clock()
            self._mark_progress()
            outcome = watch.see(status, now)
            if outcome is LoadOutcome.DONE:
                log.info("pipeline_loaded", pipeline_ids=list(status.pipeline_ids) or names)
                return
            if outcome is LoadOutcome.FAILED:
                detail = f" ({status.error})" if status.error else ""
                raise PipelineLoadError(
                    f"the Scope server could not load {names} — its own log says why{detail}"
                )
            report = (status.status, status.loading_stage, status.progress)
            if report != last_report:
                log.info("pipeline_loading", stage=status.loading_stage, progress=status.progress)
                self._set_status("loading", status.loading_stage or f"loading {names}")
                last_report = report
            if now > deadline:
                raise PipelineLoadError(
                    f"pipeline {names} still {status.status} after {self._pipeline.load_timeout:g}s"
                )
            # Polling is the only way: Scope has no load-finished event. Capped at 0.5 s so a
            # one-read ``error`` is still caught and a finished load is used at once.
            await asyncio.sleep(delay)
            delay = min(0.5, delay * 1.5)

    async def _watch(self) -> str:
        """Return the reason the session ended; probes the server when frames stop."""
        assert self._lost is not None
        probe_after, stall = self._cfg.probe_after, self._cfg.stall_timeout
        next_stats = self._clock() + self._cfg.stats_interval
        last_probe = 0.0
        while True:
            try:
                # A short tick: a silence is seen within 0.1 s of reaching probe_after.
                async with asyncio.timeout(min(probe_after / 2, 0.1)):
                    return await asyncio.shield(self._lost)
            except TimeoutError:
                pass
            if not self._active.is_set():  # told to go warm while this session was opening
                self._rebuild = True
                return "back to warm standby"
            now = self._clock()
            # No exception for ``paused``: Scope keeps sending the frozen frame (~58 fps on
            # v0.2.4), so silence while paused is a fault like any other -- except in a
            # session offered paused, which has no frame yet to freeze: there only the
            # (slower) probes can tell a dead server.
            paused_idle = self._first_frame is None and bool(self._store.get("paused"))
            silent = now - self._last_frame
            flowing = self._first_frame is not None and silent < probe_after
            if flowing and not self._stable and now - self._first_frame >= self._cfg.stable_after:
                self._stable = True  # frames flowed long enough: losses retry at once again
                self.backoff.reset()
                self._last_unexpected = None
            limit = stall if self._first_frame is not None else self._cfg.first_frame_timeout
            if silent >= limit and not paused_idle:
                what = "stall" if self._first_frame is not None else "no first frame"
                return f"no frame for {silent:.1f}s ({what})"
            probe_every = PAUSED_PROBE_INTERVAL if paused_idle else probe_after
            if silent >= probe_after and now - last_probe >= probe_every:
                last_probe = now
                if self._streaming:
                    self._streaming = False
                    self._sink_state(False)
                reason = await self._probe()
                if reason:
                    return reason
            if now >= next_stats:
                next_stats = now + self._cfg.stats_interval
                self._log_stats(now)

    async def _probe(self) -> str | None:
        """Ask the server why frames stopped; a reason means the session is gone."""
        timeout = self._cfg.probe_timeout
        self._mark_progress()
        try:
            health = await self._client.health(timeout=timeout)
            start = health.server_start_time
            if start is not None and self._server_start is not None and start != self._server_start:
                return "the server restarted (new server_start_time)"
            status = await self._client.pipeline_status(timeout=timeout)
            if not status.loaded:
                return f"pipeline {status.status} on the server (restarted?)"
            session_id = self._session.session_id if self._session is not None else None
            if session_id is not None:
                try:
                    sessions = await self._client.session_metrics(timeout=timeout)
                except ScopeHTTPError as err:
                    if err.status != 404:
                        raise
                    sessions = None  # v0.1.x has no metrics: nothing more to learn
                if sessions is not None and session_id not in sessions:
                    if not sessions:
                        return "the server no longer knows this session (restarted?)"
                    # v0.2.4 lists only the first open session: another client's (or our
                    # own leftover after a kill -9) hides ours. Undecided: the stall timer rules.
                    log.debug("probe_session_not_listed", listed=len(sessions))
        except ScopeError as err:
            return f"server unreachable: {err}"
        return None

    # ----- session callbacks

    def _session_lost(self, reason: str) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)

    def _frame(self, frame: av.VideoFrame) -> None:
        now = self._clock()
        self._last_frame = self.progress_at = now
        self._frames_window += 1
        self.status.frames += 1
        if self._first_frame is None:
            self._first_frame = now
        if not self._streaming:
            self._streaming = True
            if self._session is not None:  # a first frame may come before open() returns
                self.status.session_id = self._session.session_id
            self._set_status("streaming")
            self._sink_state(True)
        if self._sink is not None:
            try:
                self._sink.on_frame(frame)
            except Exception:  # an output's bug is the output's problem, not the session's
                if not self._sink_failed:
                    self._sink_failed = True
                    log.exception("frame_sink_failed")

    def _sink_state(self, streaming: bool) -> None:
        if self._sink is None:
            return
        try:
            self._sink.on_stream_state(streaming)
        except Exception:
            log.exception("frame_sink_failed")

    def _message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "stream_stopped":
            detail = message.get("error_message")
            self._session_lost("stream_stopped" + (f": {detail}" if detail else ""))
        elif kind == "parameters_updated":
            params = message.get("parameters")
            if isinstance(params, dict) and self._writes_store:
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
        """Close the session; its DELETE (so the server drops it too) runs in the background.

        A server that is hung (SIGSTOP) gets the DELETE when it wakes up, and
        the next session does not wait for it. ``stop()`` waits for it.
        """
        self.sender.attach(None)
        session, self._session = self._session, None
        self.status.session_id = None
        if self._streaming:
            self._streaming = False
            self._sink_state(False)
        if session is None:
            return
        if polite and session.session_id is not None:
            self._delete_later(session.session_id)
        try:
            await session.close(polite=False)
        except Exception:  # closing a broken connection may fail; it is gone anyway
            log.debug("session_close_failed", exc_info=True)

    def _delete_later(self, session_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._delete(session_id), name="scope-delete")
        self._deletes.add(task)
        task.add_done_callback(self._deletes.discard)

    def session_ref(self) -> dict[str, str] | None:
        """Our live session and its server (saved with the show for :meth:`forget_leftover`)."""
        session_id = self.status.session_id
        return None if session_id is None else {"url": self._client.base_url, "id": session_id}

    def forget_leftover(self, ref: Mapping[str, Any] | None) -> None:
        """Have the server drop a session a previous run left behind (a ``kill -9`` sends no
        DELETE). Scope keeps such a session streaming until its ICE fails (30-60 s): GPU time
        for nobody, and on v0.2.4 it hides our new session from ``session/metrics``. Sent in
        the background once the server answers, before our own offer."""
        if not ref or ref.get("url") != self._client.base_url:
            return  # another server: that id means nothing there
        if isinstance(ref.get("id"), str):
            self._leftover = ref["id"]

    async def _delete(self, session_id: str) -> None:
        try:
            await self._client.delete_session(session_id, timeout=DELETE_TIMEOUT)
        except ScopeError as err:
            log.debug("session_delete_failed", session=session_id, error=str(err))

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
            fields = {"reason": reason} if reason else {}
            if state == "streaming":
                log.info(
                    "session_streaming", session=self.status.session_id, attempt=self.status.attempt
                )
            elif state != "reconnecting":  # logged by the caller with more context
                log.info(f"session_{state}", attempt=self.status.attempt, **fields)
            self._emit()

    def _emit(self) -> None:
        status = self.status.as_dict()
        for listener in list(self._status_listeners):
            try:
                listener(status)
            except Exception:
                log.exception("status_listener_failed")
