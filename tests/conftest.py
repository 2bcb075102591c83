"""Shared fixtures: a real JACK server (dummy driver) for audio and MIDI tests, and a small
in-process Scope emulator (a test file may define its own ``emulator`` with other settings)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from soundscape.emulator import Emulator, EmulatorConfig


@pytest.fixture(autouse=True)
def _private_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads or writes the user's saved show (~/.local/state/soundscape):
    daemons started by tests, in process or as subprocesses, keep their state here."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)


JACK_RATE = 48000
JACK_PERIOD = 256


def _jack_running() -> bool:
    if shutil.which("jack_lsp") is None:
        return False
    result = subprocess.run(["jack_lsp"], capture_output=True, timeout=10)
    return result.returncode == 0


@pytest.fixture(scope="session")
def jack_server() -> Iterator[None]:
    """A JACK server for the session: the one CI started, or one started here.

    Skips (with the reason) when jackd is not installed. Sets the mido backend
    to rtmidi over JACK, since ALSA has no sequencer device on these machines.
    """
    os.environ.setdefault("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK")
    if _jack_running():
        yield
        return
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (apt-get install jackd2); CI installs it")
    proc = subprocess.Popen(
        ["jackd", "--no-realtime", "-d", "dummy", "-r", str(JACK_RATE), "-p", str(JACK_PERIOD)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    # Polling is the only readiness signal jackd offers (no notify socket).
    while not _jack_running():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip("jackd did not start")
        time.sleep(0.1)
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emu = Emulator(EmulatorConfig(width=320, height=192, fps=30, load_time=0.2))
    await emu.start(host="127.0.0.1", port=0)
    try:
        yield emu
    finally:
        await emu.stop()
