"""The [osc] section and its command-line flags."""

from __future__ import annotations

import argparse

import pytest

from soundscape.control.osc_config import (
    OscConfig,
    add_cli_arguments,
    apply_cli,
    parse_host_port,
)
from soundscape.errors import ConfigError
from soundscape.settings import Problem, build


def test_defaults_are_safe() -> None:
    config = build(OscConfig, {}, "osc", [])
    assert (config.host, config.port) == ("127.0.0.1", 9000)
    assert config.feedback == [] and config.echo_to_sender is False
    assert config.check() == []


def test_every_problem_reported_with_its_key() -> None:
    problems: list[Problem] = []
    build(
        OscConfig,
        {
            "port": 70000,
            "allow": ["10.0.0.0/8", "not-a-network"],
            "feedback": ["host-without-port", "127.0.0.1:9001"],
            "echo_match": "ip",
            "feedbak": [],
        },
        "osc",
        problems,
    )
    text = "\n".join(map(str, problems))
    assert "osc.port: 70000 is outside 0..65535" in text
    assert "osc.allow[1]:" in text
    assert "osc.feedback[0]: 'host-without-port': expected host:port" in text
    assert "osc.echo_match:" in text
    assert "osc.feedbak: unknown key (did you mean 'feedback'?)" in text


def test_empty_allow_list_is_an_error() -> None:
    assert OscConfig(allow=[]).check()[0][0] == "allow"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9001", ("127.0.0.1", 9001)),
        ("tablet.local:8000", ("tablet.local", 8000)),
        ("[::1]:9001", ("::1", 9001)),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("bad", ["9001", ":9001", "host:", "host:0", "host:x", "::1:9001"])
def test_parse_host_port_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_host_port(bad)


def test_cli_flags() -> None:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    args = parser.parse_args(
        ["--osc-port", "9100", "--osc-feedback", "127.0.0.1:9001", "--osc-feedback", "[::1]:9002"]
    )
    config = apply_cli(OscConfig(feedback=["127.0.0.1:9001"]), args.osc_port, args.osc_feedback)
    assert config.port == 9100
    assert config.feedback == ["127.0.0.1:9001", "[::1]:9002"]  # added, not duplicated
    untouched = apply_cli(OscConfig(port=9000), None, None)
    assert untouched.port == 9000 and untouched.feedback == []


def test_cli_refuses_bad_values() -> None:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--osc-feedback", "nope"])
    with pytest.raises(ConfigError) as err:
        apply_cli(OscConfig(), 99999, ["x"])
    assert len(err.value.problems) == 2
