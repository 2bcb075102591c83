"""Issue 10's judged case, end to end: a four-on-the-floor groove at 128 with bass and a
pad (rendered from MIDI with sampled instruments), fed to ``soundscape run --audio-file``
on its built-in default (the emulator), is reported as 128 ± 1 BPM in the OSC feedback
within 20 s of the command starting, and stays there."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest
from bench.music.compose import Piece
from bench.music.render import SOUNDFONTS, render
from pythonosc.osc_packet import OscPacket
from pythonosc.udp_client import SimpleUDPClient

from soundscape.audio.synth import write_wav

if shutil.which("fluidsynth") is None or not Path(SOUNDFONTS["timgm6mb"]).exists():
    pytest.skip(
        "needs fluidsynth and timgm6mb-soundfont (scripts/test.sh installs them)",
        allow_module_level=True,
    )

BPM = 128.0
WITHIN = 20.0  # s from the command's start (issue 10)
WATCH = 26.0  # s of feedback looked at: the reading must hold after it is reached


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Feedback(asyncio.DatagramProtocol):
    """The daemon's ``/soundscape/bpm`` and ``/soundscape/beat`` (beat in the bar), with
    arrival times; ``changed`` is set at every datagram (what a waiter re-checks on)."""

    def __init__(self) -> None:
        self.bpm: list[tuple[float, float]] = []
        self.beats: list[tuple[float, int]] = []
        self.changed = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        with contextlib.suppress(Exception):  # other addresses, other shapes: not ours
            for timed in OscPacket(data).messages:
                message = timed.message
                if message.address == "/soundscape/bpm":
                    self.bpm.append((now, float(message.params[0])))
                elif message.address == "/soundscape/beat":
                    self.beats.append((now, int(message.params[0])))
        self.changed.set()

    async def until(self, done: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()


@dataclasses.dataclass
class Daemon:
    """``soundscape run --audio-file`` on its built-in default, its OSC feedback and log."""

    fed: Feedback
    osc_port: int
    log: bytearray
    proc: asyncio.subprocess.Process
    started: float  # monotonic time of the command's start


@contextlib.asynccontextmanager
async def daemon_playing(piece: Piece, tmp_path: Path) -> AsyncIterator[Daemon]:
    """The daemon playing ``piece`` (rendered), its feedback coming to a listener here;
    stopped (SIGINT) on the way out. Its log is read as it comes (a full pipe would
    stall it)."""
    rendered = render(piece, "tests", tmp_path)
    wav = write_wav(tmp_path / "groove.wav", rendered.audio, rendered.sample_rate)
    fed = Feedback()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: fed, local_addr=("127.0.0.1", 0)
    )
    osc_port = free_port(socket.SOCK_DGRAM)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "soundscape", "run", "--audio-file", str(wav),
        "--osc-port", str(osc_port),
        "--osc-feedback", f"127.0.0.1:{transport.get_extra_info('sockname')[1]}",
        "--http", f"127.0.0.1:{free_port(socket.SOCK_STREAM)}",
        "--fresh", "--log-format", "console",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
    )  # fmt: skip
    log = bytearray()

    async def drain(stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            log.extend(chunk)

    assert proc.stderr is not None
    reader = asyncio.create_task(drain(proc.stderr))
    try:
        yield Daemon(fed, osc_port, log, proc, started)
        assert proc.returncode is None, "the daemon ended"
    finally:
        transport.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)
        await reader


async def test_a_128_groove_with_bass_and_pad_reads_128_in_the_osc_feedback(
    tmp_path: Path,
) -> None:
    piece = Piece("house_pad", "house", BPM, seed=41, soundfont="timgm6mb", seconds=30)
    async with daemon_playing(piece, tmp_path) as daemon:
        await asyncio.sleep(WATCH)  # the window watched: the daemon reports as it goes
    readings = [(t - daemon.started, bpm) for t, bpm in daemon.fed.bpm]
    assert readings, daemon.log.decode()[-2000:]
    # The first reading from which every later one is within 128 ± 1.
    settled = next(
        (t for i, (t, _) in enumerate(readings) if all(abs(b - BPM) <= 1 for _, b in readings[i:])),
        None,
    )
    assert settled is not None and settled <= WITHIN, readings[-20:]


async def test_the_one_and_half_time_over_osc_move_the_beat_clock(
    tmp_path: Path,
) -> None:
    # A house groove the daemon reads right; a performer presses /soundscape/downbeat on
    # an off-beat (the "and" after a beat): from then on the clock's beats, sent back as
    # /soundscape/beat, fall half a beat later, with beat 1 of the bar at the press, and
    # stay there against the audio's own evidence. Then /soundscape/tempo/half: the
    # reported tempo is 64 within a second, and stays.
    # 60 s: the file loops at its end, and the watch must not cross that seam.
    piece = Piece("house_pad", "house", BPM, seed=41, soundfont="timgm6mb", seconds=60)
    period = 60.0 / BPM
    async with daemon_playing(piece, tmp_path) as daemon:
        fed = daemon.fed

        # Read right and beating steadily: the tempo at 128, the last eight beats a
        # period apart (while the clock catches up with the audio they come closer).
        def steady() -> bool:
            if not fed.bpm or abs(fed.bpm[-1][1] - BPM) > 1.0 or len(fed.beats) < 9:
                return False
            gaps = np.diff([t for t, _ in fed.beats[-9:]])
            return bool(np.all(np.abs(gaps - period) <= 0.03))

        await fed.until(steady, 25.0)
        # The grid of the last eight beats (their median phase, on the newest's beat).
        times = np.array([t for t, _ in fed.beats[-8:]])
        spread = (times - times[-1] + 0.5 * period) % period - 0.5 * period
        last = times[-1] + float(np.median(spread))
        press = last + 2 * period + 0.5 * period  # the "and" after the beat after next
        await asyncio.sleep(press - time.monotonic())
        client = SimpleUDPClient("127.0.0.1", daemon.osc_port)
        client.send_message("/soundscape/downbeat", [])
        pressed = len(fed.beats)
        watch = press + 11.0
        await fed.until(lambda: bool(fed.beats) and fed.beats[-1][0] >= watch, 15.0)
        # Half time: the tempo the daemon reports goes to 64 at once and stays there.
        client.send_message("/soundscape/tempo/half", [])
        halved = time.monotonic()
        await fed.until(lambda: fed.beats[-1][0] >= halved + 4.0, 10.0)
    assert "downbeat_marked" in daemon.log.decode(), daemon.log.decode()[-2000:]
    before = np.array([t for t, _ in fed.beats[pressed - 8 : pressed]])
    # Before the press: on the groove's grid, half a beat from the press's.
    off = ((before - press) / period) % 1.0
    assert np.all(np.abs(off - 0.5) <= 0.1), off
    # From 4.5 s after it to the end: every beat on the press's grid, beat 1 on its bar
    # lines. (The clock catches up at most 25 % faster or slower than the tempo,
    # [beat] max_correction: a bar line moved by two beats takes eight, 3.75 s.)
    after = [(t, b) for t, b in fed.beats[pressed:] if press + 4.5 <= t <= watch]
    assert len(after) >= 12
    off = np.array([((t - press) / period + 0.5) % 1.0 - 0.5 for t, _ in after])
    assert np.all(np.abs(off) <= 0.1), off
    bars = np.array([(t - press) / (4 * period) for t, b in after if b == 1])
    assert len(bars) >= 3 and np.all(np.abs(bars - np.round(bars)) <= 0.1 / 4), bars
    assert "tempo_octave_set" in daemon.log.decode()
    # The tempo is sent when it changes: 64 soon after the press, and nothing else since.
    since = [(t - halved, bpm) for t, bpm in fed.bpm if t >= halved]
    settled = [t for t, bpm in since if abs(bpm - BPM / 2) <= 1.0]
    assert settled and settled[0] <= 1.0, since
    assert all(abs(bpm - BPM / 2) <= 1.0 for t, bpm in since if t >= settled[0]), since
