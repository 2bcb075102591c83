"""OSC 1.0 address patterns: ``*``, ``?``, ``[a-z]``, ``[!0-9]``, ``{foo,bar}``.

Pure logic. An incoming address may be a pattern; the server matches it
against the concrete addresses of its table. Patterns are translated to
regular expressions once and cached (controllers resend the same few).
Wildcards never cross a ``/`` (OSC 1.0); OSC 1.1's ``//`` is not supported.
"""

from __future__ import annotations

import functools
import re

PATTERN_CHARS = frozenset("*?[]{}")
MAX_PATTERN_LENGTH = 512


class PatternError(ValueError):
    """The address pattern is not valid OSC (e.g. an unclosed bracket)."""


def is_pattern(address: str) -> bool:
    return not PATTERN_CHARS.isdisjoint(address)


def _char_class(body: str, pattern: str) -> str:
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    if not body:
        raise PatternError(f"{pattern!r}: empty [] in pattern")
    parts: list[str] = []
    i = 0
    while i < len(body):
        # "a-z" is a range; a '-' first or last is a literal '-'.
        if i + 2 < len(body) and body[i + 1] == "-":
            low, high = body[i], body[i + 2]
            if low > high:
                raise PatternError(f"{pattern!r}: range {low}-{high} is reversed")
            parts.append(f"{re.escape(low)}-{re.escape(high)}")
            i += 3
        else:
            parts.append(re.escape(body[i]))
            i += 1
    # A negated class must still stay inside one address part.
    return f"[^/{''.join(parts)}]" if negate else f"[{''.join(parts)}]"


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regex matching exactly the addresses ``pattern`` names (cached).

    A naive translation (``*`` → ``[^/]*``) backtracks exponentially on
    ``/a*a*a*a*a*b`` — a few such packets would stall the loop. As in
    CPython's fnmatch, each part between two stars is matched at its first
    occurrence inside an atomic group, which is exact when the part has a
    fixed length; parts with ``{…}`` alternatives of different lengths keep
    backtracking, and a pattern with more than two of those is refused.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
    # Units: (regex, fixed length?) ; "*" and "/" stand for themselves.
    units: list[tuple[str, bool] | str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if not units or units[-1] != "*":  # "**" is "*"
                units.append("*")
        elif c == "/":
            units.append("/")
        elif c == "?":
            units.append(("[^/]", True))
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise PatternError(f"{pattern!r}: unclosed [")
            units.append((_char_class(pattern[i + 1 : end], pattern), True))
            i = end
        elif c == "{":
            end = pattern.find("}", i + 1)
            if end < 0:
                raise PatternError(f"{pattern!r}: unclosed {{")
            body = pattern[i + 1 : end]
            if "{" in body or "/" in body:
                raise PatternError(f"{pattern!r}: {{...}} cannot nest or hold '/'")
            alternatives = body.split(",")
            regex = "(?:" + "|".join(re.escape(alt) for alt in alternatives) + ")"
            units.append((regex, len({len(alt) for alt in alternatives}) == 1))
            i = end
        elif c in "]}":
            raise PatternError(f"{pattern!r}: unmatched {c}")
        else:
            units.append((re.escape(c), True))
        i += 1
    out: list[str] = []
    backtracking = 0
    part: list[tuple[str, bool] | str] = []
    for unit in [*units, "/"]:
        if unit != "/":
            part.append(unit)
            continue
        # One address part: segments between stars.
        segments: list[list[tuple[str, bool]]] = [[]]
        for item in part:
            if item == "*":
                segments.append([])
            else:
                assert isinstance(item, tuple)
                segments[-1].append(item)
        text = ["".join(r for r, _ in seg) for seg in segments]
        piece = text[0]
        for seg, seg_text in zip(segments[1:-1], text[1:-1], strict=True):
            if all(fixed for _, fixed in seg):
                piece += f"(?>[^/]*?{seg_text})"
            else:
                piece += f"[^/]*?{seg_text}"
                backtracking += 1
        if len(segments) > 1:
            piece += f"[^/]*{text[-1]}"
        out.append(piece)
        part = []
    if backtracking > 2:
        raise PatternError(f"{pattern!r}: too many '*' around {{…}} of different lengths")
    try:
        return re.compile("/".join(out))
    except re.error as err:  # belt and braces: a class the checks above missed
        raise PatternError(f"{pattern!r}: {err}") from None


def matches(pattern: str, address: str) -> bool:
    """Does OSC ``pattern`` name ``address``? Raises PatternError for a bad pattern."""
    return compile_pattern(pattern).fullmatch(address) is not None
