"""Files the daemon uploads to Scope (VACE reference images), kept valid across restarts.

Each local file is uploaded once per content (sha256) and known by the path
the server gave it. A restarted server or a new pod may have lost its assets,
or give them other paths, so before each new session the supervisor calls
:meth:`ReferenceImages.refresh`: it lists the server's assets
(``GET /api/v1/assets``), uploads again what is missing, and returns the paths
that changed, which the supervisor rewrites in the parameter state
(``vace_ref_images``) before the offer carries it.

The only path from the daemon's assets to Scope; the scene director asks it
for a file's server path (:meth:`path_for`) and never uploads by itself.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from soundscape.errors import ScopeError

log = structlog.get_logger(__name__)

Upload = Callable[[str, bytes], Awaitable[str]]
ListAssets = Callable[[], Awaitable[list[Any]]]  # ScopeClient.assets: items with ``.path``


class ReferenceImages:
    """Local images uploaded to Scope once each (keyed by content hash)."""

    def __init__(self, upload: Upload | None, list_assets: ListAssets | None = None) -> None:
        self._upload = upload  # ScopeClient.upload_asset
        self._list = list_assets  # ScopeClient.assets
        self._paths: dict[str, str] = {}  # sha256 → path on the Scope server
        self._data: dict[str, tuple[str, bytes]] = {}  # sha256 → (upload name, bytes)
        self._by_file: dict[Path, str] = {}  # local file → sha256 last read
        self._locks: dict[Path, asyncio.Lock] = {}
        self._refresh_lock = asyncio.Lock()
        self.uploads = 0

    def cached(self, file: Path) -> str | None:
        digest = self._by_file.get(file)
        return None if digest is None else self._paths.get(digest)

    @property
    def server_paths(self) -> set[str]:
        return set(self._paths.values())

    async def path_for(self, file: Path) -> str | None:
        """The server path of ``file``, uploading it if its content is new; None on failure."""
        if self._upload is None:
            return None
        lock = self._locks.setdefault(file, asyncio.Lock())
        async with lock:
            try:
                data = await asyncio.to_thread(file.read_bytes)
            except OSError as err:
                log.warning("reference_image_unreadable", file=str(file), error=err.strerror)
                return None
            digest = hashlib.sha256(data).hexdigest()
            self._by_file[file] = digest
            if digest in self._paths:
                return self._paths[digest]
            name = f"soundscape-{digest[:16]}{file.suffix.lower()}"
            path = await self._send(digest, name, data)
            if path is not None:
                log.info("reference_image_uploaded", file=str(file), path=path, bytes=len(data))
            return path

    async def _send(self, digest: str, name: str, data: bytes) -> str | None:
        assert self._upload is not None
        try:
            path = await self._upload(name, data)
        except ScopeError as err:
            log.warning("reference_image_upload_failed", name=name, error=str(err))
            return None
        self.uploads += 1
        self._paths[digest] = path
        # Kept to upload again after a restart even if the local file is gone by then.
        self._data[digest] = (name, data)
        return path

    async def refresh(self) -> dict[str, str]:
        """Upload again what the server lost; returns ``{old path: new path}`` for moved ones.

        Raises ScopeError when the server's asset list cannot be read (the
        caller keeps the current paths and tries again before the next session).
        """
        if not self._paths or self._list is None or self._upload is None:
            return {}
        async with self._refresh_lock:
            present = {str(getattr(a, "path", a)) for a in await self._list()}
            moved: dict[str, str] = {}
            for digest, old in list(self._paths.items()):
                if old in present:
                    continue
                name, data = self._data[digest]
                new = await self._send(digest, name, data)
                if new is None:
                    continue  # logged; the old path is kept and tried again next time
                log.info("reference_image_uploaded_again", old=old, path=new)
                if new != old:
                    moved[old] = new
            return moved

    def forget(self) -> None:
        """Drop every server path (the next use uploads again)."""
        self._paths.clear()
