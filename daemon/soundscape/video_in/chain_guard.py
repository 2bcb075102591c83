"""Keeps the session's pipeline chain right for its mode, live.

On a switch to video mode the configured preprocessors go in front of the
main pipeline, on a switch to text mode every preprocessor goes; a chain the
server's schemas refuse (unknown id, a preprocessor in text mode, a main
pipeline without the mode) is logged once and the last good chain and mode
are put back. The schemas are read from the server once it answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog

from soundscape.errors import ScopeError
from soundscape.scope.api import PipelineSchema, ScopeClient
from soundscape.scope.params import ParameterStore
from soundscape.tasks import Supervised, supervise
from soundscape.video_in.chain import chain_problems, for_mode

log = structlog.get_logger(__name__)

SOURCE = "chain"  # the store changes made here
RETRY = 2.0  # s between attempts to read the schemas while the server is away


class ChainGuard:
    def __init__(
        self, store: ParameterStore, client: ScopeClient, preprocessors: Sequence[str]
    ) -> None:
        self._store = store
        self._client = client
        self._preprocessors = list(preprocessors)
        self.schemas: dict[str, PipelineSchema] = {}
        self._good = self._current()
        self._unsubscribe: Any = None
        self._part: Supervised | None = None
        self.refused = 0

    def _current(self) -> dict[str, Any]:
        return {
            "pipeline_ids": self._store.get("pipeline_ids"),
            "input_mode": self._store.get("input_mode"),
        }

    async def start(self) -> None:
        self._unsubscribe = self._store.subscribe(self._changed)
        self._part = supervise("pipeline-schemas", self._read_schemas)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._part is not None:
            await self._part.stop()
            self._part = None

    async def _read_schemas(self) -> None:
        while True:
            try:
                self.schemas = await self._client.pipeline_schemas()
            except ScopeError as err:
                log.debug("pipeline_schemas_unavailable", error=str(err))
                await asyncio.sleep(RETRY)  # the server is away: ask again later
                continue
            problems = self.problems()
            if problems:
                log.error("pipeline_chain_unusable", problems=problems, **self._current())
            return

    def problems(self) -> list[str]:
        """What is wrong with the current chain (nothing before the schemas are known)."""
        if not self.schemas:
            return []
        current = self._current()
        return chain_problems(current["pipeline_ids"], current["input_mode"], self.schemas)

    def _changed(self, changes: dict[str, Any], source: str) -> None:
        if source == SOURCE or not changes.keys() & {"pipeline_ids", "input_mode"}:
            return
        current = self._current()
        if "input_mode" in changes and "pipeline_ids" not in changes:
            ids = for_mode(
                current["pipeline_ids"], current["input_mode"], self._preprocessors, self.schemas
            )
            if ids != current["pipeline_ids"]:
                self._store.set("pipeline_ids", ids, source=SOURCE)
        problems = self.problems()
        if not problems:
            self._good = self._current()
            return
        self.refused += 1
        log.error("pipeline_chain_refused", problems=problems, asked=changes, keeping=self._good)
        self._store.update(self._good, source=SOURCE)
