"""Scenes (themes): looks the show moves between, on the beat.

A scene is base prompts with weights, a style appended to each, variations
(alternative prompt sets the music can bring in), optional parameter presets
(noise, cache bias, VACE scale, LoRA scales, a denoising profile) and an
optional VACE reference image — a local file uploaded to Scope once (cached by
content hash, by :class:`soundscape.scope.assets.ReferenceImages`, which also
uploads it again after a server restart) and sent as ``vace_ref_images``.

A scene change is a prompt transition of N steps. It can be quantized: it
lands on the next beat, bar, 2 or 4 bars of the beat clock, scheduled with
``loop.call_at`` for that moment (re-timed if the clock is corrected
meanwhile). PANIC goes to the safe scene at once (no quantize, no steps) or
pauses. Optionally the scenes rotate every N bars.

:class:`SceneBook` and the helpers are pure; :class:`SceneDirector` does the
store writes, the scheduling and the uploads.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from soundscape.errors import ParamError
from soundscape.mapping.config import QUANTIZE_MODES, ScenesConfig
from soundscape.scope.assets import ReferenceImages
from soundscape.scope.backoff import Backoff
from soundscape.scope.params import check_prompts

log = structlog.get_logger(__name__)

SOURCE = "scene"  # store changes made by scenes (a scene is not a hand on a knob)
LATE_IMAGE_RETRY_MAX = 10.0  # s between upload tries of a reference image the server missed
_BAR_UNITS = {"bar": 1, "2_bar": 2, "4_bar": 4}


# --------------------------------------------------------------------------- pure


def styled(prompts: Any, style: str) -> list[dict[str, Any]]:
    """Validated prompts with the style appended to each text."""
    checked = check_prompts(prompts)
    style = style.strip().strip(",").strip()
    if style:
        for prompt in checked:
            prompt["text"] = f"{prompt['text'].rstrip().rstrip(',')}, {style}"
    return checked


def choose_method(prompts: Sequence[Any], method: str = "auto") -> str:
    """auto: slerp for exactly two prompts (it needs two), linear otherwise."""
    if method == "auto":
        return "slerp" if len(prompts) == 2 else "linear"
    if method == "slerp" and len(prompts) != 2:
        return "linear"  # slerp cannot blend other counts
    return method


def quantize_beats(mode: str, beats_per_bar: int) -> float:
    """Length in beats of a quantize unit (0 for none)."""
    if mode not in QUANTIZE_MODES:
        raise ParamError(f"quantize {mode!r}: one of {', '.join(QUANTIZE_MODES)}")
    if mode == "none":
        return 0.0
    if mode == "beat":
        return 1.0
    return float(_BAR_UNITS[mode] * beats_per_bar)


def next_boundary(
    position: float, unit: float, grace: float = 0.0, tolerance: float = 1e-6
) -> float:
    """Where a change quantized to ``unit`` beats lands, asked at ``position``.

    The first multiple of ``unit`` at or after ``position`` — or ``position``
    itself (at once) when unit is 0 or the last boundary passed less than
    ``grace`` beats ago: a request that late was meant for that boundary.
    """
    if unit <= 0:
        return position
    last = math.floor(position / unit + tolerance) * unit
    if position - last <= grace:
        return max(position, last)
    return math.ceil(position / unit - tolerance) * unit


def variation_index(key: str, current: int, names: Sequence[str], rng: random.Random) -> int:
    """Which prompt set comes next: 0 = the scene's base prompts, i = variation i."""
    count = len(names) + 1
    key = key.strip().lower()
    if key == "next":
        return (current + 1) % count
    if key in ("previous", "prev"):
        return (current - 1) % count
    if key == "base":
        return 0
    if key == "random":
        if count == 1:
            return 0
        return rng.choice([i for i in range(count) if i != current])
    for i, name in enumerate(names, start=1):
        if name.lower() == key:
            return i
    known = ", ".join(["next", "previous", "random", "base", *names])
    raise ParamError(f"variation {key!r}: not one of {known}")


@dataclass(frozen=True)
class Scene:
    name: str
    prompts: list[dict[str, Any]]
    variations: tuple[tuple[str, list[dict[str, Any]]], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    loras: dict[str, float] = field(default_factory=dict)
    reference_image: Path | None = None
    transition_steps: int | None = None
    quantize: str | None = None
    spike: float = 0.0
    spike_cooldown: float | None = None

    @property
    def variation_names(self) -> list[str]:
        return [name for name, _ in self.variations]

    def prompt_set(self, index: int) -> list[dict[str, Any]]:
        return self.prompts if index == 0 else self.variations[index - 1][1]


class SceneBook:
    """The scenes, found by name, number (0-based), ``next`` or ``previous``."""

    def __init__(self, scenes: Sequence[Scene]) -> None:
        self.scenes = list(scenes)

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> Scene:
        return self.scenes[index]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scenes]

    @classmethod
    def from_config(
        cls, config: ScenesConfig, profiles: Mapping[str, Sequence[int]] | None = None
    ) -> SceneBook:
        """Build the scenes; raises ParamError listing every bad prompt or profile."""
        profiles = profiles or {}
        scenes, problems = [], []
        for i, sc in enumerate(config.list):
            try:
                prompts = styled(sc.prompts, sc.style)
                variations = tuple((v.name, styled(v.prompts, sc.style)) for v in sc.variations)
            except ParamError as err:
                problems += [f"scenes.list[{i}] ({sc.name}): {p}" for p in err.problems]
                continue
            params: dict[str, Any] = {
                key: value
                for key in ("noise_scale", "kv_cache_attention_bias", "vace_context_scale")
                if (value := getattr(sc, key)) is not None
            }
            if sc.denoising:
                if sc.denoising not in profiles:
                    problems.append(f"scenes.list[{i}].denoising: no profile {sc.denoising!r}")
                    continue
                params["denoising_step_list"] = list(profiles[sc.denoising])
            params.update(sc.extra)
            scenes.append(
                Scene(
                    name=sc.name,
                    prompts=prompts,
                    variations=variations,
                    params=params,
                    loras=dict(sc.lora),
                    reference_image=Path(sc.reference_image).expanduser()
                    if sc.reference_image
                    else None,
                    transition_steps=sc.transition_steps,
                    quantize=sc.quantize or None,
                    spike=sc.spike,
                    spike_cooldown=sc.spike_cooldown,
                )
            )
        if problems:
            raise ParamError(problems)
        return cls(scenes)

    def index(self, key: Any, current: int | None = None) -> int:
        """The index of scene ``key``; raises ParamError naming the scenes otherwise."""
        count = len(self.scenes)
        if count == 0:
            raise ParamError("no scenes configured ([[scenes.list]])")
        if isinstance(key, str):
            text = key.strip()
            if text.lstrip("-").isdigit():
                key = int(text)
            elif text.lower() == "next":
                return 0 if current is None else (current + 1) % count
            elif text.lower() in ("previous", "prev"):
                return count - 1 if current is None else (current - 1) % count
            else:
                for i, scene in enumerate(self.scenes):
                    if scene.name.lower() == text.lower():
                        return i
                raise ParamError(f"scene {key!r}: not one of {', '.join(self.names)}")
        if isinstance(key, float) and key.is_integer():
            key = int(key)
        if isinstance(key, int) and not isinstance(key, bool):
            if 0 <= key < count:
                return key
            raise ParamError(f"scene {key}: numbers go from 0 to {count - 1}")
        raise ParamError(f"scene {key!r}: give a name or a number")


# --------------------------------------------------------------------------- director


class SceneDirector:
    """Applies scenes to the store: now, on the beat, on PANIC, in rotation."""

    def __init__(
        self,
        config: ScenesConfig,
        book: SceneBook,
        store: Any,  # ParameterStore
        runner: Any,  # BeatClockRunner
        images: ReferenceImages | None = None,
        *,
        on_applied: Callable[[Scene], None] | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.book = book
        self.store = store
        self.runner = runner
        self.images = images or ReferenceImages(None)
        self.on_applied = on_applied
        self.current: int | None = None
        self.variation = 0
        self.pending: Any = None  # the _BeatTimer of a scheduled change
        self.pending_scene: int | None = None
        self.bars = 0  # bars since the last scene change (rotation)
        self.changes = 0
        self.held = False  # after PANIC: no rotation until a scene is asked for
        self.paused_by_panic = False
        self._rng = random.Random(seed)
        self._tasks: set[asyncio.Task[Any]] = set()
        rotation = config.rotate or book.names
        self._rotation = [book.index(name) for name in rotation if name in book.names]

    @property
    def scene(self) -> Scene | None:
        return None if self.current is None else self.book[self.current]

    # ----- lifecycle

    async def start(self) -> None:
        files = {s.reference_image for s in self.book.scenes if s.reference_image is not None}
        for file in files:  # upload ahead, so a scene change never waits on it
            self._spawn(self.images.path_for(file))
        if self.config.start and self.current is None:  # not over a restored show
            self.apply(self.book.index(self.config.start), steps=0, requested_by="start")

    async def stop(self) -> None:
        self.cancel_pending()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def restore(self, name: str, variation: int = 0) -> bool:
        """Mark ``name`` as playing without applying it (a restart: the parameters the
        performer left are already back, a transition would throw them away)."""
        if name not in self.book.names:
            return False
        self.current = self.book.names.index(name)
        count = len(self.book[self.current].variation_names)
        self.variation = variation if 0 <= variation <= count else 0
        image = self.book[self.current].reference_image
        if image is not None:
            # Server paths die with their pod, so they are not saved: the scene's own image
            # is looked up (uploaded when the server lacks it) instead.
            path = self.images.cached(image)
            if path is not None:
                self.store.set("vace_ref_images", [path], source=SOURCE)
            else:
                self._spawn(self._late_image(self.current, image))
        return True

    def reconfigure(self, config: ScenesConfig, book: SceneBook) -> None:
        """New scenes (a config reload): the current one is kept by name."""
        name = self.scene.name if self.scene is not None else None
        self.cancel_pending()
        self.config = config
        self.book = book
        self.current = book.names.index(name) if name in book.names else None
        self.variation = 0
        rotation = config.rotate or book.names
        self._rotation = [book.index(n) for n in rotation if n in book.names]
        for file in {s.reference_image for s in book.scenes if s.reference_image is not None}:
            if self.images.cached(file) is None:
                self._spawn(self.images.path_for(file))

    # ----- commands

    def request(
        self,
        key: Any,
        *,
        source: str = "api",
        quantize: str | None = None,
        steps: int | None = None,
    ) -> dict[str, Any]:
        """Change scene, now or on the next beat/bar as configured; returns what was planned."""
        index = self.book.index(
            key, self.current if self.pending_scene is None else self.pending_scene
        )
        scene = self.book[index]
        mode = quantize or scene.quantize or self.config.quantize
        unit = quantize_beats(mode, self.runner.clock.beats_per_bar) if self.runner else 0.0
        if steps is None:
            steps = (
                self.config.transition_steps
                if scene.transition_steps is None
                else scene.transition_steps
            )
        if steps < 0:
            raise ParamError(f"steps {steps}: must be 0 or more")
        self.cancel_pending()
        self.held = False
        if unit == 0:
            self.apply(index, steps=steps, requested_by=source)
            return {"scene": scene.name, "at": None}
        state = self.runner.state()
        at = next_boundary(state.beats, unit, self.config.grace_beats)
        if at <= state.beats:
            self.apply(index, steps=steps, requested_by=source)
            return {"scene": scene.name, "at": None}
        lead = self.config.lookahead_ms / 1000.0
        self.pending_scene = index
        self.pending = self.runner.call_at_beat(
            at, lambda: self._land(index, steps, source), lead=lead
        )
        log.info(
            "scene_scheduled",
            scene=scene.name,
            quantize=mode,
            in_beats=round(at - state.beats, 3),
            source=source,
        )
        return {"scene": scene.name, "at": at}

    def panic(self, *, source: str = "api") -> str:
        """Safe scene at once (no quantize, no steps) and/or pause, per config."""
        self.cancel_pending()
        self.held = True
        mode = self.config.panic
        if mode in ("pause", "both"):
            self.store.set("paused", True, source=SOURCE)
            self.paused_by_panic = True
        if mode in ("scene", "both") and len(self.book):
            index = self.book.index(self.config.safe) if self.config.safe else 0
            self.apply(index, steps=0, requested_by=source)
        log.warning("panic", mode=mode, source=source)
        return mode

    def vary(
        self,
        key: str = "next",
        *,
        source: str = "api",
        steps: int | None = None,
        method: str | None = None,
    ) -> str:
        """Bring in a variation of the current scene (``next``, ``random``, a name, ...)."""
        scene = self.scene
        if scene is None:
            raise ParamError("variation: no scene is playing yet")
        index = variation_index(key, self.variation, scene.variation_names, self._rng)
        if index == self.variation:
            return "base" if index == 0 else scene.variation_names[index - 1]
        prompts = scene.prompt_set(index)
        steps = self.config.variation_steps if steps is None else steps
        self.store.transition(
            prompts,
            num_steps=steps,
            method=choose_method(prompts, method or self.config.method),
            source=SOURCE,
        )
        self.variation = index
        name = "base" if index == 0 else scene.variation_names[index - 1]
        log.info("variation", scene=scene.name, variation=name, source=source)
        return name

    def transition(self, prompts: Any, *, steps: int | None = None, method: str = "auto") -> None:
        """A rule's own prompts, as a transition."""
        prompts = check_prompts(prompts)
        steps = self.config.variation_steps if steps is None else steps
        self.store.transition(
            prompts, num_steps=steps, method=choose_method(prompts, method), source=SOURCE
        )

    def cancel_pending(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
        self.pending = None
        self.pending_scene = None

    # ----- beat

    def on_beat(self, event: Any) -> None:
        """Beat listener: counts bars and rotates scenes every ``rotate_bars``."""
        if not event.is_bar or self.config.rotate_bars <= 0 or not self._rotation or self.held:
            return
        self.bars += 1
        if self.bars < self.config.rotate_bars or self.pending is not None:
            return
        if self.current in self._rotation:
            position = self._rotation.index(self.current)
            index = self._rotation[(position + 1) % len(self._rotation)]
        else:
            index = self._rotation[0]
        self.apply(index, steps=self._steps(index), requested_by="rotation")

    # ----- applying

    def _steps(self, index: int) -> int:
        scene = self.book[index]
        return (
            self.config.transition_steps
            if scene.transition_steps is None
            else scene.transition_steps
        )

    def _land(self, index: int, steps: int, source: str) -> None:
        self.pending = None
        self.pending_scene = None
        self.apply(index, steps=steps, requested_by=source)

    def apply(self, index: int, *, steps: int, requested_by: str = "api") -> Scene:
        """Apply scene ``index`` now: presets, LoRA scales, reference image, transition."""
        scene = self.book[index]
        changes = dict(scene.params)
        if self.paused_by_panic and not self.held:
            changes["paused"] = False  # the show moves on from the panic
            self.paused_by_panic = False
        if scene.reference_image is not None:
            path = self.images.cached(scene.reference_image)
            if path is not None:
                changes["vace_ref_images"] = [path]
            else:  # not uploaded yet: send it when it is
                self._spawn(self._late_image(index, scene.reference_image))
        if changes:
            try:
                self.store.update(changes, source=SOURCE)
            except ParamError as err:
                log.warning("scene_presets_refused", scene=scene.name, error=str(err))
        for name, scale in scene.loras.items():
            try:
                self.store.set_lora_scale(name, scale, source=SOURCE)
            except ParamError as err:
                log.warning("scene_lora_refused", scene=scene.name, error=str(err))
        self.store.transition(
            scene.prompts,
            num_steps=steps,
            method=choose_method(scene.prompts, self.config.method),
            source=SOURCE,
        )
        self.current = index
        self.variation = 0
        self.bars = 0
        self.changes += 1
        log.info("scene", scene=scene.name, steps=steps, requested_by=requested_by)
        if self.on_applied is not None:
            self.on_applied(scene)
        return scene

    async def _late_image(self, index: int, file: Path) -> None:
        # The server may not answer yet (a start, a restart): retry while the scene plays.
        retry = Backoff(0.5, LATE_IMAGE_RETRY_MAX, 0.2, immediate_first=False)
        while True:
            path = await self.images.path_for(file)
            if path is not None:
                if self.current == index:
                    self.store.set("vace_ref_images", [path], source=SOURCE)
                return
            if self.current != index or not await asyncio.to_thread(file.is_file):
                return  # another scene now, or no file to send (logged by path_for)
            await asyncio.sleep(retry.failed())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
