"""OSC wire format: liblo-encoded messages, bundles, hostile packets (pure)."""

from __future__ import annotations

import math
import shutil
import struct
import subprocess

import pytest
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from soundscape.control.osc_packet import (
    MalformedPacket,
    decode,
    encode,
    float32_decimal,
)

needs_liblo = pytest.mark.skipif(
    shutil.which("oscsend") is None, reason="liblo-tools (oscsend) not installed"
)


def liblo(address: str, types: str = "", *values: str) -> bytes:
    """The bytes liblo's oscsend puts on the wire (written to stdout with url '-')."""
    out = subprocess.run(
        ["oscsend", "-", address, types, *values], capture_output=True, check=True, timeout=10
    )
    return out.stdout


def message(address: str, *args: tuple[object, str]) -> bytes:
    builder = OscMessageBuilder(address)
    for value, tag in args:
        builder.add_arg(value, tag)
    return builder.build().dgram


def bundle(when: float | int, *contents: bytes) -> bytes:
    """A bundle of raw elements (python-osc's builder wants parsed objects)."""
    body = b"".join(struct.pack(">i", len(c)) + c for c in contents)
    return b"#bundle\x00" + osc_types.write_date(when) + body


@needs_liblo
def test_every_type_liblo_sends() -> None:
    [timed] = decode(
        liblo("/a/b", "ifsTFNhdcSI", "1", "0.7", "hello", "9000000000", "1.25", "x", "sym")
    )
    assert timed.when is None
    m = timed.message
    assert m.address == "/a/b"
    assert m.args == (1, 0.7, "hello", True, False, None, 9000000000, 1.25, "x", "sym", math.inf)
    assert m.tags == "ifsTFNhdcSI"


@needs_liblo
def test_liblo_message_without_arguments() -> None:
    [timed] = decode(liblo("/soundscape/tap"))
    assert timed.message.args == ()


def test_blob_and_array_from_python_osc() -> None:
    dgram = message("/x", (b"\x00\x01text", "b"), ([1, 2, 3], ["i", "i", "i"]), (0.1, "f"))
    [timed] = decode(dgram)
    assert timed.message.args == (b"\x00\x01text", [1, 2, 3], 0.1)


def test_float32_shown_as_its_decimal() -> None:
    as_f32 = struct.unpack(">f", struct.pack(">f", 0.7))[0]
    assert as_f32 != 0.7
    assert float32_decimal(as_f32) == 0.7
    assert float32_decimal(1 / 3) != 1 / 3  # not a float32 value: rounded to one
    assert math.isnan(float32_decimal(math.nan))


def test_bundle_times_and_nesting() -> None:
    now = 2_000_000_000.0
    inner_early = bundle(now - 10, message("/early", (1, "i")))  # earlier than its parent
    inner_late = bundle(now + 5, message("/late", (2, "i")))
    inner_now = bundle(osc_types.IMMEDIATELY, message("/now", (3, "i")))
    outer = bundle(now + 1, message("/outer", (0, "i")), inner_early, inner_late, inner_now)
    timed = decode(outer)
    assert [(t.message.address, t.when) for t in timed] == [
        ("/outer", pytest.approx(now + 1)),
        ("/early", pytest.approx(now + 1)),  # never before the bundle holding it
        ("/late", pytest.approx(now + 5)),
        ("/now", pytest.approx(now + 1)),
    ]


def test_immediate_bundle() -> None:
    builder = OscBundleBuilder(osc_types.IMMEDIATELY)
    builder.add_content(OscMessageBuilder("/a").build())
    [timed] = decode(builder.build().dgram)
    assert timed.when is None


@pytest.mark.parametrize(
    ("dgram", "reason"),
    [
        (b"", "neither"),
        (b"hello", "neither"),
        (b"/a\x00", "cannot parse"),  # string not padded to 4
        (b"/a\x00\x00,q\x00\x00", "unknown type tag"),
        (b"/a\x00\x00i\x00\x00\x00", "','"),
        (b"/a\x00\x00,i\x00\x00", "cannot parse"),  # int missing
        (b"/\xff\xfe\x00", "cannot parse"),  # not UTF-8
        (b"#bundle\x00\x00\x00", "too short"),
        # python-osc's OscBundle loops forever on this one (negative element size).
        (b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", -4), "does not fit"),
        (
            b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", 400) + b"/a\x00\x00",
            "does not fit",
        ),
        (b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", 4) + b"abcd", "neither"),
    ],
)
def test_malformed_packets_raise(dgram: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason):
        decode(dgram)


def test_bundles_nested_too_deep() -> None:
    dgram = message("/deep", (1, "i"))
    for _ in range(12):
        dgram = bundle(osc_types.IMMEDIATELY, dgram)
    with pytest.raises(MalformedPacket, match="nested deeper"):
        decode(dgram)


def test_encode_roundtrip_and_types() -> None:
    dgram = encode("/fb", (True, 3, 0.5, "text", 2**40, [1, 2]))
    [timed] = decode(dgram)
    assert timed.message.tags == "iifshii"  # bool as int, big int as int64, list flattened
    assert timed.message.args == (1, 3, 0.5, "text", 2**40, 1, 2)
    with pytest.raises(TypeError):
        encode("/fb", (object(),))
