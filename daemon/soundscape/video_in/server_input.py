"""Scope's own input (``input_source``): an NDI, Spout or Syphon source on the GPU host.

The alternative to sending a track when the source lives where Scope runs.
Offered only when the server's ``GET /api/v1/hardware/info`` says that type is
available: the real server accepts ``input_source`` everywhere and, where it
lacks the type, only logs an error and streams nothing (behaviour 28). It
takes effect in a new session (the data channel drops it), so a session that
opened before the answer is rebuilt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from soundscape.errors import ScopeError
from soundscape.scope.api import ScopeClient
from soundscape.scope.params import ParameterStore
from soundscape.tasks import Supervised, supervise
from soundscape.video_in.spec import SourceSpec

log = structlog.get_logger(__name__)

RETRY = 2.0  # s between attempts while the server is away


def availability(info: dict[str, Any], source_type: str) -> tuple[bool, str]:
    """(available, why not) for ``source_type`` from the hardware info (pure)."""
    entry = info.get(source_type)
    if not isinstance(entry, dict):
        return False, f"the server does not report {source_type}"
    if entry.get("available") is True:
        return True, ""
    reason = entry.get("reason") or "not available"
    hint = entry.get("install_hint")
    return False, f"{reason}" + (f" ({hint})" if hint else "")


def input_source(spec: SourceSpec) -> dict[str, Any]:
    return {"enabled": True, "source_type": spec.server_type, "source_name": spec.target}


class ServerInput:
    def __init__(
        self,
        spec: SourceSpec,
        store: ParameterStore,
        client: ScopeClient,
        rebuild: Callable[[str], None],
    ) -> None:
        self.spec = spec
        self._store = store
        self._client = client
        self._rebuild = rebuild
        self.available: bool | None = None  # None until the server answered
        self._part: Supervised | None = None

    async def start(self) -> None:
        self._part = supervise("scope-input-source", self._check)

    async def stop(self) -> None:
        if self._part is not None:
            await self._part.stop()
            self._part = None

    async def _check(self) -> None:
        while True:
            try:
                info = await self._client.hardware_info()
            except ScopeError as err:
                log.debug("hardware_info_unavailable", error=str(err))
                await asyncio.sleep(RETRY)  # the server is away: ask again later
                continue
            break
        self.available, why = availability(info, self.spec.server_type)
        if not self.available:
            log.error(
                "scope_input_source_unavailable",
                source=str(self.spec),
                reason=why,
                effect="video mode gets no frames: use a local source (ndi:NAME) instead",
            )
            return
        log.info("scope_input_source", source=str(self.spec))
        self._store.set("input_source", input_source(self.spec), source="video_in")
        self._rebuild("Scope's input_source set: a new session")
