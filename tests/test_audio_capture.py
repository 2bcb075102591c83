"""Audio sources: the sample clock, files through PyAV, and real capture through JACK."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from structlog.testing import capture_logs

from soundscape.audio.capture import AudioBlock, DeviceCapture, FileSource, SampleClock
from soundscape.audio.config import AudioConfig
from soundscape.audio.devices import list_input_devices
from soundscape.audio.engine import AudioEngine
from soundscape.audio.features import Features
from soundscape.audio.synth import drum_loop, write_wav

SR = 48000


async def wait_status(source: DeviceCapture | FileSource, status: str, timeout: float) -> None:
    """Wait on the source's change event until it reports ``status``."""
    async with asyncio.timeout(timeout):
        while source.status != status:
            source.changed.clear()
            await source.changed.wait()


async def wait_attempts(source: DeviceCapture | FileSource, n: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while source.attempts < n:
            source.changed.clear()
            await source.changed.wait()


async def run_until(
    source: DeviceCapture | FileSource, done: asyncio.Event, seconds: float
) -> None:
    """Start ``source``, wait for ``done`` (at most ``seconds``), stop it."""
    await source.start()
    try:
        async with asyncio.timeout(seconds):
            await done.wait()
    finally:
        await source.stop()


# --------------------------------------------------------------------------- sample clock


def test_sample_clock_ignores_callback_jitter() -> None:
    clock = SampleClock(SR)
    rng = np.random.default_rng(0)
    block = 256
    stamps = []
    for k in range(2000):
        ideal_end = 100.0 + (k + 1) * block / SR
        arrival = ideal_end + 0.002 + rng.uniform(0, 0.0015)  # late by 2-3.5 ms, never early
        stamps.append(clock.stamp(block, arrival))
    steps = np.diff(stamps)
    assert np.all(steps > 0)
    assert np.max(np.abs(steps - block / SR)) < 0.02 * block / SR
    # Anchored to the earliest arrivals: within the 2 ms fixed latency, not the jitter.
    truth = 100.0 + np.arange(2000) * block / SR
    assert np.median(np.array(stamps[500:]) - truth[500:]) == pytest.approx(0.002, abs=0.0005)


def test_sample_clock_follows_drift_and_resyncs_after_a_gap() -> None:
    clock = SampleClock(SR)
    block = 512
    card_rate = SR * (1 + 200e-6)  # the card runs 200 ppm fast
    t = 0.0
    for k in range(4000):
        arrival = 50.0 + (k + 1) * block / card_rate + 0.001
        t = clock.stamp(block, arrival)
    assert t == pytest.approx(50.0 + 3999 * block / card_rate + 0.001, abs=0.001)
    gap_arrival = arrival + 2.0 + block / SR  # two seconds of audio lost
    assert clock.stamp(block, gap_arrival) == pytest.approx(gap_arrival - block / SR)
    assert clock.resyncs == 1


# --------------------------------------------------------------------------- files


class Sink:
    """Collects blocks; lets a test wait (on an event) until it has ``n`` of them."""

    def __init__(self) -> None:
        self.blocks: list[AudioBlock] = []
        self._want = 0
        self._enough = asyncio.Event()

    def __call__(self, block: AudioBlock) -> None:
        self.blocks.append(block)
        if self._want and len(self.blocks) >= self._want:
            self._enough.set()

    async def wait_for(self, n: int, timeout: float) -> None:
        self._want = n
        if len(self.blocks) >= n:
            return
        self._enough.clear()
        async with asyncio.timeout(timeout):
            await self._enough.wait()


async def test_wav_file_is_read_back_exactly_and_looped(tmp_path: Path) -> None:
    loop = drum_loop(128, 1.0, seed=1)
    path = loop.write_wav(tmp_path / "loop.wav")
    sink = Sink()
    src = FileSource(path, sink, block_size=256, realtime=False)
    await src.start()
    try:
        need = (len(loop.audio) * 5 // 2) // 256
        await sink.wait_for(need, 10)
    finally:
        await src.stop()
    blocks = sink.blocks
    got = np.concatenate([b.samples for b in blocks[:need]])
    expected = np.tile(np.round(loop.audio * 32767) / 32767, 3)[: len(got)]
    assert np.max(np.abs(got - expected)) < 1e-4  # 16-bit quantisation only, across loop seams
    assert [b.t for b in blocks[:need]] == [k * 256 / SR for k in range(need)]
    assert src.loops >= 2


def _write_flac(path: Path, audio: np.ndarray, rate: int) -> None:
    """Stereo 44.1 kHz FLAC written with PyAV (exercises decoding and resampling)."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate, layout="stereo")
        for i in range(0, len(pcm), 4096):
            chunk = pcm[i : i + 4096]
            frame = av.AudioFrame.from_ndarray(
                np.repeat(chunk, 2)[None, :], format="s16", layout="stereo"
            )
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


async def test_flac_at_44k1_is_resampled_to_48k_mono_and_analysed(tmp_path: Path) -> None:
    loop = drum_loop(128, 6.0, sample_rate=44100, seed=2)
    path = tmp_path / "loop.flac"
    _write_flac(path, loop.audio, 44100)
    config = AudioConfig(block_size=512)
    feats: list[Features] = []
    engine = AudioEngine(
        config,
        source_factory=lambda cfg, cb: FileSource(path, cb, block_size=512, loop=False,
                                                  realtime=False),
    )  # fmt: skip
    engine.subscribe(feats.append)
    await engine.start()
    try:
        async with asyncio.timeout(20):
            await engine.source.finished.wait()  # type: ignore[attr-defined]
    finally:
        await engine.stop()
    samples = len(feats) * 512
    assert abs(samples - 6.0 * SR) <= 2 * 512  # 6 s at 48 kHz, not 44.1 kHz
    assert abs(feats[-1].bpm - 128.0) <= 1.0  # resampled correctly: same tempo


async def test_realtime_file_never_runs_ahead_of_its_timeline(tmp_path: Path) -> None:
    path = drum_loop(120, 0.5, seed=3).write_wav(tmp_path / "short.wav")
    done = asyncio.Event()
    seen: list[tuple[float, float]] = []

    def on_block(block: AudioBlock) -> None:
        seen.append((block.t, time.monotonic()))
        if len(seen) == 40:
            done.set()

    await run_until(FileSource(path, on_block, block_size=512, realtime=True), done, 10)
    times = [t for t, _ in seen]
    assert np.allclose(np.diff(times), 512 / SR)  # counted from samples, across the loop seam
    # Delivered only once the block's last sample is "due": a player, not a dump.
    assert all(arrived >= t + 512 / SR - 0.002 for t, arrived in seen)


class LoopSteps:
    """Counts the event loop's iterations: a callback that schedules itself again
    runs once per iteration."""

    def __init__(self) -> None:
        self.count = 0
        self.active = False
        self._handle: asyncio.Handle | None = None

    def _tick(self) -> None:
        self.count += 1
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def __enter__(self) -> LoopSteps:
        self.active = True
        self._tick()
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False
        if self._handle is not None:
            self._handle.cancel()


def slow_consumer(
    steps: LoopSteps, seen: list[int], done: asyncio.Event, want: int, ms: float
) -> Callable[[AudioBlock], None]:
    """A consumer slower than real time (the analysis after a stall, in effect): every
    block after the first is overdue when it is delivered."""

    def on_block(block: AudioBlock) -> None:
        if steps.active:  # blocks before the counting starts are consumed, not counted
            seen.append(steps.count)
        time.sleep(ms / 1000)  # the consumer's own work, not synchronisation
        if len(seen) == want:
            done.set()

    return on_block


async def test_overdue_file_blocks_are_delivered_one_a_loop_step(tmp_path: Path) -> None:
    # Blocks that fall behind the timeline are caught up, but never two in one step:
    # the analysis runs on the loop, and a burst of them would hold it for all.
    path = drum_loop(120, 2.0, seed=3).write_wav(tmp_path / "loop.wav")
    seen: list[int] = []
    done = asyncio.Event()
    with LoopSteps() as steps:
        on_block = slow_consumer(steps, seen, done, 20, ms=15)  # blocks are 10.7 ms
        await run_until(FileSource(path, on_block, block_size=512, realtime=True), done, 10)
    assert len(set(seen)) == len(seen), seen


async def test_missing_file_is_logged_once_retried_and_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "later.wav"
    blocks: list[AudioBlock] = []
    src = FileSource(path, blocks.append, block_size=256, realtime=False,
                     retry_initial=0.01, retry_max=0.05)  # fmt: skip
    with capture_logs() as logs:
        await src.start()
        try:
            await wait_attempts(src, 3, 5)
            write_wav(path, drum_loop(120, 0.5).audio)
            await wait_status(src, "running", 5)
        finally:
            await src.stop()
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [e["event"] for e in warnings] == ["audio_unavailable"]
    assert "cannot open" in warnings[0]["reason"]
    assert any(e["event"] == "audio_started" for e in logs)


async def test_a_file_that_is_not_audio_is_retried_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("not audio at all")
    src = FileSource(path, lambda b: None, retry_initial=0.01, retry_max=0.02)
    with capture_logs() as logs:
        await src.start()
        try:
            await wait_attempts(src, 3, 5)
        finally:
            await src.stop()
    assert sum(e["log_level"] == "warning" for e in logs) == 1
    assert src.status == "stopped"


# --------------------------------------------------------------------------- JACK


def _need_pyaudio() -> None:
    pytest.importorskip("pyaudio", reason="PyAudio is not installed (the 'audio' extra)")


def _portaudio_ports() -> set[str]:
    out = subprocess.run(["jack_lsp"], capture_output=True, text=True, timeout=10).stdout
    return {p for p in out.splitlines() if re.match(r"^PortAudio[^:]*:in_\d+$", p)}


@pytest.mark.jack
def test_jack_system_device_is_listed(jack_server: None) -> None:
    _need_pyaudio()
    names = [d.name for d in list_input_devices()]
    assert "system" in names


@pytest.mark.jack
async def test_capture_through_jack_tracks_a_128_bpm_loop(
    jack_server: None, tmp_path: Path
) -> None:
    _need_pyaudio()
    if shutil.which("jack-play") is None:
        pytest.skip("jack-play is not installed (apt-get install jack-tools)")
    loop = drum_loop(128, 10.0, seed=21)
    wav = loop.write_wav(tmp_path / "loop128.wav")
    before = _portaudio_ports()
    engine = AudioEngine(AudioConfig(enabled=True, device="SYS", block_size=256))
    feats: list[Features] = []
    locked = asyncio.Event()

    def on_features(f: Features) -> None:
        feats.append(f)
        if abs(f.bpm - 128.0) <= 1.0 and sum(x.beat for x in feats) >= 4:
            locked.set()

    engine.subscribe(on_features)
    await engine.start()
    player = None
    try:
        await wait_status(engine.source, "running", 20)  # type: ignore[arg-type]
        ours = sorted(_portaudio_ports() - before)
        assert ours, "the capture's JACK ports did not appear"
        client = ours[0].split(":")[0]
        env = {**os.environ, "JACK_PLAY_CONNECT_TO": f"{client}:in_%d"}  # jack-play counts from 1
        player = subprocess.Popen(  # noqa: ASYNC220 - fire and forget; killed below
            ["jack-play", "-c", "3", str(wav)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        async with asyncio.timeout(15):
            await locked.wait()
    finally:
        if player is not None:
            player.kill()
            player.wait()
        await engine.stop()
    start = next(f.t for f in feats if f.level_db > -50)  # the music reaches us
    lock = next(f.t for f in feats if f.t >= start and abs(f.bpm - 128.0) <= 1.0)
    assert lock - start <= 4.0
    assert sum(f.beat for f in feats) >= 4
    steps = np.diff([f.t for f in feats])
    assert np.allclose(steps, 256 / SR, atol=0.2 * 256 / SR)  # sample-count timestamps


@pytest.mark.jack
async def test_a_capture_backlog_is_delivered_one_block_a_loop_step(jack_server: None) -> None:
    # A consumer slower than the device lets blocks pile up in the worker's pipe;
    # reading buffered data never yields, so without a yield they would all be
    # analysed in one step of the loop.
    _need_pyaudio()
    seen: list[int] = []
    done = asyncio.Event()
    steps = LoopSteps()
    on_block = slow_consumer(steps, seen, done, 30, ms=10)  # blocks are 5.3 ms
    capture = DeviceCapture(AudioConfig(enabled=True, device="SYS", block_size=256), on_block)
    await capture.start()
    try:
        await wait_status(capture, "running", 20)
        with steps:  # from here: the loop never idles while the steps are counted
            async with asyncio.timeout(30):
                await done.wait()
    finally:
        await capture.stop()
    assert len(set(seen)) == len(seen), seen


@pytest.mark.jack
async def test_a_device_that_does_not_exist_is_logged_once_and_retried(
    jack_server: None,
) -> None:
    _need_pyaudio()
    config = AudioConfig(device="no-such-device-xyz", retry_initial=0.05, retry_max=0.1)
    blocks: list[AudioBlock] = []
    capture = DeviceCapture(config, blocks.append)
    with capture_logs() as logs:
        await capture.start()
        try:
            await wait_attempts(capture, 3, 30)
        finally:
            await capture.stop()
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["event"] == "audio_unavailable"
    assert "no input device matches 'no-such-device-xyz'" in warnings[0]["reason"]
    assert "'system'" in warnings[0]["reason"]  # and it says what there is
    assert not blocks


class PrivateJack:
    """A JACK server of our own, under its own name, which a test may crash and restart.

    A SIGKILLed jackd leaves its slot in JACK's machine-wide registry (8 slots)
    and its shared memory behind; starting one again under the same name
    reclaims both, and a SIGTERM releases them. So this always ends with a
    graceful stop, restarting a crashed server first if needed.
    """

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.crashed = False

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                ["jackd", "-n", self.name, "--no-realtime", "-d", "dummy", "-r", "48000",
                 "-p", "256"],
                stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 15
        # jackd has no readiness signal: poll jack_lsp against it.
        while subprocess.run(["jack_lsp", "-s", self.name], capture_output=True).returncode:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                lines = self.log.read_text(errors="replace").strip().splitlines()
                pytest.skip(f"a private jackd did not start: {lines[-1] if lines else '?'}")
            time.sleep(0.05)
        self.crashed = False

    def crash(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.crashed = True

    def close(self) -> None:
        if self.crashed:
            with contextlib.suppress(pytest.skip.Exception):
                self.start()  # reclaim the registry slot it left
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def private_jack(tmp_path: Path) -> Iterator[PrivateJack]:
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (apt-get install jackd2); CI installs it")
    server = PrivateJack(f"soundscape_vanish_{os.getpid()}", tmp_path / "jackd.log")
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ["JACK_DEFAULT_SERVER"] = server.name  # the capture worker inherits this
    os.environ["JACK_NO_START_SERVER"] = "1"
    try:
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.close()


@pytest.mark.jack
async def test_a_vanishing_device_is_logged_once_and_recovered(
    private_jack: PrivateJack,
) -> None:
    _need_pyaudio()
    private_jack.start()
    sink = Sink()
    config = AudioConfig(device="system", block_size=256, retry_initial=0.05, retry_max=0.2)
    capture = DeviceCapture(config, sink)
    with capture_logs() as logs:
        await capture.start()
        try:
            await wait_status(capture, "running", 20)
            private_jack.crash()  # the sound card disappears mid-show
            await wait_status(capture, "retrying", 10)
            await wait_attempts(capture, 2, 10)  # and stays away for a while
            lost_at = len(sink.blocks)
            private_jack.start()  # it comes back
            await wait_status(capture, "running", 20)
            await sink.wait_for(lost_at + 50, 5)  # and audio flows again
        finally:
            await capture.stop()
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert warnings == ["audio_device_lost"]  # one line for the whole outage
    assert [e["event"] for e in logs].count("audio_started") == 2
    assert capture.status == "stopped"
