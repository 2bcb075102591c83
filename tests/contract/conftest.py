"""The contract lab fixture: a fresh emulator at the v0.2.4 defaults for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from lab import Lab

from soundscape.emulator import Emulator, EmulatorConfig


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    emu = Emulator(EmulatorConfig(loras=[]))
    await emu.start()
    http = httpx.AsyncClient(base_url=emu.url, timeout=10.0)
    lab = Lab(emu, http)
    try:
        yield lab
    finally:
        await lab.close()
        await http.aclose()
        await emu.stop()
