"""MIDI mappings routed to screens: each screen's own store, commands, feedback and takeover.

The JACK tests play a controller on a virtual port, as in test_midi_jack.py:
every wait is on an event (a store listener, a command handler, a feedback
message), never a bare sleep. A daemon with screens "a" and "b" besides the
main one is three stores and three command buses (a screen's bus falls back to
the shared one), given to MidiControl exactly as the app does.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mido
import pytest
from structlog.testing import capture_logs

from soundscape.control.commands import CommandBus
from soundscape.control.midi import MidiControl
from soundscape.control.midi_config import MidiConfig, MidiMapping
from soundscape.control.midi_feedback import FeedbackPlanner
from soundscape.control.midi_mapping import MidiMapper, SetTarget
from soundscape.control.screens import ScreenControls
from soundscape.errors import ParamError
from soundscape.scope.params import ParameterStore
from soundscape.state.learned import LearnedMappings
from test_midi_jack import (
    WAIT,
    FakeController,
    FakeFeedbackInput,
    cc,
    config_for,
    near,
    running,
    send_until,
    wait_for,
)


@dataclass
class Rig:
    """The main screen and screens a and b: stores, buses, and what their commands saw."""

    stores: dict[str, ParameterStore]
    buses: dict[str, CommandBus]
    calls: asyncio.Queue[tuple[str, str, tuple[Any, ...]]] = field(default_factory=asyncio.Queue)

    @property
    def screens(self) -> dict[str, ScreenControls]:
        return {name: ScreenControls(name, self.stores[name], self.buses[name]) for name in NAMES}

    def control(self, config: Any, **kw: Any) -> MidiControl:
        return MidiControl(
            config, self.stores["main"], self.buses["main"], screens=self.screens, **kw
        )

    def handler(self, screen: str, name: str) -> Callable[..., None]:
        return lambda *args, source: self.calls.put_nowait((screen, name, args))

    async def next_call(self) -> tuple[str, str, tuple[Any, ...]]:
        return await asyncio.wait_for(self.calls.get(), WAIT)


NAMES = ("main", "a", "b")


def make_rig(**values: dict[str, float]) -> Rig:
    shared = CommandBus()
    buses = {"main": shared, "a": CommandBus(parent=shared), "b": CommandBus(parent=shared)}
    rig = Rig({name: ParameterStore(values.get(name, {})) for name in NAMES}, buses)
    # Each screen owns its scene and panic; tap is the daemon's, shared by every screen.
    for name in NAMES:
        buses[name].register("scene", rig.handler(name, "scene"))
        buses[name].register("panic", rig.handler(name, "panic"))
    shared.register("tap", rig.handler("shared", "tap"))
    return rig


def recorder(store: ParameterStore) -> list[tuple[dict[str, Any], str]]:
    seen: list[tuple[dict[str, Any], str]] = []
    store.subscribe(lambda changes, source: seen.append((changes, source)))
    return seen


@pytest.fixture
def ctl() -> Any:
    controller = FakeController()
    yield controller
    controller.close()


# --------------------------------------------------------------------------- pure


def test_star_compiles_one_binding_per_screen_and_only_mains_shows_feedback() -> None:
    values = dict(zip(NAMES, (0.0, 0.5, 1.0), strict=True))
    stores = {name: ParameterStore({"noise_scale": v}) for name, v in values.items()}
    mapper = MidiMapper(
        [MidiMapping(target="noise_scale", number=7, screen="*", takeover="none")],
        stores["main"],
        screens=stores,  # the main screen listed under its own name too: bound once
    )
    assert [(b.screen, b.store) for b in mapper.bindings] == [
        ("", stores["main"]),
        ("a", stores["a"]),
        ("b", stores["b"]),
    ]
    assert len(mapper.mappings()) == 1
    planner = FeedbackPlanner(mapper.bindings)
    (msg,) = planner.plan()
    assert msg.bytes() == [0xB0, 7, 0]  # the main screen's value
    actions, _ = mapper.handle(cc(7, 127), 0.0)
    assert all(isinstance(a, SetTarget) for a in actions)
    assert [a.binding.store for a in actions] == [stores[n] for n in NAMES]


def test_naming_the_main_screen_is_the_main_screen() -> None:
    stores = {name: ParameterStore() for name in NAMES}
    mapper = MidiMapper(
        [MidiMapping(target="noise_scale", number=7, screen="main")],
        stores["main"],
        screens=stores,
    )
    (binding,) = mapper.bindings
    assert binding.screen == "" and binding.store is stores["main"]


def test_unknown_screen_is_refused_naming_the_screens() -> None:
    main = ParameterStore()
    with capture_logs() as logs:
        single = MidiMapper([MidiMapping(target="noise_scale", number=7, screen="b")], main)
    assert single.bindings == []
    assert logs[0]["event"] == "midi_mapping_skipped"
    assert "no screen 'b' (screens: only the main screen)" in logs[0]["problem"]


def test_takeover_is_kept_per_screen_and_target() -> None:
    rig = make_rig()
    mappings = [
        MidiMapping(target="noise_scale", number=7),
        MidiMapping(target="noise_scale", number=7, screen="b"),
        MidiMapping(target="noise_scale", number=8, screen="*"),
    ]
    control = rig.control(MidiConfig(mappings=mappings))
    positions = control.takeover_positions()
    assert sorted(positions) == [
        "cc:*:7>noise_scale",
        "cc:*:7>noise_scale@b",
        "cc:*:8>noise_scale",
        "cc:*:8>noise_scale@a",
        "cc:*:8>noise_scale@b",
    ]
    assert len({id(t) for t in positions.values()}) == 5
    # A reload keeps each screen's knob position (no new pickup), per screen.
    positions["cc:*:7>noise_scale@b"].restore(0.4, 0.4, True)
    control.reload(MidiConfig(mappings=mappings))
    assert control.takeover_positions()["cc:*:7>noise_scale@b"].position() == (0.4, 0.4, True)
    assert control.takeover_positions()["cc:*:7>noise_scale"].position() == (None, None, False)


# --------------------------------------------------------------------------- through JACK


@pytest.mark.usefixtures("jack_server")
@pytest.mark.jack
async def test_a_knob_bound_to_screen_b_moves_only_bs_store(ctl: FakeController) -> None:
    rig = make_rig(**{name: {"noise_scale": 0.3} for name in NAMES})
    mappings = [
        MidiMapping(target="noise_scale", number=7, screen="b", takeover="none"),
        MidiMapping(target="vace_context_scale", number=8, takeover="none"),  # main: a marker
        MidiMapping(target="command:scene", type="program", channel=2, screen="b"),
        MidiMapping(target="command:scene", type="program", channel=1),
    ]
    # Screens given after construction, before start(), as the app may do.
    control = MidiControl(config_for(ctl, *mappings), rig.stores["main"], rig.buses["main"])
    control.set_screens(rig.screens)
    seen = {name: recorder(rig.stores[name]) for name in NAMES}
    async with running(control, ctl):
        await ctl.send(cc(7, 127), cc(7, 64))
        await wait_for(rig.stores["b"], near("noise_scale", 64 / 127))
        await ctl.send(cc(8, 127))  # after the knob's messages: when it lands, they have
        await wait_for(rig.stores["main"], near("vace_context_scale", 2.0))
        # Program changes: channel 2 picks b's scene, channel 1 the main screen's.
        await ctl.send(mido.Message("program_change", channel=1, program=5))
        assert await rig.next_call() == ("b", "scene", (5,))
        await ctl.send(mido.Message("program_change", channel=0, program=6))
        assert await rig.next_call() == ("main", "scene", (6,))
    assert [source for _, source in seen["b"]] == ["midi:cc:*:7", "midi:cc:*:7"]
    assert seen["a"] == []
    assert [changes for changes, _ in seen["main"]] == [{"vace_context_scale": 2.0}]
    assert rig.stores["main"].get("noise_scale") == rig.stores["a"].get("noise_scale") == 0.3
    assert rig.calls.empty()


@pytest.mark.usefixtures("jack_server")
@pytest.mark.jack
async def test_star_moves_every_screen_each_picking_up_on_its_own(ctl: FakeController) -> None:
    start = {"main": 0.2, "a": 0.5, "b": 0.8}
    rig = make_rig(**{name: {"kv_cache_attention_bias": v} for name, v in start.items()})
    mappings = [
        MidiMapping(target="kv_cache_attention_bias", number=9, screen="*"),
        MidiMapping(target="command:panic", type="note", number=40, screen="*"),
        MidiMapping(target="command:tap", type="note", number=41, screen="*"),
    ]
    control = rig.control(config_for(ctl, *mappings))
    moves = {name: [] for name in NAMES}
    for name in NAMES:
        rig.stores[name].subscribe(
            lambda changes, source, name=name: moves[name].append(
                changes["kv_cache_attention_bias"]
            )
        )
    async with running(control, ctl):
        # Soft takeover (pickup) per screen: sweep the knob up from the bottom.
        await ctl.send(*(cc(9, v) for v in [*range(0, 127, 4), 127]))
        for name in NAMES:
            await wait_for(rig.stores[name], near("kv_cache_attention_bias", 1.0), name)
        # A "*" pad: each screen's own panic once; the shared tap once, not three times.
        await ctl.send(mido.Message("note_on", note=40, velocity=100))
        first = sorted([await rig.next_call() for _ in NAMES])
        await ctl.send(mido.Message("note_on", note=41, velocity=100))
        await ctl.send(mido.Message("note_on", note=40, velocity=100))
        # Commands run in order: once the second panics are in, every tap task has run.
        after = [await rig.next_call() for _ in range(len(NAMES) + 1)]
    assert first == [("a", "panic", ()), ("b", "panic", ()), ("main", "panic", ())]
    assert after[0] == ("shared", "tap", ())
    assert sorted(after[1:]) == first
    assert rig.calls.empty()
    for name in NAMES:
        # Nothing moved until the knob reached this screen's own value; no jump after.
        assert moves[name][0] == pytest.approx(start[name], abs=4 / 127 + 0.03), name
        assert all(b > a for a, b in itertools.pairwise(moves[name])), name
        steps = itertools.pairwise([start[name], *moves[name]])
        assert max(abs(b - a) for a, b in steps) <= 4 / 127 + 0.03 + 1e-9, name


@pytest.mark.usefixtures("jack_server")
@pytest.mark.jack
async def test_feedback_of_a_screen_binding_follows_that_screens_store(
    ctl: FakeController,
) -> None:
    fb = FakeFeedbackInput(asyncio.get_running_loop())
    rig = make_rig(
        main={"noise_scale": 0.0, "vace_context_scale": 0.0},
        a={"noise_scale": 0.0},
        b={"noise_scale": 1.0},
    )
    mappings = [
        MidiMapping(target="noise_scale", number=7, screen="b"),
        MidiMapping(target="vace_context_scale", number=8, screen="*", takeover="none"),
    ]
    control = rig.control(config_for(ctl, *mappings, output=fb.client))
    ready = asyncio.Event()
    control.subscribe_ports(lambda event, port: ready.set() if event == "output_ready" else None)
    try:
        async with running(control, ctl):
            await asyncio.wait_for(ready.wait(), WAIT)
            # Brought up to date: CC 7 shows b's noise (1.0), CC 8 the main screen's.
            assert [(await fb.next()).bytes() for _ in range(2)] == [[0xB0, 7, 127], [0xB0, 8, 0]]
            # The main screen's and a's noise are not this control's: nothing is sent...
            rig.stores["main"].set("noise_scale", 0.5, source="osc:x:1")
            rig.stores["a"].set("noise_scale", 0.7, source="osc:x:1")
            # ...b's is (feedback goes out inside set(): had the others sent, they'd be first).
            rig.stores["b"].set("noise_scale", 0.25, source="osc:x:1")
            assert (await fb.next()).bytes() == [0xB0, 7, 32]
            # A "*" control shows the main screen's value, whatever the other screens do.
            rig.stores["b"].set("vace_context_scale", 2.0, source="osc:x:1")
            rig.stores["main"].set("vace_context_scale", 1.0, source="osc:x:1")
            assert (await fb.next()).bytes() == [0xB0, 8, 64]
            # b's fader moved by hand: b changes, and its own move is not echoed to it.
            await ctl.send(cc(7, 32), cc(7, 100))
            await wait_for(rig.stores["b"], near("noise_scale", 100 / 127))
            rig.stores["b"].set("noise_scale", 0.0, source="scene")
            assert (await fb.next()).bytes() == [0xB0, 7, 0]
            assert fb.queue.empty()
    finally:
        fb.close()


@pytest.mark.usefixtures("jack_server")
@pytest.mark.jack
async def test_unknown_screen_is_skipped_with_one_warning_and_nothing_else_lost(
    ctl: FakeController,
) -> None:
    rig = make_rig(**{name: {"noise_scale": 0.3} for name in NAMES})
    mappings = [
        MidiMapping(target="noise_scale", number=7, screen="nope", takeover="none"),
        MidiMapping(target="noise_scale", number=8, screen="a", takeover="none"),
        MidiMapping(target="vace_context_scale", number=9, takeover="none"),
        MidiMapping(target="command:panic", type="note", number=36, screen="nope"),
    ]
    with capture_logs() as logs:
        control = rig.control(config_for(ctl, *mappings))
    skipped = [e for e in logs if e["event"] == "midi_mapping_skipped"]
    assert [e["problem"] for e in skipped] == [
        "cc:*:7->noise_scale@nope: no screen 'nope' (screens: 'main', 'a', 'b')",
        "note:*:36->command:panic@nope: no screen 'nope' (screens: 'main', 'a', 'b')",
    ]
    async with running(control, ctl):
        await ctl.send(cc(7, 127), mido.Message("note_on", note=36, velocity=99), cc(8, 127))
        await ctl.send(cc(9, 127))
        await wait_for(rig.stores["a"], near("noise_scale", 1.0))
        await wait_for(rig.stores["main"], near("vace_context_scale", 2.0))
        counters = control.counters()
    assert counters["bindings"] == 2 and counters["unmapped"] >= 2
    assert rig.calls.empty()
    assert rig.stores["main"].get("noise_scale") == rig.stores["b"].get("noise_scale") == 0.3


@pytest.mark.usefixtures("jack_server")
@pytest.mark.jack
async def test_learn_for_a_screen_records_it_and_binds_there(
    ctl: FakeController, tmp_path: Path
) -> None:
    rig = make_rig(**{name: {"noise_scale": 0.3} for name in NAMES})
    learned = LearnedMappings(tmp_path / "show.midi-learned.json")
    control = rig.control(config_for(ctl, learn_settle=0.1), save=learned.save)

    def armed() -> asyncio.Future[MidiMapping | None]:
        assert control._learning is not None  # the future learn() would have returned
        return control._learning.future

    async with running(control, ctl):
        # Through screen a's own bus (OSC /screen/a/soundscape/learn): learns for a.
        reply = await rig.buses["a"].call("learn", "noise_scale", source="osc:test")
        assert reply == "learning noise_scale on screen a: move a control"
        future = armed()
        await ctl.send(cc(21, 10), cc(21, 12), cc(21, 15))
        mapping_a = await asyncio.wait_for(future, WAIT)
        # Through the shared bus, the screen as fourth argument: b (an unknown one refused).
        with pytest.raises(ParamError, match="no screen 'c'"):
            await rig.buses["main"].call("learn", "noise_scale", "", "", "c")
        reply = await rig.buses["main"].call("learn", "noise_scale", "", "", "b")
        assert reply == "learning noise_scale on screen b: move a control"
        future = armed()
        await ctl.send(mido.Message("note_on", note=50, velocity=100))
        mapping_b = await asyncio.wait_for(future, WAIT)
        # Both bindings work at once, each on its own screen (the knob picks a's value up).
        await send_until(ctl, rig.stores["a"], near("noise_scale", 1.0), cc(21, 30), cc(21, 127))
        await ctl.send(mido.Message("note_on", note=50, velocity=100))  # toggle: b to max
        await wait_for(rig.stores["b"], near("noise_scale", 1.0))
    assert mapping_a is not None and mapping_a.screen == "a"
    assert mapping_b is not None and mapping_b.screen == "b"
    # stop() waited for the saves: the learned file keeps each binding's screen.
    assert [(m.type, m.number, m.target, m.screen) for m in learned.load()] == [
        ("cc", 21, "noise_scale", "a"),
        ("note", 50, "noise_scale", "b"),
    ]
    assert rig.stores["main"].get("noise_scale") == 0.3
