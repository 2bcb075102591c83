"""What the emulated server knows: pipelines, hardware, and the offer's range checks.

Static data shaped like Scope's answers (``/api/v1/pipelines/schemas``,
``/api/v1/hardware/info``) plus the one piece of validation the real server does
on ``initialParameters`` (FastAPI-style 422 details).
"""

from __future__ import annotations

import math
from typing import Any


def _size_schema(default_w: int, default_h: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "width": {"type": "integer", "default": default_w, "minimum": 16, "maximum": 2048},
            "height": {"type": "integer", "default": default_h, "minimum": 16, "maximum": 2048},
            "seed": {"type": "integer", "default": 42},
            "quantization": {"enum": ["fp8_e4m3fn", None], "default": None},
            "vace_enabled": {"type": "boolean", "default": False},
            "vae_type": {"enum": ["wan", "lightvae", "tae", "lighttae"], "default": "wan"},
            "lora_merge_mode": {
                "enum": ["permanent_merge", "runtime_peft"],
                "default": "permanent_merge",
            },
        },
    }


def _diffusion(pid: str, name: str, description: str, default_mode: str) -> dict[str, Any]:
    return {
        "id": pid,
        "name": name,
        "description": description,
        "version": "0.2.4",
        "docs_url": None,
        "estimated_vram_gb": 20,
        "requires_models": True,
        "supports_lora": True,
        "supports_vace": True,
        "usage": ["text-to-video", "video-to-video"],
        "config_schema": _size_schema(576, 320),
        "supported_modes": ["text", "video"],
        "default_mode": default_mode,
        "supports_prompts": True,
        "default_temporal_interpolation_method": "slerp",
        "default_temporal_interpolation_steps": 4,
        "mode_defaults": {
            "text": {"denoising_step_list": [1000, 750, 500, 250]},
            "video": {"denoising_step_list": [750, 250], "noise_scale": 0.7},
        },
        "supports_cache_management": True,
        "supports_kv_cache_bias": True,
        "supports_quantization": True,
        "min_dimension": 16,
        "recommended_quantization_vram_threshold": 40,
        "modified": False,
        "source": "builtin",
    }


def _utility(pid: str, name: str, description: str, usage: str) -> dict[str, Any]:
    return {
        "id": pid,
        "name": name,
        "description": description,
        "version": "0.2.4",
        "docs_url": None,
        "estimated_vram_gb": 2 if usage == "preprocessor" else 0,
        "requires_models": usage == "preprocessor",
        "supports_lora": False,
        "supports_vace": False,
        "usage": [usage],
        "config_schema": _size_schema(512, 512),
        "supported_modes": ["video"],
        "default_mode": "video",
        "supports_prompts": False,
        "supports_cache_management": False,
        "supports_kv_cache_bias": False,
        "supports_quantization": False,
        "min_dimension": 16,
        "modified": False,
        "source": "builtin",
    }


PIPELINES: dict[str, dict[str, Any]] = {
    p["id"]: p
    for p in (
        _diffusion("longlive", "LongLive", "Long-duration generation, smooth switching.", "text"),
        _diffusion("streamdiffusionv2", "StreamDiffusionV2", "Fast video-to-video.", "video"),
        _diffusion("krea-realtime-video", "Krea Realtime Video", "Wan2.1 14B text.", "text"),
        _diffusion("memflow", "MemFlow", "Memory bank for temporal consistency.", "text"),
        _diffusion("reward-forcing", "RewardForcing", "Reward-optimized generation.", "text"),
        _utility("passthrough", "Passthrough", "Input passthrough, no AI processing.", "utility"),
        _utility(
            "video-depth-anything",
            "Video Depth Anything",
            "Real-time depth estimation from video.",
            "preprocessor",
        ),
    )
}


def default_mode(pipeline_ids: list[str]) -> str:
    """The input mode a session gets when its offer names none (the main pipeline's)."""
    main = pipeline_ids[-1] if pipeline_ids else ""
    return str(PIPELINES.get(main, {}).get("default_mode", "text"))


def hardware_info() -> dict[str, Any]:
    return {
        "gpu_name": "Soundscape emulator (no GPU)",
        "total_vram_mb": 24576,
        "free_vram_mb": 20480,
        "cuda_available": False,
        "spout_available": False,
        "ndi_available": False,
    }


# Ranges the real server checks on the offer's initialParameters (422 when broken).
OFFER_RANGES: dict[str, tuple[float, float]] = {
    "noise_scale": (0.0, 1.0),
    "vace_context_scale": (0.0, 2.0),
    "kv_cache_attention_bias": (0.01, 1.0),
}


def _error(loc: list[str | int], msg: str, kind: str, value: Any) -> dict[str, Any]:
    return {"type": kind, "loc": loc, "msg": msg, "input": value}


def check_offer(body: Any) -> list[dict[str, Any]]:
    """FastAPI-style validation errors of an offer body; empty when it is acceptable."""
    if not isinstance(body, dict):
        return [_error(["body"], "Input should be a valid dictionary", "dict_type", body)]
    errors = []
    if not isinstance(body.get("sdp"), str):
        errors.append(_error(["body", "sdp"], "Field required", "missing", body.get("sdp")))
    if body.get("type") != "offer":
        errors.append(
            _error(["body", "type"], "Input should be 'offer'", "literal_error", body.get("type"))
        )
    params = body.get("initialParameters")
    if params is None:
        return errors
    if not isinstance(params, dict):
        loc: list[str | int] = ["body", "initialParameters"]
        return [*errors, _error(loc, "Input should be a valid dictionary", "dict_type", params)]
    for key, (low, high) in OFFER_RANGES.items():
        if key not in params or params[key] is None:
            continue
        value = params[key]
        loc = ["body", "initialParameters", key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(_error(loc, "Input should be a valid number", "float_type", value))
        elif not math.isfinite(value) or value < low:
            msg = f"Input should be greater than or equal to {low}"
            errors.append(_error(loc, msg, "greater_than_equal", value))
        elif value > high:
            msg = f"Input should be less than or equal to {high}"
            errors.append(_error(loc, msg, "less_than_equal", value))
    ids = params.get("pipeline_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        loc = ["body", "initialParameters", "pipeline_ids"]
        errors.append(_error(loc, "Input should be a valid list of strings", "list_type", ids))
    mode = params.get("input_mode")
    if mode is not None and mode not in ("text", "video"):
        loc = ["body", "initialParameters", "input_mode"]
        errors.append(_error(loc, "Input should be 'text' or 'video'", "literal_error", mode))
    return errors
