"""A Scope-compatible server (HTTP via aiohttp, WebRTC via aiortc) with fault injection.

It stands in for the real server in tests, demos and benchmarks and reproduces, by
default, every behaviour recorded from Daydream Scope v0.2.4 (``scope-v0.2.4/``; see
``docs/scope-compatibility.md``). ``/_emulator/*`` routes (and the ``fault_*``
methods) inject faults, from the polite (``stream_stopped``) to the hostile (garbage
SDP, sessions that die at once, slow loads, lost assets).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.sdp import SessionDescription, candidate_from_sdp

from soundscape.emulator import catalog
from soundscape.emulator.config import EmulatorConfig
from soundscape.emulator.pipeline import PipelineManager, parse_load
from soundscape.emulator.session import EmulatedSession
from soundscape.emulator.tempo import BeatClock

log = structlog.get_logger(__name__)

API = "/api/v1"
TEMPO_INTERVAL = 1 / 15
CLOSED_KEPT = 20  # closed sessions still listed in the state, newest last
DELETES_KEPT = 200
SUFFIXES = {
    "image": (".jpg", ".webp", ".jpeg", ".bmp", ".png"),
    "video": (".avi", ".mov", ".mp4", ".mkv", ".webm"),
    "audio": (".wav", ".flac", ".ogg", ".mp3"),
}
# In the order the real server lists them (a set's order, copied as recorded).
ALLOWED_TEXT = (
    ".jpg, .avi, .mov, .wav, .flac, .ogg, .mp4, .webp, .jpeg, .mkv, .mp3, .webm, .bmp, .png"
)
GARBAGE_SDP = "this is not an SDP answer\r\n"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _detail(status: int, detail: Any) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


def _json_error(exc: ValueError) -> web.Response:
    return _detail(
        422,
        [catalog.error("json_invalid", ["body", 0], "JSON decode error", {}, {"error": str(exc)})],
    )


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes", "on")


class Emulator:
    """The emulated server. ``await start()``, use ``url``, ``await stop()``."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.pipeline = PipelineManager(self.config, self._changed)
        self.sessions: dict[str, EmulatedSession] = {}
        self._closed: list[EmulatedSession] = []
        self._graveyard: list[EmulatedSession] = []
        self._host = "127.0.0.1"
        self._port = 0
        self._runner: web.AppRunner | None = None
        self._started_at = time.time()
        self._changed_event = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._tempo_task: asyncio.Task[None] | None = None
        self._assets_dir: tempfile.TemporaryDirectory[str] | None = None
        self._running = False
        self._restarts = 0
        self.offers = 0
        self.deletes: list[dict[str, Any]] = []
        self.garbage_sdp = False
        self.close_at_once = False
        self.clock = (
            BeatClock(self.config.tempo_bpm, time.time(), self.config.beats_per_bar)
            if self.config.tempo_bpm
            else None
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self._host in ("0.0.0.0", "", "::") else self._host
        return f"http://{host}:{self._port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0 picks a free port); return the bound port."""
        if self._running:
            return self._port
        self._host = host
        self._assets_dir = tempfile.TemporaryDirectory(prefix="scope-emulator-assets-")
        self._port = await self._listen(host, port)
        self._running = True
        if self.clock is not None:
            self._tempo_task = asyncio.create_task(self._tempo_loop())
        log.info("emulator_started", url=self.url, tempo_bpm=self.config.tempo_bpm)
        self._changed()
        return self._port

    async def _listen(self, host: str, port: int) -> int:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_fastapi_errors])
        app.add_routes(self._routes())
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._started_at = time.time()
        return int(runner.addresses[0][1])

    async def _unlisten(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def stop(self) -> None:
        """Close every session politely (``stream_stopped``), then the server. Idempotent."""
        if not self._running:
            return
        self._running = False
        if self._tempo_task is not None:
            self._tempo_task.cancel()
            await asyncio.wait({self._tempo_task})
            self._tempo_task = None
        sessions = list(self.sessions.values())
        self.sessions.clear()
        await asyncio.gather(*(s.close(polite=True) for s in sessions))
        for session in self._graveyard:
            await asyncio.shield(session.pc.close())
        self._graveyard.clear()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await self.pipeline.stop()
        await self._unlisten()
        if self._assets_dir is not None:
            self._assets_dir.cleanup()
            self._assets_dir = None
        log.info("emulator_stopped", sessions_closed=len(sessions))
        self._changed()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ state

    def _changed(self) -> None:
        # Wake every wait_for(); a fresh event for the next change.
        event, self._changed_event = self._changed_event, asyncio.Event()
        event.set()

    def state(self) -> dict[str, Any]:
        """Everything a test wants to check (also ``GET /_emulator/state``)."""
        p = self.pipeline
        current = list(self.sessions.values())
        return {
            "pipeline": {
                "status": p.status,
                "pipeline_ids": list(p.pipeline_ids),
                "load_params": p.load_params,
                "load_count": p.load_count,
                "generation": p.instance.generation if p.instance else None,
                "failed_loads": p.failed_loads,
                "error": p.error,
                "loading_stage": p.loading_stage,
                "slow_load": p.slow_load,
            },
            "sessions": [s.state() for s in self._closed + current],
            "offers": self.offers,
            "deletes": [dict(d) for d in self.deletes],
            "faults": {"garbage_sdp": self.garbage_sdp, "close_at_once": self.close_at_once},
            "tempo_bpm": self.config.tempo_bpm,
            "listening": self._runner is not None,
            "restarts": self._restarts,
            "server_start_time": self._started_at,
            "url": self.url,
        }

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        """Wait until ``predicate(state())`` holds; return that state. Raises TimeoutError."""
        async with asyncio.timeout(timeout):
            while True:
                event = self._changed_event
                state = self.state()
                if predicate(state):
                    return state
                await event.wait()

    def _open_sessions(self) -> list[EmulatedSession]:
        return [s for s in self.sessions.values() if s.open]

    def _live_session(self) -> EmulatedSession | None:
        """The one session the server reports on: the first not closed or failed."""
        for session in self.sessions.values():
            if session.open and session.pc.connectionState not in ("closed", "failed"):
                return session
        return None

    def _forget(self, session: EmulatedSession) -> None:
        if self.sessions.pop(session.id, None) is not None:
            self._closed = [*self._closed, session][-CLOSED_KEPT:]
        self._changed()

    # ------------------------------------------------------------------ faults

    async def fault_stream_stopped(self) -> int:
        """Close every open session politely, like DELETE or SIGTERM. Returns how many."""
        sessions = self._open_sessions()
        log.info("emulator_fault", fault="stream_stopped", sessions=len(sessions))
        for session in sessions:
            self._forget(session)
        await asyncio.gather(*(s.close(polite=True) for s in sessions))
        return len(sessions)

    async def fault_drop(self) -> int:
        """Close every open session's connection without a message."""
        sessions = self._open_sessions()
        log.info("emulator_fault", fault="drop", sessions=len(sessions))
        for session in sessions:
            self._forget(session)
        await asyncio.gather(*(s.close(polite=False) for s in sessions))
        return len(sessions)

    def fault_stall(self) -> int:
        """Stop the frames of every open session; connections and channels stay."""
        sessions = self._open_sessions()
        log.info("emulator_fault", fault="stall", sessions=len(sessions))
        for session in sessions:
            session.stalled = True
        self._changed()
        return len(sessions)

    def fault_fail_next_load(self) -> None:
        """Make the next pipeline load fail (``error`` once, then ``not_loaded``)."""
        log.info("emulator_fault", fault="fail_next_load")
        self.pipeline.fail_next = True

    def fault_slow_load(self, seconds: float | None) -> None:
        """Every later load takes ``seconds`` (a diffusion pipeline: minutes); None undoes."""
        log.info("emulator_fault", fault="slow_load", seconds=seconds)
        self.pipeline.slow_load = seconds
        self._changed()

    def fault_garbage_sdp(self, enabled: bool = True) -> None:
        """Answer every offer with 200 and an ``sdp`` that is not SDP (until disabled)."""
        log.info("emulator_fault", fault="garbage_sdp", enabled=enabled)
        self.garbage_sdp = enabled
        self._changed()

    def fault_close_at_once(self, enabled: bool = True) -> None:
        """Accept every offer, then close the session as soon as it connects."""
        log.info("emulator_fault", fault="close_at_once", enabled=enabled)
        self.close_at_once = enabled
        self._changed()

    def fault_lose_assets(self) -> int:
        """Lose every uploaded asset now (a new pod). Returns how many were lost."""
        lost = self._wipe_assets()
        log.info("emulator_fault", fault="lose_assets", assets=lost)
        self._changed()
        return lost

    async def fault_restart_keep_pipeline(self) -> int:
        """The sessions die silently while the pipeline stays loaded and health stays up.

        Only ``GET /api/v1/session/metrics`` (and PATCH/the status of the session) shows
        that the session is gone.
        """
        return await self.fault_restart(0.0, keep_pipeline=True)

    async def fault_restart(
        self,
        downtime: float | None = None,
        *,
        delay: float | None = None,
        keep_pipeline: bool = False,
        lose_assets: bool = False,
    ) -> int:
        """Die and come back; returns once the sessions are dead (and the listener closed).

        Without arguments this is the real ``POST /api/v1/restart``: frames stop
        ``restart_delay`` s later, connections are refused for ``restart_downtime`` s,
        then the server is back ``not_loaded`` with a new ``server_start_time``. Sessions
        are forgotten without a word (the client sees frames stop; aiortc reports the
        connection closed only ~30 s later). An explicit ``downtime`` (0: the listener
        stays up) means no delay unless ``delay`` is given too. ``keep_pipeline`` keeps
        the pipeline loaded; ``lose_assets`` empties the asset folder.
        """
        if downtime is None:
            downtime = self.config.restart_downtime
            delay = self.config.restart_delay if delay is None else delay
        if delay:
            await asyncio.sleep(delay)
        count = await self._die(downtime, keep_pipeline=keep_pipeline, lose_assets=lose_assets)
        if downtime > 0 and self._running:
            await self._unlisten()
            self._changed()
            self._spawn(self._come_back(downtime))
        return count

    async def _die(self, downtime: float, *, keep_pipeline: bool, lose_assets: bool) -> int:
        sessions = list(self.sessions.values())
        self.sessions.clear()
        self._graveyard.extend(sessions)
        self._restarts += 1
        if not keep_pipeline:
            self._started_at = time.time()
        self.pipeline.reset(keep_loaded=keep_pipeline)
        if lose_assets:
            self._wipe_assets()
        log.info(
            "emulator_fault",
            fault="restart",
            sessions=len(sessions),
            downtime=downtime,
            keep_pipeline=keep_pipeline,
            lose_assets=lose_assets,
        )
        await asyncio.gather(*(s.kill() for s in sessions))
        self._changed()
        return len(sessions)

    async def _restart_later(
        self,
        delay: float,
        downtime: float,
        *,
        keep_pipeline: bool = False,
        lose_assets: bool = False,
    ) -> None:
        # After the HTTP answer has gone out: closing the listener from inside its own
        # request would cut the response off.
        await asyncio.sleep(delay)
        if not self._running:
            return
        await self._die(downtime, keep_pipeline=keep_pipeline, lose_assets=lose_assets)
        if downtime > 0:
            await self._unlisten()
            self._changed()
            await self._come_back(downtime)

    async def _come_back(self, downtime: float) -> None:
        await asyncio.sleep(downtime)
        if not self._running:
            return
        await self._listen(self._host, self._port)
        log.info("emulator_back", url=self.url)
        self._changed()

    def _wipe_assets(self) -> int:
        if self._assets_dir is None:
            return 0
        folder = Path(self._assets_dir.name)
        lost = 0
        for path in folder.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            lost += 1
        return lost

    # ------------------------------------------------------------------ tempo

    async def _tempo_loop(self) -> None:
        assert self.clock is not None
        while True:
            update = {"type": "tempo_update", **self.clock.update(time.time())}
            for session in self._open_sessions():
                session.send(update)
            await asyncio.sleep(TEMPO_INTERVAL)

    # ------------------------------------------------------------------ routes

    def _routes(self) -> list[web.RouteDef]:
        offer_id = f"{API}/webrtc/offer/{{session_id}}"
        return [
            web.get("/", self._root),
            web.get("/health", self._health),
            web.post(f"{API}/restart", self._restart),
            web.post(f"{API}/pipeline/load", self._load),
            web.get(f"{API}/pipeline/status", self._status),
            web.get(f"{API}/pipelines/schemas", self._schemas),
            web.get(f"{API}/webrtc/ice-servers", self._ice_servers),
            web.post(f"{API}/webrtc/offer", self._offer),
            web.patch(offer_id, self._patch),
            web.delete(offer_id, self._delete),
            web.post(offer_id, self._not_allowed),
            web.put(offer_id, self._not_allowed),
            web.get(f"{API}/session/parameters", self._get_session_parameters),
            web.post(f"{API}/session/parameters", self._post_session_parameters),
            web.get(f"{API}/session/metrics", self._session_metrics),
            web.get(f"{API}/hardware/info", self._hardware),
            web.get(f"{API}/models/status", self._models_status),
            web.post(f"{API}/models/download", self._models_download),
            web.get(f"{API}/loras", self._loras),
            web.get(f"{API}/assets", self._assets_list),
            web.post(f"{API}/assets", self._assets_upload),
            web.get(f"{API}/plugins", self._plugins),
            web.get(f"{API}/input-sources", self._input_sources),
            web.get(f"{API}/input-sources/{{source_id}}/sources", self._input_source_list),
            web.get("/_emulator/state", self._state),
            web.post("/_emulator/stream_stopped", self._fault_stream_stopped),
            web.post("/_emulator/drop", self._fault_drop),
            web.post("/_emulator/stall", self._fault_stall),
            web.post("/_emulator/restart", self._fault_restart),
            web.post("/_emulator/restart_keep_pipeline", self._fault_restart_keep_pipeline),
            web.post("/_emulator/fail_next_load", self._fault_fail_next_load),
            web.post("/_emulator/slow_load", self._fault_slow_load),
            web.post("/_emulator/garbage_sdp", self._fault_garbage_sdp),
            web.post("/_emulator/close_at_once", self._fault_close_at_once),
            web.post("/_emulator/lose_assets", self._fault_lose_assets),
        ]

    async def _root(self, request: web.Request) -> web.Response:
        return web.json_response({"message": "Scope API - Frontend not built"})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "healthy",
                "timestamp": datetime.datetime.now().isoformat(),
                "server_start_time": self._started_at,
                "version": self.config.version,
                "git_commit": "unknown (soundscape emulator)",
            }
        )

    async def _restart(self, request: web.Request) -> web.Response:
        log.info("emulator_restart_requested")
        cfg = self.config
        self._spawn(self._restart_later(cfg.restart_delay, cfg.restart_downtime))
        return web.json_response({"message": "Server restarting..."})

    async def _load(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as exc:
            return _json_error(exc)
        parsed = parse_load(body)
        if isinstance(parsed, str):
            return _detail(400, parsed)
        if isinstance(parsed, list):
            log.warning("emulator_bad_load", detail=parsed[0]["msg"])
            return _detail(422, parsed)
        pipeline_ids, load_params = parsed
        self.pipeline.load(pipeline_ids, load_params)
        return web.json_response({"message": "Pipeline loading initiated successfully"})

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(await self.pipeline.read_status())

    async def _schemas(self, request: web.Request) -> web.Response:
        return web.json_response({"pipelines": catalog.PIPELINES})

    async def _ice_servers(self, request: web.Request) -> web.Response:
        return web.json_response({"iceServers": self.config.ice_servers})

    async def _offer(self, request: web.Request) -> web.Response:
        self.offers += 1
        self._changed()
        try:
            body = await request.json()
        except ValueError as exc:
            return _json_error(exc)
        # FastAPI validates the body (422) before the handler looks at the pipeline (400).
        errors = catalog.check_offer(body)
        if errors:
            log.warning("emulator_bad_offer", detail=errors[0]["msg"], loc=errors[0]["loc"])
            return _detail(422, errors)
        instance = self.pipeline.instance
        if self.pipeline.status != "loaded" or instance is None:
            return _detail(400, "Pipeline not loaded. Please load pipeline first.")
        if self.garbage_sdp:
            log.info("emulator_garbage_answer")
            return web.json_response(
                {"sdp": GARBAGE_SDP, "type": "answer", "sessionId": str(uuid.uuid4())}
            )
        initial = dict(body.get("initialParameters") or {})
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = EmulatedSession(
            pc,
            instance,
            initial,
            fps=self.config.fps,
            default_size=(self.config.width, self.config.height),
            clock=self.clock,
            on_change=self._changed,
            ready=self.pipeline.ready,
        )
        try:
            # Codec preferences only count if the transceiver exists before the offer
            # is applied (aiortc negotiates codecs in setRemoteDescription).
            self._prepare_transceivers(pc, session, body["sdp"])
            await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="offer"))
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as exc:  # any SDP aiortc cannot negotiate is the client's error
            await pc.close()
            log.warning("emulator_bad_sdp", error=str(exc))
            return _detail(400, f"Invalid offer SDP: {exc}")
        self.sessions[session.id] = session
        pc.on("connectionstatechange", lambda: self._on_connection_state(session))
        log.info(
            "emulator_session_opened",
            session=session.id,
            pipeline=instance.name,
            input_mode=session.input_mode,
            receives_video=session.receives_video,
        )
        self._changed()
        local = pc.localDescription
        return web.json_response({"sdp": local.sdp, "type": local.type, "sessionId": session.id})

    def _prepare_transceivers(
        self, pc: RTCPeerConnection, session: EmulatedSession, sdp: str
    ) -> None:
        """Video with VP8 first (H264 also), audio inactive, for the media the offer has.

        aiortc answers ``sendonly`` to a ``recvonly`` offer and ``sendrecv`` to a
        ``sendrecv`` one, as the real server (also aiortc) does.
        """
        kinds = [m.kind for m in SessionDescription.parse(sdp).media]
        if "video" in kinds:
            video = pc.addTransceiver(session.track, direction="sendrecv")
            codecs = RTCRtpSender.getCapabilities("video").codecs
            vp8 = [c for c in codecs if c.mimeType == "video/VP8"]
            video.setCodecPreferences(vp8 + [c for c in codecs if c.mimeType != "video/VP8"])
        if "audio" in kinds:
            pc.addTransceiver("audio", direction="inactive")

    def _on_connection_state(self, session: EmulatedSession) -> None:
        state = session.pc.connectionState
        if state == "connected" and self.close_at_once and session.open:
            log.info("emulator_close_at_once", session=session.id)
            self._forget(session)
            self._spawn(session.close(polite=False))
        if state in ("failed", "closed") and session.open and not session.dead:
            session.mark_closed()
            self._forget(session)
            self._spawn(session.close(polite=False))  # idempotent; ends the session's tasks
        self._changed()

    def _session(self, request: web.Request) -> tuple[str, EmulatedSession | None]:
        session_id = request.match_info["session_id"]
        session = self.sessions.get(session_id)
        return session_id, session if session is not None and session.open else None

    async def _not_allowed(self, request: web.Request) -> web.Response:
        # No renegotiation: a re-offer must go to POST /webrtc/offer (a new session).
        return _detail(405, "Method Not Allowed")

    async def _patch(self, request: web.Request) -> web.Response:
        session_id, session = self._session(request)
        try:
            body = await request.json()
        except ValueError as exc:
            return _json_error(exc)
        candidates = body.get("candidates") if isinstance(body, dict) else None
        if not isinstance(candidates, list):
            loc: list[str | int] = ["body", "candidates"]
            return _detail(422, [catalog.error("missing", loc, "Field required", body)])
        if session is None:
            if not candidates:
                return web.Response(status=204)  # nothing to add: not even looked up
            return _detail(404, f"Session {session_id} not found")
        for item in candidates:
            try:
                text = item["candidate"]
                if not text:
                    continue  # end-of-candidates
                candidate = candidate_from_sdp(text.removeprefix("candidate:"))
                candidate.sdpMid = item.get("sdpMid")
                candidate.sdpMLineIndex = item.get("sdpMLineIndex")
                await session.pc.addIceCandidate(candidate)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                log.warning("emulator_bad_candidate", session=session.id, error=str(exc))
        return web.Response(status=204)

    async def _delete(self, request: web.Request) -> web.Response:
        session_id, session = self._session(request)
        self.deletes = [
            *self.deletes,
            {"session_id": session_id, "at": time.time(), "live": session is not None},
        ][-DELETES_KEPT:]
        log.info("emulator_delete", session=session_id, live=session is not None)
        if session is not None:
            self._forget(session)
            await session.close(polite=True)  # stream_stopped arrives before the 204
        self._changed()
        return web.Response(status=204)

    async def _get_session_parameters(self, request: web.Request) -> web.Response:
        session = self._live_session()
        return web.json_response({"parameters": dict(session.parameters) if session else {}})

    async def _post_session_parameters(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as exc:
            return _json_error(exc)
        if not isinstance(body, dict):
            msg = "Input should be a valid dictionary or object to extract fields from"
            return _detail(422, [catalog.error("model_attributes_type", ["body"], msg, body)])
        errors = catalog.check_parameters(body, ["body"])
        if errors:
            return _detail(422, errors)
        applied = catalog.with_defaults({k: v for k, v in body.items() if v is not None})
        for session in self._open_sessions():
            session.apply_external(dict(applied))
        return web.json_response({"status": "ok", "applied_parameters": applied})

    async def _session_metrics(self, request: web.Request) -> web.Response:
        session = self._live_session()
        sessions = {session.id: session.metrics()} if session is not None else {}
        return web.json_response({"sessions": sessions, "gpu": {}})

    async def _hardware(self, request: web.Request) -> web.Response:
        return web.json_response(catalog.hardware_info())

    async def _models_status(self, request: web.Request) -> web.Response:
        pipeline_id = request.query.get("pipeline_id")
        if pipeline_id is None:
            loc: list[str | int] = ["query", "pipeline_id"]
            return _detail(422, [catalog.error("missing", loc, "Field required", None)])
        if pipeline_id not in catalog.PIPELINES:
            return _detail(404, f"Pipeline {pipeline_id} not found")
        downloaded = pipeline_id not in self.config.missing_models
        return web.json_response({"downloaded": downloaded, "progress": None})

    async def _models_download(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as exc:
            return _json_error(exc)
        pipeline_id = body.get("pipeline_id") if isinstance(body, dict) else None
        if not isinstance(pipeline_id, str):
            loc: list[str | int] = ["body", "pipeline_id"]
            return _detail(422, [catalog.error("missing", loc, "Field required", body)])
        if pipeline_id not in catalog.PIPELINES:
            return _detail(404, f"Pipeline {pipeline_id} not found")
        return web.json_response({"message": f"Model download started for {pipeline_id}"})

    async def _loras(self, request: web.Request) -> web.Response:
        files = await asyncio.to_thread(_lora_files, self.config.loras)
        return web.json_response({"lora_files": files})

    def _assets_path(self) -> Path:
        assert self._assets_dir is not None
        return Path(self._assets_dir.name)

    async def _assets_list(self, request: web.Request) -> web.Response:
        wanted = request.query.get("type")
        assets = await asyncio.to_thread(_list_assets, self._assets_path(), wanted)
        return web.json_response({"assets": assets})

    async def _assets_upload(self, request: web.Request) -> web.Response:
        filename = request.query.get("filename")
        if filename is None:
            loc: list[str | int] = ["query", "filename"]
            return _detail(422, [catalog.error("missing", loc, "Field required", None)])
        name = Path(filename).name
        if _asset_kind(Path(name)) is None:
            return _detail(400, f"Invalid file type. Allowed types: {ALLOWED_TEXT}")
        if name != filename or name in (".", ".."):
            return _detail(400, "Invalid filename")
        data = await request.read()
        path = self._assets_path() / name
        await asyncio.to_thread(path.write_bytes, data)
        log.info("emulator_asset_stored", path=str(path), bytes=len(data))
        return web.json_response(await asyncio.to_thread(_asset_entry, path))

    async def _plugins(self, request: web.Request) -> web.Response:
        return web.json_response({"plugins": [], "total": 0, "failed_plugins": []})

    async def _input_sources(self, request: web.Request) -> web.Response:
        return web.json_response({"input_sources": catalog.input_sources()})

    async def _input_source_list(self, request: web.Request) -> web.Response:
        source_id = request.match_info["source_id"]
        known = {s["source_id"]: s for s in catalog.input_sources()}
        if source_id not in known:
            return _detail(404, f"Input source '{source_id}' not found")
        if not known[source_id]["available"]:
            return _detail(400, f"Input source '{source_id}' is not available on this system.")
        return web.json_response({"source_id": source_id, "sources": []})

    # ------------------------------------------------------------------ fault routes

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state(), dumps=lambda o: json.dumps(o, default=str))

    async def _fault_stream_stopped(self, request: web.Request) -> web.Response:
        return web.json_response({"sessions": await self.fault_stream_stopped()})

    async def _fault_drop(self, request: web.Request) -> web.Response:
        return web.json_response({"sessions": await self.fault_drop()})

    async def _fault_stall(self, request: web.Request) -> web.Response:
        return web.json_response({"sessions": self.fault_stall()})

    async def _fault_fail_next_load(self, request: web.Request) -> web.Response:
        self.fault_fail_next_load()
        return web.json_response({"sessions": 0, "fail_next_load": True})

    async def _fault_slow_load(self, request: web.Request) -> web.Response:
        raw = request.query.get("seconds")
        try:
            seconds = float(raw) if raw not in (None, "") else None
        except ValueError:
            return _detail(422, "seconds must be a number")
        self.fault_slow_load(seconds)
        return web.json_response({"sessions": 0, "slow_load": seconds})

    async def _fault_garbage_sdp(self, request: web.Request) -> web.Response:
        enabled = request.query.get("enabled", "1") != "0"
        self.fault_garbage_sdp(enabled)
        return web.json_response({"sessions": 0, "garbage_sdp": enabled})

    async def _fault_close_at_once(self, request: web.Request) -> web.Response:
        enabled = request.query.get("enabled", "1") != "0"
        self.fault_close_at_once(enabled)
        return web.json_response({"sessions": 0, "close_at_once": enabled})

    async def _fault_lose_assets(self, request: web.Request) -> web.Response:
        return web.json_response({"sessions": 0, "assets": self.fault_lose_assets()})

    async def _fault_restart_keep_pipeline(self, request: web.Request) -> web.Response:
        return web.json_response({"sessions": await self.fault_restart_keep_pipeline()})

    async def _fault_restart(self, request: web.Request) -> web.Response:
        try:
            raw = request.query.get("downtime")
            downtime = float(raw) if raw is not None else self.config.restart_downtime
            raw_delay = request.query.get("delay")
            if raw_delay is not None:
                delay = float(raw_delay)
            else:
                delay = self.config.restart_delay if raw is None else 0.0
        except ValueError:
            return _detail(422, "downtime and delay must be numbers of seconds")
        keep, lose = _flag(request, "keep_pipeline"), _flag(request, "lose_assets")
        count = len(self.sessions)
        if delay == 0 and downtime == 0:
            count = await self._die(0.0, keep_pipeline=keep, lose_assets=lose)
        else:
            self._spawn(self._restart_later(delay, downtime, keep_pipeline=keep, lose_assets=lose))
        return web.json_response({"sessions": count, "downtime": downtime, "delay": delay})


@web.middleware
async def _fastapi_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own 404/405 as the real server gives them (FastAPI, no front end built)."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        # Every unknown GET falls to the front-end route, which is not built.
        if request.method == "GET":
            return _detail(404, "Frontend not built")
        return _detail(405, "Method Not Allowed")
    except web.HTTPMethodNotAllowed:
        return _detail(405, "Method Not Allowed")


def _lora_files(entries: list[str | Path]) -> list[dict[str, Any]]:
    files = []
    for entry in entries:
        path = Path(entry)
        size = path.stat().st_size if path.is_file() else 0
        files.append(
            {"name": path.stem, "path": str(path), "size_mb": round(size / 1e6, 2), "folder": None}
        )
    return files


def _asset_kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return next((kind for kind, suffixes in SUFFIXES.items() if suffix in suffixes), None)


def _asset_entry(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {
        "name": path.stem,
        "path": str(path),
        "size_mb": round(stat.st_size / (1024 * 1024), 2),
        "folder": None,
        "type": _asset_kind(path),
        "created_at": stat.st_mtime,
    }


def _list_assets(folder: Path, wanted: str | None) -> list[dict[str, Any]]:
    assets = []
    for path in sorted(folder.iterdir()):
        kind = _asset_kind(path)
        if kind is None or (wanted and wanted != kind):
            continue
        assets.append(_asset_entry(path))
    return assets


SHUTDOWN_DELAY = 0.15  # SIGTERM → stream_stopped ~150 ms later (uvicorn's graceful shutdown)


async def serve(
    config: EmulatorConfig,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    on_start: Callable[[Emulator], None] | None = None,
) -> None:
    """Run an emulator until ``stop`` is set (``soundscape emulate``).

    ``on_start`` gets the running emulator (its ``url`` holds the bound port). On stop
    (SIGTERM), every session gets ``stream_stopped`` ~150 ms later, then closes.
    """
    emulator = Emulator(config)
    await emulator.start(host, port)
    try:
        if on_start is not None:
            on_start(emulator)
        await stop.wait()
        await asyncio.sleep(SHUTDOWN_DELAY)
    finally:
        await emulator.stop()
