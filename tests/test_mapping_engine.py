"""The mapping engine against a real ParameterStore and CommandBus, ticked by hand.

The engine's clock is synthetic (``time=``) and ticks are called directly, so
hand-wins windows, cooldowns and deadbands are checked to the tick.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pythonosc.udp_client import SimpleUDPClient

from soundscape.audio.features import Features, silent_features
from soundscape.control import targets
from soundscape.control.commands import CommandBus
from soundscape.control.osc_config import OscConfig
from soundscape.control.osc_server import OscServer
from soundscape.errors import ParamError
from soundscape.mapping.config import (
    BeatConfig,
    LfoConfig,
    MappingConfig,
    RuleConfig,
    SceneConfig,
    ScenesConfig,
    VariationConfig,
)
from soundscape.mapping.engine import MappingEngine
from soundscape.scope.params import ParameterStore

LORAS = {"ink": "/loras/ink.safetensors", "glass": "/loras/glass.safetensors"}
DT = 1 / 30


class FakeTime:
    """A synthetic clock for the engine (the beat clock's timers stay on the loop)."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def feats(t: float, energy: float = 0.0, **kw: Any) -> Features:
    f = silent_features(t, ("low", "mid", "high"))
    bands = {**f.bands, **kw.pop("bands", {})}
    return dataclasses.replace(f, energy=energy, bands=bands, **kw)


class Harness:
    def __init__(self, engine: MappingEngine, store: ParameterStore, time: FakeTime) -> None:
        self.engine, self.store, self.time = engine, store, time
        self.changes: list[tuple[dict[str, Any], str]] = []
        store.subscribe(lambda c, s: self.changes.append((c, s)))

    def step(self, energy: float = 0.0, **kw: Any) -> None:
        """One tick: feed one block of features, then tick."""
        self.time.t += DT
        self.engine.feed(feats(self.time.t, energy, **kw))
        self.engine.tick(self.time.t)

    def sources_of(self, key: str) -> list[str]:
        return [s for c, s in self.changes if key in c]


@pytest.fixture
async def make() -> AsyncIterator[Any]:
    engines: list[MappingEngine] = []

    async def build(
        rules: list[RuleConfig],
        scenes: ScenesConfig | None = None,
        publish: Any = None,
        **mapping: Any,
    ) -> Harness:
        store = ParameterStore(
            {"lora_scales": [{"path": p, "scale": 0.5} for p in LORAS.values()]}, loras=LORAS
        )
        time = FakeTime()
        engine = MappingEngine(
            MappingConfig(rules=rules, **mapping),
            BeatConfig(),
            scenes or ScenesConfig(),
            store,
            CommandBus(),
            publish=publish,
            time=time,
        )
        await engine.start(ticking=False)
        engines.append(engine)
        return Harness(engine, store, time)

    yield build
    for engine in engines:
        await engine.stop()


ENERGY_LORA = RuleConfig(
    source="energy", target="lora:ink", mode="base", depth=0.6, center=0.5, min=0.0, max=1.5
)


async def test_energy_moves_a_lora_around_its_manual_base(make):
    h = await make([ENERGY_LORA])
    h.step(energy=0.5)
    assert h.store.lora_scale("ink") == pytest.approx(0.5)
    h.step(energy=1.0)
    assert h.store.lora_scale("ink") == pytest.approx(0.8)
    h.step(energy=0.0)
    assert h.store.lora_scale("ink") == pytest.approx(0.2)
    assert set(h.sources_of("lora_scales")) == {"mapping"}
    assert h.store.lora_scale("glass") == 0.5  # the other LoRA is untouched


async def test_deadband_keeps_wobbles_off_the_wire(make):
    h = await make([ENERGY_LORA])
    h.step(energy=0.5)
    writes = h.engine.writes
    for i in range(10):  # +-0.005 wobble: 0.003 in scale, under the 0.006 deadband
        h.step(energy=0.5 + (0.005 if i % 2 else -0.005))
    assert h.engine.writes == writes
    h.step(energy=0.6)
    assert h.engine.writes == writes + 1


async def test_a_hand_on_the_knob_wins_then_becomes_the_new_base(make):
    h = await make([ENERGY_LORA], hand_wins=2.0, hand_release=0.0)
    h.step(energy=1.0)
    assert h.store.lora_scale("ink") == pytest.approx(0.8)
    # The performer turns the knob (MIDI): 0.2.
    h.store.set_lora_scale("ink", 0.2, source="midi:cc:1:21")
    for _ in range(int(1.9 / DT)):
        h.step(energy=1.0)
        assert h.store.lora_scale("ink") == pytest.approx(0.2), "the rule fought the hand"
    for _ in range(int(0.3 / DT)):
        h.step(energy=1.0)
    # The hand left: the music moves it again, around the new base.
    assert h.store.lora_scale("ink") == pytest.approx(0.2 + 0.3)


async def test_a_non_hand_change_sets_the_base_without_holding(make):
    h = await make([ENERGY_LORA])
    h.step(energy=0.5)
    h.store.set_lora_scale("ink", 1.0, source="api")
    h.step(energy=0.5)
    assert h.store.lora_scale("ink") == pytest.approx(1.0)
    h.step(energy=1.0)
    assert h.store.lora_scale("ink") == pytest.approx(1.3)  # not held: moves at once


async def test_osc_counts_as_a_hand_but_an_osc_command_does_not(make):
    rule = RuleConfig(source="energy", target="noise_scale", min=0.0, max=1.0)
    h = await make([rule])
    h.step(energy=0.9)
    h.store.set("noise_scale", 0.1, source="osc:192.168.1.5:9000")
    h.step(energy=0.9)
    assert h.store.get("noise_scale") == pytest.approx(0.1)
    h.time.t += 5
    h.store.set("noise_scale", 0.2, source="osc-command:192.168.1.5:9000")
    h.step(energy=0.9)
    assert h.store.get("noise_scale") == pytest.approx(0.9)


async def test_max_mode_never_goes_below_the_manual_value(make):
    rule = RuleConfig(source="energy", target="kv_cache_attention_bias", mode="max", min=0.1, max=1)
    h = await make([rule])
    h.store.set("kv_cache_attention_bias", 0.6, source="api")
    h.step(energy=0.2)
    assert h.store.get("kv_cache_attention_bias") == pytest.approx(0.6)
    h.step(energy=1.0)
    assert h.store.get("kv_cache_attention_bias") == pytest.approx(1.0)


async def test_kick_resets_the_cache_with_a_cooldown(make):
    rule = RuleConfig(
        source="bands.low", target="reset_cache", threshold=0.8, hysteresis=0.3, cooldown=2.0
    )
    h = await make([rule])
    fired: list[tuple[float, str]] = []
    for i in range(150):  # 5 s, a kick every 0.6 s
        h.changes.clear()
        h.step(bands={"low": 1.0 if i % 18 == 0 else 0.0})
        fired += [(h.time.t - 1000.0, s) for c, s in h.changes if "reset_cache" in c]
    times = [t for t, _ in fired]
    assert times == pytest.approx([1 / 30, 2.4 + 1 / 30, 4.8 + 1 / 30])
    assert {s for _, s in fired} == {"mapping"}


async def test_lfo_on_vace_scale_locked_to_bars(make):
    rule = RuleConfig(
        source="lfo", target="vace_context_scale", lfo=LfoConfig(shape="triangle", beats=4)
    )
    h = await make([rule], hand_wins=0.0)
    clock = h.engine.clock
    for bar in range(1, 4):
        for beat_offset, expected in ((0.0, 0.0), (2.0, 2.0)):
            h.time.t = clock.time_at(bar * 4 + beat_offset)
            h.engine.tick(h.time.t)
            assert h.store.get("vace_context_scale") == pytest.approx(expected, abs=1e-6)


async def test_control_channels_feed_rules_and_are_midi_osc_targets(make):
    rule = RuleConfig(source="control:intensity", target="noise_scale", min=0.0, max=1.0)
    h = await make([rule])
    # What a MIDI mapping or /soundscape/norm/control:intensity does:
    targets.resolve("control:intensity", h.store).set(h.store, 0.75, source="midi:cc:1:1")
    h.step()
    assert h.store.get("noise_scale") == pytest.approx(0.75)
    h.engine.controls.set("intensity", 0.25)
    h.step()
    assert h.store.get("noise_scale") == pytest.approx(0.25)
    with pytest.raises(ParamError):
        h.engine.controls.set("bad name!", 0.5)


async def test_denoising_profile_target_picks_step_lists_with_hysteresis(make):
    rule = RuleConfig(source="energy", target="denoising:profile", min=0.0, max=2.0)
    h = await make([rule])
    h.step(energy=0.0)
    assert h.store.get("denoising_step_list") == [1000, 750, 500, 250]
    h.step(energy=1.0)
    assert h.store.get("denoising_step_list") == [1000, 250]
    h.step(energy=0.7)  # 1.4: just past the midpoint to balanced: not enough to switch
    assert h.store.get("denoising_step_list") == [1000, 250]
    h.step(energy=0.6)  # 1.2: clearly balanced
    assert h.store.get("denoising_step_list") == [1000, 500, 250]


SCENES = ScenesConfig(
    list=[
        SceneConfig(
            name="calm",
            prompts=["a still lake"],
            variations=[VariationConfig(name="ripples", prompts=["ripples on a lake"])],
            spike=0.9,
            spike_cooldown=1.0,
            lora={"ink": 0.3},
        ),
        SceneConfig(name="storm", prompts=["lightning", "rain"]),
    ],
    start="calm",
    quantize="none",
)


async def test_energy_spike_brings_in_a_variation_with_a_cooldown(make):
    h = await make([], scenes=SCENES)
    for _ in range(3):
        h.step(energy=0.5)
    transitions = len(h.sources_of("transition"))
    h.step(energy=1.0)
    assert h.engine.director.variation == 1
    assert len(h.sources_of("transition")) == transitions + 1
    h.step(energy=0.2)
    h.step(energy=1.0)  # within the 1 s cooldown: nothing
    assert h.engine.director.variation == 1
    for _ in range(40):
        h.step(energy=0.2)
    h.step(energy=1.0)
    assert h.engine.director.variation == 0  # back to the base prompts


async def test_scene_presets_become_the_base(make):
    h = await make([ENERGY_LORA], scenes=SCENES)
    h.step(energy=0.5)
    assert h.store.lora_scale("ink") == pytest.approx(0.3)  # calm's preset, unmodulated
    h.step(energy=1.0)
    assert h.store.lora_scale("ink") == pytest.approx(0.6)


async def test_commands_scene_panic_tap_mapping(make):
    sent: list[tuple[str, tuple[Any, ...]]] = []
    scenes = dataclasses.replace(SCENES, safe="calm")
    h = await make([ENERGY_LORA], scenes=scenes, publish=lambda a, *args: sent.append((a, args)))
    bus = h.engine.commands
    assert set(bus.names()) >= {"scene", "panic", "tap", "variation", "mapping"}
    await bus.call("scene", "storm", source="osc-command:10.0.0.2:9000")
    assert h.engine.director.scene.name == "storm"
    assert ("/soundscape/scene", ("storm", 1)) in sent
    await bus.call("panic", source="midi:note:1:36")
    assert h.engine.director.scene.name == "calm"
    assert h.store.get("transition") is None  # transitions are never standing state
    assert not h.engine.enabled  # panic stops the rules until the next scene
    writes = h.engine.writes
    h.step(energy=1.0)
    assert h.engine.writes == writes
    assert await bus.call("panic", False, source="midi") is None  # a button's release
    assert await bus.call("scene", "storm", False, source="midi") is None  # ditto
    assert h.engine.director.scene.name == "calm"
    await bus.call("scene", 1, source="midi:program:1:*")
    assert h.engine.enabled
    await bus.call("scene", "calm", source="osc-command:x:1")
    assert await bus.call("variation", None, source="osc-command:x:1") == "ripples"
    assert await bus.call("mapping", source="osc-command:x:1") is False
    assert await bus.call("mapping", True, source="osc-command:x:1") is True
    with pytest.raises(ParamError):
        await bus.call("scene", "nowhere", source="api")
    await h.engine.stop()
    assert "scene" not in bus


async def test_features_and_tempo_go_out_through_publish(make):
    sent: list[tuple[str, tuple[Any, ...]]] = []
    h = await make([], publish=lambda a, *args: sent.append((a, args)), feedback_rate=30.0)
    h.step(energy=0.25, brightness=0.5, onset=True, bands={"low": 0.125})
    addresses = {a: args for a, args in sent}
    assert addresses["/soundscape/audio/energy"] == (0.25,)
    assert addresses["/soundscape/audio/brightness"] == (0.5,)
    assert addresses["/soundscape/audio/bands/low"] == (0.125,)
    assert addresses["/soundscape/audio/onset"] == (1,)
    assert addresses["/soundscape/bpm"] == (120.0,)
    assert addresses["/soundscape/beat/source"] == ("none",)


async def test_a_publish_that_fails_never_breaks_the_tick(make):
    def broken(address: str, *args: Any) -> None:
        raise ValueError("OSC address must start with '/'")

    h = await make([ENERGY_LORA], publish=broken)
    h.step(energy=1.0)
    assert h.store.lora_scale("ink") == pytest.approx(0.8)


async def test_rules_with_unknown_targets_are_skipped_not_fatal(make):
    rules = [
        RuleConfig(source="energy", target="lora:missing"),
        RuleConfig(source="energy", target="prompt_weight:3", min=0.0, max=1.0),
        ENERGY_LORA,
    ]
    h = await make(rules)
    h.step(energy=1.0)  # prompt 3 does not exist: refused and logged, the rest runs
    assert h.store.lora_scale("ink") == pytest.approx(0.8)
    assert [r.target for r in h.engine.rules.rules] == ["prompt_weight:3", "lora:ink"]


async def test_reload_swaps_rules_and_scenes_and_keeps_the_scene_playing(make):
    h = await make([ENERGY_LORA], scenes=SCENES)
    h.step(energy=1.0)
    assert h.store.lora_scale("ink") == pytest.approx(0.6)
    new_rule = RuleConfig(source="energy", target="noise_scale", min=0.0, max=0.5)
    scenes = dataclasses.replace(
        SCENES, list=[SceneConfig(name="hail", prompts=["hail on a tin roof"]), *SCENES.list]
    )
    h.engine.reload(MappingConfig(rules=[new_rule]), scenes)
    assert h.engine.director.scene.name == "calm"
    assert h.engine.director.current == 1  # found again by name
    h.step(energy=1.0)
    assert h.store.get("noise_scale") == pytest.approx(0.5)
    assert h.store.lora_scale("ink") == pytest.approx(0.6)  # the old rule is gone: untouched
    h.step(energy=0.0)
    assert h.store.lora_scale("ink") == pytest.approx(0.6)
    # A reload with broken scenes keeps the last good ones.
    broken = ScenesConfig(list=[SceneConfig(name="x", prompts=[])])
    h.engine.reload(MappingConfig(rules=[new_rule]), broken)
    assert h.engine.director.book.names == ["hail", "calm", "storm"]


async def test_an_osc_fader_reaches_a_control_channel_over_udp():
    # The OSC server's /soundscape/norm/<target> needs nothing mapping-specific:
    # control:<name> is a target like any other.
    store = ParameterStore()
    bus = CommandBus()
    rule = RuleConfig(source="control:drive", target="kv_cache_attention_bias", min=0.1, max=0.9)
    time = FakeTime()
    engine = MappingEngine(
        MappingConfig(rules=[rule]), BeatConfig(), ScenesConfig(), store, bus, time=time
    )
    osc = OscServer(OscConfig(port=0), store, bus)
    await osc.start()
    await engine.start(ticking=False)
    try:
        moved = asyncio.Event()
        engine.controls.subscribe(lambda name, value: moved.set())
        assert osc.address is not None
        SimpleUDPClient("127.0.0.1", osc.address[1]).send_message(
            "/soundscape/norm/control:drive", 0.5
        )
        await asyncio.wait_for(moved.wait(), 5)
        engine.tick(time.t + DT)
        assert store.get("kv_cache_attention_bias") == pytest.approx(0.5)
    finally:
        await engine.stop()
        await osc.stop()


async def test_screens_take_their_own_rules_and_share_one_beat_clock():
    """A rule with screen = "left" drives left's store only; "*" every screen; "" the main.
    A further screen's engine follows the main engine's clock and never starts its own."""
    time = FakeTime()
    rules = [
        RuleConfig(source="energy", target="lora:ink", min=0.0, max=1.0),  # main only
        RuleConfig(source="energy", target="lora:glass", min=0.0, max=1.0, screen="left"),
        RuleConfig(source="energy", target="kv_cache_attention_bias", min=0.1, max=0.9,
                   screen="*"),
    ]  # fmt: skip
    stores = {}
    for name in ("main", "left"):
        stores[name] = ParameterStore(
            {"lora_scales": [{"path": p, "scale": 0.5} for p in LORAS.values()]}, loras=LORAS
        )
    shared = CommandBus()
    main = MappingEngine(
        MappingConfig(rules=rules), BeatConfig(), ScenesConfig(), stores["main"], shared, time=time
    )
    left = MappingEngine(
        MappingConfig(rules=rules),
        BeatConfig(),
        ScenesConfig(),
        stores["left"],
        CommandBus(parent=shared),
        time=time,
        runner=main.runner,
        screen="left",
        main_screen=False,
    )
    await main.start(ticking=False)
    await left.start(ticking=False)
    try:
        assert left.clock is main.clock and not left.owns_clock
        assert "tap" in left.commands and left.commands.owner("tap") is shared  # one tap
        time.t += DT
        for engine in (main, left):
            engine.feed(feats(time.t, 1.0))
            engine.tick(time.t)
        assert stores["main"].lora_scale("ink") == pytest.approx(1.0)
        assert stores["main"].lora_scale("glass") == 0.5
        assert stores["left"].lora_scale("glass") == pytest.approx(1.0)
        assert stores["left"].lora_scale("ink") == 0.5
        for store in stores.values():
            assert store.get("kv_cache_attention_bias") == pytest.approx(0.9)
    finally:
        await left.stop()
        await main.stop()
        assert "tap" not in shared  # the main engine took its own commands away
