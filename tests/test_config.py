"""Config: every error at once, with key path, line and "did you mean"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from soundscape import config as config_mod
from soundscape.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

BROKEN = """\
[scope]
url = "http://127.0.0.1:8000"
request_timout = 5

[pipeline]
width = 500
height = 320
quantization = "fp8_e4m3fn"
vace_enabled = true

[parameters]
noise_scale = 3.0
denoising_step_list = [250, 500]

[session]
stall_timeout = "soon"
"""


def test_defaults_are_valid_and_target_local_scope():
    config = config_mod.load(None)
    assert config.scope.url == "http://127.0.0.1:8000"
    assert config.pipeline.pipeline_ids == ["longlive"]
    assert (config.pipeline.width, config.pipeline.height) == (576, 320)
    params = config.initial_parameters()
    assert params["pipeline_ids"] == ["longlive"] and params["input_mode"] == "text"


def test_shipped_configs_are_valid():
    config_mod.load(ROOT / "config" / "soundscape.toml")
    show = config_mod.load(ROOT / "config" / "examples" / "show.toml")
    assert len(show.scenes.list) == 3 and len(show.pipeline.loras) == 2
    assert show.midi.mappings and show.osc.feedback


def test_every_error_reported_at_once_with_line(tmp_path):
    path = tmp_path / "show.toml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError) as err:
        config_mod.load(path)
    problems = err.value.problems
    text = "\n".join(problems)
    assert f"{path}:3: scope.request_timout: unknown key (did you mean 'request_timeout'?)" in text
    assert f"{path}:6: pipeline.width: 500 is not divisible by 16" in text
    assert "FP8 quantization cannot be combined with vace_enabled" in text
    assert f"{path}:12: parameters.noise_scale: 3.0 is outside 0..1" in text
    assert f"{path}:16: session.stall_timeout: expected a number" in text
    assert len(problems) == 5  # nothing hidden behind the first error, nothing doubled


def test_parameter_rules_beyond_ranges_are_checked(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[parameters]\nprompt_interpolation_method = "slerp"\nprompts = ["a"]\n')
    with pytest.raises(ConfigError, match="slerp needs exactly 2 prompts"):
        config_mod.load(path)


def test_unreadable_and_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        config_mod.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[scope\nurl=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config_mod.load(bad)


def test_check_config_command(tmp_path):
    path = tmp_path / "show.toml"
    path.write_text(BROKEN)
    result = subprocess.run(
        [sys.executable, "-m", "soundscape.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2  # the one exit code for a bad config (as `run`)
    assert "did you mean 'request_timeout'" in result.stderr
    assert "5 error(s)" in result.stderr
    good = subprocess.run(
        [
            sys.executable,
            "-m",
            "soundscape.cli",
            "check-config",
            str(ROOT / "config" / "soundscape.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr


def test_example_config_documents_every_key():
    from soundscape.settings import describe

    text = (ROOT / "config" / "soundscape.toml").read_text()
    missing = []
    for key, doc, _default in describe(config_mod.Config):
        _section, _, name = key.rpartition(".")
        if f"{name} =" not in text and f"[[{key}]]" not in text:
            missing.append(key)
        assert doc, f"{key} has no doc"
    assert not missing, f"config/soundscape.toml does not document: {missing}"


def test_configuration_reference_is_current():
    from soundscape.config_reference import render

    current = (ROOT / "docs" / "configuration.md").read_text()
    assert current == render(), "run: python -m soundscape.config_reference > docs/configuration.md"


def test_an_error_in_a_scope_list_entry_points_at_its_own_line(tmp_path):
    """[[scope]] entries share their keys: the line is the one of the entry named."""
    path = tmp_path / "servers.toml"
    path.write_text(
        '[[scope]]\nurl = "http://127.0.0.1:8000"\n\n'
        '[[scope]]\nrole = "standby"\nurl = "http://127.0.0.1:8001"\n\n'
        '[[scope]]\nrole = "standby"\nstandby_for = "lft"\nurl = "http://127.0.0.1:8002"\n'
        '\n[[scope]]\nrole = "standby"\nurl = "http://127.0.0.1:8001/"\n'
    )
    with pytest.raises(ConfigError) as err:
        config_mod.load(path)
    text = "\n".join(err.value.problems)
    assert f"{path}:10: scope[2].standby_for: no screen 'lft' (screens: main)" in text
    assert f"{path}:15: scope[3].url: http://127.0.0.1:8001/ is already server 'standby'" in text
