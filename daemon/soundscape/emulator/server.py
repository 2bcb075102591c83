"""A Scope-compatible server (HTTP via aiohttp, WebRTC via aiortc) with fault injection.

It stands in for the real GPU server in tests, demos and benchmarks, and behaves
as ``/work/shared/scope-protocol.md`` says the real one does, including the ways
sessions die. ``/_emulator/*`` routes (and the ``fault_*`` methods) inject faults.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
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
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _detail(status: int, detail: Any) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


def _json_error(exc: ValueError) -> web.Response:
    return _detail(422, [{"type": "json_invalid", "loc": ["body"], "msg": f"JSON: {exc}"}])


class Emulator:
    """The emulated server. ``await start()``, use ``url``, ``await stop()``."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.pipeline = PipelineManager(self.config.load_time, self._changed)
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
        app = web.Application(client_max_size=64 * 1024 * 1024)
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
                "error": p.error,
                "loading_stage": p.loading_stage,
            },
            "sessions": [s.state() for s in self._closed + current],
            "tempo_bpm": self.config.tempo_bpm,
            "listening": self._runner is not None,
            "restarts": self._restarts,
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

    def _forget(self, session: EmulatedSession) -> None:
        if self.sessions.pop(session.id, None) is not None:
            self._closed = [*self._closed, session][-CLOSED_KEPT:]
        self._changed()

    # ------------------------------------------------------------------ faults

    async def fault_stream_stopped(self) -> int:
        """Close every open session politely, like DELETE. Returns how many."""
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
        """Make the next pipeline load end in status ``error``."""
        log.info("emulator_fault", fault="fail_next_load")
        self.pipeline.fail_next = True

    async def fault_restart(self, downtime: float = 0.0) -> int:
        """Die and come back: pipeline and sessions forgotten without a word.

        With ``downtime`` > 0 the HTTP listener is closed (connections refused) and
        reopened on the same port after that many seconds; this returns once the
        listener is closed (``state()["listening"]`` says when it is back).
        """
        count = await self._die(downtime)
        if downtime > 0 and self._running:
            await self._unlisten()
            self._changed()
            self._spawn(self._come_back(downtime))
        return count

    async def _die(self, downtime: float) -> int:
        sessions = list(self.sessions.values())
        self.sessions.clear()
        self._graveyard.extend(sessions)
        self._restarts += 1
        self._started_at = time.time()
        self.pipeline.reset()
        log.info("emulator_fault", fault="restart", sessions=len(sessions), downtime=downtime)
        await asyncio.gather(*(s.kill() for s in sessions))
        self._changed()
        return len(sessions)

    async def _down_then_back(self, downtime: float) -> None:
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
        return [
            web.get("/health", self._health),
            web.post(f"{API}/pipeline/load", self._load),
            web.get(f"{API}/pipeline/status", self._status),
            web.get(f"{API}/pipelines/schemas", self._schemas),
            web.get(f"{API}/webrtc/ice-servers", self._ice_servers),
            web.post(f"{API}/webrtc/offer", self._offer),
            web.patch(f"{API}/webrtc/offer/{{session_id}}", self._patch),
            web.delete(f"{API}/webrtc/offer/{{session_id}}", self._delete),
            web.post(f"{API}/session/parameters", self._session_parameters),
            web.get(f"{API}/hardware/info", self._hardware),
            web.get(f"{API}/models/status", self._models_status),
            web.post(f"{API}/models/download", self._models_download),
            web.get(f"{API}/lora/list", self._lora_list),
            web.get(f"{API}/assets", self._assets_list),
            web.post(f"{API}/assets", self._assets_upload),
            web.get(f"{API}/plugins", self._plugins),
            web.get("/_emulator/state", self._state),
            web.post("/_emulator/stream_stopped", self._fault_stream_stopped),
            web.post("/_emulator/drop", self._fault_drop),
            web.post("/_emulator/stall", self._fault_stall),
            web.post("/_emulator/restart", self._fault_restart),
            web.post("/_emulator/fail_next_load", self._fault_fail_next_load),
        ]

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "healthy",
                "timestamp": time.time(),
                "server_start_time": self._started_at,
                "version": self.config.version,
                "git_commit": "emulator",
            }
        )

    async def _load(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as exc:
            return _json_error(exc)
        parsed = parse_load(body)
        if isinstance(parsed, list):
            log.warning("emulator_bad_load", detail=parsed[0]["msg"])
            return _detail(422, parsed)
        pipeline_ids, load_params = parsed
        self.pipeline.load(pipeline_ids, load_params)
        return web.json_response({"message": "Pipeline loading initiated successfully"})

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.pipeline.status_json())

    async def _schemas(self, request: web.Request) -> web.Response:
        return web.json_response({"pipelines": catalog.PIPELINES})

    async def _ice_servers(self, request: web.Request) -> web.Response:
        # No public STUN: there is no internet where the emulator runs.
        return web.json_response({"iceServers": []})

    async def _offer(self, request: web.Request) -> web.Response:
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
        if not session.pipeline_ok:
            log.warning(
                "emulator_no_pipeline_ids",
                session=session.id,
                note="No pipeline IDs provided (or not loaded): no frames will come",
            )
        log.info(
            "emulator_session_opened",
            session=session.id,
            pipeline=instance.name,
            input_mode=session.input_mode,
        )
        self._changed()
        local = pc.localDescription
        return web.json_response({"sdp": local.sdp, "type": local.type, "sessionId": session.id})

    def _prepare_transceivers(
        self, pc: RTCPeerConnection, session: EmulatedSession, sdp: str
    ) -> None:
        """VP8 video (sendrecv) and inactive audio, for the media the offer has."""
        kinds = [m.kind for m in SessionDescription.parse(sdp).media]
        if "video" in kinds:
            video = pc.addTransceiver(session.track, direction="sendrecv")
            capabilities = RTCRtpSender.getCapabilities("video").codecs
            video.setCodecPreferences([c for c in capabilities if c.mimeType == "video/VP8"])
        if "audio" in kinds:
            pc.addTransceiver("audio", direction="inactive")

    def _on_connection_state(self, session: EmulatedSession) -> None:
        state = session.pc.connectionState
        if state in ("failed", "closed") and session.open and not session.dead:
            session.mark_closed()
            self._forget(session)
            self._spawn(session.close(polite=False))  # idempotent; ends the session's tasks
        self._changed()

    def _session_or_404(self, request: web.Request) -> EmulatedSession | None:
        session = self.sessions.get(request.match_info["session_id"])
        return session if session is not None and session.open else None

    async def _patch(self, request: web.Request) -> web.Response:
        session = self._session_or_404(request)
        if session is None:
            return _detail(404, "Session not found")
        try:
            body = await request.json()
        except ValueError as exc:
            return _json_error(exc)
        candidates = body.get("candidates") if isinstance(body, dict) else None
        if not isinstance(candidates, list):
            loc = ["body", "candidates"]
            return _detail(422, [{"type": "missing", "loc": loc, "msg": "Field required"}])
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
        session = self._session_or_404(request)
        if session is None:
            return _detail(404, "Session not found")
        self._forget(session)
        await session.close(polite=True)
        return web.Response(status=204)

    async def _session_parameters(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as exc:
            return _json_error(exc)
        if not isinstance(body, dict):
            loc = ["body"]
            return _detail(422, [{"type": "dict_type", "loc": loc, "msg": "Expected an object"}])
        sessions = self._open_sessions()
        for session in sessions:
            session.apply_external(dict(body))
        return web.json_response({"message": "Parameters updated", "sessions": len(sessions)})

    async def _hardware(self, request: web.Request) -> web.Response:
        return web.json_response(catalog.hardware_info())

    async def _models_status(self, request: web.Request) -> web.Response:
        pipeline_id = request.query.get("pipeline_id")
        if not pipeline_id:
            loc = ["query", "pipeline_id"]
            return _detail(422, [{"type": "missing", "loc": loc, "msg": "Field required"}])
        if pipeline_id not in catalog.PIPELINES:
            return _detail(404, f"Pipeline {pipeline_id} not found")
        return web.json_response({"downloaded": True, "progress": None})

    async def _models_download(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as exc:
            return _json_error(exc)
        pipeline_id = body.get("pipeline_id") if isinstance(body, dict) else None
        if not isinstance(pipeline_id, str):
            loc = ["body", "pipeline_id"]
            return _detail(422, [{"type": "missing", "loc": loc, "msg": "Field required"}])
        if pipeline_id not in catalog.PIPELINES:
            return _detail(404, f"Pipeline {pipeline_id} not found")
        return web.json_response({"message": f"Model download started for {pipeline_id}"})

    async def _lora_list(self, request: web.Request) -> web.Response:
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
        filename = request.query.get("filename", "")
        name = Path(filename).name
        if not filename:
            loc = ["query", "filename"]
            return _detail(422, [{"type": "missing", "loc": loc, "msg": "Field required"}])
        if name != filename or name in (".", ".."):
            return _detail(400, "Invalid filename")
        if _asset_kind(Path(name)) is None:
            return _detail(400, f"Unsupported file type: {Path(name).suffix or 'none'}")
        data = await request.read()
        path = self._assets_path() / name
        await asyncio.to_thread(path.write_bytes, data)
        log.info("emulator_asset_stored", path=str(path), bytes=len(data))
        return web.json_response({"path": str(path)})

    async def _plugins(self, request: web.Request) -> web.Response:
        return web.json_response({"plugins": []})

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

    async def _fault_restart(self, request: web.Request) -> web.Response:
        try:
            downtime = float(request.query.get("downtime", "0"))
        except ValueError:
            return _detail(422, "downtime must be a number of seconds")
        count = await self._die(downtime)
        if downtime > 0:
            # Close the listener after answering: closing it from inside its own
            # request would cut this response off.
            self._spawn(self._down_then_back(downtime))
        return web.json_response({"sessions": count, "downtime": downtime})


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
    if suffix in IMAGE_SUFFIXES:
        return "image"
    return "video" if suffix in VIDEO_SUFFIXES else None


def _list_assets(folder: Path, wanted: str | None) -> list[dict[str, Any]]:
    assets = []
    for path in sorted(folder.iterdir()):
        kind = _asset_kind(path)
        if kind is None or (wanted and wanted != kind):
            continue
        stat = path.stat()
        assets.append(
            {
                "name": path.stem,
                "path": str(path),
                "size_mb": round(stat.st_size / 1e6, 3),
                "folder": None,
                "type": kind,
                "created_at": int(stat.st_mtime),
            }
        )
    return assets


async def serve(
    config: EmulatorConfig,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    on_start: Callable[[Emulator], None] | None = None,
) -> None:
    """Run an emulator until ``stop`` is set (``soundscape emulate``).

    ``on_start`` gets the running emulator (its ``url`` holds the bound port).
    """
    emulator = Emulator(config)
    await emulator.start(host, port)
    try:
        if on_start is not None:
            on_start(emulator)
        await stop.wait()
    finally:
        await emulator.stop()
