"""The command line as a new user meets it: clear refusals, one exit code, help that says it."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from soundscape.cli import BAD_CONFIG, _build_parser
from soundscape.demo_show import demo_config, layer


async def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "soundscape.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- refusals


async def test_a_scope_url_without_a_scheme_is_refused_at_once_in_one_line():
    began = time.monotonic()
    code, _, err = await cli("run", "--scope-url", "127.0.0.1:8000")
    assert code == BAD_CONFIG == 2
    assert err.strip().splitlines() == [
        "--scope-url: '127.0.0.1:8000' is not an http(s) URL (did you mean 'http://127.0.0.1:8000'?)"
    ]
    assert time.monotonic() - began < 15  # refused before anything starts (no retrying)


async def test_a_bad_config_has_one_exit_code_for_run_and_check_config(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text('[scope]\nurl = "127.0.0.1:8000"\n')
    for command in (["run", "--config", str(path)], ["check-config", str(path)]):
        code, _, err = await cli(*command)
        assert code == BAD_CONFIG, command
        assert "scope.url: '127.0.0.1:8000' is not an http(s) URL" in err


async def test_check_config_checks_the_files_it_refers_to(tmp_path: Path):
    path = tmp_path / "show.toml"
    path.write_text(
        f'[audio]\nenabled = true\nfile = "{tmp_path}/missing.wav"\n'
        f'[state]\ndir = "{tmp_path}/state"\n'
        f'[[scenes.list]]\nname = "a"\nprompts = ["x"]\nreference_image = "{tmp_path}/a.png"\n'
        f'[video_in]\nsource = "{tmp_path}/clip.mp4"\n'
    )
    code, _, err = await cli("check-config", str(path))
    assert code == BAD_CONFIG
    assert "audio.file" in err and "missing.wav" in err
    assert "scenes.list[0].reference_image" in err
    assert "video_in.source" in err and "clip.mp4" in err
    assert "3 error(s)" in err  # the state dir can be created: not an error
    (tmp_path / "missing.wav").write_bytes(b"RIFF")
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "clip.mp4").write_bytes(b"")
    code, out, err = await cli("check-config", str(path))
    assert (code, out.strip()) == (0, f"{path}: ok"), err


async def test_an_osc_port_asked_for_and_taken_is_an_error_exit_in_one_line():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        code, _, err = await cli(
            "run", "--osc-port", str(port), "--scope-url", "http://127.0.0.1:1",
            "--http", f"127.0.0.1:{free_port()}", "--log-format", "console",
        )  # fmt: skip
    assert code == 1
    failed = [line for line in err.splitlines() if "startup_failed" in line]
    assert len(failed) == 1 and f"OSC cannot listen on 127.0.0.1:{port}" in failed[0]
    # And a run with no outputs says where the video goes, once.
    assert (
        sum("video goes nowhere; add --ndi NAME or [[outputs]]" in x for x in err.splitlines()) == 1
    )


@pytest.mark.skipif(Path("/dev/snd/seq").exists(), reason="this machine has an ALSA sequencer")
async def test_midi_ports_without_a_midi_system_says_so_in_one_line():
    code, out, err = await cli(
        "midi-ports", env={"MIDO_BACKEND": "mido.backends.rtmidi/LINUX_ALSA"}
    )
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "unavailable" in err


# --------------------------------------------------------------------------- help


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_subcommand_has_a_description_and_every_flag_help_and_its_default(name):
    command = subcommands()[name]
    assert command.description, f"{name} has no description"
    text = command.format_help()
    for action in command._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        if action.option_strings and action.default not in (None, False, []):
            assert f"default: {action.default}" in " ".join(text.split()), (
                f"{name} {action.option_strings[0]} does not show its default"
            )


# --------------------------------------------------------------------------- the demo


def test_a_config_file_is_layered_over_the_demo_show(tmp_path: Path):
    path = tmp_path / "mine.toml"
    path.write_text("[osc]\nport = 9100\n[scenes]\nrotate_bars = 0\n")
    config = demo_config(path)
    demo = demo_config(None)
    assert config.osc.port == 9100 and config.scenes.rotate_bars == 0
    assert [s.name for s in config.scenes.list] == [s.name for s in demo.scenes.list] != []
    assert config.mapping.rules == demo.mapping.rules and config.audio.enabled
    assert layer({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}


async def test_status_reports_a_running_demo_as_streaming_and_the_demo_cleans_up(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "soundscape.cli", "demo", "--http", f"127.0.0.1:{port}",
        "--osc-port", "0", "--log-format", "json",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            while True:  # the demo process reports nothing else to wait on
                code, out, _ = await cli("status", "--http", f"127.0.0.1:{port}", timeout=20)
                if code == 0 and out.startswith("session   streaming"):
                    break
                assert demo.returncode is None, "the demo ended"
                await asyncio.sleep(0.5)
        assert demo_dirs(tmp_path)
    finally:
        demo.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(demo.communicate(), 30)
    assert demo.returncode == 0, err.decode()[-2000:]
    # The generated 1.5 MB loop went with the demo.
    assert not demo_dirs(tmp_path)


def demo_dirs(tmp: Path) -> list[Path]:
    return [p for p in tmp.iterdir() if p.name.startswith("soundscape-demo-")]


def test_the_demo_keeps_its_ndi_source_beside_outputs_the_performer_adds():
    from soundscape import cli as cli_module

    if not cli_module.ndi_installed():
        pytest.skip("the ndi extra (cyndilib) is not installed")
    args = cli_module._build_parser().parse_args(["demo", "--ndi", "mine"])
    args.demo_loop = None
    names = [o.name for o in cli_module._load_config(args).outputs]
    assert names == ["soundscape", "mine"]
    args = cli_module._build_parser().parse_args(["demo", "--ndi", "soundscape"])
    args.demo_loop = None
    assert [o.name for o in cli_module._load_config(args).outputs] == ["soundscape"]
