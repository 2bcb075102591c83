"""The emulated pipeline manager: load requests, background loading, status.

As on Scope v0.2.4 (``status-sequences.json``): a load answers at once and goes on in
the background; a pipeline already loaded is unloaded first, and while it unloads
(``unload_time``) status reads wait for the manager's lock; ``loading`` shows
``pipeline_id: null`` with the new ``load_params``; a failed load shows ``error`` to
exactly one status read (with ``"error": null``) and ``not_loaded`` after it.
Sessions already streaming keep the instance they started with
(:class:`PipelineInstance` is immutable and handed to each session).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from soundscape.emulator import catalog
from soundscape.emulator.config import EmulatorConfig

log = structlog.get_logger(__name__)

LOADING_STAGE = "Initializing pipeline..."
HELD_LOAD = 0.1  # a switch to a load at most this long holds status reads through it
LIST_MSG = "Input should be a valid list"
EMPTY_LOAD = "Either 'pipelines' or 'pipeline_ids' must be provided"


@dataclass(frozen=True)
class PipelineInstance:
    """One loaded pipeline (chain), as a session streams from it."""

    pipeline_ids: tuple[str, ...]
    load_params: dict[str, Any] = field(hash=False, compare=False)
    generation: int = 0

    @property
    def name(self) -> str:
        return "+".join(self.pipeline_ids)


def parse_load(body: Any) -> tuple[list[str], dict[str, Any]] | str | list[dict[str, Any]]:
    """``(pipeline_ids, load_params)`` of a load body; a 400 text; or pydantic errors.

    Accepts ``{"pipeline_ids": [...], "load_params": {...}}`` and the node form
    ``{"pipelines": [{"node_id", "pipeline_id", "load_params"}]}``. A body naming
    neither is the recorded 400 (``pipeline-load.400-empty.json``).
    """
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        return [catalog.error("model_attributes_type", ["body"], msg, body)]
    params = body.get("load_params") or {}
    if not isinstance(params, dict):
        msg = "Input should be a valid dictionary"
        return [catalog.error("dict_type", ["body", "load_params"], msg, params)]
    nodes, ids = body.get("pipelines"), body.get("pipeline_ids")
    if nodes:
        if not isinstance(nodes, list):
            return [
                catalog.error(
                    "list_type", ["body", "pipelines"], "Input should be a valid list", nodes
                )
            ]
        ids = []
        merged: dict[str, Any] = dict(params)
        for i, node in enumerate(nodes):
            if not isinstance(node, dict) or not isinstance(node.get("pipeline_id"), str):
                loc: list[str | int] = ["body", "pipelines", i, "pipeline_id"]
                return [catalog.error("missing", loc, "Field required", node)]
            node_params = node.get("load_params") or {}
            if isinstance(node_params, dict):
                merged.update(node_params)
            ids.append(node["pipeline_id"])
        return ids, merged
    if not ids:
        return EMPTY_LOAD
    if not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        return [
            catalog.error(
                "list_type", ["body", "pipeline_ids"], "Input should be a valid list", ids
            )
        ]
    return list(ids), dict(params)


class PipelineManager:
    """Status of the (single) pipeline slot and the background load task."""

    def __init__(self, config: EmulatorConfig, on_change: Callable[[], None]) -> None:
        self._config = config
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # held while unloading: status reads wait (~260 ms)
        self.ready = asyncio.Event()  # cleared while unloading: sessions' output pauses
        self.ready.set()
        self.status = "not_loaded"
        self.pipeline_ids: list[str] = []
        self.load_params: dict[str, Any] | None = None
        self.shown_id: str | None = None
        self.loading_stage: str | None = None
        self.load_count = 0
        self.failed_loads = 0
        self.instance: PipelineInstance | None = None
        self.fail_next = False
        self.slow_load: float | None = None  # hostile fault: every load takes this long

    @property
    def error(self) -> None:
        return None  # v0.2.4 never gives a reason

    def load(self, pipeline_ids: list[str], load_params: dict[str, Any]) -> None:
        """Start loading in the background; a load in progress is abandoned for this one."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self.load_count += 1
        fail, self.fail_next = self.fail_next, False
        self._task = asyncio.create_task(
            self._load(self.load_count, list(pipeline_ids), dict(load_params), fail)
        )
        log.info("pipeline_load_started", pipeline_ids=pipeline_ids, load=self.load_count)

    def _load_seconds(self, pipeline_ids: list[str]) -> float:
        if self.slow_load is not None:
            return self.slow_load
        if any(catalog.is_diffusion(p) for p in pipeline_ids):
            return self._config.load_time
        return self._config.cpu_load_time

    async def _load(
        self, generation: int, pipeline_ids: list[str], load_params: dict[str, Any], fail: bool
    ) -> None:
        previous = self.shown_id
        unknown = [p for p in pipeline_ids if p not in catalog.PIPELINES]
        missing = [p for p in pipeline_ids if p in self._config.missing_models]
        culprits = unknown or missing or (["(emulated failure)"] if fail else [])
        # An unregistered id fails at the registry, at once.
        seconds = 0.0 if unknown else self._load_seconds(pipeline_ids)
        load = (generation, pipeline_ids, load_params, culprits, seconds, previous)
        if self.instance is None:
            await self._run(*load)
            return
        # A switch: status reads wait out the unload, and a quick load after it too, so
        # a poller sees loaded(A) -> loaded(B) (sequence 2); around a load that fails they
        # see not_loaded, loading, error (sequence 3).
        async with self._lock:
            self.ready.clear()
            try:
                await asyncio.sleep(self._config.unload_time)
            finally:
                self._clear()
                self.ready.set()
                self._on_change()
            if not culprits and seconds <= HELD_LOAD:
                await self._run(*load)
                return
        await asyncio.sleep(0)  # let the held reads see not_loaded first
        await self._run(*load)

    async def _run(
        self,
        generation: int,
        pipeline_ids: list[str],
        load_params: dict[str, Any],
        culprits: list[str],
        seconds: float,
        previous: str | None,
    ) -> None:
        started = time.monotonic()
        self.status = "loading"
        self.pipeline_ids = pipeline_ids
        self.load_params = load_params
        self.loading_stage = LOADING_STAGE
        self._on_change()
        if seconds > 0:
            await asyncio.sleep(seconds)
        self.loading_stage = None
        if culprits:
            self._fail(culprits)
        else:
            self.status = "loaded"
            # The status names one id: the one already loaded if it stays, else the first.
            self.shown_id = previous if previous in pipeline_ids else pipeline_ids[0]
            self.instance = PipelineInstance(tuple(pipeline_ids), load_params, generation)
            log.info(
                "pipeline_loaded",
                pipeline_ids=pipeline_ids,
                seconds=round(time.monotonic() - started, 3),
            )
        self._on_change()

    def _fail(self, culprits: list[str]) -> None:
        self._clear()
        self.status = "error"
        self.failed_loads += 1
        # The real server logs why; the status carries no reason at all.
        log.warning("pipeline_load_failed", pipeline_ids=culprits)

    def _clear(self) -> None:
        self.status = "not_loaded"
        self.pipeline_ids = []
        self.load_params = None
        self.shown_id = None
        self.loading_stage = None
        self.instance = None

    def reset(self, keep_loaded: bool = False) -> None:
        """A restarted server: nothing loaded (unless ``keep_loaded``), no load running."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if not keep_loaded or self.status != "loaded":
            self._clear()
        self.ready.set()
        self._on_change()

    async def read_status(self) -> dict[str, Any]:
        """The body of ``GET /api/v1/pipeline/status``: waits out an unload; ``error`` once."""
        async with self._lock:
            body = self.status_json()
            if self.status == "error":
                self.status = "not_loaded"
                self._on_change()
            return body

    def status_json(self) -> dict[str, Any]:
        """The status as it stands (no waiting, no one-shot consumed)."""
        loaded = self.status == "loaded"
        return {
            "status": self.status,
            "pipeline_id": self.shown_id if loaded else None,
            "load_params": self.load_params if self.status in ("loading", "loaded") else None,
            "loaded_lora_adapters": self._lora_adapters() if loaded else None,
            "error": None,
            "loading_stage": self.loading_stage if self.status == "loading" else None,
            "produces_video": True,
            "produces_audio": False,
        }

    def _lora_adapters(self) -> list[dict[str, Any]] | None:
        loras = (self.load_params or {}).get("loras")
        supports = any(catalog.PIPELINES[p].get("supports_lora") for p in self.pipeline_ids)
        if not supports or not isinstance(loras, list):
            return None
        return [
            {"path": lora.get("path"), "scale": lora.get("scale", 1.0)}
            for lora in loras
            if isinstance(lora, dict)
        ]

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            # wait() never raises the task's own CancelledError; ours still propagates.
            await asyncio.wait({self._task})
        self._task = None
