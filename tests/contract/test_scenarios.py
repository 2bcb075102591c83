"""Contract: the multi-step recordings of Scope v0.2.4, replayed with a real aiortc client.

Each test follows one recorded scenario (``SCENARIOS`` in ``test_recorded.py`` maps the
files here) and checks what the client saw on the real server. Timings get a margin
for a busy 2-core machine; the behaviours (zero frames, one ``error`` read, no message,
405, a new session id, …) are checked as recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from typing import Any

import httpx
from lab import (
    PASSTHROUGH,
    TEXT_SESSION,
    VIZ,
    Lab,
    Spec,
    check,
    fresh,
    full_session,
    passthrough_loaded,
    replay,
    viz_loaded,
)
from recordings import load

from soundscape.emulator.peer import NumberedTrack, ScopePeer

QUIET = 1.5  # a bounded wait for something that must NOT happen (it has no event)
STATUS = "/api/v1/pipeline/status"


def rate(peer: ScopePeer, seconds: float) -> float:
    """Frames per second over the last ``seconds``."""
    now = time.monotonic()
    return sum(1 for f in peer.frames if f.t >= now - seconds) / seconds


async def settle(seconds: float) -> None:
    # Measuring a rate needs wall time; there is no event that stands for "a while".
    await asyncio.sleep(seconds)


async def session_of(lab: Lab, peer: ScopePeer) -> dict[str, Any]:
    return next(s for s in lab.emu.state()["sessions"] if s["id"] == peer.session_id)


async def deleted_quietly(peer: ScopePeer) -> list[Any]:
    """DELETE; wait for the connection to close; return the messages that came."""
    assert (await peer.delete()).status_code == 204
    await peer.watch.until(lambda: "closed" in peer.states, 5)
    return list(peer.messages)


# --------------------------------------------------------------------------- text mode


async def test_datachannel_messages(lab: Lab) -> None:
    """``datachannel-messages.json``: no reply, merged as sent, two REST echoes, DELETE."""
    recorded = load("datachannel-messages.json")
    await full_session(lab)
    peer = lab.peers[-1]
    got = (await lab.http.get("/api/v1/session/parameters")).json()
    assert got == recorded["full_session"]["stored_parameters_after_updates"]
    assert peer.messages == []  # 13 sent, including nonsense: not one reply
    rest = recorded["full_session"]["received"]
    body = load("session-parameters.post.json")["request"]["body"]
    assert (await lab.http.post("/api/v1/session/parameters", json=body)).status_code == 200
    assert (await lab.http.post("/api/v1/session/parameters", json={})).status_code == 200
    await peer.watch.until(lambda: len(peer.messages) >= 2)
    assert peer.messages == [rest[0]["json"], rest[1]["json"]]
    response = await peer.delete()
    assert response.status_code == 204
    # stream_stopped arrives before the 204 (the server sends it, then answers).
    assert peer.messages[-1] == {"type": "stream_stopped"}
    await peer.watch.until(lambda: peer.channel_closed and "closed" in peer.states, 5)
    await peer.watch.until(lambda: peer.remote_track_ended, 5)


async def test_delete_of_session_without_pipeline_ids(lab: Lab) -> None:
    """``on_delete_of_session_without_pipeline_ids``: 200, 0 frames, no stream_stopped."""
    await viz_loaded(lab)
    peer = ScopePeer(lab.emu.url)
    lab.peers.append(peer)
    initial = load("datachannel-messages.json")["on_delete_of_session_without_pipeline_ids"]
    assert initial["received"] == []
    response = await peer.connect({k: v for k, v in TEXT_SESSION.items() if k != "pipeline_ids"})
    assert response.status_code == 200
    await peer.watch.until(lambda: peer.channel_open)
    assert await peer.quiet(lambda: bool(peer.frames), QUIET)
    assert await deleted_quietly(peer) == []


async def test_sigterm_sends_stream_stopped_then_closes(lab: Lab) -> None:
    """``on_sigterm``: ``soundscape emulate`` gets SIGTERM; stream_stopped ~150 ms later."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "soundscape.cli",
        "emulate",
        "--port",
        "0",
        "--log-level",
        "info",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = await _emulator_url(proc)
        async with httpx.AsyncClient(base_url=url) as http:
            await http.post("/api/v1/pipeline/load", json=VIZ)
            for _ in range(100):  # the child is another process: its status is all we have
                if (await http.get(STATUS)).json()["status"] == "loaded":
                    break
                await asyncio.sleep(0.05)
        peer = ScopePeer(url)
        lab.peers.append(peer)
        assert (await peer.connect(TEXT_SESSION)).status_code == 200
        await peer.watch.until(lambda: bool(peer.frames), 10)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await peer.watch.until(lambda: bool(peer.messages), 10)
        delay = time.monotonic() - sent
        assert peer.messages == [{"type": "stream_stopped"}]
        assert 0.1 <= delay <= 1.5, delay
        await peer.watch.until(lambda: "closed" in peer.states, 5)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _emulator_url(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, "the emulator exited before listening"
            if "emulator_listening" in line:
                try:
                    return str(json.loads(line)["url"])
                except ValueError:  # the console renderer (a terminal): url=http://…
                    return re.sub(r"\x1b\[[0-9;]*m", "", line).split("url=")[1].split()[0]


async def test_recvonly_gets_zero_frames(lab: Lab) -> None:
    """``recvonly-no-frames.json``: answer sendonly, connected, channel open, 0 frames."""
    recorded = load("recvonly-no-frames.json")
    await viz_loaded(lab)
    recvonly = ScopePeer(lab.emu.url, direction="recvonly")
    sendrecv = ScopePeer(lab.emu.url)
    lab.peers += [recvonly, sendrecv]
    assert (await recvonly.connect(TEXT_SESSION)).status_code == 200
    assert recvonly.answer_direction() == recorded["answer_video_direction"] == "sendonly"
    await recvonly.watch.until(lambda: recvonly.channel_open and "connected" in recvonly.states)
    assert (await sendrecv.connect(TEXT_SESSION)).status_code == 200
    await sendrecv.frames_after(20)
    assert recvonly.frames == []
    metrics = (await lab.http.get("/api/v1/session/metrics")).json()["sessions"]
    assert list(metrics) == [recvonly.session_id]  # only the first live session is listed
    assert metrics[recvonly.session_id]["frames_out"] == 0
    assert await deleted_quietly(recvonly) == [{"type": "stream_stopped"}]


async def test_video(lab: Lab) -> None:
    """``video.json``: controller-viz 576x320 yuv420p, pts step 1500, ~57 fps; pause."""
    recorded = load("video.json")
    await viz_loaded(lab)
    started = time.monotonic()
    peer = await lab.live()
    assert peer.frames[0].t - started < 1.0
    await settle(2.0)
    frame = peer.frames[-1]
    assert (
        (frame.width, frame.height)
        == (576, 320)
        == (
            recorded["frame"]["width"],
            recorded["frame"]["height"],
        )
    )
    assert str(frame.time_base) == recorded["frame"]["time_base"]
    steps = [b.pts - a.pts for a, b in zip(peer.frames[-20:], peer.frames[-19:], strict=False)]
    assert all(abs(step - 1500) <= 2 for step in steps), steps  # 1499-1501 recorded
    assert rate(peer, 1.5) >= 40  # 56.7 recorded; margin for a busy machine
    # Pause: the frozen frame keeps coming at the normal rate; the picture follows
    # every change ~0.6 s late, the pause included.
    sent = time.monotonic()
    peer.send({"paused": True})
    await peer.watch.until(lambda: frozen(peer) >= 30, 10)
    held = peer.frames[-1].counter
    froze = next(f.t for f in peer.frames if f.counter == held)
    assert 0.4 <= froze - sent <= 1.2, froze - sent  # ~0.6 s recorded
    assert rate(peer, 0.5) >= 40  # still ~57 fps while paused
    sent = time.monotonic()
    peer.send({"paused": False})
    await peer.watch.until(lambda: (peer.frames[-1].counter or 0) > (held or 0), 5)
    assert 0.4 <= peer.frames[-1].t - sent <= 1.2  # 0.59 s recorded


def frozen(peer: ScopePeer) -> int:
    """How many of the last frames show the same counter."""
    if not peer.frames:
        return 0
    last = peer.frames[-1].counter
    return next(
        (i for i, f in enumerate(reversed(peer.frames)) if f.counter != last), len(peer.frames)
    )


async def test_video_no_frame_cases(lab: Lab) -> None:
    """``video.json`` → ``no_frame_cases``: video mode without a track; no pipeline_ids."""
    cases = load("video.json")["no_frame_cases"]
    await passthrough_and_viz(lab)
    no_track = ScopePeer(lab.emu.url)
    no_ids = ScopePeer(lab.emu.url)
    lab.peers += [no_track, no_ids]
    initial = cases["video_mode_without_local_track"]["initialParameters"]
    assert (await no_track.connect(initial)).status_code == 200
    initial = cases["no_pipeline_ids_in_initialParameters"]["initialParameters"]
    initial = {**initial, "input_mode": "video"}
    assert (await no_ids.connect(initial)).status_code == 200
    await no_track.watch.until(lambda: no_track.channel_open)
    await no_ids.watch.until(lambda: no_ids.channel_open)
    assert await no_track.quiet(lambda: bool(no_track.frames), QUIET)
    assert not no_ids.frames
    assert await deleted_quietly(no_track) == [{"type": "stream_stopped"}]
    assert await deleted_quietly(no_ids) == []  # its processor never started


async def passthrough_and_viz(lab: Lab) -> None:
    body = {"pipeline_ids": ["passthrough", "controller-viz"], "load_params": VIZ["load_params"]}
    assert await lab.load(body) == "loaded"


# --------------------------------------------------------------------------- loads


async def poll(lab: Lab, seconds: float, period: float) -> list[tuple[float, float, dict]]:
    """(sent, answered, status) every ``period`` s (0: back to back) for ``seconds``."""
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sent = time.monotonic()
        status = (await lab.http.get(STATUS)).json()
        samples.append((sent, time.monotonic(), status))
        if period:
            await asyncio.sleep(max(0.0, period - (time.monotonic() - sent)))
    return samples


async def load_and_poll(
    lab: Lab, body: dict[str, Any], seconds: float, period: float = 0.05
) -> list[tuple[float, float, dict]]:
    polling = asyncio.create_task(poll(lab, seconds, period))
    await asyncio.sleep(0)
    assert (await lab.http.post("/api/v1/pipeline/load", json=body)).status_code == 200
    return await polling


def runs(samples: list[tuple[float, float, dict]]) -> list[str]:
    """Consecutive equal statuses collapsed, as ``status-sequences.json`` shows them."""
    out: list[str] = []
    for _, _, status in samples:
        label = status["status"] + (f"({status['pipeline_id']})" if status["pipeline_id"] else "")
        if not out or out[-1] != label:
            out.append(label)
    return out


async def test_status_sequences(lab: Lab) -> None:
    """``status-sequences.json`` sequences 1-5, polled as recorded."""
    recorded = load("status-sequences.json")
    # 5: tight polling from not_loaded sees a short `loading`, then loaded.
    samples = await load_and_poll(lab, VIZ, 0.3, period=0)
    seen = runs(samples)
    assert seen[-1] == "loaded(controller-viz)" and "loading" in seen, seen
    loading = [s for _, _, s in samples if s["status"] == "loading"]
    expected = recorded["5_load_controller-viz_tight_polling"]["runs"][1]
    assert all(s["loading_stage"] == expected["loading_stage"] for s in loading)
    assert all(s["pipeline_id"] is None and s["load_params"] == VIZ["load_params"] for s in loading)
    span = [t for t, _, s in samples if s["status"] == "loading"]
    assert span[-1] - span[0] < 0.05  # 10-20 ms recorded: too short for 50 ms polling
    # 2: a switch is loaded(A) -> [one GET held ~260 ms] -> loaded(B).
    samples = await load_and_poll(lab, PASSTHROUGH, 1.0)
    assert runs(samples)[-1] == "loaded(passthrough)"
    assert "error" not in runs(samples)
    assert max(answered - sent for sent, answered, _ in samples) >= 0.2
    # 3: a failed load: the old pipeline is unloaded first; `error` is read ONCE.
    samples = await load_and_poll(lab, {"pipeline_ids": ["rife"]}, 1.0)
    seen = runs(samples)
    assert seen.count("error") == 1 and seen[-1] == "not_loaded", seen
    assert seen.index("error") > seen.index("not_loaded")  # not_loaded came before: unloaded
    assert all(s["error"] is None for _, _, s in samples)
    # 4: an unknown id from not_loaded: 200, then error once, then not_loaded.
    samples = await load_and_poll(lab, {"pipeline_ids": ["no-such-pipeline"]}, 0.5)
    assert runs(samples) == ["not_loaded", "error", "not_loaded"] or runs(samples) == [
        "error",
        "not_loaded",
    ]
    # 1: from not_loaded at 50 ms polling: loaded on the next sample.
    samples = await load_and_poll(lab, VIZ, 0.5)
    first = next(sent for sent, _, s in samples if s["status"] == "loaded")
    assert first - samples[0][0] <= 0.15
    assert "error" not in runs(samples)


# --------------------------------------------------------------------------- video mode


async def video_peer(
    lab: Lab, pipeline_ids: list[str], size: tuple[int, int] = (320, 180), fps: float = 30.0
) -> tuple[ScopePeer, NumberedTrack]:
    track = NumberedTrack(*size, fps=fps)
    peer = ScopePeer(lab.emu.url, track=track)
    lab.peers.append(peer)
    response = await peer.connect({"input_mode": "video", "pipeline_ids": pipeline_ids})
    assert response.status_code == 200
    return peer, track


def in_order_once(numbers: list[int]) -> bool:
    return numbers == sorted(set(numbers)) and numbers == list(
        range(numbers[0], numbers[0] + len(numbers))
    )


async def test_video_mode_passthrough(lab: Lab) -> None:
    """``video-mode.passthrough.json``: the client's frames, each once, in order, its size."""
    await passthrough_loaded(lab)
    peer, track = await video_peer(lab, ["passthrough"], (320, 180), 30.0)
    await peer.frames_after(40, timeout=15)
    numbers = peer.counters()
    assert in_order_once(numbers) and numbers[0] == 0, numbers[:20]
    assert {(f.width, f.height) for f in peer.frames} == {(320, 180)}  # not load_params
    steps = {b.pts - a.pts for a, b in zip(peer.frames, peer.frames[1:], strict=False)}
    assert all(abs(step - 3000) <= 10 for step in steps), steps  # the input's pts (30 fps)
    assert all(f.colourful for f in peer.frames)
    assert 20 <= rate(peer, 1.0) <= 40  # the input's rate
    # Chunks of 4: the first frame came only after 4 input frames.
    first_output = peer.frames[0].t
    assert track.sent >= 4 and first_output > 0
    # A size change mid-stream is followed at once, no frame lost.
    track.size = (256, 144)
    await peer.watch.until(lambda: (peer.frames[-1].width, peer.frames[-1].height) == (256, 144))
    await peer.frames_after(8)
    assert in_order_once(peer.counters())
    assert peer.messages == []


async def test_video_mode_gray(lab: Lab) -> None:
    """``video-mode.gray.json``: grayscale at the input size and rate, every number once."""
    recorded = load("video-mode.gray.json")
    assert await lab.load(recorded["load"]["request"]["body"]) == "loaded"
    status = (await lab.http.get(STATUS)).json()
    assert status == recorded["load"]["status_when_loaded"]
    peer, _ = await video_peer(lab, ["gray"], (320, 180))
    await peer.frames_after(30, timeout=15)
    assert not any(f.colourful for f in peer.frames)
    assert {(f.width, f.height) for f in peer.frames} == {(320, 180)}
    assert in_order_once(peer.counters())


async def test_video_mode_chain(lab: Lab) -> None:
    """``video-mode.chain.json``: a chain loads as one; offers pick any subset; unloaded: 0."""
    recorded = load("video-mode.chain.json")
    assert await lab.load(recorded["load_chain"]["request"]["body"]) == "loaded"
    status = (await lab.http.get(STATUS)).json()
    assert status["pipeline_id"] in ("gray", "passthrough") and "pipeline_ids" not in status
    expected = {
        ("gray", "passthrough"): False,
        ("passthrough",): True,
        ("gray",): False,
        ("passthrough", "gray"): False,
    }
    for ids, colourful in expected.items():
        peer, _ = await video_peer(lab, list(ids))
        await peer.frames_after(8, timeout=15)
        assert {f.colourful for f in peer.frames} == {colourful}, ids
        await deleted_quietly(peer)
    # Only passthrough loaded: an offer naming gray connects and gets nothing.
    reload = recorded["reload_only_passthrough_then_offer_chain"]["load_request"]["body"]
    assert await lab.load(reload) == "loaded"
    peer, _ = await video_peer(lab, ["gray", "passthrough"])
    await peer.watch.until(lambda: peer.channel_open and "connected" in peer.states)
    assert await peer.quiet(lambda: bool(peer.frames), QUIET)
    metrics = (await lab.http.get("/api/v1/session/metrics")).json()["sessions"]
    assert metrics[peer.session_id]["frames_out"] == 0
    assert await deleted_quietly(peer) == []  # no stream_stopped: never started


async def test_video_mode_track_stops(lab: Lab) -> None:
    """``video-mode.track-stops.json``: input stalls -> output stops, no freeze, no message."""
    await passthrough_loaded(lab)
    peer, track = await video_peer(lab, ["passthrough"])
    await peer.frames_after(20, timeout=15)
    track.stop_sending()
    last_sent = track.sent - 1
    # What was in flight lands (more of it on a busy machine); then nothing at all.
    await until_quiet(peer)
    during = peer.counters()
    assert during == sorted(set(during)) and max(during) <= last_sent  # no frozen frame
    assert peer.messages == [] and peer.pc.connectionState == "connected"
    track.resume()
    await peer.watch.until(lambda: max(peer.counters()) > last_sent + 8)
    numbers = peer.counters()
    assert numbers == sorted(set(numbers))  # the held frames came after resume, once each
    assert set(range(last_sent - 2, last_sent + 1)) <= set(numbers)
    # track.stop(): output stops for good, the server tells nothing.
    track.stop()
    last_sent = track.sent - 1
    await until_quiet(peer)
    assert max(peer.counters()) <= last_sent
    assert peer.messages == [] and peer.pc.connectionState == "connected"


async def until_quiet(peer: ScopePeer, window: float = 1.0, limit: float = 10.0) -> None:
    """Wait until no frame has come for ``window`` s (fails after ``limit`` s)."""
    deadline = time.monotonic() + limit
    while True:
        count = len(peer.frames)
        if await peer.quiet(lambda n=count: len(peer.frames) > n, window):
            return
        assert time.monotonic() < deadline, "frames kept coming after the input stopped"


# --------------------------------------------------------------------------- live changes


async def test_mode_switch_changes_nothing(lab: Lab) -> None:
    """``mode-switch.json``: input_mode/pipeline_ids on the channel are stored, no effect."""
    await passthrough_and_viz(lab)
    viz = await lab.live()
    viz.send({"input_mode": "video"})
    viz.send({"pipeline_ids": ["passthrough"]})
    await lab.emu.wait_for(lambda s: s["sessions"][-1]["messages_received"] >= 2, 5)
    stored = (await lab.http.get("/api/v1/session/parameters")).json()["parameters"]
    assert stored["input_mode"] == "video" and stored["pipeline_ids"] == ["passthrough"]
    after = await viz.frames_after(20)
    assert {(f.width, f.height) for f in after} == {(576, 320)}  # still controller-viz
    assert viz.messages == []
    await deleted_quietly(viz)
    # A passthrough session switched to text keeps returning the client's frames.
    peer, _ = await video_peer(lab, ["passthrough"])
    await peer.frames_after(8, timeout=15)
    peer.send({"input_mode": "text"})
    await peer.frames_after(8)
    assert in_order_once(peer.counters()) and all(f.colourful for f in peer.frames)


async def test_rest_load_while_streaming(lab: Lab) -> None:
    """``mode-switch.json`` → ``rest_load_while_streaming``: the session keeps its pipeline."""
    await passthrough_loaded(lab)
    peer, _ = await video_peer(lab, ["passthrough"])
    await peer.frames_after(10, timeout=15)
    assert await lab.load({"pipeline_ids": ["gray"]}) == "loaded"
    assert (await lab.http.get(STATUS)).json()["pipeline_id"] == "gray"  # at once
    await peer.frames_after(15)
    assert all(f.colourful for f in peer.frames)  # still passthrough, not gray
    gaps = [b.t - a.t for a, b in zip(peer.frames, peer.frames[1:], strict=False)]
    assert max(gaps) >= 0.2  # one pause while the old pipeline unloaded
    assert peer.messages == [] and peer.pc.connectionState == "connected"


async def test_renegotiation(lab: Lab) -> None:
    """``renegotiation.json``: 405 on the session path; a re-offer is a NEW session."""
    recorded = load("renegotiation.json")
    await viz_loaded(lab)
    peer = await lab.live()
    lab.ids[recorded["reoffer"]["first_session_id"]] = str(peer.session_id)
    for record in recorded["other_endpoints"].values():
        response = await replay(lab, record)
        if response.status_code == 405:
            check(record, response, Spec(fresh), lab)
        else:
            assert response.status_code == record["status"] == 422
    peer.pc.addTransceiver("video", direction="sendrecv")
    await peer.pc.setLocalDescription(await peer.pc.createOffer())
    body = {"sdp": peer.pc.localDescription.sdp, "type": "offer", "initialParameters": TEXT_SESSION}
    response = await lab.http.post("/api/v1/webrtc/offer", json=body)
    assert response.status_code == 200
    assert response.json()["sessionId"] != peer.session_id
    metrics = (await lab.http.get("/api/v1/session/metrics")).json()["sessions"]
    assert list(metrics) == [peer.session_id]  # the first one not closed
    start = len(peer.frames)  # the answer is not applied: the old session streams on
    await peer.watch.until(lambda: len(peer.frames) >= start + 10)


async def test_restart(lab: Lab) -> None:
    """``restart.json``: 200, no message, frames stop ~0.5 s later, refused ~4.4 s, back
    ``not_loaded`` with a new ``server_start_time``."""
    recorded = load("restart.json")
    await viz_loaded(lab)
    peer = await lab.live()
    before = (await lab.http.get("/health")).json()["server_start_time"]
    response = await replay(lab, recorded)
    answered = time.monotonic()
    check(recorded, response, Spec(fresh), lab)
    state = await lab.emu.wait_for(lambda s: not s["listening"], 5)
    down = time.monotonic()
    assert 0.3 <= down - answered <= 1.5  # ~0.5 s recorded
    await settle(0.3)
    last = peer.frames[-1].t
    assert 0.2 <= last - answered <= 1.5
    async with httpx.AsyncClient(base_url=lab.emu.url) as fresh_client:
        try:
            await fresh_client.get("/health")
            raise AssertionError("health answered while restarting")
        except httpx.ConnectError:
            pass
        state = await lab.emu.wait_for(lambda s: s["listening"], 10)
        assert 3.5 <= time.monotonic() - down <= 6.0  # ~4.4 s recorded
        health = (await fresh_client.get("/health")).json()
        assert health["server_start_time"] > before
        after = recorded["_observed"]["pipeline_status_after"]
        assert (await fresh_client.get(STATUS)).json() == after
    assert peer.messages == recorded["_observed"]["datachannel_messages"] == []
    assert state["sessions"] == []


# --------------------------------------------------------------------------- input source


async def test_input_source_is_ignored(lab: Lab) -> None:
    """``input-source.json``: NDI missing: accepted, ignored, dropped from the parameters."""
    recorded = load("input-source.json")
    for record in recorded["rest"].values():
        check(record, await replay(lab, record), Spec(fresh), lab)
    await passthrough_loaded(lab)
    run = recorded["runs"]["offer with input_source + client track"]
    track = NumberedTrack(320, 180)
    peer = ScopePeer(lab.emu.url, track=track)
    lab.peers.append(peer)
    assert (await peer.connect(run["initialParameters"])).status_code == 200
    await peer.frames_after(8, timeout=15)
    assert all(f.colourful for f in peer.frames)
    stored = (await lab.http.get("/api/v1/session/parameters")).json()
    assert stored == run["stored_parameters"]
    metrics = (await lab.http.get("/api/v1/session/metrics")).json()["sessions"][peer.session_id]
    assert metrics["input_source_enabled"] is False and metrics["input_source_type"] == ""
    peer.send({"input_source": run["initialParameters"]["input_source"]})
    await lab.emu.wait_for(lambda s: s["sessions"][-1]["messages_received"] >= 1, 5)
    assert (await lab.http.get("/api/v1/session/parameters")).json() == run["stored_parameters"]
    await peer.frames_after(8)
    assert peer.messages == []
    # Without a client track: 0 frames.
    no_track = ScopePeer(lab.emu.url)
    lab.peers.append(no_track)
    assert (await no_track.connect(run["initialParameters"])).status_code == 200
    await no_track.watch.until(lambda: no_track.channel_open)
    assert await no_track.quiet(lambda: bool(no_track.frames), QUIET)
