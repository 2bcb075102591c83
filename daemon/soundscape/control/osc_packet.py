"""OSC wire format: datagrams to timed messages and back.

Pure logic. Messages are parsed by python-osc (``OscMessage`` and its type
readers); bundles are walked here with python-osc's primitive readers,
because ``OscBundle`` loops forever on a negative element size (one hostile
packet would hang the event loop) and logs to the root logger for content it
cannot identify. Type tags are checked before python-osc parses a message:
it skips unknown tags without advancing, which silently shifts every
following argument. Symbols (S), chars (c) and Infinitum (I), which liblo
and Max send, are read through the python-osc type with the same layout.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pythonosc import osc_message
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

BUNDLE_PREFIX = b"#bundle\x00"
MAX_BUNDLE_DEPTH = 8
# The tags python-osc reads: i h f d s b T F N r m t and arrays.
SUPPORTED_TAGS = frozenset("ihfdsbTFNrmt[]")
# OSC 1.0's other standard tags, read as one python-osc knows with the same
# wire layout: symbol as string, char as int32, Infinitum (no data) as nil.
STAND_INS = {"S": "s", "c": "i", "I": "N"}
INT32 = (-(2**31), 2**31 - 1)


class MalformedPacket(ValueError):
    """The datagram is not valid OSC; the message says why."""


@dataclass(frozen=True, slots=True)
class Message:
    address: str
    args: tuple[Any, ...]
    tags: str  # type tags without the leading comma ('' when none)


@dataclass(frozen=True, slots=True)
class Timed:
    """A message and when to apply it: ``when`` is Unix time, None = immediately."""

    when: float | None
    message: Message


def decode(dgram: bytes) -> list[Timed]:
    """Every message of a datagram in order, with its time; raises MalformedPacket."""
    try:
        if dgram.startswith(BUNDLE_PREFIX):
            out: list[Timed] = []
            _walk_bundle(dgram, None, 1, out)
            return out
        if dgram.startswith(b"/"):
            return [Timed(None, _message(dgram))]
    except MalformedPacket:
        raise
    # python-osc raises its own ParseErrors, and UnicodeDecodeError / struct
    # errors it does not wrap; any of them means the packet is bad.
    except Exception as err:
        raise MalformedPacket(f"cannot parse: {err}") from None
    raise MalformedPacket("neither a message (starts with '/') nor a bundle")


def _walk_bundle(dgram: bytes, outer: float | None, depth: int, out: list[Timed]) -> None:
    if depth > MAX_BUNDLE_DEPTH:
        raise MalformedPacket(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
    if len(dgram) < len(BUNDLE_PREFIX) + 8:
        raise MalformedPacket("bundle too short for its time tag")
    stamp, index = osc_types.get_date(dgram, len(BUNDLE_PREFIX))
    when: float | None = None if stamp == osc_types.IMMEDIATELY else float(stamp)
    # A bundle cannot take effect before the bundle holding it (OSC 1.0).
    if outer is not None and (when is None or when < outer):
        when = outer
    while index < len(dgram):
        size, index = osc_types.get_int(dgram, index)
        if size <= 0 or size % 4 or index + size > len(dgram):
            raise MalformedPacket(f"bundle element size {size} does not fit the packet")
        element = dgram[index : index + size]
        index += size
        if element.startswith(BUNDLE_PREFIX):
            _walk_bundle(element, when, depth + 1, out)
        elif element.startswith(b"/"):
            out.append(Timed(when, _message(element)))
        else:
            raise MalformedPacket("bundle element is neither a message nor a bundle")


def _message(dgram: bytes) -> Message:
    _, index = osc_types.get_string(dgram, 0)
    tags = ""
    if index < len(dgram):
        tag_string, _ = osc_types.get_string(dgram, index)
        if not tag_string.startswith(","):
            raise MalformedPacket("type tag string does not start with ','")
        tags = tag_string[1:]
        unknown = sorted(set(tags) - SUPPORTED_TAGS - set(STAND_INS))
        if unknown:
            raise MalformedPacket(f"unknown type tag(s) {''.join(unknown)!r}")
        if not STAND_INS.keys().isdisjoint(tags):
            # Same wire layout as a type python-osc reads: swap the tag in place.
            start = index + 1
            swapped = "".join(STAND_INS.get(t, t) for t in tags).encode("ascii")
            dgram = dgram[:start] + swapped + dgram[start + len(swapped) :]
    message = osc_message.OscMessage(dgram)
    leaf_tags = iter(tags.replace("[", "").replace("]", ""))
    return Message(message.address, tuple(_tidy(message.params, leaf_tags)), tags)


def float32_decimal(value: float) -> float:
    """The shortest decimal that is the same 32-bit float: 0.7f arrives as 0.699999988…

    Controllers mean the decimal they show; Scope and the logs should see it too.
    """
    if not math.isfinite(value):
        return value
    packed = struct.pack(">f", value)
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack(">f", candidate) == packed:
            return candidate
    return value


def _tidy(params: list[Any], tags: Iterator[str]) -> list[Any]:
    out: list[Any] = []
    for param in params:
        if isinstance(param, list):
            out.append(_tidy(param, tags))
            continue
        tag = next(tags, "")
        if tag == "f":
            param = float32_decimal(param)
        elif tag == "c":
            if not 0 <= param < 0x110000:
                raise MalformedPacket(f"char argument {param} is not a character")
            param = chr(param)
        elif tag == "I":
            param = math.inf
        out.append(param)
    return out


# --------------------------------------------------------------------------- encoding


def _tag(value: Any) -> str:
    if isinstance(value, str):
        return "s"
    if isinstance(value, bytes):
        return "b"
    if isinstance(value, int):  # bools included: 1/0 is what every controller takes
        return "i" if INT32[0] <= value <= INT32[1] else "h"
    if isinstance(value, float):
        return "f"
    raise TypeError(f"cannot send {value!r} over OSC")


def encode(address: str, args: tuple[Any, ...] | list[Any] = ()) -> bytes:
    """One OSC message; bools go out as ints 1/0, lists are flattened."""
    builder = OscMessageBuilder(address)
    for value in args:
        for item in value if isinstance(value, list | tuple) else (value,):
            if isinstance(item, bool):
                item = int(item)
            builder.add_arg(item, _tag(item))
    return builder.build().dgram
