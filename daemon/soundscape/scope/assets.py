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

A standby server (``soundscape.screens``) gets every image too: its
``ReferenceImages`` follows the primary's (:meth:`follow`), receiving each new
upload as it happens and, on its own refresh, whatever its server lacks. The
parameter state keeps the primary's paths; a server whose assets live elsewhere
gives its own path for the same image, so the standby's session is sent its own
paths (:meth:`translate`).
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
        self._followers: list[ReferenceImages] = []
        self._leader: ReferenceImages | None = None
        self._sending: set[asyncio.Task[str | None]] = set()  # uploads to followers
        self.uploads = 0

    def follow(self, leader: ReferenceImages) -> None:
        """Receive every image ``leader`` uploads (a standby follows its primary)."""
        self._leader = leader
        leader._followers.append(self)
        for digest, (name, data) in leader._data.items():
            self._data.setdefault(digest, (name, data))

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
        for follower in self._followers:  # a standby shows the same images
            if digest not in follower._paths:
                follower._data[digest] = (name, data)
                # In the background: a standby that is away must not hold up the primary.
                task = asyncio.get_running_loop().create_task(follower._send(digest, name, data))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
        return path

    async def settled(self) -> None:
        """Until the uploads to followers started so far have ended (one way or another)."""
        if self._sending:
            await asyncio.wait(list(self._sending))

    def translate(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with the leader's image paths (the state's) replaced by this
        server's own, for a standby's session; unknown paths are left as they are."""
        images = params.get("vace_ref_images")
        if self._leader is None or not isinstance(images, list):
            return params
        digests = {path: digest for digest, path in self._leader._paths.items()}
        own = [self._paths.get(digests.get(p, ""), p) if isinstance(p, str) else p for p in images]
        return {**params, "vace_ref_images": own}

    async def refresh(self) -> dict[str, str]:
        """Upload again what the server lost; returns ``{old path: new path}`` for moved ones.

        Raises ScopeError when the server's asset list cannot be read (the
        caller keeps the current paths and tries again before the next session).
        """
        if not self._data or self._list is None or self._upload is None:
            return {}
        async with self._refresh_lock:
            present = {str(getattr(a, "path", a)) for a in await self._list()}
            moved: dict[str, str] = {}
            # Also what a followed primary uploaded while this server was away.
            known = {digest: self._paths.get(digest) for digest in self._data}
            for digest, old in known.items():
                if old is not None and old in present:
                    continue
                name, data = self._data[digest]
                new = await self._send(digest, name, data)
                if new is None:
                    continue  # logged; the old path is kept and tried again next time
                log.info("reference_image_uploaded_again", old=old, path=new)
                if old is not None and new != old:
                    moved[old] = new
            return moved

    def forget(self) -> None:
        """Drop every server path (the next use uploads again)."""
        self._paths.clear()
