"""``--video-in SPEC``: which kind of source a spec names (pure)."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("test", "ndi", "v4l2", "file", "scope")
# Sources Scope reads itself on the GPU host (``input_source``), by their type there.
SERVER_TYPES = ("ndi", "spout", "syphon")


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # test | ndi | v4l2 | file (a file or a stream URL, through PyAV) | scope
    target: str  # the NDI name, device path, file path or URL ("" for test)
    server_type: str = ""  # kind scope: ndi, spout or syphon on the Scope server

    def __str__(self) -> str:
        if self.kind == "scope":
            return f"scope-{self.server_type}:{self.target}"
        return self.kind if self.kind == "test" else f"{self.kind}:{self.target}"


def parse_spec(text: str) -> SourceSpec:
    """``test``, ``ndi:NAME``, ``/dev/videoN`` (or ``v4l2:PATH``), ``scope-ndi:NAME``
    (``scope-spout:``, ``scope-syphon:``: read by the Scope server itself), else a file or URL.

    Raises ValueError for an empty spec or an empty name.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty video-in source")
    if text == "test":
        return SourceSpec("test", "")
    for server_type in SERVER_TYPES:
        prefix = f"scope-{server_type}:"
        if text.startswith(prefix):
            name = text[len(prefix) :].strip()
            if not name:
                raise ValueError(f"{text!r}: a source name is missing after {prefix!r}")
            return SourceSpec("scope", name, server_type)
    for prefix, kind in (("ndi:", "ndi"), ("v4l2:", "v4l2"), ("file:", "file")):
        if text.startswith(prefix):
            target = text[len(prefix) :].strip()
            if not target:
                raise ValueError(f"{text!r}: a name or path is missing after {prefix!r}")
            return SourceSpec(kind, target)
    if text.startswith("/dev/video"):
        return SourceSpec("v4l2", text)
    return SourceSpec("file", text)
