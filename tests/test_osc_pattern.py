"""OSC 1.0 address patterns (pure)."""

from __future__ import annotations

import fnmatch
import random

import pytest

from soundscape.control.osc_pattern import PatternError, compile_pattern, is_pattern, matches


@pytest.mark.parametrize(
    ("pattern", "address", "expected"),
    [
        ("/scope/noise_scale", "/scope/noise_scale", True),
        ("/scope/*", "/scope/noise_scale", True),
        ("/scope/*", "/scope/a/b", False),  # * stays inside one part
        ("/*/noise_scale", "/scope/noise_scale", True),
        ("/scope/*_scale", "/scope/vace_context_scale", True),
        ("/scope/*_scale", "/scope/paused", False),
        ("/soundscape/prompt/?", "/soundscape/prompt/3", True),
        ("/soundscape/prompt/?", "/soundscape/prompt/10", False),
        ("/soundscape/prompt/[0-2]/weight", "/soundscape/prompt/1/weight", True),
        ("/soundscape/prompt/[0-2]/weight", "/soundscape/prompt/3/weight", False),
        ("/soundscape/prompt/[!0]", "/soundscape/prompt/1", True),
        ("/soundscape/prompt/[!0]", "/soundscape/prompt/0", False),
        ("/a/[!b]", "/a//", False),  # a negated class never matches '/'
        ("/a/[abc]x", "/a/bx", True),
        ("/a/[-z]", "/a/-", True),  # '-' first is literal
        ("/a/[a-]", "/a/-", True),  # '-' last is literal
        ("/soundscape/{noise,vace}", "/soundscape/vace", True),
        ("/soundscape/{noise,vace}", "/soundscape/cache", False),
        ("/soundscape/{noise,vace}/auto", "/soundscape/noise/auto", True),
        ("/a.b", "/aXb", False),  # regex metacharacters are literal
        ("/a+(b)", "/a+(b)", True),
        ("/x/*", "/x/", True),
    ],
)
def test_matches(pattern: str, address: str, expected: bool) -> None:
    assert matches(pattern, address) is expected


@pytest.mark.parametrize(
    "bad", ["/a/[abc", "/a/{x,y", "/a/]", "/a/}", "/a/[]", "/a/[z-a]", "/{a,{b}}"]
)
def test_bad_patterns_raise(bad: str) -> None:
    with pytest.raises(PatternError):
        compile_pattern(bad)


def test_is_pattern() -> None:
    assert not is_pattern("/scope/noise_scale")
    assert all(is_pattern(p) for p in ("/a/*", "/a/?", "/a/[0]", "/a/{b}"))


def test_compiled_patterns_are_cached() -> None:
    assert compile_pattern("/cache/me/*") is compile_pattern("/cache/me/*")


def _expand_braces(pattern: str) -> list[str]:
    """{a,b} alternatives spelled out, for the fnmatch reference."""
    head, brace, rest = pattern.partition("{")
    if not brace:
        return [pattern]
    body, _, tail = rest.partition("}")
    return [head + alt + more for alt in body.split(",") for more in _expand_braces(tail)]


def _reference(pattern: str, address: str) -> bool:
    # fnmatch (stdlib) part by part: OSC wildcards never cross '/'.
    parts = address.split("/")
    for expanded in _expand_braces(pattern):
        pparts = expanded.split("/")
        if len(pparts) == len(parts) and all(
            fnmatch.fnmatchcase(a, p) for a, p in zip(parts, pparts, strict=True)
        ):
            return True
    return False


def test_agrees_with_fnmatch_on_random_patterns() -> None:
    rng = random.Random(7)
    pieces = ["a", "b", "ab", "*", "?", "/", "[ab]", "[!a]", "{a,bb}", "{b,a}", "{ab,b,}"]
    checked = 0
    for _ in range(20000):
        address = "/" + "".join(rng.choice("ab/") for _ in range(rng.randrange(9)))
        pattern = "/" + "".join(rng.choice(pieces) for _ in range(rng.randrange(7)))
        try:
            regex = compile_pattern(pattern)
        except PatternError:
            continue
        assert (regex.fullmatch(address) is not None) == _reference(pattern, address), (
            pattern,
            address,
        )
        checked += 1
    assert checked > 15000


@pytest.mark.timeout(10)
def test_no_catastrophic_backtracking() -> None:
    # A naive translation needs ~C(40, 30) steps here: the loop would hang.
    evil = "/scope/" + "*a" * 30 + "*b"
    assert not matches(evil, "/scope/" + "a" * 40)
    assert matches(evil, "/scope/" + "a" * 40 + "b")


def test_complexity_limits() -> None:
    with pytest.raises(PatternError, match="longer than"):
        compile_pattern("/" + "a" * 600)
    with pytest.raises(PatternError, match="too many"):
        compile_pattern("/x/*{a,bb}*{a,bb}*{a,bb}*z")
