"""Port names, arrival stamps, backend choice, and MIDI being unavailable (pure or subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from soundscape.control.midi_ports import _PortClock, choose_backend, is_own, match_ports
from soundscape.errors import BackendUnavailable


def test_ports_match_by_case_insensitive_substring_but_never_our_own() -> None:
    names = [
        "X-TOUCH MINI:X-TOUCH MINI MIDI 1 24:0",
        "Launch Control XL:Launch Control XL MIDI 1",
        "soundscape:out X-TOUCH MINI",
        "soundscape-01:in something",
    ]
    assert match_ports(names, ["x-touch"], "soundscape") == [names[0]]
    assert match_ports(names, [], "soundscape") == names[:2]
    assert is_own("Soundscape-12:in a", "soundscape")
    assert not is_own("soundscapes:x", "soundscape")


def test_port_clock_uses_rtmidi_deltas_not_late_pickups() -> None:
    clock = _PortClock("p")
    assert clock.stamp(0.0, 10.000) == 10.000
    # The reader picked these up late (GIL, polling), but the deltas say 20 ms apart.
    assert clock.stamp(0.020, 10.027) == pytest.approx(10.020)
    assert clock.stamp(0.020, 10.041) == pytest.approx(10.040)
    # A message seen earlier than the timeline predicts lowers the anchor.
    assert clock.stamp(0.020, 10.058) == pytest.approx(10.058)
    assert clock.stamp(0.020, 10.090) == pytest.approx(10.078)


LINUX = pytest.mark.skipif(sys.platform != "linux", reason="ALSA and JACK APIs: Linux wheels")


@LINUX
def test_backend_names() -> None:
    assert choose_backend("auto", {"MIDO_BACKEND": "mido.backends.rtmidi/LINUX_ALSA"}).name == (
        "LINUX_ALSA"
    )
    assert choose_backend("alsa").name == "LINUX_ALSA"
    with pytest.raises(BackendUnavailable, match="not available"):
        choose_backend("mido.backends.rtmidi/NO_SUCH_API")


SCRIPT = """
import asyncio
import json
from structlog.testing import capture_logs
from soundscape.control.commands import CommandBus
from soundscape.control.midi import MidiControl
from soundscape.control.midi_config import MidiConfig
from soundscape.scope.params import ParameterStore

async def main():
    control = MidiControl(MidiConfig(enabled=True, backend="jack", poll_interval=0.05),
                          ParameterStore(), CommandBus())
    with capture_logs() as logs:
        await control.start()
        await control.ports.scan()
        await control.stop()
    print(json.dumps([e["event"] for e in logs]))

asyncio.run(main())
"""


@LINUX
def test_no_midi_system_is_one_log_line_not_a_crash() -> None:
    # A JACK server that does not exist: in a subprocess, so the real one is untouched.
    env = {**os.environ, "JACK_DEFAULT_SERVER": "soundscape-absent", "JACK_NO_START_SERVER": "1"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    events = json.loads(result.stdout.strip().splitlines()[-1])
    assert events.count("midi_unavailable") == 1
    assert "midi_backend" in events
