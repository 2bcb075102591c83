"""The parameter state: the single truth of what Scope should be showing.

Pure logic, no I/O. Every input of the daemon (OSC, MIDI, audio mapping, the
config) changes Scope's live parameters through :class:`ParameterStore`; the
sender ships what changed, and the session supervisor hands the complete state
to every new session (``initial_parameters``).

Values are kept JSON-ready (floats, ints, lists of dicts) so they can be sent
and compared without conversion.

Scope's ``parameters_updated`` echo never overrides the performer: a key
changed here wins over a server value while the change is still waiting in the
outbox or was sent less than :data:`ECHO_WINDOW` ago (the server never
acknowledges, so a broadcast it made before applying our message can arrive
after we sent it); the local value is then sent again so the server ends on it.
Older local changes have reached the server, so a server value for them is a
genuinely newer change (another client) and is merged.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from soundscape.errors import ParamError

log = structlog.get_logger(__name__)

MAX_PROMPTS = 4
INTERPOLATION_METHODS = ("linear", "slerp")
INPUT_MODES = ("text", "video")
QUANTIZE_MODES = ("none", "beat", "bar", "2_bar", "4_bar")

# Keys that only make sense in video mode; never sent in text mode (Scope's
# browser client does the same: noise on a text-only stream is meaningless).
VIDEO_ONLY_KEYS = frozenset({"noise_scale", "noise_controller"})

# One-shot triggers: sent once, never part of the standing state.
ONE_SHOT_KEYS = frozenset({"reset_cache"})

# Keys that describe the session rather than the picture; they travel in the
# offer's initialParameters and are not changed at run time by controls.
SESSION_KEYS = frozenset({"pipeline_ids", "input_mode"})

# Keys Scope strips before the pipeline sees them (routing, its own beat
# scheduler): what the server says about them is not pipeline state.
ROUTING_KEYS = frozenset(
    {
        "node_id",
        "quantize_mode",
        "lookahead_ms",
        "output_sinks",
        "input_source",
        "modulations",
        "beat_cache_reset_rate",
        "_quantized",
    }
)

# Keys a parameters_updated from the server may never set here.
NOT_FROM_SERVER = SESSION_KEYS | ROUTING_KEYS | ONE_SHOT_KEYS | {"transition"}

# How long a key we sent stays ours against a server echo (seconds): one round
# trip through a busy server with room to spare. After it, the server has
# applied our message, so what it reports later is newer than our change.
ECHO_WINDOW = 1.0


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ParamSpec:
    """How one parameter is checked. ``kind`` selects the validator."""

    name: str
    kind: str  # float | int | bool | enum | prompts | steps | lora_scales | str_list | transition
    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()


PARAM_SPECS: dict[str, ParamSpec] = {
    spec.name: spec
    for spec in (
        ParamSpec("prompts", "prompts", "Active prompts with weights (1 to 4)."),
        ParamSpec(
            "prompt_interpolation_method",
            "enum",
            "How several prompts blend: linear, or slerp (exactly 2 prompts).",
            choices=INTERPOLATION_METHODS,
        ),
        ParamSpec("transition", "transition", "Smooth change to target prompts over N steps."),
        ParamSpec("denoising_step_list", "steps", "Denoising timesteps, strictly descending."),
        ParamSpec("noise_scale", "float", "Noise injected (video mode only).", 0.0, 1.0),
        ParamSpec("noise_controller", "bool", "Automatic noise from motion (video mode only)."),
        ParamSpec("manage_cache", "bool", "Reset the cache automatically on changes."),
        ParamSpec("reset_cache", "bool", "One-shot cache reset."),
        ParamSpec(
            "kv_cache_attention_bias",
            "float",
            "Reliance on past frames (lower = fresher picture).",
            0.01,
            1.0,
        ),
        ParamSpec("vace_context_scale", "float", "VACE hint strength.", 0.0, 2.0),
        ParamSpec("vace_enabled", "bool", "VACE conditioning on/off."),
        ParamSpec("vace_ref_images", "str_list", "Reference image paths on the Scope server."),
        ParamSpec("vace_use_input_video", "bool", "Condition VACE on the input video."),
        ParamSpec("lora_scales", "lora_scales", "Runtime LoRA strengths (-10 to 10)."),
        ParamSpec("paused", "bool", "Pause generation; Scope holds the last frame."),
        ParamSpec("input_mode", "enum", "text or video.", choices=INPUT_MODES),
        ParamSpec("pipeline_ids", "str_list", "Pipeline chain of the session."),
        ParamSpec(
            "quantize_mode",
            "enum",
            "Scope's beat quantization for _quantized messages.",
            choices=QUANTIZE_MODES,
        ),
        ParamSpec("lookahead_ms", "float", "Scope's quantization look-ahead.", 0.0, 1000.0),
    )
}

LORA_SCALE_RANGE = (-10.0, 10.0)
STEP_RANGE = (1, 1000)


# --------------------------------------------------------------------------- validators


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_float(spec: ParamSpec, value: Any) -> float:
    if not _is_number(value):
        raise ParamError(f"{spec.name}: expected a number, got {value!r}")
    value = float(value)
    if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
        raise ParamError(f"{spec.name}: {value:g} is outside {spec.low:g}..{spec.high:g}")
    return value


def _check_bool(spec: ParamSpec, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ParamError(f"{spec.name}: expected true/false, got {value!r}")


def _check_enum(spec: ParamSpec, value: Any) -> str:
    if value not in spec.choices:
        raise ParamError(f"{spec.name}: {value!r} is not one of {', '.join(spec.choices)}")
    return str(value)


def check_prompts(value: Any, name: str = "prompts") -> list[dict[str, Any]]:
    """Validate a prompt list: 1..4 entries of {text, weight >= 0}; strings allowed."""
    if isinstance(value, str):
        value = [{"text": value, "weight": 1.0}]
    if not isinstance(value, list | tuple) or not value:
        raise ParamError(f"{name}: expected a non-empty list of prompts")
    if len(value) > MAX_PROMPTS:
        raise ParamError(f"{name}: at most {MAX_PROMPTS} prompts, got {len(value)}")
    prompts = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = {"text": item, "weight": 1.0}
        if not isinstance(item, Mapping):
            raise ParamError(f"{name}[{i}]: expected {{text, weight}}, got {item!r}")
        text = item.get("text")
        weight = item.get("weight", 1.0)
        if not isinstance(text, str) or not text.strip():
            raise ParamError(f"{name}[{i}].text: expected a non-empty string")
        if not _is_number(weight) or weight < 0:
            raise ParamError(f"{name}[{i}].weight: expected a number >= 0, got {weight!r}")
        prompts.append({"text": text, "weight": float(weight)})
    return prompts


def _check_steps(spec: ParamSpec, value: Any) -> list[int]:
    if not isinstance(value, list | tuple) or not value:
        raise ParamError(f"{spec.name}: expected a non-empty list of integers")
    steps = []
    for v in value:
        if isinstance(v, bool) or not _is_number(v) or int(v) != v:
            raise ParamError(f"{spec.name}: {v!r} is not an integer")
        if not STEP_RANGE[0] <= int(v) <= STEP_RANGE[1]:
            raise ParamError(f"{spec.name}: {int(v)} is outside {STEP_RANGE[0]}..{STEP_RANGE[1]}")
        steps.append(int(v))
    if any(a <= b for a, b in itertools.pairwise(steps)):
        raise ParamError(f"{spec.name}: {steps} must be strictly descending")
    return steps


def _check_lora_scales(spec: ParamSpec, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list | tuple):
        raise ParamError(f"{spec.name}: expected a list of {{path, scale}}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("path"), str):
            raise ParamError(f"{spec.name}[{i}]: expected {{path, scale}}, got {item!r}")
        scale = item.get("scale")
        low, high = LORA_SCALE_RANGE
        if not _is_number(scale) or not low <= scale <= high:
            raise ParamError(f"{spec.name}[{i}].scale: {scale!r} is outside {low:g}..{high:g}")
        out.append({"path": item["path"], "scale": float(scale)})
    return out


def _check_str_list(spec: ParamSpec, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ParamError(f"{spec.name}: expected a list of strings, got {value!r}")
    return list(value)


def check_transition(value: Any) -> dict[str, Any]:
    """Validate a transition: target prompts, ``num_steps`` >= 0, a temporal method."""
    if not isinstance(value, Mapping):
        raise ParamError("transition: expected {target_prompts, num_steps, method}")
    target = check_prompts(value.get("target_prompts"), "transition.target_prompts")
    steps = value.get("num_steps", 4)
    if isinstance(steps, bool) or not _is_number(steps) or int(steps) != steps or steps < 0:
        raise ParamError(f"transition.num_steps: expected an integer >= 0, got {steps!r}")
    method = value.get("temporal_interpolation_method", "linear")
    if method not in INTERPOLATION_METHODS:
        raise ParamError(
            f"transition.temporal_interpolation_method: {method!r} is not linear or slerp"
        )
    return {
        "target_prompts": target,
        "num_steps": int(steps),
        "temporal_interpolation_method": method,
    }


_CHECKERS: dict[str, Callable[[ParamSpec, Any], Any]] = {
    "float": _check_float,
    "bool": _check_bool,
    "enum": _check_enum,
    "prompts": lambda spec, v: check_prompts(v, spec.name),
    "steps": _check_steps,
    "lora_scales": _check_lora_scales,
    "str_list": _check_str_list,
    "transition": lambda spec, v: check_transition(v),
}


def check_value(key: str, value: Any) -> Any:
    """Validate and normalise one value; unknown keys pass if JSON-serialisable.

    Unknown keys are allowed because every pipeline has runtime parameters of
    its own, and Scope accepts them.
    """
    spec = PARAM_SPECS.get(key)
    if spec is None:
        if not key or (key.startswith("_") and key != "_quantized"):
            raise ParamError(f"{key!r}: not a parameter name")
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ParamError(f"{key}: value {value!r} is not JSON") from None
        return copy.deepcopy(value)
    return _CHECKERS[spec.kind](spec, value)


# --------------------------------------------------------------------------- outbox


@dataclass
class Outbox:
    """What the sender still has to ship, bounded whatever the input rate.

    ``open`` coalesces plain changes (latest value wins). A transition seals
    everything before it into one message that leaves before any later change,
    so a plain change never overtakes a transition nor the reverse. At most one
    sealed message waits: a newer transition folds the waiting one in (the
    newer target wins; a transition not yet sent has not started on the
    server), keeping every plain change and one-shot that came with it. So a
    1 kHz stream of transitions keeps the outbox at two messages, and one-shots
    are never dropped.

    ``taken_at`` records when each key last left (the sender takes right
    before it sends), which is how the store tells a server echo that may
    predate our message from a genuinely newer server value.
    """

    clock: Callable[[], float] = time.monotonic
    sealed: dict[str, Any] | None = None
    open: dict[str, Any] = field(default_factory=dict)
    taken_at: dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.sealed or self.open)

    def __len__(self) -> int:
        """Messages waiting (at most 2)."""
        return (self.sealed is not None) + bool(self.open)

    def put(self, key: str, value: Any) -> None:
        self.open[key] = value

    def seal_with(self, key: str, value: Any, supersedes: Iterable[str] = ()) -> None:
        drop = set(supersedes)
        message = {k: v for k, v in {**(self.sealed or {}), **self.open}.items() if k not in drop}
        message[key] = value
        self.sealed = message
        self.open = {}

    def take(self) -> dict[str, Any]:
        """The next message to send (empty when nothing is waiting)."""
        if self.sealed is not None:
            message, self.sealed = self.sealed, None
        else:
            message, self.open = self.open, {}
        now = self.clock()
        for key in message:
            self.taken_at[key] = now
        if "transition" in message:
            self.taken_at["prompts"] = now  # a transition is a change of the prompts
        return message

    def pending(self, key: str) -> bool:
        """Whether a change of ``key`` waits to be sent."""
        if key in self.open:
            return True
        sealed = self.sealed or {}
        return key in sealed or (key == "prompts" and "transition" in sealed)

    def sent_since(self, key: str, since: float) -> bool:
        return self.taken_at.get(key, -math.inf) >= since

    def clear(self) -> None:
        self.sealed = None
        self.open = {}


# --------------------------------------------------------------------------- store


Listener = Callable[[dict[str, Any], str], None]

DEFAULT_PARAMETERS: dict[str, Any] = {
    "pipeline_ids": ["longlive"],
    "input_mode": "text",
    "prompts": [{"text": "a cosmic dreamscape, nebula clouds, vivid colour", "weight": 1.0}],
    "prompt_interpolation_method": "linear",
    "denoising_step_list": [1000, 750, 500, 250],
    "manage_cache": True,
    "kv_cache_attention_bias": 0.3,
    "noise_scale": 0.7,
    "noise_controller": False,
    "paused": False,
}


class ParameterStore:
    """Owns the parameter state; validates, applies, records what to send, notifies.

    Listeners get ``(changes, source)`` after every accepted change; ``source``
    names who made it ("osc:127.0.0.1:9000", "midi", "audio", "scope", ...),
    so feedback can avoid echoing a controller's own move back to it.
    """

    def __init__(
        self,
        initial: Mapping[str, Any] | None = None,
        *,
        loras: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        echo_window: float = ECHO_WINDOW,
    ) -> None:
        self._state: dict[str, Any] = {}
        self._listeners: list[Listener] = []
        self._wakeups: list[Callable[[], None]] = []
        self._clock = clock
        self._echo_window = echo_window
        self.outbox = Outbox(clock=clock)  # the primary server's (its echoes are checked)
        # One more per standby server (soundscape.screens): every change goes to each.
        self._outboxes: list[Outbox] = [self.outbox]
        self.loras: dict[str, str] = dict(loras or {})
        self.refused = 0
        self.listener_errors = 0
        self.echoes_ignored = 0
        # (listener, exception type, raising line) -> failures; the first is
        # logged with its traceback, repeats only at powers of ten.
        self._failures: dict[tuple[int, str, str], int] = {}
        self.update({**DEFAULT_PARAMETERS, **(initial or {})}, source="config")
        self.outbox.clear()

    # ----- reading

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the whole standing state."""
        return copy.deepcopy(self._state)

    def get(self, key: str, default: Any = None) -> Any:
        return copy.deepcopy(self._state.get(key, default))

    def __contains__(self, key: str) -> bool:
        return key in self._state

    @property
    def text_mode(self) -> bool:
        return self._state.get("input_mode") == "text"

    def initial_parameters(self, outbox: Outbox | None = None) -> dict[str, Any]:
        """What a new session's offer carries: the complete state, as Scope should take it.

        Clears the session's outbox (the primary's unless another is given): the new
        session gets everything at once.
        """
        (self.outbox if outbox is None else outbox).clear()  # (an empty Outbox is falsy)
        return self.wire_view()

    def add_outbox(self) -> Outbox:
        """An outbox of its own for another server's sender (a standby): every change
        queued from now on goes to it as well."""
        outbox = Outbox(clock=self._clock)
        self._outboxes.append(outbox)
        return outbox

    def wire_view(self) -> dict[str, Any]:
        """The complete state as Scope should hold it (what the server would echo back)."""
        params = self.snapshot()
        if self.text_mode:
            for key in VIDEO_ONLY_KEYS:
                params.pop(key, None)
        return params

    # ----- writing

    def update(self, changes: Mapping[str, Any], *, source: str = "api") -> dict[str, Any]:
        """Apply several changes at once, all or nothing.

        Returns the changes that altered the state. Raises :class:`ParamError`
        listing every problem; then nothing is applied or sent.
        """
        checked: dict[str, Any] = {}
        problems: list[str] = []
        for key, value in changes.items():
            try:
                checked[key] = check_value(key, value)
            except ParamError as err:
                problems.extend(err.problems)
        if "transition" in checked:
            problems.append("transition: use ParameterStore.transition()")
        if not problems:
            problems.extend(self._cross_check(checked))
        if problems:
            self.refused += 1
            raise ParamError(problems)

        # A prompt count that no longer fits slerp falls back to linear rather
        # than refusing the performer's prompt change.
        prompts = checked.get("prompts", self._state.get("prompts", []))
        method = checked.get(
            "prompt_interpolation_method", self._state.get("prompt_interpolation_method")
        )
        if method == "slerp" and len(prompts) != 2 and "prompt_interpolation_method" not in changes:
            checked["prompt_interpolation_method"] = "linear"

        applied: dict[str, Any] = {}
        for key, value in checked.items():
            if key in ONE_SHOT_KEYS:
                if value:
                    applied[key] = value
                    self._queue(key, value)
                continue
            if self._state.get(key) == value and key in self._state:
                continue
            self._state[key] = value
            applied[key] = copy.deepcopy(value)
            self._queue(key, value)
        if "input_mode" in applied and not self.text_mode:
            for key in VIDEO_ONLY_KEYS & self._state.keys():
                for outbox in self._outboxes:
                    outbox.put(key, copy.deepcopy(self._state[key]))
        if applied:
            self._notify(applied, source)
        return applied

    def set(self, key: str, value: Any, *, source: str = "api") -> dict[str, Any]:
        return self.update({key: value}, source=source)

    def set_prompts(
        self, prompts: Any, *, method: str | None = None, source: str = "api"
    ) -> dict[str, Any]:
        changes: dict[str, Any] = {"prompts": prompts}
        if method is not None:
            changes["prompt_interpolation_method"] = method
        return self.update(changes, source=source)

    def set_prompt(
        self,
        index: int,
        *,
        text: str | None = None,
        weight: float | None = None,
        source: str = "api",
    ) -> dict[str, Any]:
        """Change one prompt by index; index == len(prompts) appends one."""
        prompts = self.get("prompts", [])
        if not 0 <= index <= len(prompts) or index >= MAX_PROMPTS:
            self.refused += 1
            raise ParamError(f"prompts[{index}]: no such prompt (have {len(prompts)})")
        if index == len(prompts):
            if text is None:
                self.refused += 1
                raise ParamError(f"prompts[{index}]: a new prompt needs a text")
            prompts.append({"text": text, "weight": 1.0 if weight is None else weight})
        else:
            if text is not None:
                prompts[index]["text"] = text
            if weight is not None:
                prompts[index]["weight"] = weight
        return self.update({"prompts": prompts}, source=source)

    def remove_prompt(self, index: int, *, source: str = "api") -> dict[str, Any]:
        prompts = self.get("prompts", [])
        if not 0 <= index < len(prompts) or len(prompts) == 1:
            self.refused += 1
            raise ParamError(f"prompts[{index}]: cannot remove (have {len(prompts)})")
        del prompts[index]
        return self.update({"prompts": prompts}, source=source)

    def set_lora_scale(self, lora: str, scale: float, *, source: str = "api") -> dict[str, Any]:
        """Set one LoRA's runtime scale, by configured name or by path."""
        path = self.loras.get(lora, lora)
        if path not in self.loras.values():
            self.refused += 1
            known = ", ".join(sorted(self.loras)) or "none configured"
            raise ParamError(f"lora {lora!r}: not a loaded LoRA (known: {known})")
        scales = [s for s in self.get("lora_scales", []) if s["path"] != path]
        scales.append({"path": path, "scale": scale})
        scales.sort(key=lambda s: s["path"])
        return self.update({"lora_scales": scales}, source=source)

    def lora_scale(self, lora: str) -> float | None:
        path = self.loras.get(lora, lora)
        for entry in self._state.get("lora_scales", []):
            if entry["path"] == path:
                return float(entry["scale"])
        return None

    def transition(
        self,
        target_prompts: Any,
        *,
        num_steps: int = 4,
        method: str = "linear",
        source: str = "api",
    ) -> dict[str, Any]:
        """Move smoothly to ``target_prompts`` over ``num_steps`` generation steps.

        The standing state takes the target at once (a new session must show
        where the transition ends); the transition itself is queued in order
        and never coalesced away.
        """
        try:
            transition = check_transition(
                {
                    "target_prompts": target_prompts,
                    "num_steps": num_steps,
                    "temporal_interpolation_method": method,
                }
            )
        except ParamError:
            self.refused += 1
            raise
        target = transition["target_prompts"]
        applied: dict[str, Any] = {"transition": copy.deepcopy(transition)}
        self._state["prompts"] = copy.deepcopy(target)
        applied["prompts"] = copy.deepcopy(target)
        if self._state.get("prompt_interpolation_method") == "slerp" and len(target) != 2:
            self._state["prompt_interpolation_method"] = "linear"
            applied["prompt_interpolation_method"] = "linear"
            for outbox in self._outboxes:
                outbox.put("prompt_interpolation_method", "linear")
        for outbox in self._outboxes:
            outbox.seal_with("transition", copy.deepcopy(transition), supersedes=("prompts",))
        self._wake()
        self._notify(applied, source)
        return applied

    def reset_cache(self, *, source: str = "api") -> dict[str, Any]:
        return self.update({"reset_cache": True}, source=source)

    def merge_from_server(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Take ``parameters_updated`` from Scope: its pipeline parameters merge in.

        Session, routing and one-shot keys and transitions are never taken
        (they are not pipeline state). A key changed here that is still
        waiting to be sent, or was sent less than the echo window ago, keeps
        the local value (latest local value wins) and is queued again so the
        server ends on it too. Invalid values are skipped, never raised: a
        server must not break us. Nothing merged is echoed back.
        """
        applied: dict[str, Any] = {}
        recent = self._clock() - self._echo_window
        overruled: list[str] = []
        for key, value in params.items():
            if key in NOT_FROM_SERVER or not isinstance(key, str):
                continue
            try:
                value = check_value(key, value)
            except ParamError:
                continue
            if key in self._state and self._state[key] == value:
                continue
            if self.outbox.pending(key) or self.outbox.sent_since(key, recent):
                self.echoes_ignored += 1
                overruled.append(key)
                if key in self._state and not self.outbox.pending(key):
                    self._queue(key, self._state[key])
                continue
            self._state[key] = value
            applied[key] = copy.deepcopy(value)
        if overruled:
            log.debug("server_echo_overruled", keys=overruled)
        if applied and len(self._outboxes) > 1:
            # The primary's server changed it: its standbys must show the same.
            for key, value in applied.items():
                if key in VIDEO_ONLY_KEYS and self.text_mode:
                    continue
                for outbox in self._outboxes[1:]:
                    outbox.put(key, copy.deepcopy(value))
            self._wake()
        if applied:
            self._notify(applied, "scope")
        return applied

    # ----- observers

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(changes, source)`` after every accepted change."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def on_outbox(self, wake: Callable[[], None]) -> None:
        """Register the sender's wake-up; called whenever something is queued."""
        self._wakeups.append(wake)

    # ----- internals

    def _cross_check(self, checked: Mapping[str, Any]) -> list[str]:
        merged = {**self._state, **checked}
        problems = []
        if (
            "prompt_interpolation_method" in checked
            and checked["prompt_interpolation_method"] == "slerp"
            and len(merged.get("prompts", [])) != 2
        ):
            problems.append("prompt_interpolation_method: slerp needs exactly 2 prompts")
        return problems

    def _queue(self, key: str, value: Any) -> None:
        if key in VIDEO_ONLY_KEYS and self.text_mode:
            return
        for outbox in self._outboxes:
            outbox.put(key, copy.deepcopy(value))
        self._wake()

    def _wake(self) -> None:
        for wake in self._wakeups:
            wake()

    def _notify(self, applied: dict[str, Any], source: str) -> None:
        # One broken listener must not starve the others (feedback, mapping, scenes).
        for listener in list(self._listeners):
            try:
                listener(applied, source)
            except Exception as err:
                self._listener_failed(listener, err)

    def _listener_failed(self, listener: Listener, err: Exception) -> None:
        self.listener_errors += 1
        tb = err.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
        key = (id(listener), type(err).__name__, where)
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        name = getattr(listener, "__qualname__", repr(listener))
        if count == 1:
            log.exception("parameter_listener_failed", listener=name)
        elif math.log10(count).is_integer():
            log.warning("parameter_listener_still_failing", listener=name, failures=count)
