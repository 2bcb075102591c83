"""Pure MIDI mapping logic: curves, decoders, soft takeover, bindings (synthetic messages)."""

from __future__ import annotations

import itertools
import math

import mido
import pytest

from soundscape.control.midi_config import MidiMapping
from soundscape.control.midi_curves import CURVES, ValueRange, apply_curve, invert_curve
from soundscape.control.midi_decode import (
    Cc14Decoder,
    encode_relative,
    relative_steps,
    split14,
)
from soundscape.control.midi_feedback import FeedbackPlanner
from soundscape.control.midi_mapping import MidiMapper, RunCommand, SetTarget
from soundscape.control.midi_takeover import SoftTakeover
from soundscape.scope.params import ParameterStore


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


def apply(mapper: MidiMapper, msg: mido.Message, now: float = 0.0) -> list:
    actions, _ = mapper.handle(msg, now)
    for action in actions:
        if isinstance(action, SetTarget):
            action.target.set(mapper.store, action.value, source=action.source)
    return actions


# --------------------------------------------------------------------------- curves


@pytest.mark.parametrize("curve", list(CURVES))
def test_curves_run_from_zero_to_one_and_invert_exactly(curve: str) -> None:
    assert apply_curve(curve, 0.0) == pytest.approx(0.0, abs=1e-12)
    assert apply_curve(curve, 1.0) == pytest.approx(1.0, abs=1e-12)
    xs = [i / 20 for i in range(21)]
    ys = [apply_curve(curve, x) for x in xs]
    assert all(b >= a for a, b in itertools.pairwise(ys)), "curves must be monotonic"
    for x, y in zip(xs, ys, strict=True):
        assert invert_curve(curve, y) == pytest.approx(x, abs=1e-9)


def test_curve_shapes_differ_where_they_should() -> None:
    assert apply_curve("exponential", 0.5) < 0.3  # fine control low
    assert apply_curve("logarithmic", 0.5) > 0.7  # fast rise low
    assert apply_curve("s-curve", 0.1) < 0.1 and apply_curve("s-curve", 0.9) > 0.9
    assert apply_curve("s-curve", 0.5) == pytest.approx(0.5)


def test_value_range_maps_and_inverts_including_inverted_ranges() -> None:
    r = ValueRange(0.2, 0.8)
    assert r.to_value(0.5) == pytest.approx(0.5)
    assert r.to_unit(0.8) == pytest.approx(1.0)
    assert r.to_unit(0.95) == 1.0  # outside the range clamps
    inv = ValueRange(1.0, 0.0)
    assert inv.to_value(0.25) == pytest.approx(0.75)
    assert inv.to_unit(0.75) == pytest.approx(0.25)


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("encoding", ["twos_complement", "binary_offset", "sign_magnitude"])
def test_relative_encodings_round_trip(encoding: str) -> None:
    for steps in range(-63, 64):
        assert relative_steps(encoding, encode_relative(encoding, steps)) == steps


def test_relative_encodings_match_the_devices() -> None:
    assert relative_steps("twos_complement", 127) == -1
    assert relative_steps("twos_complement", 1) == 1
    assert relative_steps("binary_offset", 63) == -1
    assert relative_steps("binary_offset", 65) == 1
    assert relative_steps("sign_magnitude", 65) == -1
    assert relative_steps("sign_magnitude", 1) == 1


def test_cc14_msb_then_lsb_waits_for_the_pair() -> None:
    d = Cc14Decoder(window=0.02)
    # First contact: no LSB seen yet, so the MSB counts as a 7-bit value.
    assert d.feed_msb(64, 0.0) == pytest.approx(64 / 127)
    # Its LSB arrives: the pair is exact.
    assert d.feed_lsb(10, 0.001) == pytest.approx((64 * 128 + 10) / 16383)
    # From now on an MSB waits for its LSB (no half-value glitch)...
    assert d.feed_msb(100, 1.0) is None
    assert d.feed_lsb(5, 1.001) == pytest.approx((100 * 128 + 5) / 16383)
    # ...an LSB alone is a fine change under the last MSB, applied at once...
    assert d.feed_lsb(6, 2.0) == pytest.approx((100 * 128 + 6) / 16383)
    # ...and an MSB whose LSB never comes applies alone after the window (LSB reset).
    assert d.feed_msb(20, 3.0) is None
    assert d.deadline == pytest.approx(3.02)
    assert d.poll(3.01) is None
    assert d.poll(3.02) == pytest.approx(20 * 128 / 16383)
    # A late LSB still lands on the right value.
    assert d.feed_lsb(99, 3.05) == pytest.approx((20 * 128 + 99) / 16383)


def test_cc14_msb_only_sender_reaches_full_scale() -> None:
    d = Cc14Decoder()
    values = [d.feed_msb(v, i * 0.1) for i, v in enumerate((0, 64, 127))]
    assert values == [0.0, pytest.approx(64 / 127), 1.0]
    assert d.deadline is None


def test_cc14_lsb_before_msb_is_learnt() -> None:
    d = Cc14Decoder(window=0.02)
    assert d.feed_lsb(7, 0.0) is None  # waits for its MSB
    assert d.feed_msb(3, 0.001) == pytest.approx((3 * 128 + 7) / 16383)
    assert d.order == "lsb_first"
    assert d.feed_lsb(8, 1.0) is None
    assert d.feed_msb(90, 1.002) == pytest.approx((90 * 128 + 8) / 16383)
    # An LSB alone (fine change) flushes after the window with the last MSB.
    assert d.feed_lsb(9, 2.0) is None
    assert d.poll(2.03) == pytest.approx((90 * 128 + 9) / 16383)


def test_split14() -> None:
    assert split14(1.0) == (127, 127)
    assert split14(0.0) == (0, 0)
    msb, lsb = split14(0.5)
    assert (msb << 7 | lsb) == round(0.5 * 16383)


# --------------------------------------------------------------------------- soft takeover


def test_pickup_ignores_the_knob_until_it_reaches_the_value() -> None:
    t = SoftTakeover("pickup", threshold=0.03)
    current = 0.5
    # Knob far below: ignored while it climbs...
    for knob in (0.1, 0.2, 0.3, 0.4):
        assert t.feed(knob, current) is None
    # ...until it gets within the threshold, then it follows.
    assert t.feed(0.48, current) == pytest.approx(0.48)
    current = 0.48
    assert t.feed(0.6, current) == pytest.approx(0.6)


def test_pickup_catches_a_fast_knob_that_crosses_the_value() -> None:
    t = SoftTakeover("pickup")
    assert t.feed(0.1, 0.5) is None
    assert t.feed(0.9, 0.5) == pytest.approx(0.9)  # jumped over 0.5 between two messages


def test_pickup_drops_after_someone_else_moves_the_value() -> None:
    t = SoftTakeover("pickup")
    assert t.feed(0.5, 0.5) == 0.5
    assert t.feed(0.6, 0.5) == 0.6  # synced: follows
    # A scene change sets 0.2 elsewhere: the knob (at 0.6) must not make it jump.
    assert t.feed(0.62, 0.2) is None
    assert t.feed(0.4, 0.2) is None
    assert t.feed(0.21, 0.2) == pytest.approx(0.21)


def test_scale_moves_proportionally_and_meets_at_the_end() -> None:
    t = SoftTakeover("scale", threshold=0.01)
    current = 0.8
    assert t.feed(0.2, current) is None  # first move: no direction yet
    previous_gap = abs(0.2 - current)
    knob = 0.2
    while knob < 1.0:
        knob = round(knob + 0.1, 10)
        value = t.feed(knob, current)
        assert value is not None
        assert value >= current  # moves the same way as the knob, never jumps back
        assert abs(value - current) < 0.1  # never a jump bigger than the knob's own move
        gap = abs(knob - value)
        assert gap <= previous_gap + 1e-12
        previous_gap, current = gap, value
    assert current == pytest.approx(1.0)
    assert t.synced


def test_scale_downwards_converges_at_zero() -> None:
    t = SoftTakeover("scale", threshold=0.0)
    current = 0.3
    t.feed(0.9, current)
    for knob in (0.6, 0.3, 0.0):
        current = t.feed(knob, current)
    assert current == pytest.approx(0.0)
    assert t.synced


def test_none_mode_jumps() -> None:
    assert SoftTakeover("none").feed(0.1, 0.9) == 0.1


# --------------------------------------------------------------------------- bindings


def test_absolute_cc_with_range_and_curve() -> None:
    store = ParameterStore()
    mapper = MidiMapper(
        [MidiMapping(target="noise_scale", number=7, min=0.2, max=0.6, takeover="none")], store
    )
    apply(mapper, cc(7, 127))
    assert store.get("noise_scale") == pytest.approx(0.6)
    apply(mapper, cc(7, 0))
    assert store.get("noise_scale") == pytest.approx(0.2)
    expo = MidiMapper(
        [MidiMapping(target="vace_context_scale", number=8, curve="exponential", takeover="none")],
        store,
    )
    apply(expo, cc(8, 64))
    assert store.get("vace_context_scale") == pytest.approx(
        2.0 * apply_curve("exponential", 64 / 127)
    )


def test_channel_filter() -> None:
    store = ParameterStore()
    mapper = MidiMapper(
        [MidiMapping(target="noise_scale", number=7, channel=2, takeover="none")], store
    )
    _, matched = mapper.handle(cc(7, 0, channel=0), 0.0)
    assert not matched
    apply(mapper, cc(7, 0, channel=1))
    assert store.get("noise_scale") == 0.0


def test_relative_encoder_moves_from_the_current_value() -> None:
    store = ParameterStore({"noise_scale": 0.5})
    mapper = MidiMapper(
        [
            MidiMapping(
                target="noise_scale",
                type="relative",
                number=3,
                mode="sign_magnitude",
                sensitivity=2.0,
            )
        ],
        store,
    )
    apply(mapper, cc(3, 5))  # +5 steps x 2/127
    assert store.get("noise_scale") == pytest.approx(0.5 + 10 / 127)
    store.set("noise_scale", 0.1, source="osc")  # moved elsewhere: relative just continues
    apply(mapper, cc(3, 0x40 | 3))  # -3 steps
    assert store.get("noise_scale") == pytest.approx(0.1 - 6 / 127)


def test_notes_toggle_momentary_trigger() -> None:
    store = ParameterStore()
    mapper = MidiMapper(
        [
            MidiMapping(target="noise_scale", type="note", number=36, mode="toggle"),
            MidiMapping(
                target="vace_context_scale", type="note", number=37, mode="momentary", max=1.5
            ),
            MidiMapping(target="kv_cache_attention_bias", type="note", number=38, value=0.9),
            MidiMapping(target="command:panic", type="note", number=39),
            MidiMapping(target="command:pause", type="note", number=40, mode="toggle"),
        ],
        store,
    )
    on = lambda n: mido.Message("note_on", note=n, velocity=100)  # noqa: E731
    off = lambda n: mido.Message("note_off", note=n)  # noqa: E731
    store.set("noise_scale", 0.1)
    apply(mapper, on(36))
    assert store.get("noise_scale") == 1.0
    apply(mapper, off(36))
    assert store.get("noise_scale") == 1.0  # release does nothing for a toggle
    apply(mapper, on(36))
    assert store.get("noise_scale") == 0.0
    apply(mapper, on(37))
    assert store.get("vace_context_scale") == 1.5
    apply(mapper, mido.Message("note_on", note=37, velocity=0))  # note-on 0 = release
    assert store.get("vace_context_scale") == 0.0
    apply(mapper, on(38))
    assert store.get("kv_cache_attention_bias") == pytest.approx(0.9)
    (panic,) = apply(mapper, on(39))
    assert isinstance(panic, RunCommand) and panic.name == "panic" and panic.args == ()
    assert apply(mapper, off(39)) == []
    first = apply(mapper, on(40))[0]
    second = apply(mapper, on(40))[0]
    assert (first.args, second.args) == ((True,), (False,))


def test_program_change_selects_a_scene() -> None:
    mapper = MidiMapper([MidiMapping(target="command:scene", type="program")], ParameterStore())
    (action,) = apply(mapper, mido.Message("program_change", program=5))
    assert isinstance(action, RunCommand)
    assert (action.name, action.args) == ("scene", (5,))


def test_button_cc_runs_a_command_on_press_only() -> None:
    mapper = MidiMapper([MidiMapping(target="command:tap", type="cc", number=64)], ParameterStore())
    assert [a.name for a in apply(mapper, cc(64, 127))] == ["tap"]
    assert apply(mapper, cc(64, 0)) == []


def test_bad_mappings_are_skipped_with_a_reason() -> None:
    mapper = MidiMapper(
        [
            MidiMapping(target="no_such_thing", number=1),
            MidiMapping(target="lora:ink", number=2),
            MidiMapping(target="noise_scale", type="cc14", number=40),
            MidiMapping(target="noise_scale", number=3),
        ],
        ParameterStore(),
    )
    assert len(mapper.bindings) == 1
    assert len(mapper.problems) == 3
    assert "unknown target" in mapper.problems[0]
    assert "not a loaded LoRA" in mapper.problems[1]


def test_lora_and_prompt_weight_targets() -> None:
    store = ParameterStore(
        {"prompts": [{"text": "a", "weight": 1.0}, {"text": "b", "weight": 0.5}]},
        loras={"ink": "/loras/ink.safetensors"},
    )
    mapper = MidiMapper(
        [
            MidiMapping(target="lora:ink", number=1, takeover="none"),
            MidiMapping(target="prompt_weight:1", number=2, takeover="none"),
        ],
        store,
    )
    apply(mapper, cc(1, 127))
    apply(mapper, cc(2, 0))
    assert store.lora_scale("ink") == 10.0
    assert store.get("prompts")[1]["weight"] == 0.0


def test_soft_takeover_through_the_mapper_after_a_scene_change() -> None:
    store = ParameterStore({"noise_scale": 0.5})
    mapper = MidiMapper([MidiMapping(target="noise_scale", number=7)], store)
    apply(mapper, cc(7, 64))  # within threshold of 0.5: picked up
    assert store.get("noise_scale") == pytest.approx(64 / 127)
    store.set("noise_scale", 0.9, source="scene")
    seen = []
    for value in range(64, 128, 4):  # climb from far below
        apply(mapper, cc(7, value))
        seen.append(store.get("noise_scale"))
    first_move = next(i for i, v in enumerate(seen) if v != 0.9)
    assert all(v == 0.9 for v in seen[:first_move])
    assert abs(seen[first_move] - 0.9) <= 0.03 + 1e-9
    assert seen[-1] == pytest.approx(124 / 127)


# --------------------------------------------------------------------------- feedback


def test_feedback_skips_a_faders_own_move_but_not_other_sources() -> None:
    store = ParameterStore({"noise_scale": 0.0})
    mapper = MidiMapper(
        [
            MidiMapping(target="noise_scale", number=7, takeover="none"),
            MidiMapping(target="noise_scale", type="cc14", number=1),
            MidiMapping(target="noise_scale", type="note", number=36),
        ],
        store,
    )
    planner = FeedbackPlanner(mapper.bindings)
    planner.plan(store)  # initial state marked as sent
    (action,) = [a for a in mapper.handle(cc(7, 127), 0.0)[0]]
    action.target.set(store, action.value, source=action.source)
    out = planner.plan(store, action.source)
    # Not back to CC 7 (the fader that moved), but the 14-bit fader and the pad follow.
    assert [(m.type, getattr(m, "control", getattr(m, "note", None))) for m in out] == [
        ("control_change", 1),
        ("control_change", 33),
        ("note_on", 36),
    ]
    assert out[2].velocity == 127
    store.set("noise_scale", 0.5, source="osc:1.2.3.4:9000")
    out = planner.plan(store, "osc:1.2.3.4:9000")
    assert (out[0].control, out[0].value) == (7, 64)  # a scene/OSC change reaches every control
    assert planner.plan(store, "osc") == []  # nothing new: nothing sent


def test_curve_is_respected_by_feedback() -> None:
    store = ParameterStore({"noise_scale": apply_curve("exponential", 0.5)})
    mapper = MidiMapper([MidiMapping(target="noise_scale", number=7, curve="exponential")], store)
    (msg,) = FeedbackPlanner(mapper.bindings).plan(store)
    assert msg.value == round(0.5 * 127)
    assert not math.isnan(msg.value)
