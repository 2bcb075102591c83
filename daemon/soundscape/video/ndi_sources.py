"""``soundscape ndi-sources``: the NDI sources this machine sees, with this process's config."""

from __future__ import annotations

import time

from soundscape.errors import BackendUnavailable


def list_sources(seconds: float) -> list[str]:
    """Full source names ("HOST (NAME)") found within ``seconds``.

    Call :func:`soundscape.video.ndi_env.configure` first: discovery follows it.
    """
    try:
        from cyndilib import Finder
    except ImportError:
        raise BackendUnavailable(
            "NDI is not installed: pip install 'soundscape[ndi]' (cyndilib)"
        ) from None
    finder = Finder()
    finder.open()
    try:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            finder.wait_for_sources(min(0.5, left))
        return sorted(finder.get_source_names())
    finally:
        finder.close()
