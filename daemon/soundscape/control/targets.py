"""Continuous control targets: named things a knob, a fader or an audio feature can move.

A target name is what config files, OSC, MIDI mappings and mapping rules use:

- ``noise_scale``, ``vace_context_scale``, ``kv_cache_attention_bias`` — Scope's floats
- ``lora:<name>`` — a loaded LoRA's runtime scale (name from ``[[pipeline.loras]]``)
- ``prompt_weight:<index>`` — the weight of prompt ``index`` (0-based)

Each target knows its range and how to read and write the parameter store, so
every control surface shares one definition. Components may register more
targets with :func:`register_target` (e.g. a denoising-steps profile).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from soundscape.errors import ParamError
from soundscape.scope.params import LORA_SCALE_RANGE, PARAM_SPECS, ParameterStore

Getter = Callable[[ParameterStore], float | None]
Setter = Callable[[ParameterStore, float, str], dict[str, Any]]


@dataclass(frozen=True)
class Target:
    name: str
    low: float
    high: float
    doc: str
    getter: Getter
    setter: Setter

    def get(self, store: ParameterStore) -> float | None:
        """Current value, or None when the state does not hold it yet."""
        return self.getter(store)

    def set(self, store: ParameterStore, value: float, *, source: str) -> dict[str, Any]:
        """Set the value, clamped to the target's range; returns what changed."""
        return self.setter(store, min(self.high, max(self.low, float(value))), source)

    def normalise(self, value: float) -> float:
        """Value → 0..1 over the target's range (for feedback to knobs and LEDs)."""
        span = self.high - self.low
        return 0.0 if span == 0 else min(1.0, max(0.0, (value - self.low) / span))

    def denormalise(self, unit: float) -> float:
        return self.low + (self.high - self.low) * min(1.0, max(0.0, unit))


def _float_param(name: str) -> Target:
    spec = PARAM_SPECS[name]
    assert spec.low is not None and spec.high is not None

    def getter(store: ParameterStore) -> float | None:
        value = store.get(name)
        return None if value is None else float(value)

    def setter(store: ParameterStore, value: float, source: str) -> dict[str, Any]:
        return store.set(name, value, source=source)

    return Target(name, spec.low, spec.high, spec.doc, getter, setter)


_STATIC: dict[str, Target] = {
    name: _float_param(name)
    for name in ("noise_scale", "vace_context_scale", "kv_cache_attention_bias")
}

_FACTORIES: dict[str, Callable[[str, ParameterStore], Target]] = {}


def register_target(prefix: str, factory: Callable[[str, ParameterStore], Target]) -> None:
    """Add a family of targets ``<prefix>:<arg>``; ``factory(arg, store)`` builds one."""
    _FACTORIES[prefix] = factory


def _lora_target(name: str, store: ParameterStore) -> Target:
    if name not in store.loras and name not in store.loras.values():
        known = ", ".join(sorted(store.loras)) or "none configured"
        raise ParamError(f"lora:{name}: not a loaded LoRA (known: {known})")
    low, high = LORA_SCALE_RANGE
    return Target(
        f"lora:{name}",
        low,
        high,
        f"Runtime scale of LoRA {name!r}.",
        lambda s: s.lora_scale(name),
        lambda s, v, src: s.set_lora_scale(name, v, source=src),
    )


def _prompt_weight_target(arg: str, store: ParameterStore) -> Target:
    try:
        index = int(arg)
    except ValueError:
        raise ParamError(f"prompt_weight:{arg}: the index must be an integer") from None
    if not 0 <= index < 4:
        raise ParamError(f"prompt_weight:{index}: index must be 0..3")

    def getter(s: ParameterStore) -> float | None:
        prompts = s.get("prompts", [])
        return float(prompts[index]["weight"]) if index < len(prompts) else None

    def setter(s: ParameterStore, value: float, source: str) -> dict[str, Any]:
        return s.set_prompt(index, weight=value, source=source)

    return Target(f"prompt_weight:{index}", 0.0, 1.0, f"Weight of prompt {index}.", getter, setter)


register_target("lora", _lora_target)
register_target("prompt_weight", _prompt_weight_target)


def resolve(name: str, store: ParameterStore) -> Target:
    """The target called ``name``; raises ParamError with the known names otherwise."""
    if name in _STATIC:
        return _STATIC[name]
    prefix, sep, arg = name.partition(":")
    if sep and prefix in _FACTORIES:
        return _FACTORIES[prefix](arg, store)
    raise ParamError(f"{name!r}: unknown target (known: {', '.join(target_names(store))})")


def target_names(store: ParameterStore) -> list[str]:
    """Every concrete target name for this store (for docs, learn menus, errors)."""
    names = list(_STATIC)
    names += [f"lora:{name}" for name in sorted(store.loras)]
    names += [f"prompt_weight:{i}" for i in range(len(store.get("prompts", [])))]
    names += [f"{prefix}:…" for prefix in _FACTORIES if prefix not in ("lora", "prompt_weight")]
    return names
