"""Scenes: building, finding, quantized changes on the beat clock, PANIC, rotation, images."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from soundscape.emulator import Emulator, EmulatorConfig
from soundscape.errors import ParamError
from soundscape.mapping.config import SceneConfig, ScenesConfig, VariationConfig
from soundscape.mapping.scenes import (
    ReferenceImages,
    SceneBook,
    SceneDirector,
    choose_method,
    styled,
    variation_index,
)
from soundscape.mapping.tempo import BeatClock, BeatClockRunner, BeatEvent
from soundscape.scope.api import ScopeClient
from soundscape.scope.params import ParameterStore

PROFILES = {"quality": [1000, 750, 500, 250], "fast": [1000, 250]}


def scenes_config(**kwargs: Any) -> ScenesConfig:
    kwargs.setdefault("grace_beats", 0.0)  # the clock starts on a bar line: no grace there
    kwargs.setdefault(
        "list",
        [
            SceneConfig(
                name="ocean",
                prompts=["deep sea", {"text": "bioluminescence", "weight": 0.5}],
                style="35mm film",
                variations=[VariationConfig(name="storm", prompts=["a storm at sea"])],
                noise_scale=0.4,
                lora={"ink": 0.8},
                denoising="fast",
            ),
            SceneConfig(name="city", prompts=["neon city at night"], transition_steps=3),
            SceneConfig(name="safe", prompts=["soft clouds"], quantize="none"),
        ],
    )
    return ScenesConfig(**kwargs)


def make_store() -> ParameterStore:
    return ParameterStore(loras={"ink": "/loras/ink.safetensors"})


class Transitions:
    """Every transition the store takes, with its source and when."""

    def __init__(self, store: ParameterStore) -> None:
        self.seen: list[tuple[dict[str, Any], str, float]] = []
        self.event = asyncio.Event()
        store.subscribe(self._on_change)

    def _on_change(self, changes: dict[str, Any], source: str) -> None:
        if "transition" in changes:
            self.seen.append((changes["transition"], source, asyncio.get_running_loop().time()))
            self.event.set()

    async def next(self, timeout: float = 5.0) -> tuple[dict[str, Any], str, float]:
        await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()
        return self.seen[-1]


# --------------------------------------------------------------------------- pure


def test_style_is_appended_to_every_prompt():
    assert styled(["a forest", {"text": "fog,", "weight": 0.3}], " oil painting ") == [
        {"text": "a forest, oil painting", "weight": 1.0},
        {"text": "fog, oil painting", "weight": 0.3},
    ]
    assert styled("a forest", "") == [{"text": "a forest", "weight": 1.0}]


def test_slerp_only_for_exactly_two_prompts():
    assert choose_method([1, 2], "auto") == "slerp"
    assert choose_method([1], "auto") == "linear"
    assert choose_method([1, 2, 3], "slerp") == "linear"
    assert choose_method([1, 2], "linear") == "linear"


def test_book_builds_presets_and_finds_scenes():
    book = SceneBook.from_config(scenes_config(), PROFILES)
    ocean = book[0]
    assert ocean.prompts[0] == {"text": "deep sea, 35mm film", "weight": 1.0}
    assert ocean.variations[0][1] == [{"text": "a storm at sea, 35mm film", "weight": 1.0}]
    assert ocean.params == {"noise_scale": 0.4, "denoising_step_list": [1000, 250]}
    assert ocean.loras == {"ink": 0.8}
    assert book.index("CITY") == 1
    assert book.index(2) == book.index("2") == book.index(2.0) == 2
    assert book.index("next", 2) == 0
    assert book.index("previous", 0) == 2
    assert book.index("next") == 0
    for bad in ("nowhere", 3, -1, True, None):
        with pytest.raises(ParamError):
            book.index(bad)


def test_book_refuses_bad_prompts_and_unknown_profiles_with_every_problem():
    config = ScenesConfig(
        list=[
            SceneConfig(name="a", prompts=[]),
            SceneConfig(name="b", prompts=["x"], denoising="turbo"),
        ]
    )
    with pytest.raises(ParamError) as err:
        SceneBook.from_config(config, PROFILES)
    assert len(err.value.problems) == 2


def test_variation_choice():
    rng = random.Random(0)
    names = ["storm", "calm"]
    assert variation_index("next", 0, names, rng) == 1
    assert variation_index("next", 2, names, rng) == 0
    assert variation_index("previous", 0, names, rng) == 2
    assert variation_index("Calm", 0, names, rng) == 2
    assert variation_index("base", 2, names, rng) == 0
    assert all(variation_index("random", 1, names, rng) != 1 for _ in range(20))
    with pytest.raises(ParamError):
        variation_index("sunny", 0, names, rng)


# --------------------------------------------------------------------------- director


async def make_director(
    config: ScenesConfig | None = None, bpm: float = 240.0, **kwargs: Any
) -> tuple[SceneDirector, ParameterStore, BeatClockRunner]:
    config = config or scenes_config()
    store = make_store()
    runner = BeatClockRunner(BeatClock(default_bpm=bpm))
    await runner.start()
    director = SceneDirector(
        config, SceneBook.from_config(config, PROFILES), store, runner, **kwargs
    )
    await director.start()
    return director, store, runner


async def test_unquantized_change_applies_presets_and_transition_at_once():
    director, store, runner = await make_director(scenes_config(quantize="none"))
    transitions = Transitions(store)
    try:
        planned = director.request("ocean", source="osc-command:1.2.3.4:9000")
        assert planned == {"scene": "ocean", "at": None}
        transition, source, _ = transitions.seen[-1]
        assert source == "scene"
        assert transition["num_steps"] == 6
        assert transition["temporal_interpolation_method"] == "slerp"  # two prompts
        assert store.get("noise_scale") == 0.4
        assert store.get("denoising_step_list") == [1000, 250]
        assert store.lora_scale("ink") == 0.8
        director.request("city")
        assert transitions.seen[-1][0]["num_steps"] == 3  # the scene's own steps
        assert transitions.seen[-1][0]["temporal_interpolation_method"] == "linear"
    finally:
        await director.stop()
        await runner.stop()


async def test_quantized_change_lands_on_the_next_bar_line():
    director, store, runner = await make_director(bpm=480.0)  # a bar every half second
    transitions = Transitions(store)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(0.15)  # let time pass: somewhere inside bar 0
        asked = runner.state()
        planned = director.request("city")
        assert planned["at"] == 4.0
        assert not transitions.seen  # nothing yet: it waits for the bar line
        _, _, landed = await transitions.next()
        bar_line = runner.clock.time_at(4.0)
        assert landed >= bar_line - 0.001, "landed before the bar line"
        assert runner.clock.position(landed) == pytest.approx(4.0, abs=0.1)
        assert landed > asked.t
        assert director.scene.name == "city"
        assert loop.time() >= bar_line
    finally:
        await director.stop()
        await runner.stop()


async def test_a_request_just_after_the_bar_line_lands_at_once():
    # An OSC message sent by a clip as it launches arrives a few ms after the bar.
    director, store, runner = await make_director(scenes_config(grace_beats=0.125), bpm=60.0)
    transitions = Transitions(store)
    try:
        assert runner.state().beats < 0.125  # the clock just started, on a bar line
        assert director.request("city") == {"scene": "city", "at": None}
        assert transitions.seen and director.scene.name == "city"
    finally:
        await director.stop()
        await runner.stop()


async def test_a_new_request_replaces_the_pending_one():
    director, store, runner = await make_director(bpm=480.0)
    transitions = Transitions(store)
    try:
        director.request("city")
        director.request("ocean")
        await transitions.next()
        await asyncio.sleep(0.05)
        assert len(transitions.seen) == 1
        assert director.scene.name == "ocean"
    finally:
        await director.stop()
        await runner.stop()


async def test_panic_goes_to_the_safe_scene_at_once_and_cancels_a_pending_change():
    director, store, runner = await make_director(scenes_config(safe="safe"), bpm=60.0)
    transitions = Transitions(store)
    try:
        director.request("city")  # waits for a bar line up to 4 s away
        assert director.pending is not None
        director.panic(source="midi:note:1:36")
        # Synchronously, inside the call: no quantize, no steps.
        transition, source, _ = transitions.seen[-1]
        assert source == "scene"
        assert transition["num_steps"] == 0
        assert transition["target_prompts"] == [{"text": "soft clouds", "weight": 1.0}]
        assert director.pending is None
        assert director.scene.name == "safe"
        await asyncio.sleep(0.1)
        assert len(transitions.seen) == 1
    finally:
        await director.stop()
        await runner.stop()


async def test_panic_can_pause_and_the_next_scene_resumes():
    director, store, runner = await make_director(scenes_config(panic="pause", quantize="none"))
    try:
        director.panic()
        assert store.get("paused") is True
        director.request("city")
        assert store.get("paused") is False
    finally:
        await director.stop()
        await runner.stop()


async def test_scenes_rotate_every_n_bars_and_not_after_panic():
    config = scenes_config(rotate_bars=2, rotate=["ocean", "city"], start="ocean")
    director, _store, runner = await make_director(config)
    try:
        assert director.scene.name == "ocean"

        def bar(n: int) -> None:
            director.on_beat(BeatEvent(n * 4, 4, float(n), 120.0))

        bar(1)
        assert director.scene.name == "ocean"
        bar(2)
        assert director.scene.name == "city"
        bar(3), bar(4)
        assert director.scene.name == "ocean"
        director.on_beat(BeatEvent(17, 4, 5.0, 120.0))  # not a bar line: not counted
        director.panic()
        bar(5), bar(6), bar(7)
        assert director.scene.name == "ocean"  # the first scene is the safe default
        assert director.held
    finally:
        await director.stop()
        await runner.stop()


async def test_variations_come_in_as_transitions():
    director, store, runner = await make_director(scenes_config(start="ocean"))
    transitions = Transitions(store)
    try:
        assert director.vary("next") == "storm"
        transition = transitions.seen[-1][0]
        assert transition["target_prompts"] == [
            {"text": "a storm at sea, 35mm film", "weight": 1.0}
        ]
        assert transition["temporal_interpolation_method"] == "linear"  # one prompt
        assert transition["num_steps"] == 4
        assert director.vary("next") == "base"
        assert transitions.seen[-1][0]["temporal_interpolation_method"] == "slerp"
    finally:
        await director.stop()
        await runner.stop()


# --------------------------------------------------------------------------- images


@pytest.fixture
async def emulator():
    emu = Emulator(EmulatorConfig(width=320, height=192, load_time=0.1))
    await emu.start(host="127.0.0.1", port=0)
    try:
        yield emu
    finally:
        await emu.stop()


def same_bytes(a: str | Path, b: str | Path) -> bool:
    return Path(a).read_bytes() == Path(b).read_bytes()


def write_png(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", (16, 16), colour).save(path)
    return path


async def test_reference_images_upload_once_per_content(emulator: Emulator, tmp_path: Path):
    image = write_png(tmp_path / "ref.png", (200, 30, 30))
    copy = write_png(tmp_path / "same.png", (200, 30, 30))
    async with ScopeClient(emulator.url) as client:
        images = ReferenceImages(client.upload_asset)
        first = await images.path_for(image)
        assert first is not None and same_bytes(first, image)
        assert await images.path_for(image) == first
        assert await images.path_for(copy) == first  # same bytes: no second upload
        assert images.uploads == 1
        write_png(image, (0, 0, 255))  # the file changed: upload the new content
        second = await images.path_for(image)
        assert second != first and images.uploads == 2
        assert await images.path_for(tmp_path / "missing.png") is None


async def test_scene_sends_its_reference_image(emulator: Emulator, tmp_path: Path):
    image = write_png(tmp_path / "anchor.jpg", (10, 120, 10))
    config = ScenesConfig(
        list=[SceneConfig(name="forest", prompts=["a forest"], reference_image=str(image))],
        quantize="none",
    )
    async with ScopeClient(emulator.url) as client:
        director, store, runner = await make_director(
            config, images=ReferenceImages(client.upload_asset)
        )
        changed = asyncio.Event()
        store.subscribe(lambda c, s: "vace_ref_images" in c and changed.set())
        try:
            director.request("forest")  # may run before the upload ends: sent when it does
            await asyncio.wait_for(changed.wait(), 5)
            (path,) = store.get("vace_ref_images")
            assert same_bytes(path, image)
        finally:
            await director.stop()
            await runner.stop()


async def test_a_restored_scene_sends_its_image_once_the_server_answers(
    emulator: Emulator, tmp_path: Path
):
    # After a kill -9 the show comes back before Scope may answer, and server paths are not
    # saved (they die with a pod): the restored scene looks its own image up, retrying.
    image = write_png(tmp_path / "anchor.png", (10, 120, 10))
    config = ScenesConfig(
        list=[SceneConfig(name="forest", prompts=["a forest"], reference_image=str(image))],
        quantize="none",
    )
    await emulator.fault_restart(downtime=1.0)  # away while the daemon restores its show
    async with ScopeClient(emulator.url) as client:
        director, store, runner = await make_director(
            config, images=ReferenceImages(client.upload_asset)
        )
        changed = asyncio.Event()
        store.subscribe(lambda c, s: "vace_ref_images" in c and changed.set())
        try:
            assert director.restore("forest")
            await asyncio.wait_for(changed.wait(), 10)
            (path,) = store.get("vace_ref_images")
            assert same_bytes(path, image)
        finally:
            await director.stop()
            await runner.stop()
