"""Pipeline chains in video mode: preprocessors, the main pipeline, postprocessors (pure).

Checked against the server's ``GET /api/v1/pipelines/schemas``: every id is
known, a pipeline whose ``usage`` says ``preprocessor`` runs only in video mode
and before the main pipeline (``postprocessor`` after it), and the main
pipeline supports the mode. A chain naming an unloaded or unknown pipeline
gets 200 from the real server and then no frame at all (behaviour 23), so
it is refused here, with the reason, before it reaches Scope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from soundscape.scope.api import PipelineSchema


def role(schema: PipelineSchema | None) -> str:
    """preprocessor, postprocessor or main."""
    usage = schema.usage if schema is not None else ()
    if "preprocessor" in usage:
        return "preprocessor"
    if "postprocessor" in usage:
        return "postprocessor"
    return "main"


def chain_problems(
    ids: Sequence[str], mode: str, schemas: Mapping[str, PipelineSchema]
) -> list[str]:
    """Why ``ids`` cannot run in ``mode`` on a server with ``schemas``; [] when it can."""
    if not ids:
        return ["pipeline_ids is empty (the server would send nothing)"]
    unknown = [i for i in ids if i not in schemas]
    if unknown:
        known = ", ".join(sorted(schemas))
        return [f"unknown pipeline {', '.join(unknown)} (the server has {known})"]
    roles = [role(schemas[i]) for i in ids]
    problems = []
    if mode != "video":
        pre = [i for i, r in zip(ids, roles, strict=True) if r == "preprocessor"]
        if pre:
            problems.append(f"{', '.join(pre)}: a preprocessor runs only in video mode")
    order = {"preprocessor": 0, "main": 1, "postprocessor": 2}
    if [order[r] for r in roles] != sorted(order[r] for r in roles):
        problems.append("preprocessors go first and postprocessors last: " + " → ".join(ids))
    mains = [i for i, r in zip(ids, roles, strict=True) if r == "main"]
    for main in mains:
        modes = schemas[main].supported_modes
        if modes and mode not in modes:
            problems.append(f"{main} supports {'/'.join(modes)} mode, not {mode}")
    return problems


def for_mode(
    ids: Sequence[str],
    mode: str,
    preprocessors: Sequence[str],
    schemas: Mapping[str, PipelineSchema],
) -> list[str]:
    """The chain to use after a switch to ``mode``: the configured preprocessors come
    first in video mode, and every preprocessor goes in text mode."""
    main = [i for i in ids if role(schemas.get(i)) != "preprocessor" and i not in preprocessors]
    if mode != "video":
        return main
    kept = [i for i in ids if i not in main]
    return [*(kept or preprocessors), *main]
