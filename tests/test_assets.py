"""Reference images: uploaded once per content, uploaded again when the server lost them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from soundscape.emulator import Emulator, EmulatorConfig
from soundscape.scope.api import ScopeClient
from soundscape.scope.assets import ReferenceImages


async def start_emulator() -> Emulator:
    emu = Emulator(EmulatorConfig(width=320, height=192))
    await emu.start(host="127.0.0.1", port=0)
    return emu


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emu = await start_emulator()
    try:
        yield emu
    finally:
        await emu.stop()


def write_png(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", (16, 16), colour).save(path)
    return path


def file_bytes(path: str | Path) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


async def test_nothing_to_do_while_the_server_has_them(emulator: Emulator, tmp_path: Path):
    image = write_png(tmp_path / "a.png", (200, 0, 0))
    async with ScopeClient(emulator.url) as client:
        images = ReferenceImages(client.upload_asset, client.assets)
        assert await images.refresh() == {}  # nothing uploaded yet: not even a list request
        path = await images.path_for(image)
        assert await images.refresh() == {}
        assert images.uploads == 1 and images.cached(image) == path


async def test_lost_assets_are_uploaded_again_under_the_same_path(
    emulator: Emulator, tmp_path: Path
):
    image = write_png(tmp_path / "a.png", (0, 200, 0))
    async with ScopeClient(emulator.url) as client:
        images = ReferenceImages(client.upload_asset, client.assets)
        path = await images.path_for(image)
        assert path is not None
        assert emulator.fault_lose_assets() == 1
        image.unlink()  # the bytes are kept: the local file may be gone by then
        assert await images.refresh() == {}  # same name, same path: nothing to rewrite
        assert file_bytes(path) is not None and images.uploads == 2


async def test_a_new_pod_gives_new_paths(tmp_path: Path):
    image = write_png(tmp_path / "a.png", (0, 0, 200))
    old_pod, new_pod = await start_emulator(), await start_emulator()
    clients = [ScopeClient(old_pod.url), ScopeClient(new_pod.url)]
    current = clients[0]

    async def upload(name: str, data: bytes) -> str:
        return await current.upload_asset(name, data)

    async def listing() -> list[Any]:
        return await current.assets()

    try:
        images = ReferenceImages(upload, listing)
        old = await images.path_for(image)
        current = clients[1]  # the same URL now answers from a new pod
        moved = await images.refresh()
        assert old is not None and list(moved) == [old]
        assert moved[old] != old and file_bytes(moved[old]) == file_bytes(image)
        assert images.cached(image) == moved[old]
    finally:
        for client in clients:
            await client.aclose()
        await old_pod.stop()
        await new_pod.stop()
