"""Is the pipeline the server reports the one we want, and how did our load end?

Pure functions over the server's status (:class:`soundscape.scope.api.PipelineStatus`)
and what we asked for; the supervisor does the requests and the waiting.

What the real Scope v0.2.4 status allows (``../shared/scope-v0.2.4/``):

* it names ONE ``pipeline_id``, even for a chain such as ``["gray", "passthrough"]``
  (either one may be named), so the ids can only be checked as far as that goes;
* ``load_params`` is what the load was given; ``loaded_lora_adapters`` may be null;
* ``load`` answers 200 at once even for an unknown id, ``loading`` may last 10 ms
  (too short to poll), a failed load shows ``error`` for ONE read and then
  ``not_loaded``, and right after a load request the status may still show the
  OLD pipeline loaded (the unload has not begun) or ``not_loaded`` (the gap
  between the unload and the load).

So the daemon also remembers what it loaded itself (:class:`LoadRecord`, tied to
the server's ``server_start_time``): what the status cannot show is trusted
from that record, and only for the same server process.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from soundscape.scope.api import PipelineStatus


def load_conflicts(load_params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Load parameters Scope refuses together, as ``(key, problem)`` (the one copy of the rule)."""
    if load_params.get("quantization") and load_params.get("vace_enabled"):
        return [("quantization", "FP8 quantization cannot be combined with vace_enabled")]
    return []


@dataclass(frozen=True)
class LoadRecord:
    """What this daemon loaded on which server process (``server_start_time``)."""

    server: Any
    pipeline_ids: tuple[str, ...]
    load_params: Mapping[str, Any]


def _lora_paths(value: Any) -> set[str]:
    """LoRA paths from ``load_params["loras"]`` or ``loaded_lora_adapters`` (any shape)."""
    paths: set[str] = set()
    for item in value or ():
        if isinstance(item, str):
            paths.add(item)
        elif isinstance(item, Mapping):
            path = item.get("path") or item.get("name") or item.get("adapter")
            if isinstance(path, str):
                paths.add(path)
    return paths


def _same_lora_file(a: str, b: str) -> bool:
    # The server may name an adapter by its file's stem; compare as far as it shows.
    def stem(p: str) -> str:
        name = p.replace("\\", "/").rsplit("/", 1)[-1]
        return name.rsplit(".", 1)[0]

    return a == b or stem(a) == stem(b)


def _agrees(reported: Any, wanted: Any) -> bool:
    """``reported`` says what we asked for (an echo may add keys of its own to a table)."""
    if isinstance(wanted, Mapping):
        return isinstance(reported, Mapping) and all(
            k in reported and _agrees(reported[k], v) for k, v in wanted.items()
        )
    if isinstance(wanted, list | tuple):
        return (
            isinstance(reported, list | tuple)
            and len(reported) == len(wanted)
            and all(_agrees(r, w) for r, w in zip(reported, wanted, strict=True))
        )
    if isinstance(wanted, int | float) and not isinstance(wanted, bool):
        return isinstance(reported, int | float) and float(reported) == float(wanted)
    return bool(reported == wanted)


def reload_reason(
    status: PipelineStatus,
    want_ids: Sequence[str],
    want_params: Mapping[str, Any],
    record: LoadRecord | None,
    server: Any,
) -> str | None:
    """Why the loaded pipeline is not the one we want (None: it is, keep it).

    Compared: the pipeline id (the status names one of a chain), every load
    parameter we send, and the LoRA adapters. A key the server does not report
    is trusted only from our own record of a load on this same server process.
    """
    if not status.loaded:
        return f"pipeline {status.status}"
    ours = record is not None and server is not None and record.server == server
    if ours and record is not None and tuple(record.pipeline_ids) != tuple(want_ids):
        return f"loaded {'+'.join(record.pipeline_ids)}, want {'+'.join(want_ids)}"
    have_ids = set(status.pipeline_ids)
    if have_ids and not have_ids & set(want_ids):
        return f"loaded {'+'.join(status.pipeline_ids)}, want {'+'.join(want_ids)}"
    if not have_ids and not ours:
        return "the server does not say which pipeline is loaded"
    reported = status.load_params
    for key, value in want_params.items():
        if key in reported:
            if not _agrees(reported[key], value):
                return f"{key} is {reported[key]!r}, want {value!r}"
        elif value is None:
            continue  # "not set" and "not reported" agree
        elif not (ours and record is not None and _agrees(record.load_params.get(key), value)):
            return f"the server does not report {key} (want {value!r})"
    if status.loaded_lora_adapters is not None:
        have = _lora_paths(status.loaded_lora_adapters)
        want = _lora_paths(want_params.get("loras"))
        matched = all(any(_same_lora_file(w, h) for h in have) for w in want)
        if not matched or len(have) != len(want):
            return f"LoRA adapters loaded: {sorted(have) or 'none'}, want {sorted(want) or 'none'}"
    return None


class LoadOutcome(enum.Enum):
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"


def signature(status: PipelineStatus) -> tuple[Any, ...]:
    """What tells two status reads apart (state, pipeline, load params)."""
    return (status.status, status.pipeline_ids, repr(sorted(status.load_params.items())))


@dataclass
class LoadWatch:
    """Follows the status after OUR load request until it is done or has failed.

    ``error`` fails at once. ``loading`` shows the load under way; once seen,
    ``not_loaded`` means it failed (its one ``error`` read was missed). Until
    then ``not_loaded``, or the old pipeline still loaded, is the gap before the
    load begins (a status read is held while the old pipeline unloads): it is
    tolerated for ``grace`` seconds counted from the first read that showed it,
    then the load is taken as failed. No spinning for ``load_timeout``.
    """

    want_ids: tuple[str, ...]
    want_params: Mapping[str, Any]
    before: tuple[Any, ...]
    grace: float
    saw_loading: bool = False
    _gap_since: float | None = None

    def see(self, status: PipelineStatus, now: float) -> LoadOutcome:
        if status.status == "error":
            return LoadOutcome.FAILED
        if status.status == "loading":
            self.saw_loading = True
            self._gap_since = None
            return LoadOutcome.WAITING
        if status.status == "loaded":
            ours = not status.pipeline_ids or bool(set(status.pipeline_ids) & set(self.want_ids))
            reported = status.load_params
            agrees = all(
                _agrees(reported[k], v) for k, v in self.want_params.items() if k in reported
            )
            if ours and agrees and (self.saw_loading or signature(status) != self.before):
                return LoadOutcome.DONE
            # The old instance, or exactly what was loaded before our request (then it is
            # the same as ours once the grace is over: a reload with the same parameters).
            return self._gap(now, LoadOutcome.DONE if ours and agrees else LoadOutcome.FAILED)
        # not_loaded (or a state we do not know)
        if self.saw_loading:
            return LoadOutcome.FAILED
        return self._gap(now, LoadOutcome.FAILED)

    def _gap(self, now: float, after: LoadOutcome) -> LoadOutcome:
        if self._gap_since is None:
            self._gap_since = now
        return after if now - self._gap_since >= self.grace else LoadOutcome.WAITING
