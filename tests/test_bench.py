"""The arithmetic the soak and reconnect benchmarks report their verdicts with."""

from __future__ import annotations

import numpy as np
import pytest
from bench._emulator_child import Availability
from bench.beat import tempo_from_beats
from bench.reconnect import after_restart, sample
from bench.soak import _address, flat, growth_per_hour, server_view, state_differences
from bench.sweep import PLANS, like, plan, tempi


def test_growth_per_hour_is_the_slope_of_the_fit() -> None:
    t = [0.0, 600.0, 1200.0, 1800.0]  # seconds
    rss = [100.0, 101.0, 102.0, 103.0]  # +1 MB every 10 min
    assert growth_per_hour(t, rss) == pytest.approx(6.0)


def test_growth_per_hour_ignores_noise_around_a_flat_line() -> None:
    t = [float(i * 10) for i in range(120)]
    rss = [150.0 + (0.5 if i % 2 else -0.5) for i in range(120)]
    assert abs(growth_per_hour(t, rss)) < 0.5


def test_flat_sees_a_late_rise_but_not_a_dip() -> None:
    assert flat([12, 13, 12, 12, 11, 12, 12, 13])
    assert not flat([12, 12, 12, 12, 12, 12, 13, 14])


def test_state_differences_compare_the_daemons_keys_only() -> None:
    ours = {
        "prompts": [{"text": "a", "weight": 1.0}],
        "kv_cache_attention_bias": 0.3,
        "paused": False,
        "reset_cache": True,  # an event, never stored by the server
        "transition": {"target_prompts": []},  # applied, not stored
    }
    theirs = {
        "prompts": [{"text": "a", "weight": 1}],
        "kv_cache_attention_bias": 0.30000001,
        "paused": False,
        "vace_context_scale": 1.0,  # the server's own default
    }
    assert state_differences(ours, theirs) == {}


def test_state_differences_report_a_lost_or_changed_value() -> None:
    ours = {"kv_cache_attention_bias": 0.3, "paused": False, "lora_scales": [{"scale": 0.5}]}
    theirs = {"kv_cache_attention_bias": 0.5, "lora_scales": [{"scale": 0.5}]}
    assert state_differences(ours, theirs) == {
        "kv_cache_attention_bias": (0.3, 0.5),
        "paused": (False, "<missing>"),
    }
    # A bool is not the number 0: the server would hold a different value.
    assert state_differences({"paused": False}, {"paused": 0}) == {"paused": (False, 0)}


def test_a_transition_on_the_server_counts_as_the_prompts_it_leads_to() -> None:
    # Scope keeps the prompts from before a data-channel transition (recorded); the
    # picture goes to the target, which is what the daemon's state holds.
    before = [{"text": "rain", "weight": 1.0}]
    target = [{"text": "shore", "weight": 1.0}, {"text": "shore", "weight": 0.4}]
    session = {
        "parameters": {"prompts": before, "paused": False},
        "transition": {"from": before, "to": target, "num_steps": 8, "step": 8},
    }
    assert server_view(session)["prompts"] == target
    assert state_differences({"prompts": target}, server_view(session)) == {}
    # A plain prompt change after the transition replaced the prompts: they stand.
    later = [{"text": "neon", "weight": 1.0}]
    session["parameters"]["prompts"] = later
    assert server_view(session)["prompts"] == later
    assert state_differences({"prompts": target}, server_view(session)) == {
        "prompts": (target, later)
    }


def test_socket_addresses_from_proc_net_read_as_host_and_port() -> None:
    assert _address("0100007F:1F90") == "127.0.0.1:8080"  # IPv4 is stored little-endian
    assert _address("00000000000000000000000001000000:0050").endswith(":80")


def _restart_history(load_start: float, load_end: float) -> list[Availability]:
    return [
        Availability(0.0, True, "loaded", 1),
        Availability(10.5, False, "not_loaded", 1),  # frames stop, connections refused
        Availability(14.9, True, "not_loaded", 1),  # back, not loaded
        Availability(load_start, True, "loading", 2),
        Availability(load_end, True, "loaded", 2),
    ]


def test_a_restart_counts_from_the_server_answering_plus_the_load() -> None:
    history = _restart_history(load_start=15.0, load_end=15.5)
    assert after_restart(history, 10.0) == (14.9, 15.0, 15.5)
    s = sample("restart", 10.0, 10.0, 15.8, history)
    assert s.fault_to_frame == pytest.approx(5.8)
    assert s.back_to_load == pytest.approx(0.1)
    # usable = 14.9 + 0.5 s of load: the frame came 0.4 s later.
    assert s.usable_to_frame == pytest.approx(0.4)


def test_a_late_load_request_is_time_wasted_after_the_server_came_back() -> None:
    history = _restart_history(load_start=18.0, load_end=18.5)  # 3.1 s of backoff
    s = sample("restart", 10.0, 10.0, 18.8, history)
    assert s.usable_to_frame == pytest.approx(3.4)


def test_a_hostile_spell_counts_from_its_end_and_a_stall_has_no_usable_time() -> None:
    s = sample("garbage_sdp", 10.0, 13.0, 13.6, [])
    assert (s.fault_to_frame, s.usable_to_frame) == (pytest.approx(3.6), pytest.approx(0.6))
    assert sample("stall", 10.0, 10.0, 13.2, []).usable_to_frame is None


def test_fd_kind_drops_the_ephemeral_port_but_keeps_the_peer() -> None:
    from bench.soak import fd_kind

    assert fd_kind("tcp 127.0.0.1:48234 -> 127.0.0.1:46185") == (
        "tcp connection to 127.0.0.1:46185"
    )
    assert fd_kind("udp 192.0.2.2:46020 -> 0.0.0.0:0") == "udp socket on 192.0.2.2"
    assert fd_kind("/tmp/x/daemon.log") == "/tmp/x/daemon.log"


def test_a_sweep_reads_its_tempi_as_a_list_or_a_range() -> None:
    assert tempi("84,90") == [84.0, 90.0]
    assert tempi("84:90:2") == [84.0, 86.0, 88.0, 90.0]
    with pytest.raises(ValueError):
        tempi("90:84:2")


def test_a_sweep_renders_every_tempo_on_every_soundfont_with_its_own_seed() -> None:
    pieces = plan("reggaeton", [88.0, 90.0], 500, 30.0, {"swing": 0.2})
    assert [(p.bpm, p.soundfont, p.seed) for p in pieces] == [
        (88.0, "timgm6mb", 500),
        (88.0, "musescore", 501),
        (88.0, "fluidr3", 502),
        (90.0, "timgm6mb", 503),
        (90.0, "musescore", 504),
        (90.0, "fluidr3", 505),
    ]
    assert all(p.swing == 0.2 and p.seconds == 30.0 for p in pieces)


def test_a_sweep_like_a_set_renders_its_plan_anew_on_every_soundfont() -> None:
    pieces = like("dev", 900)
    assert len(pieces) == 3 * len(PLANS["dev"])
    assert len({p.seed for p in pieces}) == len(pieces)
    assert [(p.name, p.bpm) for p in pieces] == [(p.name, p.bpm) for p in like("dev", 900)]
    plan_bpm = {name: bpm for name, _, bpm, _ in PLANS["dev"]}
    assert all(abs(p.bpm / plan_bpm[p.name] - 1) <= 0.075 for p in pieces)
    assert any(p.bpm != plan_bpm[p.name] for p in pieces)


def test_madmoms_tempo_is_the_median_of_its_last_intervals_reported_by_then() -> None:
    beats = np.array([1.0, 1.5, 2.0, 2.4, 2.9, 3.4, 3.9])
    bpm = tempo_from_beats(beats, np.array([0.5, 1.2, 1.5, 2.1, 2.5, 4.0]))
    assert np.isnan(bpm[:2]).all()  # fewer than two beats yet
    # One interval, then the median of those known (0.5 0.5 0.4), then of the last four.
    assert bpm[2:].tolist() == pytest.approx([120.0, 120.0, 120.0, 120.0])
    assert tempo_from_beats(beats, np.array([2.5]), span=1)[0] == pytest.approx(150.0)
    late = tempo_from_beats(np.array([1.0, 1.4, 1.8, 2.2, 2.7]), np.array([3.0]))
    assert late[0] == pytest.approx(150.0)  # 0.4 0.4 0.4 0.5: a late beat moves no median
