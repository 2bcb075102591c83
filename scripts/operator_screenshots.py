"""Takes docs/operator-*.png: `soundscape demo` in headless Chromium (Debian's), via Playwright.

    python scripts/operator_screenshots.py

Streaming, then reconnecting after POST /_emulator/restart, then streaming again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile

import httpx
from playwright.async_api import async_playwright

PORT = 18470
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


async def wait_streaming(base: str) -> dict:
    async with httpx.AsyncClient() as client:
        for _ in range(240):
            try:
                status = (await client.get(f"{base}/api/status")).json()
                if status["session"]["state"] == "streaming":
                    return status
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise SystemExit("the demo did not stream")


async def main() -> None:
    state = tempfile.mkdtemp(prefix="soundscape-shots-")
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "soundscape.cli", "demo", "--http", f"127.0.0.1:{PORT}",
        "--osc-port", "0", "--log-format", "json",
        env={**os.environ, "XDG_STATE_HOME": state}, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{PORT}"
    try:
        status = await wait_streaming(base)
        await asyncio.sleep(6)  # a few bars: levels, tempo, fps history
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 860})
            await page.goto(f"{base}/")
            await page.wait_for_selector('[data-state="streaming"]')
            await asyncio.sleep(4)
            await page.screenshot(path="docs/operator-streaming.png")
            async with httpx.AsyncClient() as client:
                await client.post(f"{status['session']['scope_url']}/_emulator/restart")
            await page.wait_for_selector('[data-state="reconnecting"]', timeout=10_000)
            await asyncio.sleep(1)
            await page.screenshot(path="docs/operator-reconnecting.png")
            await page.wait_for_selector('[data-state="streaming"]', timeout=30_000)
            await asyncio.sleep(3)
            await page.screenshot(path="docs/operator-recovered.png")
            await browser.close()
    finally:
        demo.terminate()
        await asyncio.wait_for(demo.wait(), 20)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
