"""Ableton Link: two real peers on this machine, inside a private network namespace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytest.importorskip("aalink", reason="the 'link' extra (aalink) is not installed")

HERE = Path(__file__).resolve().parent


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def netns() -> str:
    """A namespace with only a multicast-enabled loopback: Link peers meet there, nowhere else."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs root and iproute2 (ip netns) for a private network")
    name = f"linktest-{uuid.uuid4().hex[:8]}"
    if _ip("netns", "add", name).returncode != 0:
        pytest.skip("ip netns is not available here")
    try:
        for cmd in (
            ("link", "set", "lo", "up"),
            ("link", "set", "lo", "multicast", "on"),
            ("route", "add", "224.0.0.0/4", "dev", "lo"),
        ):
            _ip("netns", "exec", name, "ip", *cmd).check_returncode()
        yield name
    finally:
        _ip("netns", "delete", name)


def test_daemon_leads_at_124_then_follows_a_peer_at_133(netns: str) -> None:
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, str(HERE / "link_peers.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["peer_follows_124"] is not None and out["peer_follows_124"] < 1.0
    assert out["peer_phase_follows"] is not None and out["peer_phase_follows"] < 3.0
    assert out["clock_follows_133"] is not None and out["clock_follows_133"] < 1.0
    assert out["active"]


def test_the_daemon_joins_link_from_its_config(netns: str) -> None:
    """[beat] link = true: tap tempo leads the session at 124; a peer's 133 then drives it."""
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, str(HERE / "link_engine.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["bridge"] and out["daemon_source"] == "tap"
    assert out["peer_follows_124"] is not None and out["peer_follows_124"] < 1.0
    assert out["peer_phase_follows"] is not None and out["peer_phase_follows"] < 3.0
    assert out["clock_follows_133"] is not None and out["clock_follows_133"] < 1.0
    assert out["source"] == "link"
