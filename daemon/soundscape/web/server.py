"""The control endpoint and operator's page: an aiohttp server inside the daemon.

Routes (JSON unless noted):

- ``GET /api/status``: everything :func:`soundscape.web.status.collect` knows.
- ``GET /api/events``: the same, pushed as Server-Sent Events (on every session
  change of any server, every failover switch, and at least every ``PUSH_INTERVAL``).
- ``GET /api/preview.jpg``: the latest output frame, small (204 before the first).
- ``GET /api/commands``; ``POST /api/command/{name}`` with ``{"args": [...]}``:
  the CommandBus, the same path OSC and MIDI use (``"screen": name`` for a further
  screen's own bus, as OSC's ``/screen/<name>/...``).
- ``GET /``: the operator's page (``soundscape/web/static``).

Loopback-only by default; bound to any other address it requires the token
(``Authorization: Bearer …`` or ``?token=…``), and refuses to start without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from soundscape.errors import BackendUnavailable, ParamError
from soundscape.tasks import cancel_and_wait
from soundscape.web.config import HttpConfig
from soundscape.web.status import StatusBook, collect

if TYPE_CHECKING:
    from soundscape.app import Daemon
    from soundscape.web.preview import Preview

log = structlog.get_logger(__name__)

PUSH_INTERVAL = 0.5  # s between pushes to the page when nothing changed
PAGE_QUEUE = 64  # state changes waiting for one page
# A change as it was, laid over the next snapshot (a newer change may already be there).
Patch = Callable[[dict[str, Any]], None]
STATIC = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}


class ControlServer:
    def __init__(self, daemon: Daemon, config: HttpConfig, preview: Preview | None = None) -> None:
        self.daemon = daemon
        self.config = config
        self.preview = preview
        self.book = StatusBook()
        self.url: str | None = None
        self._token = config.token()
        self._runner: web.AppRunner | None = None
        # One queue per open page: every session state change reaches every page, even one
        # that lasts a few milliseconds (a quick reconnect), not only the latest state.
        self._pages: set[asyncio.Queue[Patch | None]] = set()
        self._sampler: asyncio.Task[None] | None = None
        # Every server of every screen (standbys, further screens) and every failover switch:
        # the page shows which server the outputs show as soon as it changes.
        for screen in daemon.screens.values():
            for server, supervisor in screen.supervisors.items():
                if supervisor is not daemon.supervisor:
                    supervisor.on_status(functools.partial(self._on_server, screen.name, server))
            if screen.failover is not None:
                screen.failover.on_change(self._on_failover)
        daemon.supervisor.on_status(self._on_status)
        self._on_status(daemon.supervisor.status.as_dict())

    def _on_status(self, status: dict[str, Any]) -> None:
        self.book.on_status(status)
        change = {k: status[k] for k in ("state", "reason", "attempt") if k in status}
        main = self.daemon.main_screen.name  # also its primary server's name

        def patch(data: dict[str, Any]) -> None:
            data["session"].update(change)
            data["screens"][main]["servers"][main].update(change)

        self._notify(patch)

    def _on_server(self, screen: str, server: str, status: dict[str, Any]) -> None:
        change = {k: status[k] for k in ("state", "reason", "attempt") if k in status}
        self._notify(lambda data: data["screens"][screen]["servers"][server].update(change))

    def _on_failover(self, status: dict[str, Any]) -> None:
        def patch(data: dict[str, Any]) -> None:
            screen = data["screens"][status["screen"]]
            screen["failover"] = status
            screen["shown"] = status["active"]

        self._notify(patch)

    def _notify(self, patch: Patch | None) -> None:
        for queue in self._pages:
            if queue.full():  # a page that does not read: it gets the newest state later
                continue
            queue.put_nowait(patch)

    async def start(self) -> None:
        host, port = self.config.address
        if not self.config.loopback and not self._token:
            raise BackendUnavailable(
                f"the control endpoint on {host}:{port} is reachable from the network and "
                f"needs a token: set ${self.config.token_env}"
            )
        app = web.Application(middlewares=[self._auth])
        app.add_routes(
            [
                web.get("/", self._page),
                web.get("/static/{name}", self._static),
                web.get("/api/status", self._status),
                web.get("/api/events", self._events),
                web.get("/api/preview.jpg", self._preview),
                web.get("/api/commands", self._commands),
                web.post("/api/command/{name}", self._command),
            ]
        )
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as err:
            await runner.cleanup()
            raise BackendUnavailable(
                f"the control endpoint cannot listen on {host}:{port}: {err.strerror or err}"
            ) from None
        self._runner = runner
        bound = runner.addresses[0] if runner.addresses else (host, port)
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
        self.url = f"http://{shown}:{bound[1]}"
        self._sampler = asyncio.create_task(self._sample(), name="http-fps-sampler")
        log.info("control_listening", url=self.url, page=f"{self.url}/", token=bool(self._token))

    async def stop(self) -> None:
        await cancel_and_wait(self._sampler)
        self._sampler = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.book.sample_frames(self.daemon.supervisor.status.frames, loop.time())
            await asyncio.sleep(1.0)

    def snapshot(self) -> dict[str, Any]:
        data = collect(self.daemon, self.book)
        if self.preview is not None:
            data["preview"] = {"fps": self.config.preview_fps}
        return data

    # ----- handlers

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._token:
            given = request.query.get("token", "")
            header = request.headers.get("Authorization", "")
            if header.startswith("Bearer "):
                given = header[len("Bearer ") :]
            if not hmac.compare_digest(given.encode(), self._token.encode()):
                return web.json_response({"error": "token required"}, status=401)
        return await handler(request)

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return self._file(name)

    def _file(self, name: str) -> web.Response:
        text = resources.files("soundscape.web").joinpath("static", name).read_text("utf-8")
        return web.Response(
            text=text, content_type=STATIC[name], headers={"Cache-Control": "no-cache"}
        )

    async def _status(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.snapshot())

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        queue: asyncio.Queue[Patch | None] = asyncio.Queue(maxsize=PAGE_QUEUE)
        self._pages.add(queue)
        try:
            patch: Patch | None = None
            while True:
                data = self.snapshot()
                if patch is not None:  # this change as it was, though a newer one may follow
                    with contextlib.suppress(KeyError):  # a push never fails on one figure
                        patch(data)
                await response.write(f"data: {json.dumps(data)}\n\n".encode())
                patch = None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PUSH_INTERVAL):
                        patch = await queue.get()
        except (ConnectionResetError, ConnectionError):
            pass  # the page went away
        finally:
            self._pages.discard(queue)
        return response

    async def _preview(self, request: web.Request) -> web.StreamResponse:
        jpeg = await self.preview.jpeg() if self.preview is not None else None
        if jpeg is None:
            return web.Response(status=204)
        return web.Response(body=jpeg, content_type="image/jpeg")

    async def _commands(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.daemon.commands.names())

    async def _command(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        try:
            body = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        args = body.get("args", []) if isinstance(body, dict) else []
        if not isinstance(args, list):
            return web.json_response({"error": "args must be a list"}, status=400)
        # A further screen's own commands (its scene, pause, failover); the rest fall back
        # to the shared bus, as over OSC /screen/<name>/...
        commands = self.daemon.commands
        screen_name = body.get("screen") if isinstance(body, dict) else None
        if screen_name is not None:
            screen = self.daemon.screens.get(str(screen_name))
            if screen is None:
                known = ", ".join(self.daemon.screens)
                error = f"no screen {screen_name!r} ({known})"
                return web.json_response({"error": error}, status=400)
            if screen is not self.daemon.main_screen:
                commands = screen.commands
        try:
            result = await commands.call(name, *args, source="http")
        except (ParamError, TypeError, ValueError) as err:
            log.warning("http_command_refused", command=name, error=str(err))
            return web.json_response({"error": str(err)}, status=400)
        self._notify(None)  # show the command's effect now
        try:
            return web.json_response({"ok": True, "result": result})
        except TypeError:  # a result that is not JSON: the command still ran
            return web.json_response({"ok": True, "result": repr(result)})


async def start_control(daemon: Daemon, preview: Preview | None = None) -> ControlServer | None:
    """Start ``[http]`` for the daemon, or say once why not.

    A default address that is taken (another daemon runs) is a warning; an
    address the performer chose (``--http``, ``[http] listen``) raises
    :class:`StartupError`, so the daemon exits non-zero and systemd shows it.
    """
    from soundscape.errors import StartupError

    config = daemon.config.http
    if not config.enabled:
        return None
    server = ControlServer(daemon, config, preview)
    try:
        await server.start()
    except BackendUnavailable as err:
        if config.explicit:
            raise StartupError(str(err)) from None
        log.warning("control_unavailable", reason=str(err), hint="choose another with --http")
        return None
    return server
