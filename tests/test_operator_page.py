"""The operator's page in a real headless Chromium against a running daemon and emulator.

Debian's ``chromium`` driven by Playwright's Python client with the system executable:
nothing is downloaded. The page must show the session streaming, change the scene at
the emulator when a scene button is clicked, and show a fault as reconnecting and then
streaming again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from soundscape.app import Daemon, run
from soundscape.config import load
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
