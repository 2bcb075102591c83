"""What the emulated server knows: pipelines, hardware, input sources, and validation.

Static data shaped like Scope v0.2.4's answers. The six CPU pipelines and their
schemas are the recorded ones (``data/pipelines-v0.2.4.json``, copied verbatim from
``pipelines-schemas.json``); the diffusion pipelines the daemon uses by default
(longlive etc.) are added beside them in the same shape. Validation errors are
pydantic/FastAPI-style, with the exact types, messages and ``ctx`` of the recordings.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

# Defaults the server's Parameters model adds to every offer and REST update.
PARAMETER_DEFAULTS: dict[str, Any] = {
    "prompt_interpolation_method": "linear",
    "vace_context_scale": 1.0,
}
# Ranges the real server checks (offer initialParameters and REST session parameters).
RANGES: dict[str, tuple[float, float]] = {
    "noise_scale": (0.0, 1.0),
    "vace_context_scale": (0.0, 2.0),
    "kv_cache_attention_bias": (0.01, 1.0),
}


@dataclass(frozen=True)
class Behaviour:
    """How an emulated pipeline makes frames.

    ``generator``: draws its own picture (controller-viz, the diffusion pipelines in
    text mode); otherwise it processes the client's frames. ``chunk``: input frames per
    call (passthrough works on 4, so 4 frames are held while input stalls). ``gray``:
    drops the colour. ``fps``: a generator's rate (None: the config's ``fps``);
    ``pts_step``: its pts increment in 1/90000 (controller-viz: 1500, 60 fps nominal,
    ~57 delivered on CPU). ``visible_latency``: seconds from a parameter change (pause
    included) to the picture showing it (controller-viz: ~0.6 s on CPU).
    """

    generator: bool = False
    chunk: int = 1
    gray: bool = False
    fps: float | None = None
    pts_step: int | None = None
    diffusion: bool = False
    visible_latency: float = 0.0


BEHAVIOURS: dict[str, Behaviour] = {
    "passthrough": Behaviour(chunk=4),
    "controller-viz": Behaviour(generator=True, fps=57.0, pts_step=1500, visible_latency=0.6),
    "gray": Behaviour(gray=True),
    "optical-flow": Behaviour(),
    "rife": Behaviour(chunk=2),
    "scribble": Behaviour(gray=True),
    "video-depth-anything": Behaviour(gray=True),
}


def _recorded() -> dict[str, dict[str, Any]]:
    text = resources.files("soundscape.emulator").joinpath("data/pipelines-v0.2.4.json")
    return dict(json.loads(text.read_text())["pipelines"])


RECORDED = _recorded()


def _diffusion(pid: str, name: str, description: str, default_mode: str) -> dict[str, Any]:
    """A GPU pipeline entry in the recorded shape (the CPU capture could not list these)."""
    entry = copy.deepcopy(RECORDED["passthrough"])
    props = entry["config_schema"]["properties"]
    props["width"]["default"], props["height"]["default"] = 576, 320
    entry.update(
        {
            "id": pid,
            "name": name,
            "description": description,
            "version": "0.2.4",
            "supported_modes": ["text", "video"],
            "default_mode": default_mode,
            "supports_prompts": True,
            "default_temporal_interpolation_steps": 4,
            "estimated_vram_gb": 20.0,
            "requires_models": True,
            "supports_lora": True,
            "supports_vace": True,
            "supports_cache_management": True,
            "supports_kv_cache_bias": True,
            "supports_quantization": True,
            "min_dimension": 16,
            "recommended_quantization_vram_threshold": 40.0,
            "usage": [],
        }
    )
    return entry


def _preprocessor(pid: str, name: str, description: str) -> dict[str, Any]:
    entry = copy.deepcopy(RECORDED["gray"])
    entry.update({"id": pid, "name": name, "description": description, "requires_models": True})
    return entry


GPU_PIPELINES: dict[str, dict[str, Any]] = {
    p["id"]: p
    for p in (
        _diffusion("longlive", "LongLive", "Long-duration generation, smooth switching.", "text"),
        _diffusion("streamdiffusionv2", "StreamDiffusionV2", "Fast video-to-video.", "video"),
        _diffusion("krea-realtime-video", "Krea Realtime Video", "Wan2.1 14B text.", "text"),
        _diffusion("memflow", "MemFlow", "Memory bank for temporal consistency.", "text"),
        _diffusion("reward-forcing", "RewardForcing", "Reward-optimized generation.", "text"),
        _preprocessor(
            "video-depth-anything", "Video Depth Anything", "Real-time depth from video."
        ),
    )
}
for _pid in GPU_PIPELINES:
    if _pid not in BEHAVIOURS:
        BEHAVIOURS[_pid] = Behaviour(generator=True, diffusion=True)

PIPELINES: dict[str, dict[str, Any]] = {**RECORDED, **GPU_PIPELINES}


def behaviour(pipeline_id: str) -> Behaviour:
    return BEHAVIOURS.get(pipeline_id, Behaviour())


def is_diffusion(pipeline_id: str) -> bool:
    return behaviour(pipeline_id).diffusion


def default_mode(pipeline_ids: list[str]) -> str:
    """The input mode a session gets when its offer names none (the last pipeline's)."""
    main = pipeline_ids[-1] if pipeline_ids else ""
    return str(PIPELINES.get(main, {}).get("default_mode", "text"))


def hardware_info() -> dict[str, Any]:
    """``GET /api/v1/hardware/info`` of a CPU machine without NDI (as recorded)."""
    return {
        "vram_gb": None,
        "spout": {
            "available": False,
            "reason": "Spout is Windows-only",
            "install_hint": "Run Scope on Windows to use Spout sources and sinks.",
        },
        "ndi": {
            "available": False,
            "reason": "NDI SDK not found",
            "install_hint": "Install the NDI SDK from https://ndi.video/tools and restart Scope.",
        },
        "syphon": {
            "available": False,
            "reason": "Syphon is macOS-only",
            "install_hint": "Run Scope on macOS to use Syphon sources and sinks.",
        },
    }


def input_sources() -> list[dict[str, Any]]:
    """``GET /api/v1/input-sources`` (as recorded: only video files are available)."""

    def source(sid: str, name: str, description: str, available: bool) -> dict[str, Any]:
        return {
            "source_id": sid,
            "source_name": name,
            "source_description": description,
            "available": available,
        }

    return [
        source(
            "ndi",
            "NDI",
            "Receive video frames via NDI (Network Device Interface). Requires the NDI SDK to "
            "be installed on the system. Download from https://ndi.video/tools/",
            False,
        ),
        source(
            "spout",
            "Spout",
            "Receive video frames from Spout senders on Windows like TouchDesigner, Resolume, "
            "OBS, etc.",
            False,
        ),
        source(
            "syphon",
            "Syphon",
            "Receive video frames from Syphon servers on macOS. Compatible with apps like "
            "TouchDesigner, Resolume, OBS, etc.",
            False,
        ),
        source(
            "video_file",
            "Video File",
            "Read video frames from a local file (MP4, AVI, MOV, MKV, WebM).",
            True,
        ),
    ]


# --------------------------------------------------------------------------- validation


def error(
    kind: str, loc: list[str | int], msg: str, value: Any, ctx: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One pydantic error entry, as FastAPI puts it in ``{"detail": [...]}``."""
    entry: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg, "input": value}
    if ctx is not None:
        entry["ctx"] = ctx
    return entry


def _bound(value: float) -> str:
    # pydantic prints 1.0 as "1" and 0.01 as "0.01".
    return f"{value:g}"


def check_parameters(params: dict[str, Any], loc: list[str | int]) -> list[dict[str, Any]]:
    """Errors of a Parameters object (offer ``initialParameters`` or a REST update)."""
    errors = []
    mode = params.get("input_mode")
    if mode is not None and mode not in ("text", "video"):
        errors.append(
            error(
                "literal_error",
                [*loc, "input_mode"],
                "Input should be 'text' or 'video'",
                mode,
                {"expected": "'text' or 'video'"},
            )
        )
    for key, (low, high) in RANGES.items():
        value = params.get(key)
        if value is None:
            continue
        where = [*loc, key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(error("float_type", where, "Input should be a valid number", value))
        elif not math.isfinite(value):
            errors.append(error("finite_number", where, "Input should be a finite number", value))
        elif value < low:
            msg = f"Input should be greater than or equal to {_bound(low)}"
            errors.append(error("greater_than_equal", where, msg, value, {"ge": low}))
        elif value > high:
            msg = f"Input should be less than or equal to {_bound(high)}"
            errors.append(error("less_than_equal", where, msg, value, {"le": high}))
    ids = params.get("pipeline_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        errors.append(
            error("list_type", [*loc, "pipeline_ids"], "Input should be a valid list", ids)
        )
    return errors


def check_offer(body: Any) -> list[dict[str, Any]]:
    """FastAPI-style validation errors of an offer body; empty when it is acceptable."""
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        return [error("model_attributes_type", ["body"], msg, body)]
    errors = [
        error("missing", ["body", key], "Field required", body)
        for key in ("sdp", "type")
        if key not in body
    ]
    for key in ("sdp", "type"):
        if key in body and not isinstance(body[key], str):
            errors.append(
                error("string_type", ["body", key], "Input should be a valid string", body[key])
            )
    params = body.get("initialParameters")
    if params is None:
        return errors
    if not isinstance(params, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        return [*errors, error("model_attributes_type", ["body", "initialParameters"], msg, params)]
    return [*errors, *check_parameters(params, ["body", "initialParameters"])]


def with_defaults(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as the server's model dumps them: the two defaults filled in."""
    return {**params, **{k: v for k, v in PARAMETER_DEFAULTS.items() if k not in params}}
