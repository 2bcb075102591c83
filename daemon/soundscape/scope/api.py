"""Async REST client for a Daydream Scope server (httpx).

Covers every endpoint a client of Scope uses (``../shared/scope-protocol.md``
and the seed notes). Results are typed; failures raise one class per kind
(:mod:`soundscape.errors`): unreachable, timeout, HTTP error with the server's
``detail``, malformed answer. Both the v0.1.x and v0.2.x answer shapes are
accepted.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from soundscape.errors import (
    ScopeHTTPError,
    ScopeMalformed,
    ScopeTimeout,
    ScopeUnreachable,
)

log = structlog.get_logger(__name__)

PIPELINE_STATES = ("not_loaded", "loading", "loaded", "error")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Health:
    healthy: bool
    version: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def server_start_time(self) -> float | None:
        """Changes when the server process restarts (v0.2.x; None on v0.1.x)."""
        value = self.raw.get("server_start_time")
        return float(value) if isinstance(value, int | float) else None

    @property
    def major_minor(self) -> tuple[int, int] | None:
        """``(0, 2)`` for "0.2.4"; None when the server does not say (v0.1.x)."""
        parts = (self.version or "").split(".")
        try:
            return int(parts[0]), int(parts[1])
        except (IndexError, ValueError):
            return None


@dataclass(frozen=True)
class PipelineStatus:
    status: str  # not_loaded | loading | loaded | error (others passed through as is)
    pipeline_ids: tuple[str, ...] = ()
    load_params: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    loading_stage: str | None = None
    progress: float | None = None
    loaded_lora_adapters: tuple[Any, ...] | None = None  # null on the real server: unknown
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def loaded(self) -> bool:
        return self.status == "loaded"


@dataclass(frozen=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class Answer:
    sdp: str
    type: str
    session_id: str


@dataclass(frozen=True)
class LoraFile:
    name: str
    path: str
    size_mb: float | None = None
    folder: str | None = None


@dataclass(frozen=True)
class Asset:
    name: str
    path: str
    type: str | None = None
    size_mb: float | None = None
    folder: str | None = None
    created_at: float | None = None


@dataclass(frozen=True)
class ModelsStatus:
    downloaded: bool
    progress: Any = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class PipelineSchema:
    id: str
    name: str
    supported_modes: tuple[str, ...] = ()
    supports_vace: bool | None = None
    supports_lora: bool | None = None
    usage: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


# --------------------------------------------------------------------------- helpers


def _expect(data: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(data, kind):
        raise ScopeMalformed(f"{what}: unexpected answer {str(data)[:200]!r}")
    return data


def _detail(response: httpx.Response) -> str:
    """The server's own explanation: FastAPI's ``detail`` (string or list), else the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, Mapping) and "detail" in body:
        detail = body["detail"]
        if isinstance(detail, list):
            parts = []
            for item in detail:
                if isinstance(item, Mapping):
                    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    parts.append(f"{loc}: {item.get('msg', item)}" if loc else str(item.get("msg")))
                else:
                    parts.append(str(item))
            return "; ".join(parts)
        return str(detail)
    return str(body)[:500]


# --------------------------------------------------------------------------- client


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """httpx's default TLS context, built once per process.

    Loading the CA bundle takes 20-200 ms, too long for the event loop; httpx
    would do it for every client. The daemon builds it off the loop at start
    (:mod:`soundscape.warmup`).
    """
    return httpx.create_ssl_context()


class ScopeClient:
    """One Scope server. Use as ``async with ScopeClient(url) as client``.

    ``token`` (or the environment variable named by ``token_env``) is sent in
    ``auth_header`` for proxies (RunPod, an app proxy). It is never logged.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        token_env: str | None = "SCOPE_TOKEN",
        auth_header: str = "Authorization",
        auth_scheme: str = "Bearer",
        connect_timeout: float = 3.0,
        request_timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if token is None and token_env:
            token = os.environ.get(token_env) or None
        headers = {"Accept": "application/json"}
        if token:
            headers[auth_header] = f"{auth_scheme} {token}".strip() if auth_scheme else token
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
            transport=transport,
            verify=default_tls_context(),
        )

    async def __aenter__(self) -> ScopeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ----- transport

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            response = await self._http.request(
                method, path, json=json, params=params, content=content, headers=headers, **kwargs
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            raise ScopeUnreachable(
                f"{method} {self.base_url}{path}: {err or 'cannot connect'}"
            ) from None
        except httpx.TimeoutException:
            raise ScopeTimeout(f"{method} {self.base_url}{path}: no answer in time") from None
        except httpx.TransportError as err:  # connection reset, remote closed, ...
            raise ScopeUnreachable(f"{method} {self.base_url}{path}: {err!r}") from None
        if response.status_code >= 400:
            raise ScopeHTTPError(response.status_code, _detail(response), method, path)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ScopeMalformed(
                f"{method} {path}: answer is not JSON: {response.text[:200]!r}"
            ) from None

    # ----- health and information

    async def health(self, *, timeout: float | None = None) -> Health:
        data = _expect(await self._json("GET", "/health", timeout=timeout), Mapping, "health")
        status = data.get("status")
        if status not in ("healthy", "ok", "unhealthy", "error"):
            raise ScopeMalformed(f"health: unknown status {status!r}")
        return Health(status in ("healthy", "ok"), data.get("version"), data)

    async def hardware_info(self) -> dict[str, Any]:
        return dict(_expect(await self._json("GET", "/api/v1/hardware/info"), Mapping, "hardware"))

    async def pipeline_status(self, *, timeout: float | None = None) -> PipelineStatus:
        data = _expect(
            await self._json("GET", "/api/v1/pipeline/status", timeout=timeout),
            Mapping,
            "pipeline status",
        )
        status = data.get("status")
        if not isinstance(status, str):
            raise ScopeMalformed(f"pipeline status: no status in {str(data)[:200]!r}")
        ids = data.get("pipeline_ids")
        if not isinstance(ids, list):
            single = data.get("pipeline_id")
            ids = [single] if isinstance(single, str) else []
        progress = data.get("progress", data.get("loading_progress"))
        load_params = data.get("load_params")
        adapters = data.get("loaded_lora_adapters")
        return PipelineStatus(
            status=status,
            pipeline_ids=tuple(str(i) for i in ids if i is not None),
            load_params=dict(load_params) if isinstance(load_params, Mapping) else {},
            error=str(data["error"]) if data.get("error") else None,
            loading_stage=data.get("loading_stage"),
            progress=progress if isinstance(progress, int | float) else None,
            loaded_lora_adapters=tuple(adapters) if isinstance(adapters, list) else None,
            raw=data,
        )

    async def load_pipeline(
        self, pipeline_ids: list[str], load_params: Mapping[str, Any] | None = None
    ) -> str:
        body = {"pipeline_ids": list(pipeline_ids), "load_params": dict(load_params or {})}
        data = await self._json("POST", "/api/v1/pipeline/load", json=body)
        if isinstance(data, Mapping):
            return str(data.get("message", ""))
        return ""

    async def pipeline_schemas(self) -> dict[str, PipelineSchema]:
        data = _expect(await self._json("GET", "/api/v1/pipelines/schemas"), Mapping, "schemas")
        pipelines = data.get("pipelines", data)
        out: dict[str, PipelineSchema] = {}
        items = (
            pipelines.items()
            if isinstance(pipelines, Mapping)
            else ((p.get("id"), p) for p in pipelines if isinstance(p, Mapping))
        )
        for key, info in items:
            if not isinstance(info, Mapping):
                continue
            pid = str(info.get("id", key))
            out[pid] = PipelineSchema(
                id=pid,
                name=str(info.get("name", pid)),
                supported_modes=tuple(info.get("supported_modes") or ()),
                supports_vace=info.get("supports_vace"),
                supports_lora=info.get("supports_lora"),
                usage=tuple(info.get("usage") or ()),
                raw=info,
            )
        return out

    async def models_status(self, pipeline_id: str) -> ModelsStatus:
        data = _expect(
            await self._json("GET", "/api/v1/models/status", params={"pipeline_id": pipeline_id}),
            Mapping,
            "models status",
        )
        return ModelsStatus(bool(data.get("downloaded")), data.get("progress"), data)

    async def download_models(self, pipeline_id: str) -> str:
        data = await self._json(
            "POST", "/api/v1/models/download", json={"pipeline_id": pipeline_id}
        )
        return str(data.get("message", "")) if isinstance(data, Mapping) else ""

    async def lora_list(self, version: tuple[int, int] | None = None) -> list[LoraFile]:
        """LoRA files: ``/api/v1/loras`` on v0.2.x, ``/api/v1/lora/list`` on v0.1.x.

        ``version`` is :attr:`Health.major_minor` (None: try the v0.2 path first);
        a 404 on the first path tries the other.
        """
        paths = ["/api/v1/loras", "/api/v1/lora/list"]
        if version is not None and version < (0, 2):
            paths.reverse()
        try:
            data = await self._json("GET", paths[0])
        except ScopeHTTPError as err:
            if err.status != 404:
                raise
            data = await self._json("GET", paths[1])
        files = data.get("lora_files", []) if isinstance(data, Mapping) else data
        _expect(files, list, "lora list")
        return [
            LoraFile(str(f["name"]), str(f["path"]), f.get("size_mb"), f.get("folder"))
            for f in files
            if isinstance(f, Mapping) and "path" in f and "name" in f
        ]

    async def assets(self, type: str | None = None) -> list[Asset]:
        params = {"type": type} if type else None
        data = await self._json("GET", "/api/v1/assets", params=params)
        items = data.get("assets", []) if isinstance(data, Mapping) else data
        _expect(items, list, "assets")
        return [
            Asset(
                str(a["name"]),
                str(a["path"]),
                a.get("type"),
                a.get("size_mb"),
                a.get("folder"),
                a.get("created_at"),
            )
            for a in items
            if isinstance(a, Mapping) and "path" in a and "name" in a
        ]

    async def upload_asset(self, filename: str, data: bytes) -> str:
        """Upload raw bytes; returns the server-side path (for ``vace_ref_images``)."""
        answer = _expect(
            await self._json(
                "POST",
                "/api/v1/assets",
                params={"filename": filename},
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            ),
            Mapping,
            "asset upload",
        )
        path = answer.get("path")
        if not isinstance(path, str):
            raise ScopeMalformed(f"asset upload: no path in {str(answer)[:200]!r}")
        return path

    async def plugins(self) -> list[dict[str, Any]]:
        try:
            data = await self._json("GET", "/api/v1/plugins")
        except ScopeHTTPError as err:
            if err.status != 404:
                raise
            data = await self._json("GET", "/plugins")
        items = data.get("plugins", []) if isinstance(data, Mapping) else data
        return [dict(p) for p in _expect(items, list, "plugins") if isinstance(p, Mapping)]

    # ----- WebRTC signalling

    async def ice_servers(self) -> list[IceServer]:
        data = _expect(
            await self._json("GET", "/api/v1/webrtc/ice-servers"), Mapping, "ice servers"
        )
        servers = _expect(data.get("iceServers", []), list, "ice servers")
        out = []
        for server in servers:
            if not isinstance(server, Mapping) or "urls" not in server:
                continue
            urls = server["urls"]
            out.append(
                IceServer(
                    (urls,) if isinstance(urls, str) else tuple(urls),
                    server.get("username"),
                    server.get("credential"),
                )
            )
        return out

    async def offer(self, sdp: str, initial_parameters: Mapping[str, Any]) -> Answer:
        """Send the SDP offer; 400 (pipeline not loaded) and 422 (bad parameters) raise."""
        body = {"sdp": sdp, "type": "offer", "initialParameters": dict(initial_parameters)}
        data = _expect(
            await self._json("POST", "/api/v1/webrtc/offer", json=body), Mapping, "offer"
        )
        sdp_answer, kind, sid = data.get("sdp"), data.get("type"), data.get("sessionId")
        if not (isinstance(sdp_answer, str) and kind == "answer" and isinstance(sid, str)):
            raise ScopeMalformed(f"offer: not an answer: {str(data)[:200]!r}")
        return Answer(sdp_answer, kind, sid)

    async def session_metrics(self, *, timeout: float | None = None) -> dict[str, dict[str, Any]]:
        """The server's live sessions by id (``GET /api/v1/session/metrics``, v0.2.x).

        The one way to ask whether the server still knows a session: PATCH with an
        empty candidate list answers 204 even for a session it never had.
        """
        data = _expect(
            await self._json("GET", "/api/v1/session/metrics", timeout=timeout),
            Mapping,
            "session metrics",
        )
        sessions = _expect(data.get("sessions", {}), Mapping, "session metrics")
        return {
            str(sid): dict(info) if isinstance(info, Mapping) else {}
            for sid, info in sessions.items()
        }

    async def add_ice_candidates(
        self, session_id: str, candidates: list[Mapping[str, Any]], *, timeout: float | None = None
    ) -> None:
        """Trickle ICE. Not a probe: an empty list answers 204 even for an unknown session."""
        await self._request(
            "PATCH",
            f"/api/v1/webrtc/offer/{session_id}",
            json={"candidates": list(candidates)},
            timeout=timeout,
        )

    async def delete_session(self, session_id: str, *, timeout: float | None = None) -> None:
        await self._request("DELETE", f"/api/v1/webrtc/offer/{session_id}", timeout=timeout)

    async def update_session_parameters(self, parameters: Mapping[str, Any]) -> None:
        """REST path for parameters (the server relays them as ``parameters_updated``)."""
        await self._request("POST", "/api/v1/session/parameters", json=dict(parameters))
