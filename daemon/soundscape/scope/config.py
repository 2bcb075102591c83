"""The ``[scope]``, ``[pipeline]`` and ``[session]`` sections: the Scope part's own config.

Kept beside the part (the root :mod:`soundscape.config` only composes the
sections), so importing the supervisor does not load audio or video.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from soundscape.scope.pipeline_check import load_conflicts
from soundscape.settings import setting
from soundscape.urls import http_url_problem

VAE_TYPES = ("wan", "lightvae", "tae", "lighttae")
QUANTIZATIONS = ("fp8_e4m3fn",)
LORA_MERGE_MODES = ("permanent_merge", "runtime_peft")


@dataclasses.dataclass
class ScopeSection:
    url: str = setting("http://127.0.0.1:8000", "Scope server base URL (local, RunPod proxy, ...).")
    token_env: str = setting(
        "SCOPE_TOKEN",
        "Environment variable holding a token for an auth proxy; never logged.",
    )
    auth_header: str = setting("Authorization", "Header the token goes in.")
    auth_scheme: str = setting("Bearer", "Prefix before the token ('' for none).")
    connect_timeout: float = setting(3.0, "Seconds to open a TCP connection.", low=0.1)
    request_timeout: float = setting(10.0, "Seconds for one REST request.", low=0.1)
    use_server_ice: bool = setting(
        True, "Use the ICE servers Scope returns (none = host candidates only)."
    )
    ice_probe_timeout: float = setting(
        0.3,
        "Seconds to wait for a STUN/TURN server of Scope's ICE list to answer; one that does"
        " not is left out (offline, the public STUN server would delay every session by 5 s).",
        low=0.01,
        high=5,
    )

    def check(self) -> list[tuple[str, str]]:
        problem = http_url_problem(self.url)  # the same check as --scope-url
        return [("url", problem)] if problem else []


@dataclasses.dataclass
class LoraEntry:
    name: str = setting(doc="Short name used by OSC, MIDI and mapping rules.")
    path: str = setting(doc="Path of the LoRA file on the Scope server.")
    scale: float = setting(1.0, "Scale at load.", low=-10.0, high=10.0)


@dataclasses.dataclass
class PipelineSection:
    pipeline_ids: list[str] = setting(["longlive"], "Main pipeline (last) and any before it.")
    preprocessors: list[str] = setting(
        [], "Preprocessors prepended in video mode (e.g. video-depth-anything)."
    )
    width: int = setting(576, "Output width; divisible by 16.", low=16, high=2048)
    height: int = setting(320, "Output height; divisible by 16.", low=16, high=2048)
    seed: int | None = setting(None, "Generation seed (none = server default).")
    vae_type: str | None = setting(
        "lightvae", "VAE: wan, lightvae, tae, lighttae.", choices=(*VAE_TYPES, None)
    )
    quantization: str | None = setting(
        None, "Weights quantization (fp8_e4m3fn) or none.", choices=(*QUANTIZATIONS, None)
    )
    vace_enabled: bool = setting(False, "Load VACE (reference images, context scale).")
    lora_merge_mode: str = setting(
        "runtime_peft",
        "permanent_merge (fastest, fixed scales) or runtime_peft (live LoRA scales).",
        choices=LORA_MERGE_MODES,
    )
    loras: list[LoraEntry] = setting([], "LoRAs loaded with the pipeline.")
    load_timeout: float = setting(600.0, "Seconds to wait for a load before retrying.", low=1)
    load_retry_max: float = setting(
        10.0,
        "Longest delay before loading again after a failed load, s (a load is heavy for the"
        " server; the offer backoff alone would retry it every second).",
        low=0.1,
    )
    load_grace: float = setting(
        2.0,
        "Seconds a load may show no sign of starting (status still not_loaded or the old"
        " pipeline) before it counts as failed.",
        low=0.1,
    )

    def check(self) -> list[tuple[str, str]]:
        problems = []
        for key in ("width", "height"):
            if getattr(self, key) % 16:
                problems.append((key, f"{getattr(self, key)} is not divisible by 16"))
        problems += load_conflicts(self.load_params())
        if not self.pipeline_ids:
            problems.append(("pipeline_ids", "needs at least one pipeline"))
        names = [lora.name for lora in self.loras]
        for name in {n for n in names if names.count(n) > 1}:
            problems.append(("loras", f"LoRA name {name!r} is used twice"))
        return problems

    def load_params(self) -> dict[str, Any]:
        """The ``load_params`` of ``POST /api/v1/pipeline/load``."""
        params: dict[str, Any] = {
            "width": self.width,
            "height": self.height,
            "vace_enabled": self.vace_enabled,
            "quantization": self.quantization,
        }
        if self.vae_type is not None:
            params["vae_type"] = self.vae_type
        if self.seed is not None:
            params["seed"] = self.seed
        if self.loras:
            params["loras"] = [{"path": lo.path, "scale": lo.scale} for lo in self.loras]
            params["lora_merge_mode"] = self.lora_merge_mode
        return params


@dataclasses.dataclass
class SessionSection:
    stall_timeout: float = setting(
        3.0, "Seconds with no frame before a streaming session is rebuilt.", low=0.2
    )
    first_frame_timeout: float = setting(
        10.0,
        "Seconds a new session may take to its first frame (a diffusion pipeline warms up);"
        " the server is still probed after probe_after.",
        low=0.2,
    )
    probe_after: float = setting(
        0.5,
        "Seconds with no frame before the server is probed (health, pipeline, session).",
        low=0.05,
    )
    backoff_initial: float = setting(
        0.25,
        "Delay before the second retry of load/offer in seconds (the first is at once).",
        low=0.01,
    )
    backoff_max: float = setting(
        0.6,
        "Longest delay between offers, s: a server that behaves again streams within it plus"
        " one session start (~0.3 s), so within 1 s.",
        low=0.1,
    )
    backoff_jitter: float = setting(0.2, "Random share added to each delay.", low=0, high=1)
    stable_after: float = setting(
        5.0,
        "Seconds of flowing frames before a session counts as good and the backoff starts over.",
        low=0,
    )
    health_interval: float = setting(
        0.25,
        "Seconds between health checks while the server is away (cheap; at most 0.5, so a"
        " returning server is used at once).",
        low=0.02,
        high=0.5,
    )
    probe_timeout: float = setting(
        1.0, "Timeout of one health check or watchdog probe request, s.", low=0.1
    )
    max_messages_per_second: float = setting(
        30.0, "Data-channel messages per second at most.", low=1, high=240
    )
    connect_timeout: float = setting(
        10.0, "Seconds from offer to a connected peer before giving up on it.", low=1
    )
    stats_interval: float = setting(30.0, "Seconds between fps log lines.", low=1)
