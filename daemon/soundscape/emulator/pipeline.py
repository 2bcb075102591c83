"""The emulated pipeline manager: load requests, background loading, status.

Like Scope, a load returns at once and goes on in the background; loading again
replaces the pipeline, while sessions already streaming keep the instance they
started with (:class:`PipelineInstance` is immutable and handed to each session).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from soundscape.emulator.catalog import PIPELINES

log = structlog.get_logger(__name__)

LOAD_STAGES = ("Initializing pipeline", "Loading model weights", "Warming up")


@dataclass(frozen=True)
class PipelineInstance:
    """One loaded pipeline (chain), as a session streams from it."""

    pipeline_ids: tuple[str, ...]
    load_params: dict[str, Any] = field(hash=False, compare=False)
    generation: int = 0

    @property
    def name(self) -> str:
        return "+".join(self.pipeline_ids)


def parse_load(body: Any) -> tuple[list[str], dict[str, Any]] | list[dict[str, Any]]:
    """``(pipeline_ids, load_params)`` of a load body, or FastAPI-style errors.

    Accepts ``{"pipeline_ids": [...], "load_params": {...}}``, the newer
    ``{"pipelines": [{"node_id", "pipeline_id", "load_params"}]}`` and the v0.1.0
    ``{"pipeline_id": "..."}``.
    """

    def error(loc: list[Any], msg: str, value: Any) -> list[dict[str, Any]]:
        return [{"type": "value_error", "loc": ["body", *loc], "msg": msg, "input": value}]

    if not isinstance(body, dict):
        return error([], "Input should be a valid dictionary", body)
    params = body.get("load_params") or {}
    if not isinstance(params, dict):
        return error(["load_params"], "Input should be a valid dictionary", params)
    if "pipelines" in body:
        nodes = body["pipelines"]
        if not isinstance(nodes, list) or not nodes:
            return error(["pipelines"], "Input should be a non-empty list", nodes)
        ids: list[str] = []
        merged: dict[str, Any] = dict(params)
        for i, node in enumerate(nodes):
            if not isinstance(node, dict) or not isinstance(node.get("pipeline_id"), str):
                return error(["pipelines", i, "pipeline_id"], "Field required", node)
            node_params = node.get("load_params") or {}
            if not isinstance(node_params, dict):
                loc = ["pipelines", i, "load_params"]
                return error(loc, "Input should be a valid dictionary", node_params)
            ids.append(node["pipeline_id"])
            merged.update(node_params)
        params = merged
    elif "pipeline_ids" in body:
        ids = body["pipeline_ids"]
        if not (isinstance(ids, list) and ids and all(isinstance(i, str) and i for i in ids)):
            return error(["pipeline_ids"], "Input should be a non-empty list of strings", ids)
    elif isinstance(body.get("pipeline_id"), str) and body["pipeline_id"]:
        ids = [body["pipeline_id"]]
    else:
        return error(["pipeline_ids"], "Field required", None)
    for key in ("width", "height"):
        value = params.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return error(["load_params", key], "Input should be a valid integer", value)
        if isinstance(value, int) and not 16 <= value <= 2048:
            return error(["load_params", key], "Input should be between 16 and 2048", value)
    return list(ids), dict(params)


class PipelineManager:
    """Status of the (single) pipeline slot and the background load task."""

    def __init__(self, load_time: float, on_change: Callable[[], None]) -> None:
        self._load_time = load_time
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None
        self.status = "not_loaded"
        self.pipeline_ids: list[str] = []
        self.load_params: dict[str, Any] | None = None
        self.error: str | None = None
        self.loading_stage: str | None = None
        self.loading_progress: float | None = None
        self.load_count = 0
        self.instance: PipelineInstance | None = None
        self.fail_next = False

    def load(self, pipeline_ids: list[str], load_params: dict[str, Any]) -> None:
        """Start loading; a load in progress is abandoned for the new one."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self.load_count += 1
        self.status = "loading"
        self.pipeline_ids = list(pipeline_ids)
        self.load_params = dict(load_params)
        self.error = None
        self.instance = None
        self.loading_stage = LOAD_STAGES[0]
        self.loading_progress = 0.0
        fail, self.fail_next = self.fail_next, False
        self._task = asyncio.create_task(self._load(self.load_count, fail))
        log.info("pipeline_load_started", pipeline_ids=pipeline_ids, load=self.load_count)
        self._on_change()

    async def _load(self, generation: int, fail: bool) -> None:
        started = time.monotonic()
        for i, stage in enumerate(LOAD_STAGES):
            self.loading_stage = stage
            self.loading_progress = i / len(LOAD_STAGES)
            self._on_change()
            await asyncio.sleep(self._load_time / len(LOAD_STAGES))
        unknown = [p for p in self.pipeline_ids if p not in PIPELINES]
        if fail or unknown:
            self.status = "error"
            self.error = (
                f"Pipeline {unknown[0]} not found in registry"
                if unknown
                else "CUDA out of memory. Tried to allocate 2.00 GiB (emulated load failure)"
            )
            log.warning("pipeline_load_failed", error=self.error)
        else:
            self.status = "loaded"
            self.instance = PipelineInstance(
                tuple(self.pipeline_ids), dict(self.load_params or {}), generation
            )
            log.info(
                "pipeline_loaded",
                pipeline_ids=self.pipeline_ids,
                seconds=round(time.monotonic() - started, 3),
            )
        self.loading_stage = None
        self.loading_progress = None
        self._on_change()

    def reset(self) -> None:
        """Forget everything, as a restarted server does."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self.status = "not_loaded"
        self.pipeline_ids = []
        self.load_params = None
        self.error = None
        self.loading_stage = None
        self.loading_progress = None
        self.instance = None
        self._on_change()

    def status_json(self) -> dict[str, Any]:
        """The body of ``GET /api/v1/pipeline/status``."""
        loras = (self.load_params or {}).get("loras") or []
        adapters = [
            {"path": lora.get("path"), "scale": lora.get("scale", 1.0)}
            for lora in loras
            if isinstance(lora, dict)
        ]
        return {
            "status": self.status,
            "pipeline_id": self.pipeline_ids[-1] if self.pipeline_ids else None,
            "pipeline_ids": list(self.pipeline_ids),
            "load_params": self.load_params,
            "loaded_lora_adapters": adapters if self.status == "loaded" else [],
            "error": self.error,
            "loading_stage": self.loading_stage,
            "loading_progress": self.loading_progress,
        }

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            # wait() never raises the task's own CancelledError; ours still propagates.
            await asyncio.wait({self._task})
        self._task = None
