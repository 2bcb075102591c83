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
from soundscape.state.snapshot import ShowState, StateFileError, Takeover, decode, encode
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
    assert json.loads(raw)["version"] == 1
    assert decode(raw) == state


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
    [takeover] = daemon.midi.takeover_positions().values()
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
