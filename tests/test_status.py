"""``soundscape status`` and the control endpoint: a real daemon, a real emulator, real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import sys
from pathlib import Path

import httpx
import pytest

from soundscape.app import Daemon, run
from soundscape.audio.synth import drum_loop
from soundscape.config import Config, load
from soundscape.emulator import Emulator
from soundscape.errors import StartupError
from soundscape.logring import LogRing
from soundscape.web.config import HttpConfig
from soundscape.web.status import StatusBook


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def cli(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "soundscape.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# --------------------------------------------------------------------------- pure parts


def test_the_book_keeps_the_last_loss_and_its_reason_and_the_history():
    now = [100.0]
    book = StatusBook(clock=lambda: now[0])
    for t, state, reason in [
        (100.0, "connecting", ""),
        (101.0, "streaming", ""),
        (105.0, "reconnecting", "data channel closed"),
        (105.2, "reconnecting", "server away: refused"),  # the same outage, a new reason
        (106.0, "checking", ""),
        (107.0, "streaming", ""),
    ]:
        now[0] = t
        book.on_status({"state": state, "reason": reason})
    assert book.last_loss == {"at": 105.0, "reason": "data channel closed", "after": "streaming"}
    assert [h["state"] for h in book.history] == [
        "connecting", "streaming", "reconnecting", "checking", "streaming",
    ]  # fmt: skip


def test_the_book_measures_the_frame_rate_of_the_last_second():
    book = StatusBook(clock=lambda: 0.0)
    book.sample_frames(100, 10.0)
    book.sample_frames(130, 11.0)
    assert book.measured_fps == 30.0
    book.sample_frames(12, 12.0)  # a new session counts from 0 again
    assert book.measured_fps == 12.0 and len(book.fps) == 2


def test_the_log_ring_keeps_the_last_fifty_events_and_passes_them_on():
    ring = LogRing()
    for i in range(60):
        event = {"event": "tick", "level": "info", "n": i, "timestamp": "t"}
        assert ring(None, "info", event) is event
    ring(None, "debug", {"event": "noise", "level": "debug"})
    events = ring.events()
    assert len(events) == 50 and events[0]["fields"] == {"n": 10}
    assert events[-1]["event"] == "tick" and events[-1]["fields"] == {"n": 59}


def test_http_config_parses_and_knows_loopback():
    assert HttpConfig().address == ("127.0.0.1", 8470) and HttpConfig().loopback
    assert not HttpConfig().explicit and HttpConfig(listen="[::1]:9").loopback
    assert not HttpConfig(listen="0.0.0.0:8470").loopback
    assert HttpConfig(listen="localhost").check() != []


# --------------------------------------------------------------------------- a running daemon


def daemon_config(emulator: Emulator, listen: str) -> Config:
    config = load(None)
    return dataclasses.replace(
        config,
        scope=dataclasses.replace(config.scope, url=emulator.url),
        osc=dataclasses.replace(config.osc, port=0),
        state=dataclasses.replace(config.state, enabled=False),
        http=HttpConfig(listen=listen),
    )


async def start(config: Config) -> tuple[Daemon, asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    started: asyncio.Future[Daemon] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run(config, shutdown_trigger=stop.wait, on_started=started.set_result)
    )
    done, _ = await asyncio.wait([started, task], timeout=30, return_when="FIRST_COMPLETED")
    if task in done:
        task.result()  # raises what ended it
    return started.result(), stop, task


async def streaming(daemon: Daemon) -> None:
    async with asyncio.timeout(30):
        while daemon.supervisor.status.state != "streaming":  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # no "changed to" event on the status


async def test_status_reports_a_running_daemon_and_its_last_loss(emulator):
    port = free_port()
    daemon, stop, task = await start(daemon_config(emulator, f"127.0.0.1:{port}"))
    try:
        await streaming(daemon)
        code, out, err = await cli("status", "--http", f"127.0.0.1:{port}")
        assert code == 0, err
        assert out.startswith("session   streaming")
        await emulator.fault_drop()
        async with asyncio.timeout(30):
            while daemon.supervisor.status.reconnects < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await streaming(daemon)
        assert daemon.control is not None
        async with asyncio.timeout(10):  # a full second of the new session sampled
            while daemon.control.book.measured_fps < 10:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        code, out, err = await cli("status", "--http", f"127.0.0.1:{port}", "--json")
        assert code == 0, err
        data = json.loads(out)
        session = data["session"]
        assert session["state"] == "streaming" and session["reconnects"] >= 1
        assert 5 < session["fps"] < 45  # the emulator sends 30 fps
        assert session["last_loss"]["reason"]  # why it was lost, e.g. "data channel closed"
        assert session["pipeline"] == ["longlive"] and session["scope_url"] == emulator.url
        assert data["inputs"]["osc"]["health"] == "listening"
        assert data["outputs"] == {}  # none configured: said so, not hidden
        assert {"bpm", "source"} <= set(data["tempo"])
        # No audio here: no correction of its beat clock held.
        assert data["tempo"]["downbeat_held"] is False and data["tempo"]["octave_bpm"] is None
    finally:
        stop.set()
        await task


async def test_status_exits_1_when_no_daemon_answers():
    code, out, err = await cli("status", "--http", f"127.0.0.1:{free_port()}", timeout=30)
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0 and "no daemon answers" in err


async def test_status_finds_the_daemon_from_the_same_config(emulator, tmp_path: Path):
    port = free_port()
    path = tmp_path / "show.toml"
    path.write_text(f'[http]\nlisten = "127.0.0.1:{port}"\n[state]\nenabled = false\n')
    config = dataclasses.replace(
        load(path),
        scope=dataclasses.replace(load(path).scope, url=emulator.url),
        osc=dataclasses.replace(load(path).osc, port=0),
    )
    daemon, stop, task = await start(config)
    try:
        await streaming(daemon)
        code, out, _ = await cli("status", "--config", str(path))
        assert code == 0 and "streaming" in out.splitlines()[0]
    finally:
        stop.set()
        await task


async def test_a_wider_address_needs_a_token(emulator, monkeypatch):
    config = daemon_config(emulator, f"0.0.0.0:{free_port()}")
    monkeypatch.delenv("SOUNDSCAPE_HTTP_TOKEN", raising=False)
    with pytest.raises(StartupError, match="needs a token"):
        await start(config)
    monkeypatch.setenv("SOUNDSCAPE_HTTP_TOKEN", "s3cret")
    daemon, stop, task = await start(config)
    try:
        assert daemon.control is not None and daemon.control.url
        url = f"http://127.0.0.1:{config.http.address[1]}/api/status"
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).status_code == 401
            assert (await client.get(url, params={"token": "wrong"})).status_code == 401
            ok = await client.get(url, headers={"Authorization": "Bearer s3cret"})
            assert ok.status_code == 200 and "session" in ok.json()
    finally:
        stop.set()
        await task


async def test_an_address_asked_for_that_is_taken_is_an_error_exit(emulator):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match="cannot listen"):
            await start(daemon_config(emulator, f"127.0.0.1:{port}"))


async def test_the_preview_is_a_small_jpeg_of_the_latest_frame(emulator):
    daemon, stop, task = await start(daemon_config(emulator, "127.0.0.1:0"))
    try:
        await streaming(daemon)
        assert daemon.control is not None
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"{daemon.control.url}/api/preview.jpg")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        assert answer.content[:2] == b"\xff\xd8" and len(answer.content) < 100_000
        async with httpx.AsyncClient() as client:
            bad = await client.post(f"{daemon.control.url}/api/command/nope", json={"args": []})
        assert bad.status_code == 400 and "not available" in bad.json()["error"]
    finally:
        stop.set()
        await task


async def test_status_shows_the_corrections_a_performer_holds_the_beat_clock_to(
    emulator, tmp_path: Path
):
    # A loop at 140 played as the audio input; the one marked and half time set through
    # the command bus (as OSC, MIDI and the page do): `soundscape status` says both are held.
    wav = drum_loop(140, 60, seed=9).write_wav(tmp_path / "loop.wav")
    port = free_port()
    config = daemon_config(emulator, f"127.0.0.1:{port}")
    config = dataclasses.replace(
        config, audio=dataclasses.replace(config.audio, enabled=True, file=str(wav))
    )
    daemon, stop, task = await start(config)
    try:
        assert daemon.audio is not None
        audio = daemon.audio

        def read() -> bool:  # the first full estimate, at 140
            return audio.analyzer.beats.settled and abs(audio.latest.bpm - 140.0) <= 1.0

        async with asyncio.timeout(20):
            while not read():  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # the tracker's reading: no event to await
        await daemon.commands.call("tempo_half")
        await daemon.commands.call("downbeat")
        code, out, err = await cli("status", "--http", f"127.0.0.1:{port}")
        assert code == 0, err
        assert "the one held" in out and "octave held at 70" in out, out
        await daemon.commands.call("downbeat_release")
        await daemon.commands.call("tempo_auto")
        code, out, err = await cli("status", "--http", f"127.0.0.1:{port}", "--json")
        tempo = json.loads(out)["tempo"]
        assert tempo["downbeat_held"] is False and tempo["octave_bpm"] is None
    finally:
        stop.set()
        await task
