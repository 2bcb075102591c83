"""A small declarative schema for TOML settings, built on dataclasses.

Each component declares its own config section as a dataclass whose fields use
:func:`setting` (default, doc, range, choices). :func:`build` turns a parsed
TOML mapping into those dataclasses and collects *every* problem at once, each
with its dotted key path, so ``soundscape check-config`` can report them all.

Kept apart from ``config.py`` (which knows the sections and the file) so every
component can declare its section without importing the whole daemon.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def setting(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[Any, ...] | None = None,
    secret: bool = False,
    factory: Any = dataclasses.MISSING,
    hidden: bool = False,
) -> Any:
    """A config field: its default, a one-line doc, and optional range or choices.

    ``hidden``: filled from another key (``[[scope]]`` entries after the first fill
    ``servers``), so the reference documents it there, not under its own name.
    """
    metadata = {
        "doc": doc,
        "low": low,
        "high": high,
        "choices": choices,
        "secret": secret,
        "hidden": hidden,
    }
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    if isinstance(default, list | dict):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One config error: where (dotted key path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class _Invalid(Exception):
    pass


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(
        tp, "none" if tp is type(None) else getattr(tp, "__name__", str(tp))
    )


def _convert(tp: Any, value: Any, path: str, problems: list[Problem]) -> Any:
    """Check ``value`` against the annotation ``tp``; raise _Invalid after recording."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            trial: list[Problem] = []
            try:
                return _convert(arg, value, path, trial)
            except _Invalid:
                continue
        problems.append(Problem(path, f"expected {_type_name(tp)}, got {value!r}"))
        raise _Invalid
    if origin is list:
        (item_type,) = typing.get_args(tp)
        if not isinstance(value, list):
            problems.append(Problem(path, f"expected {_type_name(tp)}, got {value!r}"))
            raise _Invalid
        out, bad = [], False
        for i, item in enumerate(value):
            try:
                out.append(_convert(item_type, item, _join(path, i), problems))
            except _Invalid:
                bad = True
        if bad:
            raise _Invalid
        return out
    if origin is dict:
        _key_type, item_type = typing.get_args(tp)
        if not isinstance(value, Mapping):
            problems.append(Problem(path, f"expected a table, got {value!r}"))
            raise _Invalid
        out_d, bad = {}, False
        for k, item in value.items():
            try:
                out_d[str(k)] = _convert(item_type, item, _join(path, str(k)), problems)
            except _Invalid:
                bad = True
        if bad:
            raise _Invalid
        return out_d
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            problems.append(Problem(path, f"expected a table, got {value!r}"))
            raise _Invalid
        before = len(problems)
        result = build(tp, value, path, problems)
        if len(problems) > before:
            raise _Invalid
        return result
    if tp is bool:
        if not isinstance(value, bool):
            problems.append(Problem(path, f"expected true/false, got {value!r}"))
            raise _Invalid
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(Problem(path, f"expected an integer, got {value!r}"))
            raise _Invalid
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(Problem(path, f"expected a number, got {value!r}"))
            raise _Invalid
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            problems.append(Problem(path, f"expected a string, got {value!r}"))
            raise _Invalid
        return value
    return value


def build(cls: type[T], data: Mapping[str, Any], path: str, problems: list[Problem]) -> T:
    """Build dataclass ``cls`` from ``data``; append every problem found to ``problems``.

    Fields that fail keep their defaults so one mistake never hides the next.
    A dataclass may define ``check(self) -> list[tuple[str, str]]`` for rules
    across fields; it returns (key, message) pairs.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(Problem(_join(path, str(key)), f"unknown key{hint}"))
    for name, f in fields.items():
        if name not in data:
            continue
        field_path = _join(path, name)
        try:
            value = _convert(hints[name], data[name], field_path, problems)
        except _Invalid:
            continue
        meta = f.metadata
        low, high, choices = meta.get("low"), meta.get("high"), meta.get("choices")
        numbers = value if isinstance(value, list) else [value]
        if any(
            isinstance(v, int | float)
            and not isinstance(v, bool)
            and ((low is not None and v < low) or (high is not None and v > high))
            for v in numbers
        ):
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            problems.append(Problem(field_path, f"{value!r} is outside {lo}..{hi}"))
            continue
        if choices is not None and any(v not in choices for v in numbers):
            options = ", ".join(repr(c) for c in choices)
            problems.append(Problem(field_path, f"{value!r} is not one of {options}"))
            continue
        kwargs[name] = value
    try:
        obj = cls(**kwargs)
    except TypeError as err:  # a required field is missing
        problems.append(Problem(path, str(err)))
        raise _Invalid from None
    check = getattr(obj, "check", None)
    if callable(check):
        for key, message in check():
            problems.append(Problem(_join(path, key) if key else path, message))
    return obj


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, Any]]:
    """(dotted key, doc, default) for every documented field — for docs and tests."""
    rows: list[tuple[str, str, Any]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("hidden"):
            continue
        key = _join(prefix, f.name)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, key))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        rows.append((key, f.metadata.get("doc", ""), default))
    return rows


def secret_paths(cls: type, prefix: str = "") -> set[str]:
    """Dotted keys marked secret=True (never logged)."""
    out: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = _join(prefix, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            out |= secret_paths(hints[f.name], key)
        elif f.metadata.get("secret"):
            out.add(key)
    return out
