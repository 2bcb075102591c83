"""The OSC address space: one table that the server, the feedback and the docs read.

Pure logic, no I/O. Each :class:`Route` says what an address takes (typed
arguments), what the server does with it (``action``), and what feedback
reports for it (``render``). ``docs/osc.md`` is generated from this table
(``python -m soundscape.control.osc_docs --write``), and a test checks it is
current.

Two trees:

- ``/scope/<param>`` — Daydream Scope's own flat OSC addresses, unchanged, so
  a TouchDesigner rig built for Scope works when pointed at the daemon.
- ``/soundscape/...`` — the daemon's own: prompts by index, LoRAs by name,
  normalised 0..1 targets, scenes, panic, tap, learn, query.

A daemon with several screens takes every address of both trees under
``/screen/<name>`` too (:func:`split_screen`); the table itself knows nothing
of screens.

Ranges and enums are checked by :class:`~soundscape.scope.params.ParameterStore`
(the one place that knows them); this module checks only OSC types and
argument counts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from soundscape.control import targets
from soundscape.errors import ParamError
from soundscape.scope.params import MAX_PROMPTS, ParameterStore

# --------------------------------------------------------------------------- arguments

KIND_DOCS = {
    "float": "f",
    "int": "i",
    "str": "s",
    "bool": "T/F or 0/1",
    "scene": "s or i",
    "any": "any",
    "prompts": "s [f] …",
}


class ArgError(ParamError):
    """The OSC arguments do not fit the address (type or count)."""


@dataclass(frozen=True)
class Arg:
    """One argument: ``kind`` is float|int|str|bool|scene|any|prompts.

    ``rest`` takes every remaining argument (arrays are flattened one level);
    ``optional`` may be left out or sent as Nil.
    """

    name: str
    kind: str
    optional: bool = False
    rest: bool = False

    def signature(self) -> str:
        if self.kind == "prompts":
            text = "s text [f weight] …"
        else:
            text = f"{KIND_DOCS[self.kind]} {self.name}" + (" …" if self.rest else "")
        return f"[{text}]" if self.optional else text


def osc_type(value: Any) -> str:
    """How a received value is named in refusals (its OSC type)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nil"
    return {int: "int", float: "float", str: "string", bytes: "blob", list: "array"}.get(
        type(value), type(value).__name__
    )


def _describe(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, str | bytes) and len(value) > 40:
        value = value[:40]
    return f"{osc_type(value)} {value!r}"


def _convert(arg: Arg, value: Any) -> Any:
    kind = arg.kind
    if kind == "any":
        if value is None:
            raise ArgError(f"{arg.name}: nil is not a value")
        return value
    if kind == "str":
        if isinstance(value, bytes):  # some Max/Pd patches send text as a blob
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                raise ArgError(f"{arg.name}: blob is not UTF-8 text") from None
        if isinstance(value, str):
            return value
    elif isinstance(value, bool):
        if kind == "bool":
            return value
    elif kind == "bool":
        # TouchOSC buttons and TouchDesigner CHOPs send 1.0/0.0.
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
    elif isinstance(value, int | float) and math.isfinite(value):
        if kind == "float":
            return float(value)
        # Integral floats count as ints: TouchDesigner sends every CHOP value as f.
        if kind in ("int", "scene") and float(value).is_integer():
            return int(value)
    elif kind == "scene" and isinstance(value, str):
        return value
    raise ArgError(f"{arg.name}: expected {KIND_DOCS[kind]}, got {_describe(value)}")


def _prompt_list(arg: Arg, values: Sequence[Any]) -> list[dict[str, Any]]:
    prompts: list[dict[str, Any]] = []
    i = 0
    while i < len(values):
        text = _convert(Arg(f"{arg.name}[{len(prompts)}].text", "str"), values[i])
        weight = 1.0
        if i + 1 < len(values) and not isinstance(values[i + 1], str | bytes):
            weight = _convert(Arg(f"{arg.name}[{len(prompts)}].weight", "float"), values[i + 1])
            i += 1
        prompts.append({"text": text, "weight": weight})
        i += 1
    return prompts


def bind(spec: Sequence[Arg], values: Sequence[Any]) -> dict[str, Any]:
    """Check OSC ``values`` against ``spec``; the named, converted arguments.

    Raises :class:`ArgError` naming the argument, the expected and the
    received OSC type.
    """
    out: dict[str, Any] = {}
    i = 0
    for arg in spec:
        if arg.rest:
            rest: list[Any] = []
            for value in values[i:]:
                rest.extend(value if isinstance(value, list) else [value])
            if not rest and not arg.optional:
                raise ArgError(f"{arg.name}: expected {KIND_DOCS[arg.kind]}, got nothing")
            if arg.kind == "prompts":
                out[arg.name] = _prompt_list(arg, rest) if rest else None
            else:
                out[arg.name] = [_convert(arg, v) for v in rest] if rest else None
            i = len(values)
            continue
        if i >= len(values) or values[i] is None:
            if not arg.optional:
                got = "nothing" if i >= len(values) else "nil"
                raise ArgError(f"{arg.name}: expected {KIND_DOCS[arg.kind]}, got {got}")
            out[arg.name] = None
        else:
            out[arg.name] = _convert(arg, values[i])
        i += 1
    if i < len(values):
        raise ArgError(f"{len(values)} arguments, at most {i} expected")
    return out


# --------------------------------------------------------------------------- feedback view


@dataclass
class View:
    """What feedback renders: the store plus the OSC server's own small state."""

    store: ParameterStore
    transition_steps: int = 0
    transition_method: str = "linear"
    status: Mapping[str, Any] = field(default_factory=dict)


Feedback = tuple[str, tuple[Any, ...]]
Renderer = Callable[[View, Collection[str] | None], Iterator[Feedback]]


def _args_of(value: Any) -> tuple[Any, ...] | None:
    """A parameter value as OSC arguments, or None when it has no flat form."""
    if isinstance(value, str | int | float):  # bool is an int
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str | int | float) for v in value):
        return tuple(value)
    return None


def _param(address: str, key: str) -> Renderer:
    def render(view: View, changed: Collection[str] | None) -> Iterator[Feedback]:
        args = _args_of(view.store.get(key))
        if args is not None:
            yield address, args

    return render


def _scope_prompt(view: View, changed: Collection[str] | None) -> Iterator[Feedback]:
    prompts = view.store.get("prompts") or [{"text": "", "weight": 0.0}]
    yield "/scope/prompt", (prompts[0]["text"],)


def _prompt_slots(view: View) -> list[dict[str, Any]]:
    prompts = view.store.get("prompts") or []
    return prompts + [{"text": "", "weight": 0.0}] * (MAX_PROMPTS - len(prompts))


def _prompt_texts(view: View, changed: Collection[str] | None) -> Iterator[Feedback]:
    # Every slot, so a removed prompt's slot is cleared on the controller.
    for i, prompt in enumerate(_prompt_slots(view)):
        yield f"/soundscape/prompt/{i}", (prompt["text"], prompt["weight"])


def _prompt_weights(view: View, changed: Collection[str] | None) -> Iterator[Feedback]:
    for i, prompt in enumerate(_prompt_slots(view)):
        yield f"/soundscape/prompt/{i}/weight", (prompt["weight"],)


def _prompt_list_render(view: View, changed: Collection[str] | None) -> Iterator[Feedback]:
    flat: list[Any] = []
    for prompt in view.store.get("prompts") or []:
        flat += [prompt["text"], prompt["weight"]]
    if flat:
        yield "/soundscape/prompts", tuple(flat)


def _loras(view: View, changed: Collection[str] | None) -> Iterator[Feedback]:
    for name in sorted(view.store.loras):
        scale = view.store.lora_scale(name)
        if scale is not None:
            yield f"/soundscape/lora/{name}", (scale,)


def _target_key(name: str) -> str:
    """The store key a target reads (so feedback renders only what changed)."""
    prefix, _, _ = name.partition(":")
    return {"lora": "lora_scales", "prompt_weight": "prompts"}.get(prefix, name)


def concrete_targets(store: ParameterStore) -> list[str]:
    return [n for n in targets.target_names(store) if "…" not in n]


def _norm(view: View, changed: Collection[str] | None) -> Iterator[Feedback]:
    for name in concrete_targets(view.store):
        if changed is not None and _target_key(name) not in changed:
            continue
        target = targets.resolve(name, view.store)
        value = target.get(view.store)
        if value is not None:
            yield f"/soundscape/norm/{name}", (target.normalise(value),)


def _transition_steps(view: View, changed: Collection[str] | None) -> Iterator[Feedback]:
    yield "/scope/transition_steps", (view.transition_steps,)


def _transition_method(view: View, changed: Collection[str] | None) -> Iterator[Feedback]:
    yield "/scope/temporal_interpolation_method", (view.transition_method,)


def _status(view: View, changed: Collection[str] | None) -> Iterator[Feedback]:
    if "state" in view.status:
        yield "/soundscape/status", (str(view.status["state"]),)


def _status_fields(view: View, changed: Collection[str] | None) -> Iterator[Feedback]:
    for key, value in view.status.items():
        if key == "state":
            continue
        args = _args_of("" if value is None else value)
        if args is not None and len(args) == 1:
            yield f"/soundscape/status/{key}", args


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    """One address: ``<name>`` parts of ``address`` are captured and passed on."""

    address: str
    args: tuple[Arg, ...]
    action: str
    doc: str
    param: str = ""  # parameter, command or target the action works on
    render: Renderer | None = None
    deps: frozenset[str] | None = frozenset()  # state keys render reads; None = any
    expand: Callable[[ParameterStore], Iterable[str]] | None = None
    inbound: bool = True  # False: only sent by the daemon
    by_pattern: bool = True  # False: only a literal address reaches it (drastic actions)

    @property
    def templated(self) -> bool:
        return "<" in self.address

    def signature(self) -> str:
        return " ".join(arg.signature() for arg in self.args)


def _value(kind: str) -> tuple[Arg, ...]:
    return (Arg("value", kind),)


TRIGGER = (Arg("press", "bool", optional=True),)


def _set(address: str, key: str, kind: str, doc: str, render: bool = True) -> Route:
    return Route(
        address,
        _value(kind),
        "set_param",
        doc,
        key,
        render=_param(address, key) if render else None,
        deps=frozenset({key}),
    )


def _prompt_indices(store: ParameterStore) -> range:
    return range(len(store.get("prompts") or []))


# Parameters that have their own /scope route (the generic one skips them),
# and keys with no flat OSC form or that must not change mid-session.
SCOPE_ROUTED = frozenset(
    {
        "prompts",
        "input_mode",
        "prompt_interpolation_method",
        "denoising_step_list",
        "noise_scale",
        "noise_controller",
        "kv_cache_attention_bias",
        "manage_cache",
        "reset_cache",
        "vace_context_scale",
        "paused",
    }
)
SCOPE_REFUSED = frozenset({"pipeline_ids", "transition"})


def _generic_keys(store: ParameterStore) -> list[str]:
    return sorted(k for k in store.snapshot() if k not in SCOPE_ROUTED | SCOPE_REFUSED)


def _generic_render(view: View, changed: Collection[str] | None) -> Iterator[Feedback]:
    keys = _generic_keys(view.store) if changed is None else sorted(changed)
    for key in keys:
        if key in SCOPE_ROUTED or key in SCOPE_REFUSED or key.startswith("osc.") or key == "status":
            continue
        args = _args_of(view.store.get(key))
        if args is not None:
            yield f"/scope/{key}", args


SCOPE_ROUTES: tuple[Route, ...] = (
    Route(
        "/scope/prompt",
        _value("str"),
        "scope_prompt",
        "Replace the prompts with this one (weight 1). A transition over "
        "`transition_steps` when those are > 0 (set below or by "
        "`[osc] prompt_transition_steps`).",
        "prompts",
        render=_scope_prompt,
        deps=frozenset({"prompts"}),
    ),
    _set("/scope/input_mode", "input_mode", "str", "`text` or `video`."),
    Route(
        "/scope/transition_steps",
        _value("int"),
        "default_steps",
        "Steps of the transition later `/scope/prompt` messages make (0 = cut).",
        render=_transition_steps,
        deps=frozenset({"osc.transition_steps"}),
    ),
    _set(
        "/scope/interpolation_method",
        "prompt_interpolation_method",
        "str",
        "How prompts blend: `linear`, or `slerp` (exactly 2 prompts).",
    ),
    Route(
        "/scope/temporal_interpolation_method",
        _value("str"),
        "default_method",
        "Method of the transitions later `/scope/prompt` messages make: `linear` or `slerp`.",
        render=_transition_method,
        deps=frozenset({"osc.transition_method"}),
    ),
    Route(
        "/scope/denoising_step_list",
        (Arg("steps", "int", rest=True),),
        "set_param",
        "Denoising timesteps, strictly descending (several ints, or one array).",
        "denoising_step_list",
        render=_param("/scope/denoising_step_list", "denoising_step_list"),
        deps=frozenset({"denoising_step_list"}),
    ),
    _set("/scope/noise_scale", "noise_scale", "float", "Noise, 0–1 (video mode)."),
    _set("/scope/noise_controller", "noise_controller", "bool", "Automatic noise (video mode)."),
    _set(
        "/scope/kv_cache_attention_bias",
        "kv_cache_attention_bias",
        "float",
        "Reliance on past frames, 0.01–1 (lower = fresher picture).",
    ),
    _set("/scope/manage_cache", "manage_cache", "bool", "Reset the cache on big changes."),
    Route(
        "/scope/reset_cache",
        TRIGGER,
        "reset_cache",
        "Reset the cache once (a false/0 argument, a button's release, does nothing).",
    ),
    _set("/scope/vace_context_scale", "vace_context_scale", "float", "VACE strength, 0–2."),
    _set("/scope/paused", "paused", "bool", "Pause generation; Scope holds the last frame."),
    Route(
        "/scope/<param>",
        (Arg("value", "any", rest=True),),
        "generic",
        "Any other runtime parameter of the pipeline: one argument is sent as is, "
        "several as a list (known ones are range-checked; `pipeline_ids` is refused).",
        render=_generic_render,
        deps=None,
        expand=lambda store: [f"/scope/{k}" for k in _generic_keys(store)],
    ),
)

SOUNDSCAPE_ROUTES: tuple[Route, ...] = (
    Route(
        "/soundscape/prompt/<index>",
        (Arg("text", "str"), Arg("weight", "float", optional=True)),
        "set_prompt",
        "Set prompt `index` (0–3); `index` = the number of prompts adds one.",
        "prompts",
        render=_prompt_texts,
        deps=frozenset({"prompts"}),
        expand=lambda store: [f"/soundscape/prompt/{i}" for i in _prompt_indices(store)],
    ),
    Route(
        "/soundscape/prompt/<index>/weight",
        (Arg("weight", "float"),),
        "prompt_weight",
        "Weight of prompt `index` (>= 0).",
        "prompts",
        render=_prompt_weights,
        deps=frozenset({"prompts"}),
        expand=lambda store: [f"/soundscape/prompt/{i}/weight" for i in _prompt_indices(store)],
    ),
    Route(
        "/soundscape/prompt/<index>/remove",
        TRIGGER,
        "remove_prompt",
        "Remove prompt `index` (the last one stays).",
        "prompts",
        expand=lambda store: [f"/soundscape/prompt/{i}/remove" for i in _prompt_indices(store)],
    ),
    Route(
        "/soundscape/prompts",
        (Arg("prompts", "prompts", rest=True),),
        "set_prompts",
        "Replace all prompts: text, optional weight, text, optional weight, … (1–4).",
        "prompts",
        render=_prompt_list_render,
        deps=frozenset({"prompts"}),
    ),
    _set(
        "/soundscape/interpolation",
        "prompt_interpolation_method",
        "str",
        "How prompts blend: `linear`, or `slerp` (exactly 2 prompts).",
    ),
    Route(
        "/soundscape/transition",
        (Arg("steps", "int"), Arg("method", "str"), Arg("prompts", "prompts", rest=True)),
        "transition",
        "Move smoothly to the target prompts over `steps` generation steps, "
        'method `linear` or `slerp`; e.g. `8 slerp "a forest" 1.0 "a city" 0.5`.',
        "transition",
    ),
    Route(
        "/soundscape/lora/<name>",
        _value("float"),
        "lora",
        "Runtime scale (−10–10) of the LoRA called `name` in `[[pipeline.loras]]`.",
        "lora_scales",
        render=_loras,
        deps=frozenset({"lora_scales"}),
        expand=lambda store: [f"/soundscape/lora/{n}" for n in sorted(store.loras)],
    ),
    _set("/soundscape/noise", "noise_scale", "float", "Noise, 0–1 (video mode)."),
    _set("/soundscape/noise/auto", "noise_controller", "bool", "Automatic noise (video mode)."),
    _set("/soundscape/vace", "vace_context_scale", "float", "VACE strength, 0–2."),
    _set("/soundscape/cache/bias", "kv_cache_attention_bias", "float", "Cache bias, 0.01–1."),
    _set("/soundscape/cache/manage", "manage_cache", "bool", "Reset the cache on big changes."),
    Route("/soundscape/cache/reset", TRIGGER, "reset_cache", "Reset the cache once."),
    Route(
        "/soundscape/steps",
        (Arg("steps", "int", rest=True),),
        "set_param",
        "Denoising timesteps, strictly descending.",
        "denoising_step_list",
        render=_param("/soundscape/steps", "denoising_step_list"),
        deps=frozenset({"denoising_step_list"}),
    ),
    Route(
        "/soundscape/pause",
        (Arg("paused", "bool", optional=True),),
        "pause",
        "Pause (true/1) or resume (false/0); without an argument, toggle.",
        "paused",
        render=_param("/soundscape/pause", "paused"),
        deps=frozenset({"paused"}),
    ),
    Route(
        "/soundscape/norm/<target>",
        (Arg("unit", "float"),),
        "norm",
        "A control target moved by a 0–1 value, mapped onto its range (for TouchOSC "
        "faders): `noise_scale`, `vace_context_scale`, `kv_cache_attention_bias`, "
        "`lora:<name>`, `prompt_weight:<index>`.",
        render=_norm,
        deps=frozenset(
            {
                "noise_scale",
                "vace_context_scale",
                "kv_cache_attention_bias",
                "lora_scales",
                "prompts",
            }
        ),
        expand=lambda store: [f"/soundscape/norm/{n}" for n in concrete_targets(store)],
    ),
    Route(
        "/soundscape/scene",
        (Arg("scene", "scene"),),
        "command",
        "Recall a scene by name or number (command `scene`).",
        "scene",
    ),
    Route(
        "/soundscape/scene/<name>",
        TRIGGER,
        "command_named",
        "Recall scene `name` (a button per scene; its release does nothing).",
        "scene",
    ),
    Route(
        "/soundscape/variation",
        (Arg("key", "str", optional=True),),
        "command",
        "Bring in a variation of the scene: `next` (no argument), `previous`, `random`, "
        "`base` or a name (command `variation`).",
        "variation",
    ),
    Route(
        "/soundscape/variation/<name>",
        TRIGGER,
        "command_named",
        "Bring in variation `name` (a button per variation).",
        "variation",
    ),
    Route(
        "/soundscape/mapping",
        (Arg("on", "bool", optional=True),),
        "command",
        "Mapping rules on (true/1) or off (false/0); without an argument, toggle "
        "(command `mapping`).",
        "mapping",
    ),
    Route(
        "/soundscape/panic",
        TRIGGER,
        "command",
        "Panic (command `panic`). Only the literal address, never a pattern.",
        "panic",
        by_pattern=False,
    ),
    Route("/soundscape/tap", TRIGGER, "command", "Tap tempo (command `tap`).", "tap"),
    Route(
        "/soundscape/downbeat",
        TRIGGER,
        "command",
        "The one is now: the audio beat clock puts its bar line at the press and holds it "
        "until the tempo changes (command `downbeat`).",
        "downbeat",
    ),
    Route(
        "/soundscape/tempo/half",
        TRIGGER,
        "command",
        "Half time: the audio beat clock reads half its tempo from now on, and leans there "
        "until the next track (command `tempo_half`).",
        "tempo_half",
    ),
    Route(
        "/soundscape/tempo/double",
        TRIGGER,
        "command",
        "Double time: the audio beat clock reads twice its tempo from now on, and leans "
        "there until the next track (command `tempo_double`).",
        "tempo_double",
    ),
    Route(
        "/soundscape/tempo/auto",
        TRIGGER,
        "command",
        "The audio beat clock's octave is its own again (`beat.prior_bpm`; command `tempo_auto`).",
        "tempo_auto",
    ),
    Route(
        "/soundscape/downbeat/release",
        TRIGGER,
        "command",
        "The audio beat clock's grid and bar line are the tracker's again (command "
        "`downbeat_release`).",
        "downbeat_release",
    ),
    Route(
        "/soundscape/learn",
        (Arg("target", "str"),),
        "command",
        "Arm MIDI learn for a target name (command `learn`).",
        "learn",
    ),
    Route(
        "/soundscape/reconnect",
        TRIGGER,
        "command",
        "Drop the Scope session and build a new one (command `reconnect`). Only the "
        "literal address, never a pattern.",
        "reconnect",
        by_pattern=False,
    ),
    Route(
        "/soundscape/failover",
        (Arg("server", "str", optional=True),),
        "command",
        "Show this server's frames on the outputs: a standby, or the primary; without an"
        " argument, the next server (command `failover`; a screen with standbys only). The"
        " daemon sends `/soundscape/failover s server s reason` on every switch. Only the"
        " literal address, never a pattern.",
        "failover",
        by_pattern=False,
    ),
    Route(
        "/soundscape/query",
        (Arg("pattern", "str", optional=True),),
        "query",
        "Send the whole state (every feedback address, or those matching the OSC "
        "pattern) to the sender and to the feedback targets, then `/soundscape/query/end`.",
    ),
)

OUTBOUND_ROUTES: tuple[Route, ...] = (
    Route(
        "/soundscape/status",
        (Arg("state", "str"),),
        "",
        "Session state: `connecting`, `streaming`, `reconnecting`, … (on every change).",
        render=_status,
        deps=frozenset({"status"}),
        inbound=False,
    ),
    Route(
        "/soundscape/status/<field>",
        (Arg("value", "any"),),
        "",
        "Other status fields, e.g. `fps` (f) and `reason` (s).",
        render=_status_fields,
        deps=frozenset({"status"}),
        inbound=False,
    ),
    Route(
        "/soundscape/query/end",
        (Arg("count", "int"),),
        "",
        "Ends a query's answer; `count` = messages sent before it.",
        inbound=False,
    ),
)

ROUTES: tuple[Route, ...] = SCOPE_ROUTES + SOUNDSCAPE_ROUTES + OUTBOUND_ROUTES


# --------------------------------------------------------------------------- lookup


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"<(\w+)>", template)
    out = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return re.compile(out)


class AddressTable:
    """Finds the route of a concrete address; lists concrete addresses for patterns."""

    def __init__(self, routes: Sequence[Route] = ROUTES) -> None:
        self.routes = tuple(routes)
        self._exact = {r.address: r for r in routes if not r.templated}
        # Templates in table order: specific /scope/... routes are exact, so
        # the catch-all /scope/<param> only sees the rest.
        self._templated = [(r, _template_regex(r.address)) for r in routes if r.templated]

    def lookup(self, address: str) -> tuple[Route, dict[str, str]] | None:
        route = self._exact.get(address)
        if route is not None:
            return route, {}
        for route, regex in self._templated:
            m = regex.fullmatch(address)
            if m:
                return route, m.groupdict()
        return None

    def concrete(self, store: ParameterStore) -> list[str]:
        """Every address an incoming pattern can name right now."""
        out: list[str] = []
        for route in self.routes:
            if not route.inbound or not route.by_pattern:
                continue
            if not route.templated:
                out.append(route.address)
            elif route.expand is not None:
                out.extend(route.expand(store))
        return out

    def render(self, view: View, changed: Collection[str] | None = None) -> list[Feedback]:
        """Feedback messages for the ``changed`` state keys (None = everything)."""
        out: list[Feedback] = []
        for route in self.routes:
            if route.render is None:
                continue
            if changed is not None and route.deps is not None and route.deps.isdisjoint(changed):
                continue
            out.extend(route.render(view, changed))
        return out


TABLE = AddressTable()


# --------------------------------------------------------------------------- screens

SCREEN_ROOT = "/screen/"
# Characters OSC 1.0 forbids in an address part (patterns use most of them).
SCREEN_NAME_FORBIDDEN = frozenset(" #*,/?[]{}")


def screen_prefix(name: str) -> str:
    return f"{SCREEN_ROOT}{name}"


def split_screen(address: str) -> tuple[str, str] | None:
    """``/screen/<name>/<rest>`` → ``(name, "/<rest>")``; None for any other address.

    ``/screen/<name>`` alone gives an empty rest (no such address).
    """
    if not address.startswith(SCREEN_ROOT):
        return None
    name, sep, rest = address[len(SCREEN_ROOT) :].partition("/")
    return name, sep + rest


def check_screen_name(name: str) -> None:
    """Raises ValueError when ``name`` cannot be one part of an OSC address."""
    bad = sorted(SCREEN_NAME_FORBIDDEN.intersection(name))
    if not name or bad or not name.isprintable():
        shown = f" (it holds {' '.join(repr(c) for c in bad)})" if bad else ""
        raise ValueError(f"screen name {name!r} cannot be part of an OSC address{shown}")
