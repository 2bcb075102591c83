"""``--video-in SPEC``: which kind of source a spec names (pure)."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("test", "ndi", "v4l2", "file")


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # test | ndi | v4l2 | file (a file or a stream URL, through PyAV)
    target: str  # the NDI name, device path, file path or URL ("" for test)

    def __str__(self) -> str:
        return self.kind if self.kind == "test" else f"{self.kind}:{self.target}"


def parse_spec(text: str) -> SourceSpec:
    """``test``, ``ndi:NAME``, ``/dev/videoN`` (or ``v4l2:PATH``), else a file or URL.

    Raises ValueError for an empty spec or an empty name.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty video-in source")
    if text == "test":
        return SourceSpec("test", "")
    for prefix, kind in (("ndi:", "ndi"), ("v4l2:", "v4l2"), ("file:", "file")):
        if text.startswith(prefix):
            target = text[len(prefix) :].strip()
            if not target:
                raise ValueError(f"{text!r}: a name or path is missing after {prefix!r}")
            return SourceSpec(kind, target)
    if text.startswith("/dev/video"):
        return SourceSpec("v4l2", text)
    return SourceSpec("file", text)
