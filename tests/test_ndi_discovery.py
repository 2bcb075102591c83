"""NDI discovery where mDNS does not work: the runtime's config, and ``soundscape ndi-sources``."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from soundscape.video import ndi_env
from soundscape.video.ndi_discovery import NdiConfig, runtime_config


def test_the_runtime_config_carries_discovery_servers_and_extra_ips():
    config = NdiConfig(discovery=" 10.0.0.5:5959, 10.0.0.6 ", extra_ips=["10.0.0.7"], loopback=True)
    assert runtime_config(config) == {
        "ndi": {"networks": {"ips": "127.0.0.1,10.0.0.7", "discovery": "10.0.0.5:5959,10.0.0.6"}}
    }
    assert runtime_config(NdiConfig(loopback=True)) == ndi_env.LOOPBACK_CONFIG
    assert NdiConfig(extra_ips=["stage-pc"]).check() == [
        ("extra_ips[0]", "'stage-pc' is not an IP address")
    ]
    assert NdiConfig(discovery="host:notaport").check() != []


def test_nothing_is_written_unless_asked_so_the_users_own_ndi_setup_decides(tmp_path, monkeypatch):
    monkeypatch.delenv("NDI_CONFIG_DIR", raising=False)
    monkeypatch.setattr(ndi_env, "_current", NdiConfig())  # this process's setting, restored
    assert ndi_env.configure(NdiConfig(), tmp_path) is None
    assert "NDI_CONFIG_DIR" not in os.environ and not list(tmp_path.iterdir())
    directory = ndi_env.configure(NdiConfig(discovery="10.0.0.5"), tmp_path / "ndi")
    assert os.environ["NDI_CONFIG_DIR"] == str(directory)
    written = json.loads((tmp_path / "ndi" / "ndi-config.v1.json").read_text())
    assert written["ndi"]["networks"] == {"ips": "", "discovery": "10.0.0.5"}


SENDER = """
import sys, time
from fractions import Fraction
import numpy as np
from cyndilib import FourCC, Sender
from cyndilib.video_frame import VideoSendFrame
sender = Sender(sys.argv[1], clock_video=False)
frame = VideoSendFrame()
frame.set_resolution(64, 32)
frame.set_frame_rate(Fraction(30))
frame.set_fourcc(FourCC.BGRA)
sender.set_video_frame(frame)
with sender:
    data = np.zeros(64 * 32 * 4, dtype=np.uint8)
    print("sending", flush=True)
    while True:  # until the test kills it
        sender.write_video(data)
        time.sleep(1 / 30)
"""


@pytest.mark.ndi
@pytest.mark.skipif(importlib.util.find_spec("cyndilib") is None, reason="cyndilib not installed")
async def test_ndi_sources_with_loopback_sees_a_sender_on_this_machine(tmp_path: Path):
    name = f"find-{uuid.uuid4().hex[:6]}"
    # The sender runs with the runtime's defaults: a third-party sender on the stage PC.
    env = {k: v for k, v in os.environ.items() if k != "NDI_CONFIG_DIR"}
    sender = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SENDER, name,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert sender.stdout is not None
        assert await asyncio.wait_for(sender.stdout.readline(), 30) == b"sending\n"
        lister = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "soundscape.cli", "ndi-sources", "--ndi-loopback",
            "--seconds", "4",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**env, "XDG_RUNTIME_DIR": str(tmp_path)},
        )  # fmt: skip
        out, err = await asyncio.wait_for(lister.communicate(), 60)
        assert lister.returncode == 0, err.decode()
        assert any(line.endswith(f"({name})") for line in out.decode().splitlines()), out
    finally:
        sender.kill()
        await sender.wait()
