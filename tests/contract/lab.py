"""The contract lab: an emulator in a known state, an HTTP client, peers, and replay.

A setup puts the emulator into the state a recording needed; ``replay`` sends the
recorded request (recorded session ids mapped to ours, placeholders made real);
``check`` compares the answer with the recording.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from recordings import at, load, shape_diff, substitute

from soundscape.emulator import Emulator
from soundscape.emulator.peer import ScopePeer

VIZ = {"pipeline_ids": ["controller-viz"], "load_params": {"width": 576, "height": 320}}
PASSTHROUGH = {"pipeline_ids": ["passthrough"], "load_params": {"width": 576, "height": 320}}
TEXT_SESSION = {
    "input_mode": "text",
    "pipeline_ids": ["controller-viz"],
    "prompts": [{"text": "a red fox", "weight": 1.0}],
}
RECORDED_SESSION = "794529e9-b7a5-41a1-a9b2-1ebb601722e4"  # the live session of the capture


@dataclass
class Lab:
    """The emulator, an HTTP client and the peers a setup made."""

    emu: Emulator
    http: httpx.AsyncClient
    peers: list[ScopePeer] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)  # recorded id -> ours

    async def load(self, body: dict[str, Any]) -> str:
        """Load and wait for the outcome; return the status the emulator ended in."""
        before = self.emu.state()["pipeline"]
        response = await self.http.post("/api/v1/pipeline/load", json=body)
        assert response.status_code == 200, response.text

        def done(s: dict[str, Any]) -> bool:
            p = s["pipeline"]
            return p["generation"] == p["load_count"] or p["failed_loads"] > before["failed_loads"]

        return str((await self.emu.wait_for(done, 10))["pipeline"]["status"])

    async def live(self, initial: dict[str, Any] | None = None, **kw: Any) -> ScopePeer:
        """A streaming session (frames flowing, data channel open), as the recording's."""
        peer = ScopePeer(self.emu.url, **kw)
        self.peers.append(peer)
        response = await peer.connect(initial if initial is not None else TEXT_SESSION)
        assert response.status_code == 200, response.text
        await peer.watch.until(lambda: peer.channel_open and bool(peer.frames), 10)
        assert peer.session_id is not None
        self.ids[RECORDED_SESSION] = peer.session_id
        return peer

    async def close(self) -> None:
        for peer in self.peers:
            await peer.close()


Setup = Callable[[Lab], Awaitable[None]]


async def fresh(lab: Lab) -> None:
    """A server just started: nothing loaded, no session."""


async def viz_loaded(lab: Lab) -> None:
    assert await lab.load(VIZ) == "loaded"


async def passthrough_loaded(lab: Lab) -> None:
    assert await lab.load(PASSTHROUGH) == "loaded"


async def viz_live(lab: Lab) -> None:
    await viz_loaded(lab)
    await lab.live()


async def viz_deleted(lab: Lab) -> None:
    await viz_live(lab)
    assert (await lab.peers[-1].delete()).status_code == 204
    await lab.emu.wait_for(lambda s: not any(x["open"] for x in s["sessions"]), 5)


async def load_failed(lab: Lab) -> None:
    """rife's weights are absent: its load fails (the previous pipeline already gone)."""
    await passthrough_loaded(lab)
    assert await lab.load({"pipeline_ids": ["rife"]}) == "error"


async def load_failed_and_read(lab: Lab) -> None:
    await load_failed(lab)
    assert (await lab.http.get("/api/v1/pipeline/status")).json()["status"] == "error"


async def loading(lab: Lab) -> None:
    """Caught while loading (the recording polled back to back; we slow the load)."""
    lab.emu.fault_slow_load(30.0)
    await lab.http.post("/api/v1/pipeline/load", json=VIZ)
    await lab.emu.wait_for(lambda s: s["pipeline"]["status"] == "loading", 5)


async def full_session(lab: Lab) -> None:
    """The data-channel session of ``datachannel-messages.json``: all 13 messages sent."""
    await viz_loaded(lab)
    recorded = load("datachannel-messages.json")["full_session"]
    peer = await lab.live(recorded["initialParameters"])
    for item in recorded["sent"]:
        peer.send(item["sent"])
    count = len(recorded["sent"])
    await lab.emu.wait_for(lambda s: s["sessions"][-1]["messages_received"] >= count, 10)


async def full_session_then_post(lab: Lab) -> None:
    await full_session(lab)
    body = load("session-parameters.post.json")["request"]["body"]
    assert (await lab.http.post("/api/v1/session/parameters", json=body)).status_code == 200


async def asset_uploaded(lab: Lab) -> None:
    request = load("assets-upload.json")["request"]
    response = await lab.http.post(request["path"], content=bytes(request["body"]["raw_bytes"]))
    assert response.status_code == 200


@dataclass(frozen=True)
class Spec:
    """How to replay one file: the setup, then what must match.

    ``exact``: the whole body, except the ``ignore`` paths (compared by shape only);
    otherwise the shape plus the values at ``values``. ``keyed_by_id``: objects keyed
    by session ids; ``extra_keys``: fields the recording left out (``body.sdp``).
    ``direction``: the video direction of the offer SDP put into the request.
    """

    setup: Setup
    exact: bool = True
    ignore: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    keyed_by_id: frozenset[str] = frozenset()
    extra_keys: frozenset[str] = frozenset()
    direction: str = "sendrecv"


async def replay(lab: Lab, record: dict[str, Any], direction: str = "sendrecv") -> httpx.Response:
    """Send the recorded request (ids mapped to ours, placeholders made real)."""
    request = substitute(record["request"], lab.ids)
    body = request.get("body")
    kwargs: dict[str, Any] = {}
    if isinstance(body, dict) and "raw_bytes" in body:
        kwargs["content"] = bytes(body["raw_bytes"])
    elif isinstance(body, dict) and str(body.get("sdp", "")).startswith("<"):
        peer = ScopePeer(lab.emu.url, direction=direction)
        lab.peers.append(peer)
        offer = await peer.offer_body(None)
        kwargs["json"] = {**body, "sdp": offer["sdp"]}
    elif body is not None:
        kwargs["json"] = body
    return await lab.http.request(request["method"], request["path"], **kwargs)


def _strip(document: Any, paths: tuple[str, ...]) -> Any:
    document = copy.deepcopy(document)
    for dotted in paths:
        *parents, last = dotted.split(".")
        holder = at(document, ".".join(parents))
        if isinstance(holder, list):
            holder[int(last)] = None
        else:
            holder[last] = None
    return document


def _without(document: Any, paths: frozenset[str]) -> Any:
    document = copy.deepcopy(document)
    for dotted in paths:
        *parents, last = dotted.removeprefix("body").lstrip(".").split(".")
        holder = at(document, ".".join(parents))
        if isinstance(holder, dict):
            holder.pop(last, None)
    return document


def check(record: dict[str, Any], response: httpx.Response, spec: Spec, lab: Lab) -> None:
    """The answer against the recording: status, content type, shape, behaviour values."""
    recorded = substitute(record["body"], lab.ids)
    assert response.status_code == record["status"], response.text
    if record["headers"]["content-type"] is None:
        assert response.content == b"", response.text
        return
    assert response.headers["content-type"].startswith(record["headers"]["content-type"])
    ours = response.json()
    diffs = shape_diff(recorded, ours, keyed_by_id=spec.keyed_by_id, extra_keys=spec.extra_keys)
    assert not diffs, "\n".join(diffs)
    if spec.exact:
        beside = _without(ours, spec.extra_keys)  # what we serve beside the recording
        assert _strip(beside, spec.ignore) == _strip(recorded, spec.ignore)
    for dotted in spec.values:
        assert at(ours, dotted) == at(recorded, dotted), dotted
