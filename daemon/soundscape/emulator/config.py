"""Settings of one emulated Scope server.

The defaults are the "v0.2.4" profile: every behaviour recorded from the real
Daydream Scope 0.2.4 server (``/work/shared/scope-v0.2.4/``). The few lenient
switches exist only for tests that need them; each is named for what it relaxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PUBLIC_STUN = "stun:stun.l.google.com:19302"


@dataclass
class EmulatorConfig:
    """What the emulated server looks like.

    ``width``/``height``: frame size when a load gives none. ``fps``: frame rate of the
    emulated diffusion (GPU) pipelines. ``load_time``: seconds a diffusion pipeline load
    takes (the real ones take minutes; the weight-free CPU pipelines take
    ``cpu_load_time``). ``unload_time``: how long the previous pipeline takes to unload
    on a switch; status GETs wait for it, as on the real server. ``restart_delay`` and
    ``restart_downtime``: ``POST /api/v1/restart`` stops frames that long after its
    answer, then refuses connections for ``restart_downtime`` s. ``loras``: files listed
    by ``/api/v1/loras`` (they need not exist). ``missing_models``: pipelines whose
    weights are absent (their load fails, ``models/status`` says not downloaded).
    ``ice_servers``: the ``webrtc/ice-servers`` list (the real one names a public STUN
    server; ``[]`` for a test that wants none). ``tempo_bpm`` turns on the tempo sync of
    newer Scope versions (``tempo_update`` messages, beat-quantized changes); v0.2.4 has
    none, so it is off by default.
    """

    width: int = 576
    height: int = 320
    fps: float = 30.0
    load_time: float = 0.5
    cpu_load_time: float = 0.015
    unload_time: float = 0.26
    restart_delay: float = 0.5
    restart_downtime: float = 4.4
    loras: list[str | Path] = field(default_factory=list)
    missing_models: frozenset[str] = frozenset({"rife", "scribble"})
    ice_servers: list[dict[str, object]] = field(
        default_factory=lambda: [{"urls": [PUBLIC_STUN], "username": None, "credential": None}]
    )
    tempo_bpm: float | None = None
    beats_per_bar: int = 4
    version: str = "0.2.4"
