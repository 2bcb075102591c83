"""The ``[osc]`` config section and the ``--osc-port`` / ``--osc-feedback`` flags."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
from collections.abc import Sequence

from soundscape.errors import ConfigError
from soundscape.scope.params import INTERPOLATION_METHODS
from soundscape.settings import setting

# Loopback and the private LAN ranges: a tablet on the stage network gets in,
# the internet does not.
DEFAULT_ALLOW = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
]


def parse_host_port(text: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:9001"`` for IPv6) → (host, port); ValueError says why."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r}: expected host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address as [addr]:port")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r}: port {port_text!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is outside 1..65535")
    return host, port


@dataclasses.dataclass
class OscConfig:
    """OSC in (control) and out (feedback)."""

    enabled: bool = setting(True, "Listen for OSC.")
    host: str = setting(
        "127.0.0.1",
        "Address to listen on: 127.0.0.1 (this machine only) or 0.0.0.0 (the network, "
        "filtered by allow).",
    )
    port: int = setting(
        9000,
        "UDP port (0 = any free port; Scope itself takes OSC on its HTTP port 8000).",
        low=0,
        high=65535,
    )
    allow: list[str] = setting(
        DEFAULT_ALLOW, "Source networks (CIDR) accepted; others are dropped and counted."
    )
    feedback: list[str] = setting(
        [], "Where state changes are sent, as host:port (TouchOSC, TouchDesigner, Max)."
    )
    feedback_rate: float = setting(
        30.0,
        "Messages per second at most per address and target (latest value wins).",
        low=1,
        high=1000,
    )
    echo_to_sender: bool = setting(
        False, "Also send a controller its own changes (off: its fader never jumps back)."
    )
    echo_match: str = setting(
        "host",
        "How a feedback target is recognised as the sender: host (same IP) or address "
        "(same IP and port, for several controllers on one machine).",
        choices=("host", "address"),
    )
    prompt_transition_steps: int = setting(
        0, "/scope/prompt makes a transition over this many steps (0 = cut).", low=0, high=1000
    )
    prompt_transition_method: str = setting(
        "linear", "Method of those transitions: linear or slerp.", choices=INTERPOLATION_METHODS
    )
    time_tags: str = setting(
        "honour",
        "Bundles with a future time tag: honour (apply then; needs synced clocks) or ignore "
        "(apply on arrival; for a sender whose clock runs ahead).",
        choices=("honour", "ignore"),
    )
    max_bundle_delay: float = setting(
        60.0, "Bundles time-tagged further ahead than this (seconds) are refused.", low=0
    )

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if not self.host.strip():
            problems.append(("host", "empty address"))
        if not self.allow:
            problems.append(("allow", "empty: nothing could reach OSC (0.0.0.0/0 and ::/0 = all)"))
        for i, net in enumerate(self.allow):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as err:
                problems.append((f"allow[{i}]", str(err)))
        for i, target in enumerate(self.feedback):
            try:
                parse_host_port(target)
            except ValueError as err:
                problems.append((f"feedback[{i}]", str(err)))
        return problems

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(net, strict=False) for net in self.allow]

    def feedback_targets(self) -> list[tuple[str, int]]:
        return [parse_host_port(target) for target in self.feedback]


# --------------------------------------------------------------------------- CLI


def host_port_arg(text: str) -> str:
    """argparse ``type=`` for HOST:PORT: checks it, keeps the text."""
    try:
        parse_host_port(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """``--osc-port PORT`` and repeatable ``--osc-feedback HOST:PORT``."""
    parser.add_argument(
        "--osc-port",
        type=int,
        metavar="PORT",
        help="OSC UDP port (overrides [osc].port, default 9000)",
    )
    parser.add_argument(
        "--osc-feedback",
        type=host_port_arg,
        action="append",
        metavar="HOST:PORT",
        help="send OSC feedback there too (repeatable; adds to [osc].feedback)",
    )


def apply_cli(config: OscConfig, port: int | None, feedbacks: Sequence[str] | None) -> OscConfig:
    """The config with the flags applied; ConfigError lists every bad value."""
    problems = []
    if port is not None and not 0 <= port <= 65535:
        problems.append(f"--osc-port: {port} is outside 0..65535")
    for target in feedbacks or ():
        try:
            parse_host_port(target)
        except ValueError as err:
            problems.append(f"--osc-feedback: {err}")
    if problems:
        raise ConfigError(problems, "command line")
    feedback = list(config.feedback)
    feedback += [t for t in feedbacks or () if t not in feedback]
    return dataclasses.replace(
        config, port=config.port if port is None else port, feedback=feedback
    )
