"""The performer's state: versioned file, atomic debounced writes, restore into the parts.

The end-to-end proof (a real ``soundscape run`` killed with SIGKILL) is in
``test_persist_e2e.py``; here are the pieces and the restore into a daemon.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from soundscape.app import Daemon
from soundscape.config import Config, load
from soundscape.control.midi_config import MidiMapping
from soundscape.state.config import StateConfig
from soundscape.state.files import write_atomic
from soundscape.state.learned import LearnedMappings, merge
from soundscape.state.paths import StateFiles, instance_name, state_dir, state_files
from soundscape.state.snapshot import (
    MAIN_PRIMARY,
    ScreenState,
    ShowState,
    StateFileError,
    Takeover,
    decode,
    encode,
)
from soundscape.state.writer import StateWriter

# --------------------------------------------------------------------------- the file


def test_state_round_trips_through_its_versioned_json() -> None:
    state = ShowState(
        parameters={"kv_cache_attention_bias": 0.42, "prompts": [{"text": "x", "weight": 1.0}]},
        config_parameters={"kv_cache_attention_bias": 0.3},
        manual={"lora:ink": 0.8},
        scene="city",
        variation=1,
        mapping_enabled=False,
        takeover={"cc:1:7>noise_scale": Takeover(0.5, 0.5, True)},
        bpm=128.0,
        beat_source="tap",
    )
    raw = encode(state)
    assert json.loads(raw)["version"] == 2
    assert decode(raw) == state


def test_every_screen_and_every_servers_session_round_trip_by_name() -> None:
    state = ShowState(
        parameters={"noise_scale": 0.5},
        scene="city",
        bpm=120.0,
        scope_sessions={
            "main": {"url": "http://a:8000", "id": "s1"},
            "standby": {"url": "http://b:8000", "id": "s2"},
            "left": {"url": "http://c:8000", "id": "s3"},
        },
        screens={
            "left": ScreenState(
                parameters={"noise_scale": 0.9, "prompts": [{"text": "l", "weight": 1.0}]},
                config_parameters={"noise_scale": 0.7},
                manual={"noise_scale": 0.8},
                scene="storm",
                variation=2,
                mapping_enabled=True,
            ),
            "right": ScreenState(),
        },
    )
    raw = encode(state)
    assert set(json.loads(raw)["screens"]) == {"left", "right"}
    assert decode(raw) == state


# What a version-1 daemon wrote (the main screen only, one session): read unchanged.
VERSION_1 = b"""{
 "config_parameters": {"kv_cache_attention_bias": 0.3},
 "manual": {"lora:ink": 0.8},
 "mapping_enabled": false,
 "parameters": {"kv_cache_attention_bias": 0.42, "input_mode": "text"},
 "scene": "night",
 "scope_session": {"id": "old-session", "url": "http://127.0.0.1:9"},
 "takeover": {"cc:1:7>kv_cache_attention_bias": {"knob": 0.5, "set": 0.5, "synced": true}},
 "tempo": {"bpm": 128.0, "source": "tap"},
 "variation": 1,
 "version": 1
}
"""


def test_a_version_1_file_is_read_as_it_was() -> None:
    assert decode(VERSION_1) == ShowState(
        parameters={"kv_cache_attention_bias": 0.42},
        config_parameters={"kv_cache_attention_bias": 0.3},
        manual={"lora:ink": 0.8},
        scene="night",
        variation=1,
        mapping_enabled=False,
        takeover={"cc:1:7>kv_cache_attention_bias": Takeover(0.5, 0.5, True)},
        bpm=128.0,
        beat_source="tap",
        # Its one session was the main screen's primary, unnamed then.
        scope_sessions={MAIN_PRIMARY: {"url": "http://127.0.0.1:9", "id": "old-session"}},
    )
    assert decode(VERSION_1.replace(b'"scope_session": {', b'"x": {')).scope_sessions == {}


def test_config_owned_parameters_are_never_saved_or_restored() -> None:
    state = ShowState(parameters={"pipeline_ids": ["x"], "input_mode": "video", "paused": True})
    assert decode(encode(state)).parameters == {"paused": True}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not JSON"),
        (b'{"version": 1, "parameters": ', "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"version": 99}', "format version 99"),
        (b'{"parameters": {}}', "format version None"),
        (b'{"version": 1, "parameters": []}', "malformed"),
        (b'{"version": 1, "tempo": {"bpm": "fast"}}', "malformed"),
        (b'{"version": 1, "takeover": {"cc:1:1>x": 3}}', "malformed"),
        (b'{"version": 2, "screens": {"left": []}}', "malformed"),
        (b'{"version": 2, "screens": {"left": {"manual": {"x": "y"}}}}', "malformed"),
        (b'{"version": 2, "scope_sessions": {"main": "s1"}}', "malformed"),
        (b'{"version": true}', "format version True"),
    ],
)
def test_a_file_that_cannot_be_used_says_why_in_one_line(raw: bytes, reason: str) -> None:
    with pytest.raises(StateFileError, match=reason) as caught:
        decode(raw)
    assert "\n" not in str(caught.value)


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "show.json"
    write_atomic(path, b"one")
    write_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["show.json"]
    assert path.stat().st_mode & 0o777 == 0o600


def test_state_directory_follows_config_systemd_then_xdg() -> None:
    home = Path("/home/p")
    assert state_dir("/srv/show", {"STATE_DIRECTORY": "/var/lib/x"}, home) == Path("/srv/show")
    env = {"STATE_DIRECTORY": "/var/lib/soundscape:/var/lib/other", "XDG_STATE_HOME": "/x"}
    assert state_dir("", env, home) == Path("/var/lib/soundscape")
    assert state_dir("", {"XDG_STATE_HOME": "/x"}, home) == Path("/x/soundscape")
    assert state_dir("", {"XDG_STATE_HOME": "relative"}, home) == Path(
        "/home/p/.local/state/soundscape"
    )
    assert state_dir("", {}, home) == Path("/home/p/.local/state/soundscape")
    # One show per config file: two shows never share (or overwrite) a state.
    assert instance_name("", Path("/etc/soundscape/soundscape.toml")) == "soundscape"
    assert instance_name("", None, demo=True) == "demo"
    assert instance_name("gig", Path("/x/y.toml")) == "gig"
    files = state_files(StateConfig(), Path("/etc/soundscape/club.toml"), {}, home)
    assert files.show.name == "club.show.json" and files.learned.name == "club.midi-learned.json"


# --------------------------------------------------------------------------- the writer


async def test_writer_writes_a_burst_once_per_period_and_the_last_state_on_stop(
    tmp_path: Path,
) -> None:
    value = {"n": 0}
    path = tmp_path / "show.json"
    writer = StateWriter(path, lambda: json.dumps(value).encode(), debounce=0.2)
    written: list[int] = []
    writer.on_written(written.append)
    await writer.start()
    loop = asyncio.get_running_loop()
    end = loop.time() + 0.5
    while loop.time() < end:  # a 1 kHz knob for half a second
        value["n"] += 1
        writer.mark()
        await asyncio.sleep(0.001)
    await writer.stop()
    assert json.loads(path.read_text())["n"] == value["n"]
    # 0.5 s at one write per 0.2 s (the first at once), plus the final one.
    assert 2 <= writer.writes <= 5, writer.writes
    before = writer.writes
    await writer.flush()  # unchanged: no write
    assert writer.writes == before


async def test_writer_reports_a_failing_disk_once_and_keeps_going(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    writer = StateWriter(blocker / "show.json", lambda: b"{}", debounce=0.05)
    with capture_logs() as logs:
        await writer.flush()
        writer.collect = lambda: b'{"a": 1}'
        await writer.flush()
    assert writer.failures == 2 and writer.writes == 0
    assert [e["event"] for e in logs] == ["state_not_saved"]


# --------------------------------------------------------------------------- learned MIDI


def test_learned_mappings_merge_over_the_config_by_physical_control(tmp_path: Path) -> None:
    learned = LearnedMappings(tmp_path / "show.midi-learned.json")
    assert learned.load() == []
    learned.save(MidiMapping(target="noise_scale", type="cc", number=7, channel=1))
    learned.save(MidiMapping(target="lora:ink", type="note", number=40, channel=2))
    learned.save(MidiMapping(target="vace_context_scale", type="cc", number=7, channel=1))
    got = learned.load()
    assert [(m.type, m.number, m.target) for m in got] == [
        ("note", 40, "lora:ink"),
        ("cc", 7, "vace_context_scale"),  # the same knob learned again: replaced
    ]
    configured = [
        MidiMapping(target="noise_scale", type="cc", number=7, channel=1),
        MidiMapping(target="kv_cache_attention_bias", type="cc", number=8, channel=1),
    ]
    merged = merge(configured, got)
    assert [(m.number, m.target) for m in merged] == [
        (8, "kv_cache_attention_bias"),
        (40, "lora:ink"),
        (7, "vace_context_scale"),
    ]


def test_a_broken_learned_file_is_one_line_and_the_next_learn_starts_a_good_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "show.midi-learned.json"
    path.write_text("{nope")
    learned = LearnedMappings(path)
    with capture_logs() as logs:
        assert learned.load() == []
    assert [e["event"] for e in logs] == ["midi_learned_ignored"]
    learned.save(MidiMapping(target="noise_scale", type="cc", number=1))
    assert [m.number for m in learned.load()] == [1]
    # One bad entry costs only itself.
    data = json.loads(path.read_text())
    data["mappings"].append({"type": "cc", "number": 999, "target": "noise_scale"})
    data["mappings"].append("garbage")
    path.write_text(json.dumps(data))
    assert [m.number for m in learned.load()] == [1]


# --------------------------------------------------------------------------- restore


SHOW = """\
[pipeline]
loras = [{ name = "ink", path = "/l/ink.safetensors", scale = 0.5 }]

[parameters]
kv_cache_attention_bias = 0.3
prompts = ["the config's own prompt"]

[beat]
sources = ["tap", "audio"]

[[mapping.rules]]
source = "lfo"
target = "lora:ink"
mode = "base"
depth = 0.5

[[midi.mappings]]
type = "cc"
number = 7
channel = 1
target = "kv_cache_attention_bias"

[scenes]
start = "dawn"
quantize = "none"

[[scenes.list]]
name = "dawn"
prompts = ["dawn over the sea"]

[[scenes.list]]
name = "night"
prompts = ["a city at night"]
variations = [{ name = "rain", prompts = ["a city at night, rain"] }]
"""


def show_config(tmp_path: Path, text: str = SHOW) -> tuple[Config, StateFiles]:
    path = tmp_path / "show.toml"
    path.write_text(text)
    config = load(path)
    return config, state_files(config.state, path, {"XDG_STATE_HOME": str(tmp_path)}, tmp_path)


async def play_a_show(daemon: Daemon) -> None:
    """What a performer does during a show, through the parts' own entry points."""
    daemon.store.set("kv_cache_attention_bias", 0.77, source="osc:test")
    daemon.mapping.director.apply(1, steps=0, requested_by="osc:test")  # night
    daemon.mapping.director.vary("rain", source="osc:test")
    daemon.store.set_lora_scale("ink", 1.25, source="midi:cc:1:9")  # the manual value
    daemon.store.set_lora_scale("ink", 1.4, source="mapping")  # modulated on top of it
    daemon.mapping._bases["lora:ink"] = 1.25  # what the engine learns from its listener
    daemon.mapping.enabled = False
    daemon.mapping.clock.set_tempo(131.0, daemon.mapping.runner.now())
    daemon.mapping.clock.active = "tap"
    [takeover] = [t for k, t in daemon.midi.takeover_positions().items() if "@" not in k]
    takeover.restore(0.6, 0.6, True)


async def test_a_restarted_daemon_comes_back_to_the_same_show(tmp_path: Path) -> None:
    config, files = show_config(tmp_path)
    first = Daemon(config, state_files=files)
    assert first.persistence is not None
    await play_a_show(first)
    await first.persistence.writer.flush()

    second = Daemon(config, state_files=files)
    assert second.persistence is not None
    saved = await second.persistence.load()
    assert saved is not None
    second.persistence.restore(saved)

    store = second.store
    assert store.get("kv_cache_attention_bias") == 0.77
    assert store.get("prompts") == [{"text": "a city at night, rain", "weight": 1.0}]
    assert store.lora_scale("ink") == 1.25  # the manual value, not the modulated one
    director = second.mapping.director
    assert director.scene is not None and director.scene.name == "night"
    assert director.variation == 1
    assert second.mapping.enabled is False
    assert second.mapping.clock.bpm == pytest.approx(131.0)
    assert second.mapping.clock.active == "tap"  # tapped again: holds like the taps did
    [takeover] = second.midi.takeover_positions().values()
    assert takeover.position() == (0.6, 0.6, True)
    assert second.store.outbox  # the restored values go to Scope


async def test_the_start_scene_does_not_overwrite_a_restored_show(tmp_path: Path) -> None:
    config, files = show_config(tmp_path)
    first = Daemon(config, state_files=files)
    await play_a_show(first)
    assert first.persistence is not None
    await first.persistence.writer.flush()
    second = Daemon(config, state_files=files)
    assert second.persistence is not None
    saved = await second.persistence.load()
    assert saved is not None
    second.persistence.restore(saved)
    await second.mapping.director.start()  # would apply [scenes] start = "dawn"
    try:
        assert second.mapping.director.scene.name == "night"
        assert second.store.get("prompts")[0]["text"] == "a city at night, rain"
    finally:
        await second.mapping.director.stop()


async def test_a_value_the_file_changed_since_the_save_takes_the_files_value(
    tmp_path: Path,
) -> None:
    config, files = show_config(tmp_path)
    first = Daemon(config, state_files=files)
    await play_a_show(first)
    assert first.persistence is not None
    await first.persistence.writer.flush()
    edited, _ = show_config(tmp_path, SHOW.replace("attention_bias = 0.3", "attention_bias = 0.5"))
    second = Daemon(edited, state_files=files)
    assert second.persistence is not None
    saved = await second.persistence.load()
    assert saved is not None
    second.persistence.restore(saved)
    assert second.store.get("kv_cache_attention_bias") == 0.5  # edited in the file: the file
    assert second.store.get("prompts")[0]["text"] == "a city at night, rain"  # not: the show


@pytest.mark.parametrize("content", [b"{garbage", b'{"version": 7}', b""])
async def test_a_corrupt_state_file_is_one_line_and_a_clean_start(
    tmp_path: Path, content: bytes
) -> None:
    config, files = show_config(tmp_path)
    files.show.parent.mkdir(parents=True, exist_ok=True)
    files.show.write_bytes(content)
    daemon = Daemon(config, state_files=files)
    assert daemon.persistence is not None
    with capture_logs() as logs:
        assert await daemon.persistence.load() is None
    assert [(e["event"], e["log_level"]) for e in logs] == [("state_ignored", "error")]
    assert daemon.store.get("kv_cache_attention_bias") == 0.3
    await daemon.persistence.writer.flush()  # the next save replaces the broken file
    assert decode(files.show.read_bytes()).parameters["kv_cache_attention_bias"] == 0.3


async def test_a_restore_that_fails_is_logged_and_the_daemon_starts_anyway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, files = show_config(tmp_path)
    first = Daemon(config, state_files=files)
    await play_a_show(first)
    assert first.persistence is not None
    await first.persistence.writer.flush()
    second = Daemon(config, state_files=files)
    assert second.persistence is not None

    def broken(**_: object) -> None:
        raise RuntimeError("a bug in a part's restore")

    monkeypatch.setattr(second.mapping, "restore", broken)
    saved = await second.persistence.load()
    assert saved is not None
    with capture_logs() as logs:
        second.persistence.restore(saved)  # never raises: a crash loop would end the show
    assert [e["event"] for e in logs] == ["state_restore_failed"]


# --------------------------------------------------------------------------- several screens

# The main screen with a standby, and a further screen "left" with its own prompts, scene
# book, mapping rule and MIDI knob (servers never reached: nothing here starts them).
SCREENS = (
    SHOW
    + """
[[scope]]
url = "http://127.0.0.1:9"

[[scope]]
role = "standby"
url = "http://127.0.0.1:10"

[[scope]]
name = "left"
role = "screen"
url = "http://127.0.0.1:11"
prompts = ["left's own prompt"]

[scope.scenes]
start = "storm"
quantize = "none"

[[scope.scenes.list]]
name = "storm"
prompts = ["left: storm"]

[[scope.scenes.list]]
name = "calm"
prompts = ["left: calm"]
variations = [{ name = "mist", prompts = ["left: calm, mist"] }]

[[mapping.rules]]
source = "lfo"
target = "noise_scale"
mode = "base"
depth = 0.1
screen = "left"

[[midi.mappings]]
type = "cc"
number = 8
channel = 1
target = "kv_cache_attention_bias"
screen = "left"
"""
)


def give_sessions(daemon: Daemon) -> dict[str, str]:
    """Every server's session id, as if each streamed (the e2e test has real ones)."""
    ids = {}
    for screen in daemon.screens.values():
        for name, supervisor in screen.supervisors.items():
            supervisor.status.session_id = ids[name] = f"session-of-{name}"
    return ids


async def play_the_left_screen(daemon: Daemon) -> None:
    left = daemon.screens["left"].store
    engine = daemon.screen_engines["left"]
    left.set("kv_cache_attention_bias", 0.11, source="osc:test")
    engine.director.apply(1, steps=0, requested_by="osc:test")  # calm
    engine.director.vary("mist", source="osc:test")
    left.set("noise_scale", 0.62, source="osc:test")  # the manual value
    left.set("noise_scale", 0.7, source="mapping")  # modulated on top of it
    engine._bases["noise_scale"] = 0.62  # what the engine learns from its listener
    daemon.midi.takeover_positions()["cc:1:8>kv_cache_attention_bias@left"].restore(0.2, 0.2, True)


async def test_every_screen_comes_back_to_its_own_show(tmp_path: Path) -> None:
    config, files = show_config(tmp_path, SCREENS)
    first = Daemon(config, state_files=files)
    assert first.persistence is not None
    assert list(first.screens) == ["main", "left"]
    await play_a_show(first)
    await play_the_left_screen(first)
    sessions = give_sessions(first)
    await first.persistence.writer.flush()
    data = json.loads(files.show.read_text())
    assert list(data["screens"]) == ["left"]
    # Each server its own session, by name: the main primary, its standby, the left screen.
    assert {name: ref["id"] for name, ref in data["scope_sessions"].items()} == sessions
    assert data["scope_sessions"]["left"]["url"] == "http://127.0.0.1:11"

    second = Daemon(config, state_files=files)
    assert second.persistence is not None
    saved = await second.persistence.load()
    assert saved is not None
    with capture_logs() as logs:
        second.persistence.restore(saved)
    [restored] = [e for e in logs if e["event"] == "state_restored"]
    assert restored["screens"] == ["main", "left"]

    # The left screen: its own parameters, scene and variation, manual value, knob.
    left = second.screens["left"].store
    assert left.get("kv_cache_attention_bias") == 0.11
    assert left.get("prompts") == [{"text": "left: calm, mist", "weight": 1.0}]
    assert left.get("noise_scale") == 0.62  # the manual value, not the modulated one
    engine = second.screen_engines["left"]
    assert engine.director.scene is not None and engine.director.scene.name == "calm"
    assert engine.director.variation == 1
    assert engine.enabled is True  # the main screen's rules were off, not the left's
    takeover = second.midi.takeover_positions()["cc:1:8>kv_cache_attention_bias@left"]
    assert takeover.position() == (0.2, 0.2, True)
    assert left.outbox  # the restored values go to its server
    # The main screen kept its own show, untouched by the left's.
    assert second.store.get("kv_cache_attention_bias") == 0.77
    assert second.store.get("prompts") == [{"text": "a city at night, rain", "weight": 1.0}]
    assert second.mapping.enabled is False
    assert second.mapping.clock.bpm == pytest.approx(131.0)  # one tempo for every screen
    # Each server DELETEs the session it had itself, before its first offer.
    leftovers = {
        name: supervisor._leftover
        for screen in second.screens.values()
        for name, supervisor in screen.supervisors.items()
    }
    assert leftovers == sessions


async def test_the_start_scene_of_a_screen_does_not_overwrite_its_restored_show(
    tmp_path: Path,
) -> None:
    config, files = show_config(tmp_path, SCREENS)
    first = Daemon(config, state_files=files)
    await play_the_left_screen(first)
    assert first.persistence is not None
    await first.persistence.writer.flush()
    second = Daemon(config, state_files=files)
    assert second.persistence is not None
    saved = await second.persistence.load()
    assert saved is not None
    second.persistence.restore(saved)
    director = second.screen_engines["left"].director
    await director.start()  # would apply its [scope.scenes] start = "storm"
    try:
        assert director.scene is not None and director.scene.name == "calm"
        assert second.screens["left"].store.get("prompts")[0]["text"] == "left: calm, mist"
    finally:
        await director.stop()


async def test_a_screen_gone_from_the_config_is_one_line_and_a_new_one_starts_from_its_config(
    tmp_path: Path,
) -> None:
    config, files = show_config(tmp_path, SCREENS)
    first = Daemon(config, state_files=files)
    await play_a_show(first)
    await play_the_left_screen(first)
    assert first.persistence is not None
    await first.persistence.writer.flush()

    renamed = SCREENS.replace('name = "left"', 'name = "right"').replace('screen = "left"', "")
    edited, _ = show_config(tmp_path, renamed)
    second = Daemon(edited, state_files=files)
    assert second.persistence is not None
    saved = await second.persistence.load()
    assert saved is not None
    with capture_logs() as logs:
        second.persistence.restore(saved)
    ignored = [e for e in logs if e["event"] == "state_screen_ignored"]
    assert [(e["screen"], e["log_level"]) for e in ignored] == [("left", "info")]
    assert not [e for e in logs if e["log_level"] in ("warning", "error")]
    right = second.screens["right"].store
    assert right.get("prompts") == [{"text": "left's own prompt", "weight": 1.0}]  # its config
    assert right.get("kv_cache_attention_bias") == 0.3
    assert second.screen_engines["right"].director.scene is None  # its start scene will play
    assert second.store.get("kv_cache_attention_bias") == 0.77  # the main screen came back
    # The next save has the screens the daemon runs.
    await second.persistence.writer.flush()
    assert list(json.loads(files.show.read_text())["screens"]) == ["right"]


async def test_a_value_the_file_changed_for_a_screen_takes_the_files_value(
    tmp_path: Path,
) -> None:
    config, files = show_config(tmp_path, SCREENS)
    first = Daemon(config, state_files=files)
    first.screens["left"].store.set("prompts", ["what the performer typed"], source="osc:test")
    first.screens["left"].store.set("noise_scale", 0.33, source="osc:test")
    assert first.persistence is not None
    await first.persistence.writer.flush()
    edited, _ = show_config(tmp_path, SCREENS.replace("left's own prompt", "a new prompt"))
    second = Daemon(edited, state_files=files)
    assert second.persistence is not None
    saved = await second.persistence.load()
    assert saved is not None
    second.persistence.restore(saved)
    left = second.screens["left"].store
    assert left.get("prompts") == [{"text": "a new prompt", "weight": 1.0}]  # edited: the file
    assert left.get("noise_scale") == 0.33  # not edited: the show


async def test_a_change_on_a_further_screen_schedules_a_save(tmp_path: Path) -> None:
    config, files = show_config(tmp_path, SCREENS)
    daemon = Daemon(config, state_files=files)
    persistence = daemon.persistence
    assert persistence is not None
    persistence.writer.idle = None  # only a marked change writes (no periodic look)
    writes: asyncio.Queue[int] = asyncio.Queue()
    persistence.writer.on_written(writes.put_nowait)
    await persistence.start()
    try:
        async with asyncio.timeout(5):
            await writes.get()  # the state at start
            daemon.screens["left"].store.set("noise_scale", 0.44, source="osc:test")
            await writes.get()
        saved = json.loads(files.show.read_text())
        assert saved["screens"]["left"]["parameters"]["noise_scale"] == 0.44
    finally:
        await persistence.stop()


async def test_a_version_1_file_comes_back_and_is_saved_as_version_2(tmp_path: Path) -> None:
    config, files = show_config(tmp_path, SCREENS)
    files.show.parent.mkdir(parents=True, exist_ok=True)
    files.show.write_bytes(VERSION_1)
    daemon = Daemon(config, state_files=files)
    assert daemon.persistence is not None
    saved = await daemon.persistence.load()
    assert saved is not None
    daemon.persistence.restore(saved)
    assert daemon.store.get("kv_cache_attention_bias") == 0.42
    assert daemon.mapping.director.scene.name == "night"
    # The one session goes to the main primary (the URL says whether it is that server).
    assert daemon.supervisor._leftover == "old-session"
    assert all(
        s._leftover is None
        for s in (*daemon.main_screen.standbys.values(), daemon.screens["left"].primary)
    )
    assert daemon.screens["left"].store.get("prompts")[0]["text"] == "left's own prompt"
    await daemon.persistence.writer.flush()
    data = json.loads(files.show.read_text())
    assert data["version"] == 2 and data["parameters"]["kv_cache_attention_bias"] == 0.42
