"""The systemd unit: it verifies, it is hardened to an exposure of 2.5 or lower, and the
lines that keep audio, MIDI, reload and the state directory working are there."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "soundscape.service"
MAX_EXPOSURE = 2.5

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze missing (apt-get install systemd)",
)


def _settings() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, in order (a key may repeat)."""
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key, []).append(value)
    return out


@pytest.fixture
def installed_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart= pointing at the installed console script (verify checks it)."""
    exe = shutil.which("soundscape")
    assert exe, "the soundscape console script is installed"
    path = tmp_path / "soundscape.service"
    path.write_text(UNIT.read_text().replace("/opt/soundscape/venv/bin/soundscape", exe))
    return path


@needs_systemd_analyze
def test_unit_passes_systemd_analyze_verify(installed_unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(installed_unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "soundscape.service" not in result.stderr, result.stderr


@needs_systemd_analyze
def test_unit_exposure_is_at_most_2_5(installed_unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(installed_unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", text)
    assert match, text
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, text


def test_unit_keeps_audio_midi_reload_and_state_working() -> None:
    s = _settings()
    assert s["Type"] == ["notify"] and s["WatchdogSec"], "sd_notify with a watchdog"
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"], "systemctl reload → SIGHUP"
    assert s["StateDirectory"] == ["soundscape"], "the performer's state lives in the state dir"
    # MIDI learn saves to the state directory: the config stays read-only.
    assert "ReadWritePaths" not in s
    # Sound cards and MIDI ports stay reachable; the device list is closed otherwise.
    assert s["DevicePolicy"] == ["closed"]
    assert "char-alsa rw" in s["DeviceAllow"]
    assert "PrivateDevices" not in s, "PrivateDevices would hide /dev/snd"
    assert s["SupplementaryGroups"] == ["audio"]
    # Realtime audio threads (JACK, PortAudio) must be allowed.
    assert "RestrictRealtime" not in s and s["LimitRTPRIO"]
    families = s["RestrictAddressFamilies"][0].split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"} <= set(families)
    assert s["CapabilityBoundingSet"] == [""]
    assert s["SystemCallFilter"][0] == "@system-service"
    assert s["Restart"] == ["always"] and s["StartLimitIntervalSec"] == ["0"]
