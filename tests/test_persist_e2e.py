"""A real ``soundscape run`` killed with SIGKILL comes back to the same show.

The daemon runs as a subprocess against the Scope emulator (in this process);
the performer plays it over real UDP OSC and a real MIDI controller (a JACK
virtual port); ``kill -9``; a new process must hand the emulator's new session
the same parameters, the same scene, and answer the learned knob.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import mido
import pytest
from pythonosc.udp_client import SimpleUDPClient

from soundscape.emulator import Emulator, EmulatorConfig
from virtual_midi import virtual_output

WAIT = 30.0

SHOW = """\
[scope]
url = "{url}"

[pipeline]
width = 320
height = 192

[osc]
port = {osc_port}

[midi]
enabled = {midi}
inputs = ["{midi_input}"]
learn_settle = 0.1

[parameters]
kv_cache_attention_bias = 0.3

[scenes]
start = "dawn"
quantize = "none"

[[scenes.list]]
name = "dawn"
prompts = ["dawn over the sea"]

[[scenes.list]]
name = "night"
prompts = ["a city at night"]
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Show:
    """The config file, the state directory and the daemon processes of one show."""

    def __init__(self, tmp_path: Path, emulator: Emulator, midi_input: str = "") -> None:
        self.emulator = emulator
        self.osc_port = free_udp_port()
        self.config = tmp_path / "club.toml"
        self.config.write_text(
            SHOW.format(
                url=emulator.url,
                osc_port=self.osc_port,
                midi="true" if midi_input else "false",
                midi_input=midi_input,
            )
        )
        self.state_dir = tmp_path / "state"
        self.show_file = self.state_dir / "club.show.json"
        self.learned_file = self.state_dir / "club.midi-learned.json"
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.osc = SimpleUDPClient("127.0.0.1", self.osc_port)

    def start(self, *flags: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"run{len(self.procs)}.log").open("wb")
        env = {**os.environ, "STATE_DIRECTORY": str(self.state_dir)}  # as systemd sets it
        command = [sys.executable, "-m", "soundscape.cli", "run", "--config", str(self.config)]
        proc = subprocess.Popen(
            [*command, "--log-format", "json", *flags],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def midi_learn(self, target: str) -> subprocess.Popen[str]:
        """``soundscape midi-learn TARGET --config FILE`` as the service user runs it."""
        command = [sys.executable, "-m", "soundscape.cli", "midi-learn", target]
        return subprocess.Popen(
            [*command, "--config", str(self.config), "--timeout", str(WAIT)],
            env={**os.environ, "STATE_DIRECTORY": str(self.state_dir)},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def events(self, index: int = -1) -> list[dict[str, Any]]:
        out = []
        for line in (self.logs / f"run{index % len(self.procs)}.log").read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a C library's own chatter
                out.append(json.loads(line))
        return out

    async def new_session(
        self, known: set[str], emulator: Emulator | None = None
    ) -> dict[str, Any]:
        """The first session not in ``known`` that streams (on ``emulator``, default the main)."""
        emulator = emulator or self.emulator

        def fresh(state: dict[str, Any]) -> bool:
            return any(
                s["open"] and s["frames_sent"] >= 3 and s["id"] not in known
                for s in state["sessions"]
            )

        state = await emulator.wait_for(fresh, timeout=WAIT)
        return next(s for s in state["sessions"] if s["open"] and s["id"] not in known)

    def session_ids(self, emulator: Emulator | None = None) -> set[str]:
        return {s["id"] for s in (emulator or self.emulator).state()["sessions"]}

    async def session_shows(
        self, predicate: Callable[[dict[str, Any]], bool], emulator: Emulator | None = None
    ) -> None:
        """Until the newest open session's parameters satisfy ``predicate``."""

        def check(state: dict[str, Any]) -> bool:
            live = [s for s in state["sessions"] if s["open"]]
            return bool(live) and predicate(live[-1]["parameters"])

        await (emulator or self.emulator).wait_for(check, timeout=WAIT)

    async def saved(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Until the state file on disk satisfies ``predicate`` (the daemon writes it)."""
        async with asyncio.timeout(WAIT):
            while True:
                try:
                    data = json.loads(self.show_file.read_text())
                    if predicate(data):
                        return data
                except (FileNotFoundError, json.JSONDecodeError):
                    pass
                await asyncio.sleep(0.05)  # a file has no change event worth a dependency

    def kill9(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        proc.wait(timeout=20)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emu = Emulator(EmulatorConfig(width=320, height=192, fps=30, load_time=0.1))
    await emu.start(host="127.0.0.1", port=0)
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
async def two_more() -> AsyncIterator[list[Emulator]]:
    """A standby server and a further screen's server, beside ``emulator``."""
    emulators = [Emulator(EmulatorConfig(width=320, height=192, fps=30, load_time=0.1))]
    emulators.append(Emulator(EmulatorConfig(width=320, height=192, fps=30, load_time=0.1)))
    for emu in emulators:
        await emu.start(host="127.0.0.1", port=0)
    try:
        yield emulators
    finally:
        for emu in emulators:
            await emu.stop()


@pytest.fixture
def show(tmp_path: Path, emulator: Emulator) -> Iterator[Show]:
    s = Show(tmp_path, emulator)
    yield s
    s.close()


def prompt_text(params: dict[str, Any]) -> str:
    """The prompt the picture goes to: a transition's target, else the prompts."""
    transition = params.get("transition")
    prompts = transition["target_prompts"] if transition else params.get("prompts", [{}])
    return str(prompts[0].get("text"))


async def play(show: Show) -> None:
    """The performer's moves over real UDP, until the emulator's session shows them."""

    def moved(p: dict[str, Any]) -> bool:
        return p.get("kv_cache_attention_bias") == 0.66 and prompt_text(p) == "a city at night"

    async def poke() -> None:
        while True:  # UDP: send again until the picture shows it
            show.osc.send_message("/soundscape/cache/bias", 0.66)
            show.osc.send_message("/soundscape/scene", "night")
            await asyncio.sleep(0.5)

    sender = asyncio.create_task(poke())
    try:
        await show.session_shows(moved)
    finally:
        sender.cancel()


async def test_kill_9_comes_back_to_the_same_parameters_and_scene(show: Show) -> None:
    first = show.start()
    await show.new_session(set())
    await play(show)
    await show.saved(
        lambda d: d["scene"] == "night" and d["parameters"]["kv_cache_attention_bias"] == 0.66
    )
    known = show.session_ids()
    (left,) = [s["id"] for s in show.emulator.state()["sessions"] if s["open"]]
    show.kill9(first)

    second = show.start()
    session = await show.new_session(known)
    # The new session's very first parameters (the offer) are the performer's, not the config's.
    assert session["parameters"]["kv_cache_attention_bias"] == 0.66
    assert session["parameters"]["prompts"][0]["text"] == "a city at night"
    assert "transition" not in session["parameters"]  # no scene applied again
    events = [e["event"] for e in show.events()]
    assert "state_restored" in events
    # The session the killed process left on the server is DELETEd, not left to ICE.
    await show.emulator.wait_for(
        lambda st: left in {d["session_id"] for d in st["deletes"]}, timeout=WAIT
    )
    scenes = [e.get("requested_by") for e in show.events() if e["event"] == "scene"]
    assert "start" not in scenes  # the start scene did not overwrite the show
    show.stop(second)
    assert json.loads(show.show_file.read_text())["scene"] == "night"


async def test_fresh_starts_from_the_config_and_a_corrupt_file_is_one_line(show: Show) -> None:
    first = show.start()
    await show.new_session(set())
    await play(show)
    await show.saved(lambda d: d["scene"] == "night")
    known = show.session_ids()
    show.kill9(first)

    fresh = show.start("--fresh")
    session = await show.new_session(known)
    assert session["parameters"]["kv_cache_attention_bias"] == 0.3
    await show.session_shows(lambda p: prompt_text(p) == "dawn over the sea")
    assert "state_fresh" in [e["event"] for e in show.events()]
    show.stop(fresh)

    show.show_file.write_bytes(b'{"version": 1, "parameters": {"kv_cache_att')  # torn by hand
    known = show.session_ids()
    clean = show.start()
    session = await show.new_session(known)
    assert session["parameters"]["kv_cache_attention_bias"] == 0.3
    show.stop(clean)
    complaints = [e for e in show.events() if e["level"] in ("error", "warning")]
    assert [e["event"] for e in complaints if "state" in e["event"]] == ["state_ignored"]
    assert "not JSON" in next(e["reason"] for e in complaints if e["event"] == "state_ignored")
    json.loads(show.show_file.read_text())  # replaced by a good file


# --------------------------------------------------------------------------- several screens

SCREENS = """\
[[scope]]
url = "{main}"

[[scope]]
role = "standby"
url = "{standby}"

[[scope]]
name = "left"
role = "screen"
url = "{left}"
prompts = ["left's own prompt"]

[scope.scenes]
start = "storm"
quantize = "none"

[[scope.scenes.list]]
name = "storm"
prompts = ["left: storm"]

[[scope.scenes.list]]
name = "calm"
prompts = ["left: calm"]

[pipeline]
width = 320
height = 192

[osc]
port = {osc_port}

[parameters]
kv_cache_attention_bias = 0.3

[scenes]
start = "dawn"
quantize = "none"

[[scenes.list]]
name = "dawn"
prompts = ["dawn over the sea"]

[[scenes.list]]
name = "night"
prompts = ["a city at night"]
"""


def main_moved(p: dict[str, Any]) -> bool:
    return p.get("kv_cache_attention_bias") == 0.66 and prompt_text(p) == "a city at night"


def left_moved(p: dict[str, Any]) -> bool:
    return p.get("kv_cache_attention_bias") == 0.22 and prompt_text(p) == "left: calm"


async def play_both_screens(show: Show, standby: Emulator, left: Emulator) -> None:
    """The main screen and the left one, each its own moves, over real UDP."""

    async def poke() -> None:
        while True:  # UDP: send again until the pictures show it
            show.osc.send_message("/soundscape/cache/bias", 0.66)
            show.osc.send_message("/soundscape/scene", "night")
            show.osc.send_message("/screen/left/soundscape/cache/bias", 0.22)
            show.osc.send_message("/screen/left/soundscape/scene", "calm")
            await asyncio.sleep(0.5)

    sender = asyncio.create_task(poke())
    try:
        await show.session_shows(main_moved)
        await show.session_shows(main_moved, standby)  # the standby runs the same show
        await show.session_shows(left_moved, left)
    finally:
        sender.cancel()


async def test_kill_9_brings_every_screen_and_every_server_back(
    tmp_path: Path, emulator: Emulator, two_more: list[Emulator]
) -> None:
    standby, left = two_more
    servers = {"main": emulator, "standby": standby, "left": left}
    show = Show(tmp_path, emulator)
    show.config.write_text(
        SCREENS.format(
            main=emulator.url, standby=standby.url, left=left.url, osc_port=show.osc_port
        )
    )
    try:
        first = show.start()
        for server in servers.values():
            await show.new_session(set(), server)
        await play_both_screens(show, standby, left)
        await show.saved(
            lambda d: (
                d["scene"] == "night"
                and d["screens"].get("left", {}).get("scene") == "calm"
                and d["screens"]["left"]["parameters"]["kv_cache_attention_bias"] == 0.22
            )
        )
        known = {name: show.session_ids(server) for name, server in servers.items()}
        left_behind = {
            name: {s["id"] for s in server.state()["sessions"] if s["open"]}
            for name, server in servers.items()
        }
        assert all(len(ids) == 1 for ids in left_behind.values()), left_behind
        show.kill9(first)

        second = show.start()
        sessions = {
            name: await show.new_session(known[name], server) for name, server in servers.items()
        }
        # Each server's new session is offered its screen's show, not the config's.
        assert main_moved(sessions["main"]["parameters"])
        assert main_moved(sessions["standby"]["parameters"])
        assert left_moved(sessions["left"]["parameters"])
        assert all("transition" not in s["parameters"] for s in sessions.values())
        # Each server DELETEs the very session the killed process left on it.
        for name, server in servers.items():
            await server.wait_for(
                lambda st, ids=left_behind[name]: ids <= {d["session_id"] for d in st["deletes"]},
                timeout=WAIT,
            )
        [restored] = [e for e in show.events() if e["event"] == "state_restored"]
        assert restored["screens"] == ["main", "left"]
        show.stop(second)
        saved = json.loads(show.show_file.read_text())
        assert saved["version"] == 2 and saved["screens"]["left"]["scene"] == "calm"

        # --fresh: every screen from its config.
        known = {name: show.session_ids(server) for name, server in servers.items()}
        fresh = show.start("--fresh")
        session = await show.new_session(known["left"], left)
        assert session["parameters"]["kv_cache_attention_bias"] == 0.3
        await show.session_shows(lambda p: prompt_text(p) == "left: storm", left)
        await show.session_shows(lambda p: prompt_text(p) == "dawn over the sea")
        show.stop(fresh)
        assert "state_restored" not in [e["event"] for e in show.events()]
    finally:
        show.close()


# --------------------------------------------------------------------------- MIDI learn


@pytest.fixture
def controller(jack_server: None) -> Iterator[Any]:
    backend = mido.Backend(os.environ["MIDO_BACKEND"])
    name = f"persistctl{os.getpid()}"
    with virtual_output(backend, "ctl", name) as port:
        port.client = name
        yield port


def cc21(value: int) -> mido.Message:
    return mido.Message("control_change", channel=3, control=21, value=value)


async def test_a_binding_learned_before_kill_9_still_works_after(
    tmp_path: Path, emulator: Emulator, controller: Any
) -> None:
    show = Show(tmp_path, emulator, midi_input=controller.client)
    try:
        first = show.start()
        await show.new_session(set())

        async def learn() -> None:
            while not show.learned_file.exists():
                show.osc.send_message("/soundscape/learn", "vace_context_scale")
                await asyncio.sleep(0.3)  # armed (UDP may drop the first)
                for value in (10, 12, 15):  # a knob turned: CC 21 on channel 4
                    controller.send(cc21(value))
                    await asyncio.sleep(0.01)  # JACK pacing
                await asyncio.sleep(0.3)

        async with asyncio.timeout(WAIT):
            await learn()
        learned = json.loads(show.learned_file.read_text())["mappings"]
        assert [(m["type"], m["channel"], m["number"], m["target"]) for m in learned] == [
            ("cc", 4, 21, "vace_context_scale")
        ]
        assert "mappings" not in show.config.read_text()  # the config is never written
        known = show.session_ids()
        show.kill9(first)

        second = show.start()
        await show.new_session(known)

        async def turn() -> None:
            while True:  # the connection goes live a JACK cycle after the port opens
                controller.send(cc21(127))
                await asyncio.sleep(0.2)

        turning = asyncio.create_task(turn())
        try:
            await show.session_shows(lambda p: p.get("vace_context_scale") == 2.0)
        finally:
            turning.cancel()
        show.stop(second)
    finally:
        show.close()


async def test_a_binding_learned_from_the_command_line_is_taken_on_sighup(
    tmp_path: Path, emulator: Emulator, controller: Any
) -> None:
    """The documented service workflow: `soundscape midi-learn` as the service user writes
    to the state directory (the config stays read-only), `systemctl reload` takes it live."""
    show = Show(tmp_path, emulator, midi_input=controller.client)
    show.config.chmod(0o444)
    try:
        daemon = show.start()
        await show.new_session(set())
        learn = show.midi_learn("vace_context_scale")
        assert learn.stdout is not None
        line = await asyncio.to_thread(learn.stdout.readline)
        assert line.startswith("listening on"), line
        async with asyncio.timeout(WAIT):
            while learn.poll() is None:  # its input goes live a JACK cycle after opening
                for value in (10, 12, 15):
                    controller.send(cc21(value))
                    await asyncio.sleep(0.01)  # JACK pacing
                await asyncio.sleep(0.3)
        assert learn.returncode == 0, learn.stdout.read()
        assert str(show.learned_file) in learn.stdout.read()

        daemon.send_signal(signal.SIGHUP)  # systemctl reload soundscape

        async def turn() -> None:
            while True:
                controller.send(cc21(127))
                await asyncio.sleep(0.2)

        turning = asyncio.create_task(turn())
        try:
            await show.session_shows(lambda p: p.get("vace_context_scale") == 2.0)
        finally:
            turning.cancel()
        assert len([s for s in emulator.state()["sessions"] if s["open"]]) == 1  # no reconnect
        show.stop(daemon)
        assert "config_reload_requested" in [e["event"] for e in show.events()]
    finally:
        show.close()
