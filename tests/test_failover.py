"""A hot or warm standby Scope server, and several screens from one daemon (issue 12).

The servers are emulator *processes* on fixed ports: the primary is SIGKILLed as a
crashed pod would die, stalled, and started again on the same address. What the
outputs receive is recorded at the screen's frame sink (where the NDI, Spout,
Syphon and record outputs take their frames): the longest gap between two frames
there is the longest freeze a viewer could see. bench/failover.py measures the
same at a real NDI receiver, from picture content.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator_process import EmulatorProcess
from soundscape.app import Daemon
from soundscape.config import Config, parse
from soundscape.emulator import Emulator, EmulatorConfig
from soundscape.errors import ParamError

GOAL = 0.25  # s: the longest freeze a hot standby may show (issue 12)
WARM_GOAL = 1.5  # s: a warm standby starts a session first (~0.3 s) after the watchdog
WAIT = 20.0


class Recorder:
    """The outputs' side of the switch: when each frame arrived."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.arrived = asyncio.Event()

    def on_frame(self, frame: Any) -> None:
        self.times.append(time.monotonic())
        self.arrived.set()

    def on_stream_state(self, streaming: bool) -> None:
        pass

    def longest_gap(self, since: float) -> float:
        times = [t for t in self.times if t >= since]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    async def frames_after(self, t: float, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while sum(1 for x in self.times if x > t) < count:
                self.arrived.clear()
                await self.arrived.wait()


def config(primary: str, standby: str, *, mode: str = "hot", switch_back: str = "now") -> Config:
    return parse(
        {
            "scope": [{"url": primary}, {"url": standby, "role": "standby", "mode": mode}],
            "failover": {"switch_back": switch_back, "back_after": 0.5},
            "pipeline": {"width": 320, "height": 192},
            "osc": {"enabled": False},
            "http": {"enabled": False},
        }
    )


class Show:
    """The daemon in this process, its switch's changes as a queue."""

    def __init__(self, cfg: Config) -> None:
        self.recorder = Recorder()
        self.daemon = Daemon(cfg, frame_sink=self.recorder)
        self.screen = self.daemon.main_screen
        assert self.screen.failover is not None
        self.switches: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.screen.failover.on_change(self.switches.put_nowait)

    async def switched_to(
        self, name: str, reason: str | None = None, timeout: float = WAIT
    ) -> dict[str, Any]:
        """The next switch to ``name`` (for ``reason``, when given)."""
        async with asyncio.timeout(timeout):
            while True:
                status = await self.switches.get()
                why = status["last_switch"]["reason"]
                if status["active"] == name and reason in (None, why):
                    return status

    async def streaming(self, *names: str) -> None:
        """Until the named servers' supervisors all report frames flowing."""
        done = asyncio.Event()

        def check(_status: Any = None) -> None:
            sups = self.screen.supervisors
            if all(sups[n].status.state == "streaming" for n in names):
                done.set()

        for name in names:
            self.screen.supervisors[name].on_status(check)
        check()
        async with asyncio.timeout(WAIT):
            await done.wait()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[EmulatorProcess, EmulatorProcess]]:
    a, b = EmulatorProcess(tmp_path), EmulatorProcess(tmp_path)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
async def hot(servers: tuple[EmulatorProcess, EmulatorProcess]) -> AsyncIterator[Show]:
    a, b = servers
    await asyncio.gather(a.start(), b.start())
    show = Show(config(a.url, b.url))
    await show.daemon.start()
    try:
        await show.streaming("main", "standby")
        yield show
    finally:
        await show.daemon.stop()


def drain(queue: asyncio.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def prompt_of(session: dict[str, Any]) -> str:
    params = session["parameters"]
    transition = params.get("transition")
    prompts = transition["target_prompts"] if transition else params.get("prompts", [{}])
    return str(prompts[0].get("text"))


async def both_show(a: EmulatorProcess, b: EmulatorProcess, text: str) -> None:
    """Until the open session on each server has ``text`` as its prompt."""

    def shows(state: dict[str, Any]) -> bool:
        live = [s for s in state["sessions"] if s["open"]]
        return bool(live) and prompt_of(live[-1]) == text

    await asyncio.gather(a.wait_for(shows), b.wait_for(shows))


async def test_a_killed_primary_is_replaced_by_the_hot_standby_within_the_goal(
    hot: Show, servers: tuple[EmulatorProcess, EmulatorProcess]
) -> None:
    a, b = servers
    hot.daemon.store.set_prompts(["a red fox in snow"], source="osc:test")
    await both_show(a, b, "a red fox in snow")  # every change goes to both servers

    await hot.recorder.frames_after(time.monotonic(), 30)
    killed = time.monotonic()
    a.kill9()
    status = await hot.switched_to("standby")
    assert status["last_switch"]["reason"].startswith("main: ")  # no frame, or session lost
    await hot.recorder.frames_after(time.monotonic(), 30)
    gap = hot.recorder.longest_gap(killed - 0.5)
    assert gap <= GOAL, f"the outputs froze for {gap * 1000:.0f} ms when the primary died"

    # A change while the primary is away reaches the standby now and the primary later.
    hot.daemon.store.set_prompts(["a lighthouse at dusk"], source="osc:test")
    await a.start()  # the same address, a new process: not_loaded, no sessions
    back = time.monotonic()
    status = await hot.switched_to("main")
    assert status["last_switch"]["reason"] == "main streams again"
    await hot.recorder.frames_after(time.monotonic(), 30)
    gap = hot.recorder.longest_gap(back)
    assert gap <= GOAL, f"the switch back froze the outputs for {gap * 1000:.0f} ms"
    await both_show(a, b, "a lighthouse at dusk")  # the new session got the whole state


async def test_both_servers_hold_the_same_state_after_every_change(
    hot: Show, servers: tuple[EmulatorProcess, EmulatorProcess]
) -> None:
    """Every kind of change, one after the other: each time both sessions hold the same."""
    a, b = servers
    store = hot.daemon.store
    changes = [
        lambda: store.set("kv_cache_attention_bias", 0.55, source="osc:test"),
        lambda: store.set_prompts(["a glass forest"], source="midi:test"),
        lambda: store.transition(
            [{"text": "a glass desert", "weight": 1.0}], num_steps=4, source="osc:test"
        ),
        lambda: store.set("denoising_step_list", [1000, 500], source="mapping"),
        lambda: store.set("manage_cache", False, source="osc:test"),
    ]
    for change in changes:
        change()
        want = store.wire_view()
        want_prompt = want.pop("prompts")[0]["text"]  # (a transition's target)

        def holds(
            state: dict[str, Any], want: dict[str, Any] = want, text: str = want_prompt
        ) -> bool:
            live = [s for s in state["sessions"] if s["open"]]
            if not live:
                return False
            got = live[-1]["parameters"]
            same = all(got.get(k) == v for k, v in want.items())
            return same and prompt_of(live[-1]) == text

        await asyncio.gather(a.wait_for(holds), b.wait_for(holds))
    (last_a,) = a.open_sessions(await a.state())
    (last_b,) = b.open_sessions(await b.state())
    assert last_a["parameters"] == last_b["parameters"]


async def test_a_change_made_on_the_primarys_server_reaches_the_standby(
    hot: Show, servers: tuple[EmulatorProcess, EmulatorProcess]
) -> None:
    """Scope's own parameters_updated (another client, Scope's UI) is the show's state too."""
    import httpx

    a, b = servers
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{a.url}/api/v1/session/parameters",
            json={"prompts": [{"text": "a red fox", "weight": 1.0}]},
            timeout=5.0,
        )
        response.raise_for_status()
    await both_show(a, b, "a red fox")


@pytest.mark.parametrize(
    "fault",
    [
        "/_emulator/stall",  # frames stop; the server answers everything else
        "/api/v1/restart",  # the real server's restart: frames stop, /health refused ~4 s
    ],
)
async def test_a_stalled_or_restarted_primary_is_replaced_too(
    hot: Show, servers: tuple[EmulatorProcess, EmulatorProcess], fault: str
) -> None:
    a, _b = servers
    await hot.recorder.frames_after(time.monotonic(), 30)
    began = time.monotonic()
    await a.post(fault)
    await hot.switched_to("standby")
    await hot.recorder.frames_after(time.monotonic(), 15)
    gap = hot.recorder.longest_gap(began - 0.5)
    assert gap <= GOAL, f"the outputs froze for {gap * 1000:.0f} ms ({fault})"
    if fault == "/api/v1/restart":  # back on the same process: the primary is shown again
        await hot.switched_to("main", "main streams again")


async def test_a_manual_switch_over_the_command_bus(hot: Show) -> None:
    assert hot.screen.failover is not None
    # (A loaded machine may already have moved to the standby once: switch to the other.)
    target = "standby" if hot.screen.failover.active == "main" else "main"
    shown = await hot.daemon.commands.call("failover", target, source="osc-command:test")
    assert shown == target
    await hot.switched_to(target, "asked by osc-command:test")
    with pytest.raises(ParamError, match="no server 'nobody'"):
        await hot.daemon.commands.call("failover", "nobody", source="osc-command:test")
    # A hand's choice sticks: it is the preferred server now, not switched back from
    # (back_after is 0.5 s; 30 frames later the outputs still show it).
    assert hot.screen.failover.status()["preferred"] == target
    await hot.recorder.frames_after(time.monotonic(), 30)
    assert hot.screen.failover.active == target
    assert all(s["active"] == target for s in drain(hot.switches))


async def test_a_manual_switch_over_osc_with_feedback(
    servers: tuple[EmulatorProcess, EmulatorProcess],
) -> None:
    """/soundscape/failover over real UDP; the switch comes back as OSC feedback."""
    from pythonosc.osc_message import OscMessage
    from pythonosc.udp_client import SimpleUDPClient

    a, b = servers
    await asyncio.gather(a.start(), b.start())
    loop = asyncio.get_running_loop()
    heard: asyncio.Queue[OscMessage] = asyncio.Queue()

    class Listener(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if data.startswith(b"/soundscape/failover"):
                heard.put_nowait(OscMessage(data))

    transport, _ = await loop.create_datagram_endpoint(Listener, local_addr=("127.0.0.1", 0))
    feedback_port = transport.get_extra_info("sockname")[1]
    cfg = config(a.url, b.url, switch_back="never")
    cfg = dataclasses.replace(
        cfg,
        osc=dataclasses.replace(
            cfg.osc, enabled=True, port=0, feedback=[f"127.0.0.1:{feedback_port}"]
        ),
    )
    show = Show(cfg)
    await show.daemon.start()
    try:
        await show.streaming("main", "standby")
        assert show.daemon.osc.address is not None
        controller = SimpleUDPClient(*show.daemon.osc.address)
        assert show.screen.failover is not None
        target = "standby" if show.screen.failover.active == "main" else "main"
        controller.send_message("/soundscape/failover", [target])
        await show.switched_to(target)
        async with asyncio.timeout(WAIT):
            while True:
                message = await heard.get()
                if message.params[0] == target:
                    break
        assert message.params[1].startswith("asked by osc-command:127.0.0.1:")
    finally:
        await show.daemon.stop()
        transport.close()


async def test_a_warm_standby_has_no_session_until_the_primary_dies(
    servers: tuple[EmulatorProcess, EmulatorProcess],
) -> None:
    a, b = servers
    await asyncio.gather(a.start(), b.start())
    show = Show(config(a.url, b.url, mode="warm"))
    standby = show.screen.supervisors["standby"]
    warm = asyncio.Event()
    standby.on_status(lambda s: warm.set() if s["state"] == "warm" else None)
    await show.daemon.start()
    try:
        await show.streaming("main")
        async with asyncio.timeout(WAIT):
            await warm.wait()
        state = await b.state()
        assert state["pipeline"]["status"] == "loaded"  # ready to take over...
        assert not b.open_sessions(state)  # ...without a session: no GPU time spent

        await show.recorder.frames_after(time.monotonic(), 30)
        killed = time.monotonic()
        a.kill9()
        await show.switched_to("standby")
        await show.recorder.frames_after(time.monotonic(), 15)
        gap = show.recorder.longest_gap(killed - 0.5)
        assert gap <= WARM_GOAL, f"the warm takeover froze the outputs for {gap:.2f} s"

        await a.start()
        await show.switched_to("main")
        # Shown no more: the standby closes its session and is warm again.
        await b.wait_for(lambda s: not b.open_sessions(s))
    finally:
        await show.daemon.stop()


SCENE_SHOW = {
    "pipeline": {"width": 320, "height": 192},
    "osc": {"enabled": False},
    "http": {"enabled": False},
    "beat": {"default_bpm": 240.0},  # a bar a second: the test waits for bar lines
    "scenes": {
        "start": "dawn",
        "quantize": "bar",
        "transition_steps": 0,
        "list": [
            {"name": "dawn", "prompts": ["a misty dawn"]},
            {"name": "noon", "prompts": ["a bright noon"]},
        ],
    },
}


def screen_entry(url: str, name: str, scenes: list[str]) -> dict[str, Any]:
    return {
        "url": url,
        "role": "screen",
        "name": name,
        "scenes": {
            "start": scenes[0],
            "quantize": "bar",
            "transition_steps": 0,
            "list": [{"name": s, "prompts": [f"{name}: {s}"]} for s in scenes],
        },
    }


@pytest.fixture
async def three_servers() -> AsyncIterator[list[Emulator]]:
    emulators = [Emulator(EmulatorConfig(width=320, height=192, fps=30, load_time=0.1))]
    emulators += [Emulator(EmulatorConfig(width=320, height=192, fps=30, load_time=0.1))]
    emulators += [Emulator(EmulatorConfig(width=320, height=192, fps=30, load_time=0.1))]
    for emulator in emulators:
        await emulator.start(host="127.0.0.1", port=0)
    try:
        yield emulators
    finally:
        for emulator in emulators:
            await emulator.stop()


async def shows_prompt(emulator: Emulator, text: str) -> None:
    def check(state: dict[str, Any]) -> bool:
        live = [s for s in state["sessions"] if s["open"]]
        return bool(live) and prompt_of(live[-1]) == text

    await emulator.wait_for(check, timeout=WAIT)


async def test_three_screens_each_with_its_own_scene_all_on_one_beat(
    three_servers: list[Emulator],
) -> None:
    main, left, right = three_servers
    cfg = parse(
        {
            **SCENE_SHOW,
            "scope": [
                {"url": main.url},
                screen_entry(left.url, "left", ["storm", "calm"]),
                screen_entry(right.url, "right", ["ocean", "desert"]),
            ],
        }
    )
    daemon = Daemon(cfg, frame_sink=Recorder())
    await daemon.start()
    try:
        assert set(daemon.screens) == {"main", "left", "right"}
        # Each screen streams its own scene from its own server.
        await shows_prompt(main, "a misty dawn")
        await shows_prompt(left, "left: storm")
        await shows_prompt(right, "right: ocean")

        # One scene change per screen, asked at the same moment, quantized to the bar:
        # they land together, on one bar line of the one beat clock.
        landed: dict[str, float] = {}
        all_landed = asyncio.Event()
        clock = daemon.mapping.runner
        for name, screen in daemon.screens.items():

            def on_change(changes: dict[str, Any], source: str, name: str = name) -> None:
                if "prompts" in changes or "transition" in changes:
                    landed.setdefault(name, clock.state().beats)
                    if len(landed) == 3:
                        all_landed.set()

            screen.store.subscribe(on_change)
        buses = {
            "main": daemon.commands,
            **{n: daemon.screens[n].commands for n in ("left", "right")},
        }
        await asyncio.gather(
            *(bus.call("scene", "next", source="osc-command:test") for bus in buses.values())
        )
        assert not landed  # quantized: nothing changes before the bar line
        async with asyncio.timeout(WAIT):
            await all_landed.wait()
        positions = list(landed.values())
        bar = 4 * round(positions[0] / 4)
        assert all(abs(p - bar) < 0.05 for p in positions), landed  # one bar line, all three

        await shows_prompt(main, "a bright noon")
        await shows_prompt(left, "left: calm")
        await shows_prompt(right, "right: desert")
        scenes = {name: s["scene"] for name, s in daemon.screens_status().items()}
        assert scenes == {"main": "noon", "left": "calm", "right": "desert"}
    finally:
        await daemon.stop()


async def test_the_standby_gets_every_reference_image_the_primary_gets(
    hot: Show, servers: tuple[EmulatorProcess, EmulatorProcess], tmp_path: Path
) -> None:
    import httpx
    from PIL import Image

    image = tmp_path / "ref.png"
    Image.new("RGB", (16, 16), (0, 90, 200)).save(image)
    path = await hot.daemon.supervisor.assets.path_for(image)  # what a scene's image does
    assert path is not None
    a, b = servers
    standby = hot.screen.supervisors["standby"]
    async with asyncio.timeout(WAIT):
        await hot.daemon.supervisor.assets.settled()  # the standby's upload runs in the background
    (own,) = standby.assets.server_paths
    async with httpx.AsyncClient() as client:
        for server, expected in ((a, path), (b, own)):
            response = await client.get(f"{server.url}/api/v1/assets", timeout=5.0)
            assert expected in [asset["path"] for asset in response.json()["assets"]]

    # Each server's session is sent the path its own server gave the image.
    hot.daemon.store.set("vace_ref_images", [path], source="scene")

    def shows(expected: str) -> Any:
        def check(state: dict[str, Any]) -> bool:
            live = [s for s in state["sessions"] if s["open"]]
            return bool(live) and live[-1]["parameters"].get("vace_ref_images") == [expected]

        return check

    await asyncio.gather(a.wait_for(shows(path)), b.wait_for(shows(own)))
