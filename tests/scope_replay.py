"""The real Scope v0.2.4 server's recorded answers, served as they are (test helper).

``../shared/scope-v0.2.4/`` (beside the repository; ``SCOPE_RECORDINGS`` points
elsewhere; found by ``tests/contract/recordings.py``) holds one JSON file per
request: ``{"request": {"method", "path", "body"}, "status", "headers", "body"}``.
:class:`Replay` is a tiny aiohttp server that answers each method + path with
the recording chosen for it, the body and status untouched. The one addition:
the two recorded answers keep their SDP in a text file beside them
(``SDP_BESIDE``), served put back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from contract import recordings  # the one loader of the recordings (tests/contract/)

# Answers whose SDP the capture keeps in a text file beside them.
SDP_BESIDE = {
    "offer-answer.json": "offer-answer.sdp.txt",
    "recvonly-no-frames.json": "recvonly-answer.sdp.txt",
}


def require_recordings() -> Path:
    try:
        return recordings.recordings_dir()
    except FileNotFoundError as err:
        pytest.skip(str(err))


def load(name: str) -> dict[str, Any]:
    require_recordings()
    data = recordings.load(name)
    sdp_file = SDP_BESIDE.get(name)
    if sdp_file is not None and "sdp" not in data["body"]:
        data["body"] = {**data["body"], "sdp": recordings.sdp(sdp_file)}
    return data


def request_recordings() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every recording of one request (the files with a ``request``), by file name."""
    folder = require_recordings()
    for file in sorted(folder.glob("*.json")):
        data = json.loads(file.read_text())
        if isinstance(data.get("request"), dict) and "status" in data:
            yield file.name, data


def route_of(recording: dict[str, Any]) -> tuple[str, str]:
    request = recording["request"]
    return request["method"], urlsplit(request["path"]).path


class Replay:
    """``async with Replay() as replay``: serve recordings; ``replay.url`` for the client."""

    def __init__(self) -> None:
        self._answers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._sticky: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.on_request: Callable[[str, str], None] | None = None

    def serve(self, *names: str) -> Replay:
        """Answer each file's method + path with it (the last one stays)."""
        for name in names:
            recording = load(name)
            self._sticky[route_of(recording)] = recording
        return self

    def sequence(self, names: Sequence[str]) -> Replay:
        """Answer the same route with these files in turn, then the last one forever."""
        recordings = [load(n) for n in names]
        route = route_of(recordings[0])
        self._answers[route] = recordings[:-1]
        self._sticky[route] = recordings[-1]
        return self

    async def _handle(self, request: web.Request) -> web.Response:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        self.requests.append((request.method, request.path_qs, body))
        if self.on_request is not None:
            self.on_request(request.method, request.path)
        route = (request.method, request.path)
        queue = self._answers.get(route)
        recording = queue.pop(0) if queue else self._sticky.get(route)
        if recording is None:
            return web.json_response({"detail": "Not Found"}, status=404)
        status = recording["status"]
        if recording["body"] == "" or status == 204:
            return web.Response(status=status)
        return web.Response(
            status=status,
            text=json.dumps(recording["body"]),
            content_type=recording.get("headers", {}).get("content-type", "application/json"),
        )

    async def __aenter__(self) -> Replay:
        require_recordings()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
