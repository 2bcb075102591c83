"""MIDI end to end through a real JACK server: a fake controller port, the daemon's ports.

The "controller" is a virtual mido port made by the test (as a hardware device
would appear); the daemon opens it by name, exactly as in production. Messages
are paced >= 0.5 ms apart (JACK corrupts unpaced bursts); every wait is on an
event (a store listener, a port event, a clock event), never a bare sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
import threading
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import mido
import pytest
import rtmidi
from structlog.testing import capture_logs

from soundscape.control.commands import CommandBus
from soundscape.control.jack_graph import SETTLE, paced
from soundscape.control.midi import MidiControl, learn_once
from soundscape.control.midi_config import MidiConfig, MidiMapping
from soundscape.control.midi_decode import encode_relative
from soundscape.control.midi_ports import _close, _open_by_name, choose_backend, list_ports
from soundscape.errors import BackendUnavailable, ParamError
from soundscape.scope.params import ParameterStore
from soundscape.settings import Problem, build
from soundscape.state.learned import LearnedMappings, merge
from virtual_midi import close_virtual_output, open_virtual_output

pytestmark = [pytest.mark.jack, pytest.mark.usefixtures("jack_server")]

WAIT = 5.0  # generous: a loaded CI machine must never fail a correct test
_ids = itertools.count()


def unique(prefix: str) -> str:
    # Unique per test and per process: parallel runs on one JACK server never cross.
    return f"{prefix}{os.getpid()}n{next(_ids)}"


def backend() -> mido.Backend:
    # mido reads MIDO_BACKEND when it is imported, before the jack_server fixture
    # sets it; ask for the backend explicitly.
    return mido.Backend(os.environ.get("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK"))


class FakeController:
    """A virtual MIDI output port, as a USB controller appears on the system."""

    def __init__(self) -> None:
        self.client = unique("fakectl")
        self.port = open_virtual_output(backend(), "ctl", self.client)

    async def send(self, *messages: mido.Message) -> None:
        for msg in messages:
            self.port.send(msg)
            await asyncio.sleep(0.001)  # pacing for JACK, not synchronisation

    def close(self) -> None:
        close_virtual_output(self.port)

    def reopen(self) -> None:
        self.port = open_virtual_output(backend(), "ctl", self.client)


class FakeFeedbackInput:
    """A virtual MIDI input port (the controller's LEDs / motor faders).

    Read by polling rtmidi's queue from a thread, never through a callback:
    a callback would run Python in JACK's process thread (see midi_ports).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.client = unique("fakefb")
        self.queue: asyncio.Queue[mido.Message] = asyncio.Queue()
        self.port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, self.client)
        with paced():
            self.port.open_virtual_port("fb")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(loop,), daemon=True)
        self._thread.start()

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        while not self._stop.wait(0.001):
            while (item := self.port.get_message()) is not None:
                msg = mido.Message.from_bytes(item[0])
                loop.call_soon_threadsafe(self.queue.put_nowait, msg)

    async def next(self) -> mido.Message:
        return await asyncio.wait_for(self.queue.get(), WAIT)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        _close(self.port)  # paced, as the daemon closes its ports


async def wait_for(
    store: ParameterStore, predicate: Callable[[ParameterStore], bool], what: str = ""
) -> None:
    """Wait until ``predicate(store)`` holds, woken by store changes."""
    changed = asyncio.Event()
    unsubscribe = store.subscribe(lambda changes, source: changed.set())
    try:
        async with asyncio.timeout(WAIT):
            while not predicate(store):
                await changed.wait()
                changed.clear()
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what or predicate}; state {store.snapshot()}")
    finally:
        unsubscribe()


async def send_until(
    ctl: FakeController,
    store: ParameterStore,
    predicate: Callable[[ParameterStore], bool],
    *messages: mido.Message,
) -> None:
    """Send idempotent messages, again every half second, until ``predicate`` holds.

    Only for tests about something other than delivery itself (reconnect,
    reload): an overloaded JACK graph can drop a cycle's MIDI (xruns).
    """
    async with asyncio.timeout(WAIT):
        while not predicate(store):
            await ctl.send(*messages)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wait_for(store, predicate), 0.5)


def near(key: str, value: float) -> Callable[[ParameterStore], bool]:
    return lambda s: s.get(key) is not None and abs(s.get(key) - value) < 1e-9


PROBE = mido.Message("control_change", channel=15, control=119, value=0)  # mapped nowhere


async def handshake(ctl: FakeController, control: MidiControl) -> None:
    """Wait until the controller's connection carries messages.

    JACK applies a new connection on a later cycle; a message sent before that
    is lost (2 in 20 on a loaded machine). Resend a probe until one arrives.
    """
    arrived = asyncio.Event()
    stop = control.monitor(lambda port, msg, t: arrived.set() if msg == PROBE else None)
    try:
        async with asyncio.timeout(WAIT):
            while not arrived.is_set():
                ctl.port.send(PROBE)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), 0.02)
    finally:
        stop()


@contextlib.asynccontextmanager
async def running(
    control: MidiControl, ctl: FakeController | None = None
) -> AsyncIterator[MidiControl]:
    await control.start()
    try:
        if ctl is not None:
            await handshake(ctl, control)
        yield control
    finally:
        await control.stop()


def config_for(ctl: FakeController, *mappings: MidiMapping, **kw: Any) -> MidiConfig:
    kw.setdefault("poll_interval", 0.1)
    return MidiConfig(enabled=True, inputs=[ctl.client], mappings=list(mappings), **kw)


@pytest.fixture
def ctl() -> Any:
    controller = FakeController()
    yield controller
    controller.close()


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


# --------------------------------------------------------------------------- basics


def test_backend_choice_follows_config_env_and_jack() -> None:
    assert choose_backend("auto", {"MIDO_BACKEND": "mido.backends.rtmidi/UNIX_JACK"}).name == (
        "UNIX_JACK"
    )
    auto = choose_backend("auto", {})
    assert (auto.name, auto.reason) == ("UNIX_JACK", "a JACK server is running")
    assert choose_backend("jack").name == "UNIX_JACK"
    with pytest.raises(BackendUnavailable, match="not available"):
        choose_backend("WINDOWS_MM")


async def test_list_ports_shows_devices_but_not_our_own(ctl: FakeController) -> None:
    control = MidiControl(config_for(ctl), ParameterStore(), CommandBus())
    async with running(control, ctl):
        assert control.ports is not None and control.ports.inputs == [f"{ctl.client}:ctl"]
        ports = list_ports()
    assert f"{ctl.client}:ctl" in ports["inputs"]
    assert not any(name.startswith("soundscape") for name in ports["inputs"] + ports["outputs"])


async def test_cc_moves_a_parameter(ctl: FakeController) -> None:
    store = ParameterStore()
    mapping = MidiMapping(target="noise_scale", number=7, min=0.2, max=0.6, takeover="none")
    control = MidiControl(config_for(ctl, mapping), store, CommandBus())
    sources: list[str] = []
    store.subscribe(lambda changes, source: sources.append(source))
    async with running(control, ctl):
        await ctl.send(cc(7, 127))
        await wait_for(store, near("noise_scale", 0.6))
        await ctl.send(cc(7, 0, channel=5), cc(7, 64))
        await wait_for(store, near("noise_scale", 0.2 + 0.4 * 64 / 127))
        counters = control.counters()
    assert sources[-1] == "midi:cc:*:7"
    assert counters["applied"] >= 2 and counters["inputs_open"] == 1


async def test_fourteen_bit_fader(ctl: FakeController) -> None:
    store = ParameterStore()
    mapping = MidiMapping(target="vace_context_scale", type="cc14", number=1, takeover="none")
    control = MidiControl(config_for(ctl, mapping, pair_window=0.05), store, CommandBus())
    seen: list[float] = []
    store.subscribe(lambda c, s: seen.append(c["vace_context_scale"]))
    exact = lambda msb, lsb: 2.0 * ((msb << 7) | lsb) / 16383  # noqa: E731
    async with running(control, ctl):
        await ctl.send(cc(1, 80), cc(33, 17))
        await wait_for(store, near("vace_context_scale", exact(80, 17)))
        await ctl.send(cc(1, 81), cc(33, 100))
        await wait_for(store, near("vace_context_scale", exact(81, 100)))
        await ctl.send(cc(33, 101))  # a fine move alone
        await wait_for(store, near("vace_context_scale", exact(81, 101)))
    # The first MSB counts as 7-bit until an LSB is seen; after that, no half values.
    assert seen == pytest.approx([2.0 * 80 / 127, exact(80, 17), exact(81, 100), exact(81, 101)])


async def test_relative_encoders_each_encoding(ctl: FakeController) -> None:
    store = ParameterStore(
        {"noise_scale": 0.5, "kv_cache_attention_bias": 0.5, "vace_context_scale": 1.0}
    )
    encodings = {
        16: ("noise_scale", "twos_complement"),
        17: ("kv_cache_attention_bias", "binary_offset"),
        18: ("vace_context_scale", "sign_magnitude"),
    }
    mappings = [
        MidiMapping(target=target, type="relative", number=n, mode=enc, sensitivity=2.0)
        for n, (target, enc) in encodings.items()
    ]
    control = MidiControl(config_for(ctl, *mappings), store, CommandBus())
    async with running(control, ctl):
        for n, (target, enc) in encodings.items():
            start = store.get(target)
            span = 2.0 if target == "vace_context_scale" else 1.0
            low = 0.01 if target == "kv_cache_attention_bias" else 0.0
            unit = (start - low) / (span - low)
            await ctl.send(*(cc(n, encode_relative(enc, s)) for s in (3, 1, -1)))
            expected = low + (span - low) * (unit + 3 * 2.0 / 127)
            await wait_for(store, near(target, expected), f"{enc} to reach {expected}")


async def test_knob_never_jumps_after_a_scene_change(ctl: FakeController) -> None:
    store = ParameterStore({"noise_scale": 0.5})
    control = MidiControl(
        config_for(ctl, MidiMapping(target="noise_scale", number=7)), store, CommandBus()
    )
    moves: list[float] = []
    store.subscribe(lambda c, s: moves.append(c["noise_scale"]) if s.startswith("midi") else None)
    async with running(control, ctl):
        await ctl.send(cc(7, 64))  # at the value: picked up
        await wait_for(store, near("noise_scale", 64 / 127))
        store.set("noise_scale", 0.9, source="scene")  # a scene change elsewhere
        moves.clear()
        # Bring the knob up from far below, then past the value.
        await ctl.send(*(cc(7, v) for v in range(0, 121, 5)))
        await wait_for(store, near("noise_scale", 120 / 127))
    # Nothing moved while the knob was away; the first move starts at the value.
    assert moves[0] == pytest.approx(0.9, abs=0.03)
    assert all(b > a for a, b in itertools.pairwise(moves))
    assert max(abs(b - a) for a, b in itertools.pairwise([0.9, *moves])) <= 5 / 127 + 1e-9


async def test_commands_from_pads_and_program_changes(ctl: FakeController) -> None:
    commands = CommandBus()
    calls: asyncio.Queue[tuple[str, tuple, str]] = asyncio.Queue()

    def handler(name: str) -> Callable[..., None]:
        return lambda *args, source: calls.put_nowait((name, args, source))

    commands.register("panic", handler("panic"))
    commands.register("scene", handler("scene"))
    store = ParameterStore()
    mappings = [
        MidiMapping(target="command:panic", type="note", number=36),
        MidiMapping(target="command:scene", type="program", channel=16),
        MidiMapping(target="command:reset_cache", type="cc", number=64, mode="trigger"),
    ]
    control = MidiControl(config_for(ctl, *mappings), store, commands)
    outbox: list[dict] = []
    store.subscribe(lambda changes, source: outbox.append(changes))
    async with running(control, ctl):
        await ctl.send(mido.Message("note_on", note=36, velocity=90))
        assert await asyncio.wait_for(calls.get(), WAIT) == ("panic", (), "midi:note:*:36")
        await ctl.send(mido.Message("program_change", program=5, channel=15))
        assert await asyncio.wait_for(calls.get(), WAIT) == ("scene", (5,), "midi:program:16:*")
        # reset_cache has no owner on the bus: the store's own one-shot takes it.
        await ctl.send(cc(64, 127))
        await wait_for(store, lambda s: any("reset_cache" in c for c in outbox))


async def test_bad_values_are_refused_with_one_log_line(ctl: FakeController) -> None:
    store = ParameterStore()  # one prompt: prompt_weight:3 does not exist
    mappings = [
        MidiMapping(target="prompt_weight:3", number=20, takeover="none"),
        MidiMapping(target="noise_scale", number=21, takeover="none"),
    ]
    control = MidiControl(config_for(ctl, *mappings), store, CommandBus())
    with capture_logs() as logs:
        async with running(control, ctl):
            await ctl.send(cc(20, 1), cc(20, 2), cc(20, 3), cc(21, 127))
            await wait_for(store, near("noise_scale", 1.0))  # messages are in order
            assert control.counters()["refused"] == 3
    refused = [e for e in logs if e["event"] == "midi_refused"]
    assert len(refused) == 1 and "prompts[3]" in refused[0]["error"]


async def test_reload_rebinds_without_restart(ctl: FakeController) -> None:
    store = ParameterStore()
    old = MidiMapping(target="noise_scale", number=7, takeover="none")
    control = MidiControl(config_for(ctl, old), store, CommandBus())
    values: list[float] = []
    store.subscribe(lambda changes, source: values.append(changes["noise_scale"]))
    async with running(control, ctl):
        new = MidiMapping(target="noise_scale", number=8, takeover="none")
        control.reload(config_for(ctl, new))
        await send_until(ctl, store, near("noise_scale", 10 / 127), cc(7, 127), cc(8, 10))
    assert values == [pytest.approx(10 / 127)]  # CC 7 is no longer bound


# --------------------------------------------------------------------------- learn


CONFIG = """\
# Stage rig, Tuesday
[midi]
enabled = true  # MIDI on for the gig
takeover = "pickup"

# Master fader
[[midi.mappings]]
type = "cc"
number = 9
target = "noise_scale"  # do not remove
"""


async def test_learn_binds_persists_and_works_at_once(ctl: FakeController, tmp_path: Path) -> None:
    path = tmp_path / "soundscape.toml"
    path.write_text(CONFIG)
    problems: list[Problem] = []
    config = build(MidiConfig, tomllib.loads(CONFIG)["midi"], "midi", problems)
    config.inputs, config.poll_interval, config.learn_settle = [ctl.client], 0.1, 0.2
    store = ParameterStore()
    commands = CommandBus()
    learned = LearnedMappings(tmp_path / "show.midi-learned.json")
    control = MidiControl(config, store, commands, save=learned.save)
    async with running(control, ctl):
        # Armed through the command bus, as OSC does.
        reply = await commands.call("learn", "vace_context_scale", source="osc:test")
        assert "learning" in reply and control.learning == "vace_context_scale"
        assert await commands.call("learn", "cancel") == "learn cancelled"
        with pytest.raises(ParamError, match="unknown target"):
            await commands.call("learn", "no_such_target")
        future = control.learn("vace_context_scale")
        await ctl.send(cc(21, 10, channel=3), cc(21, 12, channel=3), cc(21, 15, channel=3))
        mapping = await asyncio.wait_for(future, WAIT)
        assert mapping is not None
        assert (mapping.type, mapping.channel, mapping.number) == ("cc", 4, 21)
        # Active at once: move the learnt knob.
        await send_until(ctl, store, near("vace_context_scale", 2.0), cc(21, 127, channel=3))
    # Saved beside the show's state (the service's config is read-only), never in the config.
    assert path.read_text() == CONFIG
    reloaded = build(MidiConfig, tomllib.loads(CONFIG)["midi"], "midi", problems)
    assert problems == []
    assert [
        (m.type, m.channel, m.number, m.target) for m in merge(reloaded.mappings, learned.load())
    ] == [
        ("cc", None, 9, "noise_scale"),
        ("cc", 4, 21, "vace_context_scale"),
    ]


async def test_learn_times_out_with_a_log_line(ctl: FakeController) -> None:
    control = MidiControl(config_for(ctl), ParameterStore(), CommandBus())
    async with running(control, ctl):
        with capture_logs() as logs:
            assert await control.learn("noise_scale", timeout=0.2) is None
    assert [e["event"] for e in logs].count("midi_learn_timeout") == 1
    assert control.learning is None


async def test_cli_learn_once(ctl: FakeController, tmp_path: Path) -> None:
    path = tmp_path / "show.toml"
    path.write_text(
        f'# mine\n[midi]\ninputs = ["{ctl.client}"]\nlearn_settle = 0.1\n'
        '[pipeline]\nloras = [{name = "ink", path = "/l/ink.safetensors"}]\n'
    )
    ready = asyncio.Event()
    learned = LearnedMappings(tmp_path / "show.midi-learned.json")
    task = asyncio.create_task(
        learn_once(
            path, "lora:ink", save=learned.save, timeout=WAIT, on_ready=lambda inputs: ready.set()
        )
    )
    await asyncio.wait_for(ready.wait(), WAIT)
    # Press the pad until the helper has it (its connection goes live a JACK cycle later).
    async with asyncio.timeout(WAIT):
        while not task.done():
            await ctl.send(mido.Message("note_on", note=40, velocity=100, channel=1))
            await asyncio.wait({task}, timeout=0.05)
    mapping = task.result()
    assert mapping is not None and (mapping.type, mapping.number) == ("note", 40)
    assert [(m.type, m.channel, m.number, m.target) for m in learned.load()] == [
        ("note", 2, 40, "lora:ink")
    ]
    assert path.read_text().startswith("# mine") and "mappings" not in path.read_text()


# --------------------------------------------------------------------------- feedback


async def test_feedback_follows_the_state_but_not_a_faders_own_move(
    ctl: FakeController,
) -> None:
    fb = FakeFeedbackInput(asyncio.get_running_loop())
    store = ParameterStore({"noise_scale": 0.0, "vace_context_scale": 0.0})
    mappings = [
        MidiMapping(target="noise_scale", number=7, takeover="none"),
        MidiMapping(target="vace_context_scale", type="cc14", number=2, channel=3),
        MidiMapping(target="kv_cache_attention_bias", type="note", number=36, mode="toggle"),
    ]
    control = MidiControl(config_for(ctl, *mappings, output=fb.client), store, CommandBus())
    ready = asyncio.Event()
    control.subscribe_ports(lambda event, port: ready.set() if event == "output_ready" else None)
    try:
        async with running(control, ctl):
            await asyncio.wait_for(ready.wait(), WAIT)
            # Once the connection is live, the controller is brought up to date.
            first = [await fb.next() for _ in range(4)]
            assert [m.bytes() for m in first] == [
                [0xB0, 7, 0],
                [0xB2, 2, 0],
                [0xB2, 34, 0],
                [0x90, 36, 0],  # bias 0.3 of 0.01..1: below half, unlit
            ]
            # A change from elsewhere (OSC, a scene, audio) reaches every control.
            store.update({"noise_scale": 0.5, "vace_context_scale": 1.5}, source="osc:x:1")
            got = [await fb.next() for _ in range(3)]
            msb, lsb = divmod(round(0.75 * 16383), 128)
            assert [m.bytes() for m in got] == [[0xB0, 7, 64], [0xB2, 2, msb], [0xB2, 34, lsb]]
            # The fader's own move is not sent back to it (a motor fader would fight)...
            await ctl.send(cc(7, 127))
            await wait_for(store, near("noise_scale", 1.0))
            # ...while the toggle pad gets its new state (it cannot know it).
            await ctl.send(mido.Message("note_on", note=36, velocity=100))
            await wait_for(store, near("kv_cache_attention_bias", 1.0))
            assert (await fb.next()).bytes() == [0x90, 36, 127]
            assert fb.queue.empty()
    finally:
        fb.close()


# --------------------------------------------------------------------------- clock


# A clock source in its own process, like Ableton Live: its timing does not
# share the test's interpreter lock. It makes a virtual port, sends probes
# until told "go" (so the connection is known to be live), then start, 24 PPQN
# ticks at an accurate spacing, stop, and reports how late its sends were.
CLOCK_SENDER = r"""
import json, os, select, sys, time
import mido
port = mido.Backend(os.environ["MIDO_BACKEND"]).open_output(
    "clk", virtual=True, client_name=sys.argv[1])
bpm, beats = float(sys.argv[2]), int(sys.argv[3])
print("ready", flush=True)
probe = mido.Message("control_change", channel=15, control=119, value=0)
while not select.select([sys.stdin], [], [], 0.02)[0]:
    port.send(probe)
sys.stdin.readline()
period = 60.0 / (bpm * 24)
port.send(mido.Message("start"))
t0 = time.perf_counter() + 0.005
late = []
for i in range(beats * 24):
    target = t0 + i * period
    while (left := target - time.perf_counter()) > 0:
        time.sleep(left - 0.0015 if left > 0.002 else 0)  # sleep, then spin the rest
    late.append(time.perf_counter() - target)
    port.send(mido.Message("clock"))
port.send(mido.Message("stop"))
print(json.dumps({"late_max_ms": max(late) * 1000}), flush=True)
sys.stdin.readline()
"""


async def test_clock_tempo_within_one_bpm(ctl: FakeController) -> None:
    client = unique("fakeclk")
    sender = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLOCK_SENDER,
        client,
        "128",
        "6",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert sender.stdin is not None and sender.stdout is not None
    try:
        assert await asyncio.wait_for(sender.stdout.readline(), WAIT) == b"ready\n"
        # Clock only from the sender's port: a Start from the controller is ignored.
        control = MidiControl(config_for(ctl, clock_input=client), ParameterStore(), CommandBus())
        stopped, live = asyncio.Event(), asyncio.Event()
        events: list[tuple[str, float | None, float]] = []

        def on_clock(event: str, bpm: float | None, t: float) -> None:
            events.append((event, bpm, t))
            if event == "stop":
                stopped.set()

        control.clock.subscribe(on_clock)
        control.monitor(lambda port, msg, t: live.set() if client in port else None)
        async with running(control, ctl):
            await ctl.send(mido.Message("start"))
            await asyncio.wait_for(live.wait(), WAIT)
            sender.stdin.write(b"go\n")
            await asyncio.wait_for(stopped.wait(), WAIT + 3)
            bpm = control.clock.bpm
        report = json.loads(await asyncio.wait_for(sender.stdout.readline(), WAIT))
    finally:
        sender.stdin.close()
        await sender.wait()
    assert bpm is not None
    assert abs(bpm - 128.0) <= 1.0, (bpm, report)
    kinds = [e for e, _, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "stop" and kinds.count("start") == 1
    assert kinds.count("beat") == 6
    # Beats every 24 ticks, one beat apart (loose: an overloaded JACK graph delays ticks).
    # A tick the sender itself put out late moves an interval by as much, at either end:
    # that is the sending process, not the daemon, so it widens the bound by twice its worst.
    beat_times = [t for e, _, t in events if e == "beat"][2:]
    tolerance = 0.02 + 2 * report["late_max_ms"] / 1000
    intervals = [b - a for a, b in itertools.pairwise(beat_times)]
    assert all(abs(i - 60 / 128) < tolerance for i in intervals), (intervals, report)
    print(
        f"clock: 128 BPM sent, {bpm:.3f} BPM estimated (error {bpm - 128:+.3f}); "
        f"sender late by up to {report['late_max_ms']:.2f} ms"
    )


# --------------------------------------------------------------------------- reconnect


async def test_unplugged_controller_is_reopened(ctl: FakeController) -> None:
    store = ParameterStore()
    mapping = MidiMapping(target="noise_scale", number=7, takeover="none")
    control = MidiControl(config_for(ctl, mapping), store, CommandBus())
    port_events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    with capture_logs() as logs:
        async with running(control, ctl):
            control.subscribe_ports(lambda e, name: port_events.put_nowait((e, name)))
            await ctl.send(cc(7, 10))
            await wait_for(store, near("noise_scale", 10 / 127))
            ctl.close()  # unplug
            assert await asyncio.wait_for(port_events.get(), WAIT) == (
                "input_lost",
                f"{ctl.client}:ctl",
            )
            ctl.reopen()  # plug back in
            assert await asyncio.wait_for(port_events.get(), WAIT) == (
                "input_opened",
                f"{ctl.client}:ctl",
            )
            await handshake(ctl, control)
            await send_until(ctl, store, near("noise_scale", 100 / 127), cc(7, 100))
            assert control.counters()["port_lost"] == 1
    names = [e["event"] for e in logs]
    assert names.count("midi_input_lost") == 1
    assert names.count("midi_input_back") == 1


def test_an_open_during_which_the_port_list_moved_is_undone(jack_server: None) -> None:
    # rtmidi connects by index into its own fresh listing: a device plugged in while
    # it does so shifts the indices. A real port appears between the daemon's
    # listing and its check; the open is undone, not trusted.
    target = FakeController()
    newcomer: list[Any] = []

    class PlugInDuringOpen(rtmidi.MidiIn):
        def open_port(self, port: int = 0, name: str | None = None) -> Any:
            # (inside the daemon's own paced change: a device is not paced)
            newcomer.append(backend().open_output("new", virtual=True, client_name="plugged"))
            return super().open_port(port, name)

    own = unique("soundscape")
    try:
        port = PlugInDuringOpen(rtmidi.API_UNIX_JACK, own)
        with pytest.raises(OSError, match="changed while connecting"):
            _open_by_name(port, f"{target.client}:ctl", "in ctl")
        # Undone: no port of the daemon's is left registered.
        left = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, unique("lister"))
        sources = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, unique("lister"))
        assert not [n for n in left.get_ports() + sources.get_ports() if n.startswith(own)]
        left.delete()
        sources.delete()
    finally:
        for extra in newcomer:
            with paced():
                extra.close()
        target.close()


def test_paced_graph_changes_are_spaced_by_the_settle_time() -> None:
    # Two changes made back to back (a close right after another close) still
    # come SETTLE apart: libjack's notification of the first is handled by then.
    ends = []
    for _ in range(3):
        with paced():
            ends.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(ends)]
    assert min(gaps) >= SETTLE, gaps
    # Entered again on the same thread, it says so instead of waiting on itself.
    with paced(), pytest.raises(RuntimeError, match="again"), paced():
        pass


async def test_disabled_midi_opens_nothing() -> None:
    commands = CommandBus()
    control = MidiControl(MidiConfig(enabled=False), ParameterStore(), commands)
    async with running(control):
        assert control.ports is None
        assert "learn" not in commands
