"""The mapping engine: the component that lets the music drive the picture.

It owns the beat clock, the control channels, the rules and the scenes, and
runs them against the :class:`~soundscape.scope.params.ParameterStore`:

- audio features come in through :meth:`MappingEngine.feed` (every block),
  Scope's tempo through :meth:`MappingEngine.tempo_update`, MIDI clock
  through :meth:`MappingEngine.attach_midi_clock`, taps through the ``tap``
  command;
- at a fixed rate (``tick_rate``, like the sender's) the rules are evaluated
  (pure: inputs → values) and the values written through the shared targets
  with ``source="mapping"`` — only when they moved beyond the deadband, so the
  sender coalesces real changes;
- the manual value of each target (the base the rules modulate, and what they
  yield to while a hand is on a knob) is learned from the store's listener:
  any change not made by the mapping itself sets the base; one from a hand
  source (OSC, MIDI) also marks the knob as held;
- scenes change on the ``scene`` command (quantized to the beat clock), PANIC
  on ``panic``; beat, bar, tempo and features go out through ``publish``
  (the OSC feedback's ``send``).

Several screens (``soundscape.screens``): each screen has an engine of its own
(its store, rules, scenes, commands), and all share the main engine's beat clock
(``runner=main.runner``), so every screen lands its scene changes on one beat. Only
the clock's owner starts it, feeds it and publishes beat, tempo and features.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from soundscape.audio.features import silent_features
from soundscape.control import targets
from soundscape.control.commands import CommandBus
from soundscape.control.osc_logging import LogLimiter
from soundscape.errors import ParamError
from soundscape.mapping import denoising, feedback
from soundscape.mapping.config import BeatConfig, MappingConfig, RuleConfig, ScenesConfig
from soundscape.mapping.controls import Controls
from soundscape.mapping.link import LinkBridge
from soundscape.mapping.rules import Evaluation, Inputs, Rule, RuleSet, hand_weight, needs_write
from soundscape.mapping.scenes import ReferenceImages, Scene, SceneBook, SceneDirector
from soundscape.mapping.tempo import (
    BeatClock,
    BeatClockRunner,
    BeatEvent,
    MidiClockLike,
    Observation,
    TapTempo,
)
from soundscape.scope.params import ParameterStore
from soundscape.tasks import Supervised, supervise

log = structlog.get_logger(__name__)

SOURCE = "mapping"  # the store source of every value the rules write
Publish = Callable[..., None]


class MappingEngine:
    """``MappingEngine(mapping, beat, scenes, store, commands, client=..., publish=...)``."""

    def __init__(
        self,
        mapping: MappingConfig,
        beat: BeatConfig,
        scenes: ScenesConfig,
        store: ParameterStore,
        commands: CommandBus,
        *,
        client: Any = None,  # ScopeClient (upload_asset), when no ``images`` is given
        images: ReferenceImages | None = None,  # the supervisor's: re-uploaded after restarts
        publish: Publish | None = None,
        time: Callable[[], float] | None = None,
        runner: BeatClockRunner | None = None,
        screen: str = "",
        main_screen: bool = True,
    ) -> None:
        self.config = mapping
        self.beat_config = beat
        self.scenes_config = scenes
        self.store = store
        self.commands = commands
        self.publish = publish
        self._time = time  # tests pass a synthetic clock; default: the loop's
        self.enabled = mapping.enabled
        self.controls = Controls()
        self.controls.register_target()
        denoising.register(mapping.denoising_profiles)
        self.screen, self.main_screen = screen, main_screen
        self.owns_clock = runner is None  # a further screen's engine follows the main clock
        if runner is None:
            clock = BeatClock(
                beat.sources,
                beats_per_bar=beat.beats_per_bar,
                default_bpm=beat.default_bpm,
                timeouts=_timeouts(beat),
                max_correction=beat.max_correction,
                catch_up_beats=beat.catch_up_beats,
            )
            confidence = beat.audio_confidence
            runner = BeatClockRunner(clock, _tap_tempo(beat), audio_confidence=confidence)
        self.runner = runner
        self.clock = runner.clock
        self._link_wanted = self.owns_clock and beat.link and "link" in beat.sources
        self.link: LinkBridge | None = None
        try:
            book = SceneBook.from_config(scenes, mapping.denoising_profiles)
        except ParamError as err:
            for problem in err.problems:
                log.error("scene_refused", problem=problem)
            book = SceneBook([])
        if images is None:
            images = ReferenceImages(getattr(client, "upload_asset", None))
        self.director = SceneDirector(
            scenes,
            book,
            store,
            self.runner,
            images,
            on_applied=self._scene_applied,
        )
        self.rules = RuleSet.compile(self._mine(mapping), self._target_range, self._rule_refused)
        self._spikes = {
            scene.name: self._spike_rules(scene) for scene in book.scenes if scene.spike > 0
        }
        self._targets: dict[str, targets.Target] = {}
        self._resolve_targets()
        self._bases: dict[str, float | None] = {}  # the manual values
        self._values: dict[str, float | None] = {}  # what the store holds now
        self._changed_at: dict[str, float] = {}
        self._touched: dict[str, float] = {}  # when a hand last moved each target
        self._features: Any = silent_features(0.0, ())
        self._fed_at = -math.inf
        self._onset = False
        self._onsets = 0
        self._published_bpm: tuple[float, str | None] | None = None
        self._feedback_due = 0.0
        self._limiter = LogLimiter(interval=60.0)
        self._task: Supervised | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self.ticks = 0
        self.writes = 0
        self.fired = 0
        self.last: Evaluation | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, ticking: bool = True) -> None:
        """Subscribe, register the commands, start the clock, scenes and ticks.

        ``ticking=False`` leaves the ticks to the caller (:meth:`tick` with a
        synthetic time, in tests).
        """
        now = self.now()
        for name, target in self._targets.items():
            self._bases[name] = self._values[name] = target.get(self.store)
            self._changed_at[name] = now
        self._unsubscribe.append(self.store.subscribe(self._on_store_change))
        self._unsubscribe.append(self.runner.on_beat(self._on_beat))
        if self.owns_clock:
            self.runner.on_source(self._on_source)
        for name, handler, doc in self._command_table():
            self.commands.register(name, handler, doc)
        if self.owns_clock:
            await self.runner.start()
        if self._link_wanted:
            await self._start_link()
        await self.director.start()
        if ticking:
            self._task = supervise("mapping", self._run)  # restarted with backoff if it fails
        log.info(
            "mapping_started",
            rules=len(self.rules.rules),
            scenes=len(self.director.book),
            beat_sources=",".join(self.clock.order),
        )

    async def stop(self) -> None:
        if self._task is not None:
            await self._task.stop()
            self._task = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await self.director.stop()
        if self.link is not None:
            await self.link.stop()
            self.link = None
        if self.owns_clock:
            await self.runner.stop()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for name, _handler, _doc in self._command_table():
            self.commands.unregister(name)

    def _command_table(self) -> list[tuple[str, Any, str]]:
        table = [
            ("scene", self._cmd_scene, "Change scene by name or number (next, previous)."),
            ("panic", self._cmd_panic, "Safe scene at once (or pause, per [scenes].panic)."),
            ("variation", self._cmd_variation, "Bring in a variation of the current scene."),
            ("mapping", self._cmd_mapping, "Mapping rules on/off (toggle without a value)."),
        ]
        if self.owns_clock:  # one clock, one tap
            table.append(
                ("tap", self._cmd_tap, "Tap tempo (the first tap of a series is a bar line).")
            )
        return table

    def _mine(self, mapping: MappingConfig) -> list[RuleConfig]:
        """The rules for this engine's screen ('' = the main one, * = every screen)."""
        return [
            rule
            for rule in mapping.rules
            if rule.screen == "*"
            or (rule.screen == "" and self.main_screen)
            or (rule.screen and rule.screen == self.screen)
        ]

    def reload(self, mapping: MappingConfig, scenes: ScenesConfig) -> None:
        """New rules, profiles and scenes, without stopping anything.

        The beat clock keeps running and the current scene stays (found again by
        name). Scenes that do not build keep the last good ones; a rule that
        does not compile is skipped, as at start. ``[beat]``: :meth:`reload_beat`.
        """
        try:
            book = SceneBook.from_config(scenes, mapping.denoising_profiles)
        except ParamError as err:
            log.error("mapping_reload_refused", problems=err.problems)
            return
        denoising.register(mapping.denoising_profiles)
        self.config = mapping
        self.scenes_config = scenes
        self.rules = RuleSet.compile(self._mine(mapping), self._target_range, self._rule_refused)
        self._spikes = {s.name: self._spike_rules(s) for s in book.scenes if s.spike > 0}
        known = dict(self._targets)
        self._targets = {}
        self._resolve_targets()
        now = self.now()
        for name, target in self._targets.items():
            if name not in known:
                self._bases[name] = self._values[name] = target.get(self.store)
                self._changed_at[name] = now
        self.director.reconfigure(scenes, book)
        if mapping.enabled != self.enabled and not self._stopped_by_panic:
            self.set_enabled(mapping.enabled)
        log.info("mapping_reloaded", rules=len(self.rules.rules), scenes=len(book))

    # ------------------------------------------------------------------ saved state

    def manual_values(self) -> dict[str, float]:
        """Each target's manual value (what the rules modulate): the saved state keeps these,
        not a modulated value caught mid-swing."""
        return {name: value for name, value in self._bases.items() if value is not None}

    def restore(
        self,
        *,
        scene: str | None,
        variation: int = 0,
        manual: dict[str, float] | None = None,
        enabled: bool | None = None,
        bpm: float | None = None,
        beat_source: str | None = None,
    ) -> None:
        """Come back to a saved show, before :meth:`start` (the parameters are restored first).

        A tapped tempo is tapped again (it holds like the original taps); any
        other tempo runs freely until its source (audio, MIDI, Scope) is heard.
        """
        for name, value in (manual or {}).items():
            target = self._targets.get(name)
            if target is not None:  # a rule's target: its value without the modulation
                try:
                    target.set(self.store, value, source="state")
                except ParamError as err:
                    log.info("saved_value_refused", target=name, error=str(err))
        if scene is not None and not self.director.restore(scene, variation):
            log.info("saved_scene_gone", scene=scene)
        if enabled is not None:
            self.enabled = enabled
        if bpm is not None:
            now = self.runner.now()
            if beat_source == "tap" and "tap" in self.clock.order:
                self.runner.observe("tap", Observation(now, bpm))
            else:
                self.clock.set_tempo(bpm, now)

    def reload_beat(self, beat: BeatConfig) -> None:
        """New ``[beat]`` settings without stopping the clock: the position and the
        sources' last readings stay; a new default tempo applies while no source leads."""
        old, self.beat_config = self.beat_config, beat
        if beat == old:
            return
        now = self.runner.now()
        self.clock.reconfigure(
            beat.sources,
            beats_per_bar=beat.beats_per_bar,
            timeouts=_timeouts(beat),
            max_correction=beat.max_correction,
            catch_up_beats=beat.catch_up_beats,
            now=now,
        )
        self.runner.tapper = _tap_tempo(beat)
        self.runner.audio_confidence = beat.audio_confidence
        if beat.default_bpm != old.default_bpm and self.clock.active is None:
            self.clock.set_tempo(beat.default_bpm, now)
        log.info("beat_reloaded", sources=",".join(self.clock.order), bpm=round(self.clock.bpm, 2))

    # ------------------------------------------------------------------ inputs

    def feed(self, features: Any) -> None:
        """One block's audio features (connect the audio analyzer's output here)."""
        self._features = features
        self._fed_at = self.now()
        if not self.owns_clock:
            self._onset = self._onset or bool(features.onset)
            return  # the clock's owner feeds it and publishes the onsets
        if features.onset:
            self._onset = True
            self._onsets += 1
            self._send("/soundscape/audio/onset", self._onsets)
        self.runner.feed_features(features)

    def tempo_update(self, message: dict[str, Any]) -> None:
        """Scope's ``tempo_update`` (``supervisor.on_message("tempo_update", ...)``)."""
        self.runner.tempo_update(message)

    async def _start_link(self) -> None:
        from soundscape.mapping.link import available

        if not available():
            log.warning("link_unavailable", reason="aalink is not installed (extra 'link')")
            return
        self.link = LinkBridge(self.runner)
        await self.link.start()

    def attach_midi_clock(self, midi_clock: MidiClockLike) -> None:
        """Follow the MIDI helper's clock (``MidiControl.clock``)."""
        self.runner.attach_midi(midi_clock)

    # ------------------------------------------------------------------ the tick

    def now(self) -> float:
        return self._time() if self._time is not None else self.runner.now()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.config.tick_rate
        due = loop.time()
        while True:
            try:
                self.tick(self.now())
            except Exception:  # one bad tick must not end the show's reactivity
                if self._limiter.check("tick") is not None:
                    log.exception("mapping_tick_failed")
            due += period
            now = loop.time()
            if due < now - period:  # fell behind (a stall): no burst of catch-up ticks
                due = now
            await asyncio.sleep(due - now)

    def tick(self, now: float) -> Evaluation | None:
        """Evaluate the rules once and write what moved; returns the evaluation."""
        self.ticks += 1
        self.runner.update()
        audio_live = now - self._fed_at <= self.config.audio_timeout
        features = self._features if audio_live else silent_features(now, ())
        inputs = Inputs(
            now=now,
            features=features,
            clock=self.clock.state(now),
            onset=self._onset and audio_live,
            controls=self.controls.snapshot(),
        )
        self._onset = False
        if audio_live:
            self._publish_features(now, features)
        if not self.enabled:
            return None
        weights = {
            name: hand_weight(
                now, self._touched.get(name), self.config.hand_wins, self.config.hand_release
            )
            for name in self._targets
        }
        evaluation = self.rules.evaluate(inputs, self._bases, weights)
        spikes = self._spikes.get(self.director.scene.name) if self.director.scene else None
        if spikes is not None:
            evaluation.fired += spikes.evaluate(inputs, {}).fired
        self.last = evaluation
        for name, value in evaluation.values.items():
            target = self._targets.get(name)
            if target is None or weights.get(name, 1.0) == 0.0:
                continue  # unresolved, or a hand is on it: the manual value stands
            value = min(target.high, max(target.low, value))
            since = now - self._changed_at.get(name, -math.inf)
            if not needs_write(
                value, self._values.get(name), self.rules.deadband(name), since=since
            ):
                continue
            try:
                target.set(self.store, value, source=SOURCE)
            except ParamError as err:
                self._refused(name, str(err))
            else:
                self._values[name] = value
                self._changed_at[name] = now
                self.writes += 1
        for firing in evaluation.fired:
            self._fire(firing.rule)
        return evaluation

    # ------------------------------------------------------------------ actions

    def _fire(self, rule: Rule) -> None:
        self.fired += 1
        c = rule.config
        try:
            if rule.target == "reset_cache":
                self.store.reset_cache(source=SOURCE)
            elif rule.target == "transition":
                self.director.transition(c.prompts, steps=c.transition_steps, method=c.method)
            elif rule.target == "variation":
                self.director.vary(
                    c.variation, source=SOURCE, steps=c.transition_steps, method=c.method
                )
            elif rule.target.startswith("command:"):
                self._spawn(self._command(rule.target[8:], c.args, rule.label))
            log.debug("rule_fired", rule=rule.label)
        except ParamError as err:
            self._refused(rule.label, str(err))

    async def _command(self, name: str, args: Sequence[Any], label: str) -> None:
        try:
            await self.commands.call(name, *args, source=SOURCE)
        except ParamError as err:
            self._refused(label, str(err))
        except Exception:  # a broken command must not take the mapping down
            log.exception("rule_command_failed", rule=label, command=name)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ commands

    def _cmd_scene(
        self,
        scene: Any = "next",  # None (an OSC argument left out): next
        quantize: str | bool | None = None,
        steps: int | None = None,
        *,
        source: str,
    ) -> dict[str, Any] | None:
        """Change scene by name or number (next, previous)."""
        if isinstance(quantize, bool):  # a MIDI toggle/momentary button's state
            if not quantize:
                return None
            quantize = None
        if scene is None:
            scene = "next"
        planned = self.director.request(scene, source=source, quantize=quantize, steps=steps)
        if not self.enabled and self._stopped_by_panic:
            self.set_enabled(True)  # the performer is moving on from the panic
        return planned

    def _cmd_panic(self, pressed: bool = True, *, source: str) -> str | None:
        if pressed is False:
            return None  # a momentary button's release
        mode = self.director.panic(source=source)
        if self.scenes_config.panic_stops_mapping:
            self.set_enabled(False)
            self._stopped_by_panic = True
        return mode

    def _cmd_tap(self, pressed: bool = True, *, source: str) -> float | None:
        if pressed is False:
            return None
        return round(self.runner.tap().bpm, 2)

    def _cmd_variation(
        self, key: str | None = "next", pressed: bool | None = None, *, source: str
    ) -> str | None:
        if pressed is False:
            return None  # a momentary button's release
        return self.director.vary("next" if key is None else str(key), source=source)

    def _cmd_mapping(self, on: bool | None = None, *, source: str) -> bool:
        self.set_enabled((not self.enabled) if on is None else bool(on))
        return self.enabled

    _stopped_by_panic = False

    def set_enabled(self, on: bool) -> None:
        if on == self.enabled:
            return
        self.enabled = on
        self._stopped_by_panic = False
        log.info("mapping_rules", running=on)
        self._send("/soundscape/mapping", int(on))

    # ------------------------------------------------------------------ listeners

    def _on_store_change(self, changes: dict[str, Any], source: str) -> None:
        now = self.now()
        hand = source != SOURCE and any(source.startswith(p) for p in self.config.hand_sources)
        for name, target in self._targets.items():
            value = target.get(self.store)
            if value == self._values.get(name):
                continue
            self._values[name] = value
            self._changed_at[name] = now
            if source != SOURCE:
                self._bases[name] = value  # the manual value: what the rules modulate
                if hand:
                    self._touched[name] = now

    def _scene_applied(self, scene: Scene) -> None:
        # A preset equal to what the store already held changed nothing there,
        # but it is still the new manual value.
        for name, target in self._targets.items():
            if name in scene.params or (name.startswith("lora:") and name[5:] in scene.loras):
                self._bases[name] = target.get(self.store)
        self._touched.clear()  # a new scene: every knob starts free
        self._send("/soundscape/scene", scene.name, self.director.current or 0)

    def _on_beat(self, event: BeatEvent) -> None:
        if self.owns_clock:
            for address, args in feedback.beat_messages(event):
                self._send(address, *args)
        self.director.on_beat(event)

    def _on_source(self, source: str | None, bpm: float) -> None:
        self._publish_tempo(force=True)

    # ------------------------------------------------------------------ feedback

    def _publish_features(self, now: float, features: Any) -> None:
        rate = self.config.feedback_rate
        if self.publish is None or not self.owns_clock or rate <= 0 or now < self._feedback_due:
            return
        self._feedback_due = max(self._feedback_due + 1.0 / rate, now - 1.0 / rate)
        for address, args in feedback.feature_messages(features):
            self._send(address, *args)
        self._publish_tempo()

    def _publish_tempo(self, force: bool = False) -> None:
        current = (round(self.clock.bpm, 1), self.clock.active)
        if not force and current == self._published_bpm:
            return
        self._published_bpm = current
        for address, args in feedback.tempo_messages(*current):
            self._send(address, *args)

    def _send(self, address: str, *args: Any) -> None:
        if self.publish is None:
            return
        try:
            self.publish(address, *args)
        except Exception as err:  # feedback is a courtesy: never break the mapping for it
            if self._limiter.check(f"publish:{address}") is not None:
                log.warning("mapping_publish_failed", address=address, error=str(err))

    # ------------------------------------------------------------------ helpers

    def _target_range(self, name: str) -> tuple[float, float]:
        target = targets.resolve(name, self.store)
        return target.low, target.high

    def _resolve_targets(self) -> None:
        for name in self.rules.targets:
            try:
                self._targets[name] = targets.resolve(name, self.store)
            except ParamError as err:  # compile() already reported it; be safe
                self._refused(name, str(err))

    def _spike_rules(self, scene: Scene) -> RuleSet:
        cooldown = (
            self.scenes_config.spike_cooldown
            if scene.spike_cooldown is None
            else scene.spike_cooldown
        )
        config = RuleConfig(
            source="energy",
            target="variation",
            name=f"{scene.name}: energy spike",
            threshold=scene.spike,
            cooldown=cooldown,
        )
        return RuleSet([Rule(config)])

    def _rule_refused(self, config: RuleConfig, error: str) -> None:
        log.warning("mapping_rule_skipped", rule=config.label(), error=error)

    def _refused(self, key: str, error: str) -> None:
        if self._limiter.check(f"{key}:{error}") is not None:
            log.warning("mapping_refused", rule=key, error=error)

    def status(self) -> dict[str, Any]:
        """For the ``state`` command and logs."""
        state = self.clock.state(self.now())
        scene = self.director.scene
        return {
            "enabled": self.enabled,
            "bpm": round(state.bpm, 2),
            "beat_source": state.source,
            "bar": state.bar + 1,
            "beat": state.beat_in_bar + 1,
            "scene": scene.name if scene else None,
            "ticks": self.ticks,
            "writes": self.writes,
            "fired": self.fired,
        }


def _timeouts(beat: BeatConfig) -> dict[str, float | None]:
    return {
        "midi": None,  # live until the MIDI clock says "lost"
        "scope": beat.timeout,
        "tap": beat.tap_hold or None,
        "audio": beat.timeout,
    }


def _tap_tempo(beat: BeatConfig) -> TapTempo:
    return TapTempo(
        reset_after=beat.tap_reset,
        count=beat.tap_count,
        min_bpm=beat.min_bpm,
        max_bpm=beat.max_bpm,
    )
