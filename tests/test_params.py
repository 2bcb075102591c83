"""The parameter state: validation, diffs and the outbox."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from soundscape.errors import ParamError
from soundscape.scope.params import ECHO_WINDOW, ParameterStore

# The real Scope v0.2.4's answers (../shared/scope-v0.2.4), copied here so the
# tests run where that directory is absent; test_recordings_match checks the copy.
RECORDED = Path(__file__).resolve().parents[2] / "shared" / "scope-v0.2.4"
# datachannel-messages.json -> full_session.received: every parameters_updated.
RECORDED_UPDATES = [
    {
        "prompts": [{"text": "from REST", "weight": 1.0}],
        "prompt_interpolation_method": "linear",
        "noise_scale": 0.3,
        "vace_context_scale": 1.0,
    },
    {"prompt_interpolation_method": "linear", "vace_context_scale": 1.0},
]
# session-parameters.get.after-post.json: what the server stores, unchecked keys and all.
RECORDED_STORED = {
    "input_mode": "text",
    "prompts": [{"text": "from REST", "weight": 1.0}],
    "prompt_interpolation_method": "linear",
    "vace_context_scale": 1.0,
    "pipeline_ids": ["controller-viz"],
    "kv_cache_attention_bias": 7,
    "ctrl_input": {"button": ["KeyD"], "mouse": [-40.0, 0.0]},
    "paused": False,
    "transition": {
        "target_prompts": [{"text": "a green forest", "weight": 1.0}],
        "num_steps": 4,
        "temporal_interpolation_method": "linear",
    },
    "reset_cache": True,
    "foo": 1,
    "noise_scale": 0.3,
}

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


def test_transitions_keep_their_order_and_plain_changes_never_overtake_them(store):
    store.set("kv_cache_attention_bias", 0.9)
    store.transition(["forest"], num_steps=4)
    store.set("kv_cache_attention_bias", 0.2)
    first = store.outbox.take()
    assert first["kv_cache_attention_bias"] == 0.9  # the change made before it goes with it
    assert first["transition"]["target_prompts"] == [{"text": "forest", "weight": 1.0}]
    assert "prompts" not in first  # the transition carries the change
    store.set_prompts(["a cut"])
    assert store.outbox.take() == {
        "kv_cache_attention_bias": 0.2,
        "prompts": [{"text": "a cut", "weight": 1.0}],
    }
    store.set("kv_cache_attention_bias", 0.4)
    store.transition(["desert"])
    store.set("kv_cache_attention_bias", 0.6)  # after the transition: leaves after it
    assert store.outbox.take()["kv_cache_attention_bias"] == 0.4
    assert store.outbox.take() == {"kv_cache_attention_bias": 0.6}
    assert store.outbox.take() == {}


def test_a_waiting_transition_is_superseded_by_a_newer_one(store):
    store.set("kv_cache_attention_bias", 0.9)
    store.transition(["forest"], num_steps=4)
    store.reset_cache()
    store.set_prompts(["between"])  # superseded by the newer transition's target
    store.transition(["ocean", "storm"], num_steps=0, method="slerp")
    assert len(store.outbox) == 1
    message = store.outbox.take()
    assert message == {
        "kv_cache_attention_bias": 0.9,
        "reset_cache": True,  # one-shots are never dropped
        "transition": {
            "target_prompts": [
                {"text": "ocean", "weight": 1.0},
                {"text": "storm", "weight": 1.0},
            ],
            "num_steps": 0,
            "temporal_interpolation_method": "slerp",
        },
    }
    assert store.outbox.take() == {}
    # The standing state already holds where the last transition ends.
    assert [p["text"] for p in store.get("prompts")] == ["ocean", "storm"]


def test_a_1khz_transition_stream_keeps_the_outbox_bounded_and_memory_flat(store):
    """100k transitions with knob moves and one-shots between, a 30 Hz sender taking."""
    taken: list[dict] = []
    resets_sent = resets_made = 0

    def burst(start: int, count: int) -> None:
        nonlocal resets_sent, resets_made
        for i in range(start, start + count):
            store.transition([f"prompt {i}"], num_steps=i % 8)
            store.set("kv_cache_attention_bias", 0.01 + (i % 99) / 100)
            if i % 1000 == 0:
                store.reset_cache()
                resets_made += 1
            assert len(store.outbox) <= 2
            if i % 33 == 0:  # the sender's rate against a 1 kHz stream
                message = store.outbox.take()
                resets_sent += bool(message.get("reset_cache"))
                if len(taken) < 10:
                    taken.append(message)

    burst(0, 2_000)  # warm up caches and interned strings before measuring
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        burst(2_000, 10_000)  # traced: tracemalloc makes each step ~5x slower
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    burst(12_000, 88_000)  # the rest of the 100k, bounded at every step
    while store.outbox:
        resets_sent += bool(store.outbox.take().get("reset_cache"))
    assert grown < 32 * 1024, f"grew by {grown} bytes over 10k transitions"
    # Each reset rides in some message; several between two takes fold into one.
    assert 0 < resets_sent <= resets_made
    assert store.get("prompts") == [{"text": "prompt 99999", "weight": 1.0}]
    assert all("prompts" not in m for m in taken if "transition" in m)


def test_the_last_transition_is_what_the_sender_ships(store):
    for i in range(10_000):
        store.transition([f"prompt {i}"], num_steps=2)
    assert len(store.outbox) == 1
    message = store.outbox.take()
    assert message["transition"]["target_prompts"] == [{"text": "prompt 9999", "weight": 1.0}]
    assert not store.outbox


def test_reset_cache_is_never_dropped_by_coalescing(store):
    store.reset_cache()
    store.transition(["a"])
    store.transition(["b"])
    store.reset_cache()
    store.set("kv_cache_attention_bias", 0.5)
    first, second = store.outbox.take(), store.outbox.take()
    assert first["reset_cache"] is True and first["transition"]["target_prompts"][0]["text"] == "b"
    assert second == {"reset_cache": True, "kv_cache_attention_bias": 0.5}


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


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def timed(clock: FakeClock) -> ParameterStore:
    return ParameterStore(loras=LORAS, clock=clock)


@pytest.mark.skipif(not RECORDED.is_dir(), reason="../shared/scope-v0.2.4 is not here")
def test_recordings_match():
    data = json.loads((RECORDED / "datachannel-messages.json").read_text())
    messages = [r["json"] for r in data["full_session"]["received"]]
    updates = [m["parameters"] for m in messages if m["type"] == "parameters_updated"]
    assert updates == RECORDED_UPDATES
    stored = json.loads((RECORDED / "session-parameters.get.after-post.json").read_text())
    assert stored["body"]["parameters"] == RECORDED_STORED


def test_server_updates_merge_without_echo(timed):
    applied = timed.merge_from_server({"vace_context_scale": 1.7, "noise_scale": 99, "x_new": 3})
    assert applied == {"vace_context_scale": 1.7, "x_new": 3}  # invalid values are skipped
    assert timed.get("vace_context_scale") == 1.7
    assert not timed.outbox  # the server's value is not sent back


def test_server_updates_never_touch_session_routing_or_one_shot_keys(timed):
    """The real server's stored parameters hold everything it was sent, routing keys too."""
    params = {
        **RECORDED_STORED,
        "pipeline_ids": ["other"],
        "input_mode": "video",
        "node_id": "n1",
        "quantize_mode": "bar",
        "lookahead_ms": 200,
        "output_sinks": ["ndi"],
        "input_source": {"type": "ndi"},
        "modulations": {"noise_scale": {}},
        "beat_cache_reset_rate": "bar",
        "_quantized": True,
    }
    before = timed.snapshot()
    applied = timed.merge_from_server(params)
    assert set(applied) == {
        "prompts",
        "vace_context_scale",
        "ctrl_input",
        "foo",
        "noise_scale",
    }  # kv_cache_attention_bias 7 is out of range: skipped
    assert timed.get("pipeline_ids") == before["pipeline_ids"]
    assert timed.get("input_mode") == "text"
    for key in ("node_id", "quantize_mode", "lookahead_ms", "transition", "reset_cache"):
        assert key not in timed.snapshot()
    assert not timed.outbox


def test_a_pending_local_change_wins_over_the_servers_default_echo(timed):
    timed.set("vace_context_scale", 0.4, source="osc")
    timed.set_prompts(["a", "b"], method="slerp")
    for params in RECORDED_UPDATES:  # both carry linear / 1.0 defaults
        applied = timed.merge_from_server(params)
        assert "vace_context_scale" not in applied
        assert "prompt_interpolation_method" not in applied
    assert timed.get("vace_context_scale") == 0.4
    assert timed.get("prompt_interpolation_method") == "slerp"
    message = timed.outbox.take()
    assert (
        message["vace_context_scale"] == 0.4 and message["prompt_interpolation_method"] == "slerp"
    )
    assert timed.echoes_ignored >= 4


def test_a_key_sent_within_the_echo_window_is_kept_and_sent_again(timed, clock):
    timed.set("vace_context_scale", 0.4)
    assert timed.outbox.take() == {"vace_context_scale": 0.4}
    clock.now += ECHO_WINDOW / 2  # the server's broadcast may predate our message
    assert timed.merge_from_server({"vace_context_scale": 1.0, "foo": 2}) == {"foo": 2}
    assert timed.get("vace_context_scale") == 0.4
    # Sent again, so the server ends on the performer's value whichever came first there.
    assert timed.outbox.take() == {"vace_context_scale": 0.4}
    clock.now += ECHO_WINDOW + 0.01  # long applied: a later server value is a newer change
    assert timed.merge_from_server({"vace_context_scale": 1.0}) == {"vace_context_scale": 1.0}
    assert timed.get("vace_context_scale") == 1.0
    assert not timed.outbox


def test_a_waiting_transition_keeps_the_prompts_against_the_server(timed, clock):
    timed.transition(["forest"])
    echo = {"prompts": [{"text": "from REST", "weight": 1.0}]}
    assert timed.merge_from_server(echo) == {}
    assert timed.outbox.take()["transition"]["target_prompts"][0]["text"] == "forest"
    clock.now += 0.1
    assert timed.merge_from_server(echo) == {}
    assert timed.get("prompts") == [{"text": "forest", "weight": 1.0}]
    assert timed.outbox.take() == {"prompts": [{"text": "forest", "weight": 1.0}]}
    clock.now += ECHO_WINDOW + 0.01
    assert timed.merge_from_server(echo) == echo


def test_a_raising_listener_is_logged_once_and_the_others_still_run(store):
    seen: list[dict] = []

    def broken(changes: dict, source: str) -> None:
        raise RuntimeError("listener bug")

    store.subscribe(broken)
    store.subscribe(lambda changes, source: seen.append(changes))
    with capture_logs() as logs:
        for value in (0.1, 0.2, 0.3):
            store.set("kv_cache_attention_bias", value)
        store.merge_from_server({"foo": 1})
    assert [c.get("kv_cache_attention_bias", c.get("foo")) for c in seen] == [0.1, 0.2, 0.3, 1]
    failures = [e for e in logs if e["event"] == "parameter_listener_failed"]
    assert len(failures) == 1 and failures[0]["exc_info"] is True
    assert "broken" in failures[0]["listener"]
    assert store.listener_errors == 4
    assert store.get("kv_cache_attention_bias") == 0.3
    assert store.outbox.take()["kv_cache_attention_bias"] == 0.3


def test_initial_parameters_are_complete_and_clear_the_outbox(store):
    store.set("vace_context_scale", 0.8)
    store.reset_cache()
    params = store.initial_parameters()
    assert params["pipeline_ids"] == ["longlive"] and params["input_mode"] == "text"
    assert params["vace_context_scale"] == 0.8
    assert "reset_cache" not in params
    assert not store.outbox
