"""The parameter state: validation, diffs and the outbox."""

from __future__ import annotations

import pytest

from soundscape.errors import ParamError
from soundscape.scope.params import ParameterStore

LORAS = {"ink": "/loras/ink.safetensors", "neon": "/loras/neon.safetensors"}


@pytest.fixture
def store() -> ParameterStore:
    return ParameterStore(loras=LORAS)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("noise_scale", 1.5, "outside 0..1"),
        ("noise_scale", "loud", "expected a number"),
        ("vace_context_scale", 2.01, "outside 0..2"),
        ("kv_cache_attention_bias", 0.0, "outside 0.01..1"),
        ("denoising_step_list", [1000, 1000, 500], "strictly descending"),
        ("denoising_step_list", [250, 500], "strictly descending"),
        ("denoising_step_list", [1000, 2.5], "not an integer"),
        ("prompts", [], "non-empty"),
        ("prompts", ["a", "b", "c", "d", "e"], "at most 4"),
        ("prompts", [{"text": "a", "weight": -1}], "weight"),
        ("paused", "yes", "true/false"),
        ("input_mode", "image", "not one of"),
        ("lora_scales", [{"path": "/x", "scale": 11}], "outside -10..10"),
        ("prompt_interpolation_method", "slerp", "exactly 2 prompts"),
    ],
)
def test_invalid_value_is_refused_and_nothing_changes(store, key, value, message):
    before = store.snapshot()
    with pytest.raises(ParamError, match=message):
        store.set(key, value, source="test")
    assert store.snapshot() == before
    assert not store.outbox
    assert store.refused == 1


def test_update_is_all_or_nothing(store):
    before = store.snapshot()
    with pytest.raises(ParamError) as err:
        store.update({"vace_context_scale": 1.0, "noise_scale": 9})
    assert store.snapshot() == before
    assert err.value.problems == ["noise_scale: 9 is outside 0..1"]


def test_only_changes_are_queued_and_notified(store):
    seen = []
    store.subscribe(lambda changes, source: seen.append((changes, source)))
    store.set("kv_cache_attention_bias", store.get("kv_cache_attention_bias"), source="a")
    assert seen == [] and not store.outbox
    store.set("kv_cache_attention_bias", 0.5, source="osc:1.2.3.4:9000")
    assert seen == [({"kv_cache_attention_bias": 0.5}, "osc:1.2.3.4:9000")]
    assert store.outbox.take() == {"kv_cache_attention_bias": 0.5}


def test_noise_is_not_sent_in_text_mode_but_is_kept(store):
    assert store.text_mode
    store.set("noise_scale", 0.2)
    assert not store.outbox
    assert "noise_scale" not in store.initial_parameters()
    store.set("input_mode", "video")
    message = store.outbox.take()
    assert message["input_mode"] == "video" and message["noise_scale"] == 0.2
    assert store.initial_parameters()["noise_scale"] == 0.2


def test_coalescing_keeps_latest_value_and_one_shots(store):
    for value in (0.1, 0.2, 0.3):
        store.set("vace_context_scale", value)
    store.reset_cache()
    store.set("vace_context_scale", 0.4)
    assert store.outbox.take() == {"vace_context_scale": 0.4, "reset_cache": True}
    assert not store.outbox
    assert "reset_cache" not in store.snapshot()


def test_transitions_keep_their_order_and_are_never_merged(store):
    store.set("kv_cache_attention_bias", 0.9)
    store.transition(["forest"], num_steps=4)
    store.set("kv_cache_attention_bias", 0.2)
    store.transition(["ocean", "storm"], num_steps=0, method="slerp")
    first = store.outbox.take()
    assert first["kv_cache_attention_bias"] == 0.9
    assert first["transition"]["target_prompts"] == [{"text": "forest", "weight": 1.0}]
    assert "prompts" not in first  # the transition carries the change
    second = store.outbox.take()
    assert second["kv_cache_attention_bias"] == 0.2
    assert second["transition"]["num_steps"] == 0
    assert store.outbox.take() == {}
    # The standing state already holds where the last transition ends.
    assert [p["text"] for p in store.get("prompts")] == ["ocean", "storm"]


def test_transition_validation(store):
    with pytest.raises(ParamError, match="num_steps"):
        store.transition(["a"], num_steps=-1)
    with pytest.raises(ParamError, match="at most 4"):
        store.transition(["a"] * 5)
    assert not store.outbox


def test_slerp_falls_back_to_linear_when_prompt_count_changes(store):
    store.set_prompts(["a", "b"], method="slerp")
    assert store.get("prompt_interpolation_method") == "slerp"
    store.set_prompt(2, text="c")
    assert store.get("prompt_interpolation_method") == "linear"
    assert len(store.get("prompts")) == 3


def test_lora_scale_by_name_and_unknown_lora(store):
    store.set_lora_scale("ink", 0.5)
    store.set_lora_scale("/loras/neon.safetensors", -2)
    assert store.lora_scale("ink") == 0.5
    assert store.get("lora_scales") == [
        {"path": "/loras/ink.safetensors", "scale": 0.5},
        {"path": "/loras/neon.safetensors", "scale": -2.0},
    ]
    with pytest.raises(ParamError, match="not a loaded LoRA"):
        store.set_lora_scale("missing", 1.0)


def test_server_updates_merge_without_echo(store):
    store.set("vace_context_scale", 1.0)
    applied = store.merge_from_server({"vace_context_scale": 1.7, "noise_scale": 99, "x_new": 3})
    assert applied == {"vace_context_scale": 1.7, "x_new": 3}
    assert store.get("vace_context_scale") == 1.7
    assert not store.outbox  # the server's value is not sent back, and the stale one is gone


def test_initial_parameters_are_complete_and_clear_the_outbox(store):
    store.set("vace_context_scale", 0.8)
    store.reset_cache()
    params = store.initial_parameters()
    assert params["pipeline_ids"] == ["longlive"] and params["input_mode"] == "text"
    assert params["vace_context_scale"] == 0.8
    assert "reset_cache" not in params
    assert not store.outbox
