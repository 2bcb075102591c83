"""The pipeline check and the load watch, fed with the real server's status sequences."""

from __future__ import annotations

from typing import Any

import pytest

from scope_replay import load
from soundscape.scope.api import PipelineStatus
from soundscape.scope.config import PipelineSection
from soundscape.scope.pipeline_check import (
    LoadOutcome,
    LoadRecord,
    LoadWatch,
    load_conflicts,
    reload_reason,
    signature,
)


def status(
    state: str,
    pipeline_id: str | None = None,
    load_params: dict[str, Any] | None = None,
    adapters: list[Any] | None = None,
) -> PipelineStatus:
    return PipelineStatus(
        status=state,
        pipeline_ids=(pipeline_id,) if pipeline_id else (),
        load_params=load_params or {},
        loaded_lora_adapters=tuple(adapters) if adapters is not None else None,
    )


def from_sample(sample: dict[str, Any], load_params: dict[str, Any]) -> PipelineStatus:
    loaded = sample["status"] in ("loaded", "loading")
    return status(sample["status"], sample["pipeline_id"], load_params if loaded else None)


WANT = {"width": 576, "height": 320}
INK = [{"path": "/l/ink.safetensors", "scale": 1.0}]


# --------------------------------------------------------------------------- reload_reason


def test_the_loaded_pipeline_as_configured_is_kept():
    real = load("pipeline-status.loaded.controller-viz.json")["body"]
    loaded = status("loaded", real["pipeline_id"], real["load_params"])
    assert reload_reason(loaded, ["controller-viz"], WANT, None, 1.0) is None


@pytest.mark.parametrize(
    ("have", "want_ids", "want", "reason"),
    [
        (status("not_loaded"), ["controller-viz"], WANT, "pipeline not_loaded"),
        (status("loaded", "passthrough", WANT), ["controller-viz"], WANT, "want controller-viz"),
        (status("loaded", "controller-viz", WANT), ["controller-viz"], {"width": 320}, "width"),
        (
            status("loaded", "longlive", {**WANT, "quantization": None}),
            ["longlive"],
            {**WANT, "quantization": "fp8_e4m3fn"},
            "quantization",
        ),
        (
            status("loaded", "longlive", WANT),
            ["longlive"],
            {**WANT, "vace_enabled": True},  # not reported, not loaded by us: reload
            "vace_enabled",
        ),
        (
            status("loaded", "longlive", {**WANT, "loras": [{"path": "/l/a.safetensors"}]}),
            ["longlive"],
            {**WANT, "loras": [{"path": "/l/b.safetensors", "scale": 1.0}]},
            "loras",
        ),
        (
            status("loaded", "longlive", {**WANT, "loras": INK}, adapters=[]),
            ["longlive"],
            {**WANT, "loras": INK},
            "LoRA adapters",
        ),
    ],
)
def test_any_difference_reloads(have, want_ids, want, reason):
    found = reload_reason(have, want_ids, want, None, 1.0)
    assert found is not None and reason in found


def test_a_chain_is_checked_as_far_as_the_status_shows():
    # The status names one pipeline of a chain, either one.
    for named in ("gray", "passthrough"):
        have = status("loaded", named, WANT)
        assert reload_reason(have, ["gray", "passthrough"], WANT, None, 1.0) is None


def test_what_the_server_does_not_report_is_trusted_from_our_own_load_only():
    want = {**WANT, "vace_enabled": False, "vae_type": "lightvae", "quantization": None}
    have = status("loaded", "longlive", WANT)  # the real server echoes only width/height here
    ours = LoadRecord(server=1.0, pipeline_ids=("longlive",), load_params=want)
    assert reload_reason(have, ["longlive"], want, ours, 1.0) is None
    # Another server process (restart with the pipeline kept, someone else's load): reload.
    assert reload_reason(have, ["longlive"], want, ours, 2.0) is not None
    # A config change since our load: reload.
    changed = {**want, "vae_type": "tae"}
    assert reload_reason(have, ["longlive"], changed, ours, 1.0) is not None
    # Our record of a chain other than the one now wanted: reload.
    assert reload_reason(have, ["a", "longlive"], want, ours, 1.0) is not None


def test_loaded_adapters_match_by_file():
    want = {**WANT, "loras": [{"path": "/models/lora/ink.safetensors", "scale": 0.5}]}
    for adapters in (["ink"], [{"path": "/models/lora/ink.safetensors"}], [{"name": "ink"}]):
        have = status("loaded", "longlive", {**want}, adapters=adapters)
        assert reload_reason(have, ["longlive"], want, None, 1.0) is None, adapters


def test_fp8_with_vace_is_one_rule_for_config_and_supervisor():
    assert load_conflicts({"quantization": "fp8_e4m3fn", "vace_enabled": True})
    assert not load_conflicts({"quantization": "fp8_e4m3fn", "vace_enabled": False})
    section = PipelineSection(quantization="fp8_e4m3fn", vace_enabled=True)
    assert section.check() == load_conflicts(section.load_params())


# --------------------------------------------------------------------------- LoadWatch


def run_sequence(name: str, want_ids: tuple[str, ...], grace: float = 2.0) -> list[LoadOutcome]:
    """Feed one recorded sequence (ms times) to a watch; the outcomes until it ends."""
    sequence = load("status-sequences.json")[name]
    params = sequence["load_request"]["body"].get("load_params", {})
    before = from_sample(sequence["before"][-1], params) if sequence.get("before") else None
    first = sequence["samples"][0]
    if before is None:
        before = from_sample(first, params)
    watch = LoadWatch(want_ids, params, signature(before), grace)
    outcomes = []
    for sample in sequence["samples"]:
        if sample["t_sent_ms"] < sequence["load_response"]["t_recv_ms"]:
            continue  # sent before our POST was answered: not a read after our request
        outcome = watch.see(from_sample(sample, params), sample["t_recv_ms"] / 1000)
        outcomes.append(outcome)
        if outcome is not LoadOutcome.WAITING:
            break
    return outcomes


def test_a_load_is_done_when_the_wanted_pipeline_shows_loaded():
    outcomes = run_sequence("1_load_controller-viz_from_not_loaded", ("controller-viz",))
    assert outcomes[-1] is LoadOutcome.DONE
    outcomes = run_sequence("5_load_controller-viz_tight_polling", ("controller-viz",))
    assert outcomes[-1] is LoadOutcome.DONE and len(outcomes) > 1  # loading seen first


def test_a_switch_waits_out_the_old_pipeline_and_the_held_read():
    outcomes = run_sequence("2_switch_controller-viz_to_passthrough", ("passthrough",))
    assert outcomes[-1] is LoadOutcome.DONE


def test_a_failed_load_is_seen_from_its_one_error_read():
    outcomes = run_sequence("3_failed_load_rife_from_passthrough", ("rife",))
    assert outcomes[-1] is LoadOutcome.FAILED
    outcomes = run_sequence("4_failed_load_unknown_pipeline_id", ("no-such-pipeline",))
    assert outcomes[-1] is LoadOutcome.FAILED


def test_a_missed_error_read_is_seen_from_not_loaded_after_loading():
    watch = LoadWatch(("rife",), WANT, signature(status("loaded", "passthrough", WANT)), 2.0)
    assert watch.see(status("not_loaded"), 0.28) is LoadOutcome.WAITING  # the unload gap
    assert watch.see(status("loading", None, WANT), 0.29) is LoadOutcome.WAITING
    assert watch.see(status("not_loaded"), 0.38) is LoadOutcome.FAILED  # error read missed


def test_not_loaded_without_any_sign_of_the_load_fails_after_the_grace_only():
    watch = LoadWatch(("nope",), WANT, signature(status("not_loaded")), 2.0)
    assert watch.see(status("not_loaded"), 10.0) is LoadOutcome.WAITING  # a held read: t0
    assert watch.see(status("not_loaded"), 11.9) is LoadOutcome.WAITING
    assert watch.see(status("not_loaded"), 12.0) is LoadOutcome.FAILED


def test_the_old_pipeline_loaded_right_after_the_request_is_not_done():
    old = status("loaded", "controller-viz", WANT)
    watch = LoadWatch(("passthrough",), WANT, signature(old), 2.0)
    assert watch.see(old, 0.01) is LoadOutcome.WAITING
    assert watch.see(status("loaded", "passthrough", WANT), 0.3) is LoadOutcome.DONE
    # Same id, other size: the old instance until the new one shows its parameters.
    watch = LoadWatch(("controller-viz",), {"width": 320}, signature(old), 2.0)
    assert watch.see(old, 0.01) is LoadOutcome.WAITING
    new = status("loaded", "controller-viz", {"width": 320, "height": 320})
    assert watch.see(new, 0.3) is LoadOutcome.DONE
