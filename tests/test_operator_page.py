"""The operator's page in a real headless Chromium against a running daemon and emulator.

Debian's ``chromium`` driven by Playwright's Python client with the system executable:
nothing is downloaded. The page must show the session streaming, change the scene at
the emulator when a scene button is clicked, and show a fault as reconnecting and then
streaming again. With a standby (emulator processes, the primary SIGKILLed) it shows
which server the outputs show and switches by hand; with further screens, a line each.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator_process import EmulatorProcess
from soundscape.app import Daemon, run
from soundscape.config import Config, load, parse
from soundscape.emulator import Emulator, EmulatorConfig
from soundscape.web.config import HttpConfig

CHROMIUM = os.environ.get("SOUNDSCAPE_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SHOTS = os.environ.get("SOUNDSCAPE_SCREENSHOTS")  # a directory: save the docs' screenshots

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright not installed")
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} not installed (apt-get install chromium)"
)

SHOW = """
[state]
enabled = false

[scenes]
start = "shore"
quantize = "none"

[[scenes.list]]
name = "shore"
prompts = ["a quiet shore at dawn"]

[[scenes.list]]
name = "city"
prompts = ["a city waking up, lights flickering on"]

[pipeline]
loras = [{ name = "ink", path = "/emulator/loras/ink.safetensors", scale = 0.5 }]
"""


@pytest.fixture
async def show(tmp_path: Path) -> AsyncIterator[tuple[Daemon, Emulator]]:
    emulator = Emulator(
        EmulatorConfig(
            width=320,
            height=192,
            fps=30,
            load_time=0.2,
            loras=["/emulator/loras/ink.safetensors"],
        )
    )
    await emulator.start(host="127.0.0.1", port=0)
    path = tmp_path / "show.toml"
    path.write_text(SHOW)
    config = load(path)
    config = dataclasses.replace(
        config,
        scope=dataclasses.replace(config.scope, url=emulator.url),
        osc=dataclasses.replace(config.osc, port=0),
        http=HttpConfig(listen="127.0.0.1:0"),
    )
    stop = asyncio.Event()
    started: asyncio.Future[Daemon] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run(config, shutdown_trigger=stop.wait, on_started=started.set_result)
    )
    try:
        daemon = await asyncio.wait_for(asyncio.shield(started), 30)
        assert daemon.control is not None and daemon.control.url
        yield daemon, emulator
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await emulator.stop()


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[Daemon]:
    """``run()`` as ``soundscape run`` does, until the block ends."""
    stop = asyncio.Event()
    started: asyncio.Future[Daemon] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run(config, shutdown_trigger=stop.wait, on_started=started.set_result)
    )
    try:
        daemon = await asyncio.wait_for(asyncio.shield(started), 30)
        assert daemon.control is not None and daemon.control.url
        yield daemon
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def session_prompts(emulator: Emulator) -> str:
    """The prompts the emulator's live session has now (a scene arrives as a transition)."""
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{emulator.url}/api/v1/session/parameters", timeout=5)
    params = answer.json()["parameters"]
    return str([params.get("prompts"), (params.get("transition") or {}).get("target_prompts")])


# Every state the badge shows, in order, even one replaced before the next paint (a
# reconnect to a local emulator takes well under a second).
RECORD_STATES = """
window.__states = [];
document.addEventListener("DOMContentLoaded", () => {
  const badge = document.querySelector("[data-testid=session-state]");
  new MutationObserver(() => {
    const s = badge.dataset.state;
    if (s && window.__states[window.__states.length - 1] !== s) window.__states.push(s);
  }).observe(badge, { attributes: true, attributeFilter: ["data-state"] });
});
"""


async def shot(page: Any, name: str) -> None:
    if SHOTS:
        await page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


async def test_the_page_streams_changes_scene_and_rides_out_a_fault(show, browser):
    daemon, emulator = show
    assert daemon.control is not None
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.add_init_script(RECORD_STATES)
    await page.goto(daemon.control.url + "/")
    state = page.get_by_test_id("session-state")

    await page.wait_for_selector(
        '[data-testid=session-state][data-state="streaming"]', timeout=30_000
    )
    # The preview shows pictures, and the scene buttons come from the daemon's scene book.
    await page.wait_for_function(
        "Number(document.getElementById('preview').dataset.frames || 0) >= 2", timeout=15_000
    )
    await page.wait_for_selector('[data-testid=scene]:text("shore")', timeout=15_000)
    # One server: no failover badge, no servers' or screens' boxes (the page as before).
    for box in ("shown", "failover", "screens"):
        assert await page.get_by_test_id(box).is_hidden(), box
    await shot(page, "operator-streaming.png")

    await page.click('button[data-scene="city"]')
    await page.wait_for_selector('[data-testid=scene]:text("city")', timeout=15_000)
    # At the emulator: the session parameters now carry the city scene's prompt.
    async with asyncio.timeout(15):
        while "a city waking up" not in await session_prompts(emulator):  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # the emulator has no change event over HTTP
    await page.wait_for_selector(
        '[data-testid=prompts] li:text("a city waking up")', timeout=10_000
    )

    # A fault at the emulator (over its HTTP API) shows as reconnecting, then streaming.
    after_fault = await page.evaluate("window.__states.length")
    async with httpx.AsyncClient() as client:
        assert (await client.post(f"{emulator.url}/_emulator/drop", timeout=5)).status_code == 200
    await page.wait_for_function(
        f"""(() => {{
            const s = window.__states.slice({after_fault});
            const lost = s.indexOf("reconnecting");
            return lost >= 0 && s.indexOf("streaming", lost) > lost;
        }})()""",
        timeout=30_000,
    )
    assert "streaming" in (await state.text_content() or "")
    history = await page.get_by_test_id("history").text_content() or ""
    assert "reconnecting" in history
    await shot(page, "operator-recovered.png")


async def test_the_buttons_go_through_the_command_bus(show, browser):
    daemon, _ = show
    assert daemon.control is not None
    page = await browser.new_page()
    await page.goto(daemon.control.url + "/")
    await page.wait_for_selector(
        '[data-testid=session-state][data-state="streaming"]', timeout=30_000
    )
    assert daemon.store.get("paused") is False

    async def until(predicate: Any) -> None:
        async with asyncio.timeout(10):
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # state in the daemon; no event to await here

    await page.click('button[data-command="pause"]')
    await until(lambda: daemon.store.get("paused") is True)
    await page.click('button[data-command="pause"]')
    await until(lambda: daemon.store.get("paused") is False)

    await page.click('button[data-scene="city"]')
    await page.wait_for_selector('[data-testid=scene]:text("city")', timeout=15_000)
    await page.click('button[data-command="panic"]')  # back to the safe scene at once
    await page.wait_for_selector('[data-testid=scene]:text("shore")', timeout=15_000)

    taps = daemon.mapping.runner.tapper.taps
    await page.click("#tap")
    await until(lambda: daemon.mapping.runner.tapper.taps == taps + 1)

    sessions = daemon.supervisor.offers
    await page.click('button[data-command="reconnect"]')
    await until(lambda: daemon.supervisor.offers > sessions)  # a new session was offered


# ----- several servers (docs/failover.md)


def standby_show(primary: str, standby: str, mode: str, switch_back: str) -> Config:
    return parse(
        {
            "scope": [
                {"url": primary},
                {"url": standby, "name": "pod-b", "role": "standby", "mode": mode},
            ],
            # A patient watchdog (20 frames, 0.67 s): a loaded test machine's jitter must
            # not cut by itself.
            "failover": {"switch_back": switch_back, "back_after": 0.5, "watchdog_frames": 20},
            "pipeline": {"width": 320, "height": 192},
            "osc": {"enabled": False},
            "state": {"enabled": False},
            "http": {"listen": "127.0.0.1:0"},
        }
    )


# When the header's failover badge changed, on the page's clock (ms since the epoch).
RECORD_SHOWN = """
window.__shown = [];
document.addEventListener("DOMContentLoaded", () => {
  const badge = document.querySelector("[data-testid=shown]");
  new MutationObserver(() => {
    const s = badge.dataset.server;
    const seen = window.__shown[window.__shown.length - 1];
    if (s && (!seen || seen.server !== s)) window.__shown.push({ server: s, at: Date.now() });
  }).observe(badge, { attributes: true, attributeFilter: ["data-server"] });
});
"""
ON_PRIMARY = '[data-testid=shown][data-role="primary"][data-server="main"]'
ON_STANDBY = '[data-testid=shown][data-role="standby"][data-server="pod-b"]'


def server_state(server: str, state: str) -> str:
    return f'[data-testid=failover] tr[data-server="{server}"] [data-state="{state}"]'


@pytest.fixture
async def two_servers(tmp_path: Path) -> AsyncIterator[tuple[EmulatorProcess, EmulatorProcess]]:
    a, b = EmulatorProcess(tmp_path), EmulatorProcess(tmp_path)
    try:
        await asyncio.gather(a.start(), b.start())
        yield a, b
    finally:
        a.close()
        b.close()


class FailoverPage:
    """The page on a daemon with a standby, and every switch the daemon made, in order."""

    def __init__(self, daemon: Daemon, page: Any) -> None:
        assert daemon.main_screen.failover is not None
        self.failover = daemon.main_screen.failover
        self.page = page
        self.errors: list[Any] = []  # a script error would leave stale boxes
        page.on("pageerror", lambda error: self.errors.append(error))
        self.switches: list[dict[str, Any]] = []
        self.failover.on_change(lambda status: self.switches.append(status["last_switch"]))

    @classmethod
    async def open(cls, daemon: Daemon, browser: Any) -> FailoverPage:
        assert daemon.control is not None
        shown = cls(daemon, await browser.new_page(viewport={"width": 1280, "height": 900}))
        await shown.page.add_init_script(RECORD_SHOWN)
        await shown.page.goto(daemon.control.url + "/")
        return shown

    async def primary_shown(self) -> None:
        """Until the primary streams and is on the outputs.

        (While the primary has no frame yet, a standby may take the outputs once; with
        switch_back = never they stay there: the page's button brings main back.)
        """
        await self.page.wait_for_selector(server_state("main", "streaming"), timeout=30_000)
        if self.failover.active != "main" and self.failover.config.switch_back == "never":
            await self.page.click('button[data-failover="main"]')
        await self.page.wait_for_selector(ON_PRIMARY, timeout=30_000)
        assert await self.page.get_by_test_id("shown").text_content() == "outputs: main (primary)"
        assert await self.page.get_by_test_id("screens").is_hidden()  # one screen

    async def standby_takes_over(self, a: EmulatorProcess) -> dict[str, Any]:
        """SIGKILL the primary; the page shows the standby on the outputs at once."""
        page = self.page
        before = await page.evaluate("window.__shown.length")
        a.kill9()  # the primary dies as a crashed pod does
        await page.wait_for_selector(ON_STANDBY, timeout=30_000)
        assert await page.get_by_test_id("shown").text_content() == "outputs: pod-b (standby)"
        last = next(s for s in reversed(self.switches) if s["to"] == "pod-b")
        assert last["reason"].startswith("main: "), last  # no frame, or its session lost
        # On the page as soon as the daemon switched: pushed on the change, not with the
        # next half-second push.
        # (The page's record of main being shown may land just after `before` was read.)
        seen = await page.evaluate(f"window.__shown.slice({before})")
        on_standby = next(entry for entry in seen if entry["server"] == "pod-b")
        delay = on_standby["at"] / 1000 - last["at"]
        print(f"the switch was on the page {delay * 1000:.0f} ms after the daemon made it")
        assert delay < 0.5, (seen, delay)
        line = await page.get_by_test_id("last-switch").text_content() or ""
        assert "main → pod-b" in line and last["reason"] in line, line
        # The dead primary reconnects and says why; the standby streams; no button to
        # switch to a server without frames.
        await page.wait_for_selector(server_state("main", "reconnecting"), timeout=10_000)
        assert await page.text_content('tr[data-server="main"] .reason')
        await page.wait_for_selector(server_state("pod-b", "streaming"), timeout=10_000)
        assert await page.is_disabled('button[data-failover="main"]')
        assert await page.is_disabled('button[data-failover="pod-b"]')  # shown already
        return last


async def test_the_page_shows_the_standby_taking_over_and_switches_back_by_hand(
    two_servers: tuple[EmulatorProcess, EmulatorProcess], browser: Any
) -> None:
    a, b = two_servers
    # A hot standby, never back on its own: the page's button brings the primary back.
    async with running(standby_show(a.url, b.url, "hot", "never")) as daemon:
        shown = await FailoverPage.open(daemon, browser)
        page = shown.page
        await shown.primary_shown()
        await page.wait_for_selector(server_state("pod-b", "streaming"), timeout=30_000)
        await page.wait_for_function(  # the servers' frames, as the failover measures them
            "[...document.querySelectorAll('#failover tbody tr')]"
            ".every((tr) => tr.cells[2].textContent !== '–')",
            timeout=10_000,
        )

        await shown.standby_takes_over(a)

        # The primary comes back; the outputs stay on the standby until the click.
        await a.start()
        await page.wait_for_selector(server_state("main", "streaming"), timeout=30_000)
        clicked = len(shown.switches)
        await page.click('button[data-failover="main"]')
        await page.wait_for_selector(ON_PRIMARY, timeout=10_000)
        made = [(s["from"], s["to"], s["reason"]) for s in shown.switches[clicked:]]
        assert ("pod-b", "main", "asked by http") in made, made
        await page.wait_for_selector(
            '[data-testid=last-switch]:has-text("pod-b → main, asked by http")', timeout=5_000
        )
        assert not shown.errors, shown.errors


async def test_the_page_shows_a_warm_standby_and_the_switch_back(
    two_servers: tuple[EmulatorProcess, EmulatorProcess], browser: Any
) -> None:
    a, b = two_servers
    async with running(standby_show(a.url, b.url, "warm", "now")) as daemon:
        shown = await FailoverPage.open(daemon, browser)
        page = shown.page
        await shown.primary_shown()
        # Not shown, the warm standby waits without a session.
        await page.wait_for_selector(server_state("pod-b", "warm"), timeout=30_000)
        assert "pipeline loaded" in (await page.text_content('tr[data-server="pod-b"] .reason'))
        assert await page.is_enabled('button[data-failover="pod-b"]')  # a click would wake it

        await shown.standby_takes_over(a)
        await shot(page, "operator-failover.png")

        # The primary back and streaming: the outputs go back by themselves, and the
        # standby, shown no more, is warm again.
        await a.start()
        await page.wait_for_selector(ON_PRIMARY, timeout=30_000)
        await page.wait_for_selector(
            '[data-testid=last-switch]:has-text("pod-b → main, main streams again")',
            timeout=5_000,
        )
        await page.wait_for_selector(server_state("pod-b", "warm"), timeout=30_000)
        assert not shown.errors, shown.errors


def screen_entry(url: str, name: str, scenes: list[str]) -> dict[str, Any]:
    return {
        "url": url,
        "role": "screen",
        "name": name,
        "scenes": {
            "start": scenes[0],
            "quantize": "none",
            "list": [{"name": s, "prompts": [f"{name}: {s}"]} for s in scenes],
        },
    }


async def test_further_screens_get_a_line_each_and_their_own_commands(browser: Any) -> None:
    emulators = [
        Emulator(EmulatorConfig(width=320, height=192, fps=30, load_time=0.1)) for _ in range(3)
    ]
    for emulator in emulators:
        await emulator.start(host="127.0.0.1", port=0)
    main, left, left_b = emulators
    show = {
        "scope": [
            {"url": main.url},
            screen_entry(left.url, "left", ["storm", "calm"]),
            # The left screen's own hot standby.
            {"url": left_b.url, "role": "standby", "standby_for": "left", "name": "left-b"},
        ],
        "failover": {"switch_back": "never", "watchdog_frames": 20},
        "scenes": {
            "start": "shore",
            "quantize": "none",
            "list": [{"name": "shore", "prompts": ["a quiet shore"]}],
        },
        "pipeline": {"width": 320, "height": 192},
        "osc": {"enabled": False},
        "state": {"enabled": False},
        "http": {"listen": "127.0.0.1:0"},
    }
    try:
        async with running(parse(show)) as daemon:
            assert daemon.control is not None
            left_failover = daemon.screens["left"].failover
            assert left_failover is not None and daemon.main_screen.failover is None
            switches: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            left_failover.on_change(lambda status: switches.put_nowait(status["last_switch"]))
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[Any] = []
            page.on("pageerror", lambda error: errors.append(error))
            await page.goto(daemon.control.url + "/")
            main_line = '[data-testid=screens] [data-screen="main"]'
            left_line = '[data-testid=screens] [data-screen="left"]'
            await page.wait_for_selector(f'{main_line} > [data-state="streaming"]', timeout=30_000)
            for server in ("left", "left-b"):
                await page.wait_for_selector(
                    f'{left_line} tr[data-server="{server}"] [data-state="streaming"]',
                    timeout=30_000,
                )
            assert await page.text_content(f"{main_line} .scene") == "shore"
            assert await page.text_content(f"{left_line} .scene") == "storm"
            # The main screen has no standby: no failover badge, no servers' box; the main
            # screen's line has no servers, the left one lists its two.
            assert await page.get_by_test_id("shown").is_hidden()
            assert await page.get_by_test_id("failover").is_hidden()
            assert await page.locator(f"{main_line} table").count() == 0
            assert await page.locator(f"{left_line} tr[data-server]").count() == 2

            # A switch by hand on the left screen, from its line (the failover command on
            # the left screen's own bus); whichever server it does not show now.
            target = "left-b" if left_failover.active == "left" else "left"
            await page.click(f'{left_line} button[data-failover="{target}"]')
            async with asyncio.timeout(10):
                while (switch := await switches.get())["reason"] != "asked by http":
                    pass  # a jittery start may have cut once before
            assert switch["to"] == target
            expected = "shows left-b (standby)" if target == "left-b" else "shows left"
            await page.wait_for_selector(f'{left_line} .shown:text-is("{expected}")')
            await page.wait_for_selector(f'{left_line} .lastswitch:has-text("asked by http")')

            # The command endpoint reaches a further screen's own bus ("screen" in the body).
            async with httpx.AsyncClient(base_url=daemon.control.url) as client:
                answer = await client.post(
                    "/api/command/scene", json={"args": ["calm"], "screen": "left"}, timeout=5
                )
                assert answer.status_code == 200, answer.text
                refused = await client.post(
                    "/api/command/scene", json={"args": ["calm"], "screen": "nowhere"}, timeout=5
                )
                assert refused.status_code == 400
                assert "no screen 'nowhere'" in refused.json()["error"]
            await page.wait_for_selector(f'{left_line} .scene:text-is("calm")', timeout=10_000)
            assert await page.text_content(f"{main_line} .scene") == "shore"
            assert daemon.screens_status()["left"]["scene"] == "calm"
            assert not errors, errors
    finally:
        for emulator in emulators:
            await emulator.stop()
