"""Beat tracking on rendered multi-instrument music: ours vs aubio (vs madmom online).

    python bench/beat.py [--set NAME|all] [--block 512] [--only NAME] [--ours-only]
        # sets: dev heldout check final fresh grooves grooves_check producers
    python bench/beat.py --conditions [--set final]   # ours at 44.1 kHz, blocks 256/1024, -30 dB

``--write-docs`` records the figures in ``docs/benchmarks.md``.

The pieces come from ``bench/music`` (MIDI rendered by FluidSynth with Debian
GM soundfonts, beats and downbeats from the score). Every tracker reads the
same audio, block by block, causally:

- ours: ``AudioAnalyzer`` (every feature, onsets, beats, bars) — exactly the
  daemon's path;
- aubio 0.4.9: ``aubio.tempo("default", 1024, block)``, beats read from a
  change of ``get_last()``;
- madmom 0.16.1's online tracker (``RNNBeatProcessor(online=True)``, then
  ``DBNBeatTrackingProcessor(online=True)``), in a venv of its own, as it does
  not build against numpy 2: ``bash bench/madmom_venv.sh`` makes ``.venv-madmom``
  (see ``bench/madmom_worker.py``); without it madmom is skipped.

Scores with mir_eval (beats and downbeats trimmed before 5 s, as
``mir_eval.beat.evaluate`` does): beat F-measure (±70 ms), tempo Acc1 (the
reported tempo within 4 % of the truth) and Acc2 (also at ×2, ×½, ×3, ×⅓),
as shares of the blocks after 5 s; lock = the time of the first of four
consecutive true beats each matched within 70 ms; downbeat F (±70 ms); CPU per
block = thread time of one process call (median and mean).
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._docs import write_section
from bench.music.render import Rendered, available, render_set
from bench.music.sets import SETS
from soundscape.audio.config import AudioConfig
from soundscape.audio.features import AudioAnalyzer

ROOT = Path(__file__).resolve().parent.parent
TRIM = 5.0
WINDOW = 0.07


@dataclasses.dataclass
class Run:
    beats: np.ndarray
    downbeats: np.ndarray | None
    tempo: np.ndarray  # (t, bpm) per block
    cpu_us: np.ndarray  # per block


@dataclasses.dataclass
class Result:
    piece: str
    tracker: str
    beat_f: float
    acc1: float
    acc2: float
    lock: float
    downbeat_f: float | None
    cpu_median: float
    cpu_mean: float
    ramp_error: tuple[float, float] | None = None  # BPM, median and p95, on a ramp's pieces


def run_ours(x: np.ndarray, sr: int, block: int, timbre: bool = True) -> Run:
    analyzer = AudioAnalyzer(AudioConfig(block_size=block, sample_rate=sr), timbre=timbre)
    beats, downs, tempo, cpu = [], [], [], []
    for i in range(0, len(x) - block + 1, block):
        c0 = time.thread_time_ns()
        f = analyzer.process(x[i : i + block], i / sr)
        cpu.append(time.thread_time_ns() - c0)
        if f.beat_time is not None:
            beats.append(f.beat_time)
            if f.downbeat:
                downs.append(f.beat_time)
        tempo.append((i / sr, f.bpm))
    return Run(np.array(beats), np.array(downs), np.array(tempo), np.array(cpu) / 1000)


def run_ours_beats(x: np.ndarray, sr: int, block: int) -> Run:
    """Ours as ``soundscape analyze`` runs it: onsets, beats and downbeats, without the
    band levels, brightness and texture the daemon also sends (the same beats to the
    bit): the job aubio's ``tempo`` does, for a like-for-like CPU figure."""
    return run_ours(x, sr, block, timbre=False)


def run_aubio(x: np.ndarray, sr: int, block: int) -> Run:
    import aubio

    tracker = aubio.tempo("default", 1024, block, sr)
    beats, tempo, cpu = [], [], []
    last = 0
    x = x.astype(np.float32)
    for i in range(0, len(x) - block + 1, block):
        c0 = time.thread_time_ns()
        tracker(x[i : i + block])
        cpu.append(time.thread_time_ns() - c0)
        b = tracker.get_last()
        if b != last and b > 0:
            beats.append(b / sr)
            last = b
        tempo.append((i / sr, float(tracker.get_bpm())))
    return Run(np.array(beats), None, np.array(tempo), np.array(cpu) / 1000)


@functools.cache
def _madmom_python() -> Path | None:
    """The interpreter of madmom's own venv (``bench/madmom_venv.sh``), if there is one
    (looked for once a run)."""
    named = os.environ.get("SOUNDSCAPE_MADMOM_PYTHON")
    path = Path(named) if named else ROOT / ".venv-madmom" / "bin" / "python"
    if not path.exists():
        return None
    found = subprocess.run([str(path), "-c", "import madmom"], capture_output=True)
    if found.returncode:
        print(f"madmom skipped: {path} cannot import it", file=sys.stderr)
        return None
    return path


class MadmomWorker:
    """``bench/madmom_worker.py`` in madmom's venv: one process for the whole run."""

    def __init__(self, python: Path) -> None:
        # One BLAS thread: the worker's thread time is then all of its work.
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        self._proc = subprocess.Popen(
            [str(python), str(ROOT / "bench" / "madmom_worker.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._tmp = tempfile.TemporaryDirectory()
        atexit.register(self.close)

    def beats(self, x: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
        """The beats (s) of mono ``x`` and the CPU seconds the tracker took."""
        path = Path(self._tmp.name) / "audio.npy"
        np.save(path, x.astype(np.float32))
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps({"path": str(path), "sr": sr}) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the madmom worker stopped (exit {self._proc.wait()})")
        answer = json.loads(line)
        return np.asarray(answer["beats"], dtype=float), float(answer["cpu_s"])

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()  # the worker's loop ends at the end of its input
        self._proc.wait(timeout=10)
        self._tmp.cleanup()


@functools.cache
def _madmom_worker() -> MadmomWorker | None:
    """The worker, started at the first piece and kept for the run (None: no madmom)."""
    python = _madmom_python()
    return None if python is None else MadmomWorker(python)


def run_madmom(x: np.ndarray, sr: int, block: int) -> Run | None:  # pragma: no cover
    """madmom's online tracker (in its own venv), or None where it is not installed.

    It reads the whole signal in one call, so its CPU is only a mean: its thread
    time spread over the blocks the signal holds. Its tempo at each block comes
    from the beats it had reported by then (it reports no tempo of its own; see
    :func:`tempo_from_beats`), for Acc1 and Acc2.
    """
    worker = _madmom_worker()
    if worker is None:
        return None
    beats, cpu_s = worker.beats(x, sr)
    starts = np.arange(0, len(x) - block + 1, block) / sr
    cpu = np.full(len(starts), cpu_s * 1e6 / max(len(starts), 1))
    return Run(beats, None, np.stack([starts, tempo_from_beats(beats, starts)], axis=1), cpu)


def tempo_from_beats(beats: np.ndarray, times: np.ndarray, span: int = 4) -> np.ndarray:
    """BPM at each of ``times`` from the median of the last ``span`` intervals between the
    ``beats`` reported by then (fewer while fewer are known; NaN before two beats). One
    interval alone is off by up to a frame (madmom's 10 ms: 2.4 BPM at 120)."""
    gaps = np.diff(beats)
    by_count = np.full(len(beats) + 1, np.nan)  # the tempo once k beats are known
    for k in range(2, len(beats) + 1):
        by_count[k] = 60.0 / max(float(np.median(gaps[max(k - 1 - span, 0) : k - 1])), 1e-3)
    return by_count[np.searchsorted(beats, times, side="right")]


def _truth_tempo(ref: np.ndarray, t: np.ndarray) -> np.ndarray:
    mids = (ref[1:] + ref[:-1]) / 2
    bpm = 60.0 / np.diff(ref)
    return np.interp(t, mids, bpm)


def lock_time(ref: np.ndarray, est: np.ndarray) -> float:
    """Time of the first of 4 consecutive true beats each matched within WINDOW."""
    if len(est) == 0:
        return float("inf")
    idx = np.searchsorted(est, ref)
    near = np.minimum(
        np.abs(est[np.clip(idx, 0, len(est) - 1)] - ref),
        np.abs(est[np.clip(idx - 1, 0, len(est) - 1)] - ref),
    )
    ok = near <= WINDOW
    for i in range(len(ok) - 3):
        if ok[i : i + 4].all():
            return float(ref[i] - ref[0])
    return float("inf")


def score(r: Rendered, name: str, run: Run) -> Result:
    import mir_eval

    ref = r.beats
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = mir_eval.beat.f_measure(
            mir_eval.beat.trim_beats(ref, TRIM), mir_eval.beat.trim_beats(run.beats, TRIM), WINDOW
        )
        df = None
        if run.downbeats is not None:
            df = mir_eval.beat.f_measure(
                mir_eval.beat.trim_beats(r.downbeats, TRIM),
                mir_eval.beat.trim_beats(run.downbeats, TRIM),
                WINDOW,
            )
    acc1 = acc2 = float("nan")
    if len(run.tempo):
        t, bpm = run.tempo[:, 0], run.tempo[:, 1]
        keep = t >= TRIM
        truth = _truth_tempo(ref, t[keep])
        est = bpm[keep]
        rel = lambda k: np.abs(est - k * truth) <= 0.04 * k * truth  # noqa: E731
        acc1 = float(np.mean(rel(1)))
        acc2 = float(np.mean(rel(1) | rel(2) | rel(0.5) | rel(3) | rel(1 / 3)))
    return Result(
        r.piece.name,
        name,
        float(f),
        acc1,
        acc2,
        lock_time(ref, run.beats),
        None if df is None else float(df),
        float(np.median(run.cpu_us)),
        float(np.mean(run.cpu_us)),
        ramp_error(r, run),
    )


def ramp_error(r: Rendered, run: Run) -> tuple[float, float] | None:
    """The reported tempo's error (BPM, median and p95) from a ramp's start to 2 s after
    its end: how closely the tempo follows a ramp (issue 10: within 0.7 BPM)."""
    if r.piece.ramp is None or not len(run.tempo):
        return None
    _, start, end = r.piece.ramp
    t, bpm = run.tempo[:, 0], run.tempo[:, 1]
    keep = (t >= start) & (t <= end + 2.0)
    if not keep.any():
        return None
    err = np.abs(bpm[keep] - _truth_tempo(r.beats, t[keep]))
    return float(np.median(err)), float(np.percentile(err, 95))


BEATS_ONLY = "ours, beats only"
RUNNERS = {"ours": run_ours, BEATS_ONLY: run_ours_beats, "aubio": run_aubio, "madmom": run_madmom}


def evaluate(pieces: list[Rendered], block: int, trackers: list[str]) -> list[Result]:
    out = []
    for r in pieces:
        for name in trackers:
            fn = RUNNERS[name]
            run = fn(r.audio, r.sample_rate, block)
            if run is not None:
                out.append(score(r, name, run))
    return out


# Capture conditions other than the bench's own (48 kHz, block 512, the rendered level):
# (label, sample rate, block, gain in dB).
CONDITIONS = [
    ("48 kHz, block 512 (the bench's own)", 48000, 512, 0.0),
    ("44.1 kHz, block 512", 44100, 512, 0.0),
    ("48 kHz, block 256", 48000, 256, 0.0),
    ("48 kHz, block 1024", 48000, 1024, 0.0),
    ("48 kHz, block 512, 30 dB quieter", 48000, 512, -30.0),
]


def conditions(pieces: list[Rendered], label: str) -> str:
    """Our tracker on the same pieces at other sample rates, block sizes and levels."""
    from scipy.signal import resample_poly  # with mir_eval

    lines = [
        f"**{label}**, ours under other capture conditions",
        "",
        "| condition | beat F mean | beat F min | pieces < 0.90 | lock median (s) | downbeat F |",
        "|---|---|---|---|---|---|",
    ]
    for name, rate, block, gain in CONDITIONS:
        results = []
        for r in pieces:
            audio = r.audio.astype(np.float64) * 10 ** (gain / 20)
            if rate != r.sample_rate:
                g = math.gcd(rate, r.sample_rate)
                audio = resample_poly(audio, rate // g, r.sample_rate // g)
            moved = dataclasses.replace(r, audio=audio.astype(np.float32), sample_rate=rate)
            results.append(score(moved, "ours", run_ours(moved.audio, rate, block)))
        low = [f"{x.piece} {x.beat_f:.2f}" for x in results if x.beat_f < 0.9]
        dfs = [x.downbeat_f for x in results if x.downbeat_f is not None]
        lines.append(
            f"| {name} | {statistics.mean(x.beat_f for x in results):.3f} "
            f"| {min(x.beat_f for x in results):.3f} | {', '.join(low) or 'none'} "
            f"| {statistics.median(x.lock for x in results):.2f} "
            f"| {_f(statistics.mean(dfs) if dfs else None)} |"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines)


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "–" if x is None or x != x else format(x, fmt)


def summary(results: list[Result], label: str) -> str:
    lines = [
        f"**{label}** ({len({r.piece for r in results})} pieces)",
        "",
        "| tracker | beat F mean | beat F min | Acc1 | Acc2 | lock median (s) | lock max (s) "
        "| downbeat F | CPU/block median (µs) | CPU/block mean (µs) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    cpu: dict[str, tuple[float, float]] = {}  # tracker: CPU per block, median and mean
    for tracker in dict.fromkeys(r.tracker for r in results):
        rs = [r for r in results if r.tracker == tracker]
        dfs = [r.downbeat_f for r in rs if r.downbeat_f is not None]
        locks = [r.lock for r in rs]
        cpu[tracker] = (
            statistics.median(r.cpu_median for r in rs),
            statistics.mean(r.cpu_mean for r in rs),
        )
        lines.append(
            f"| {tracker} | {statistics.mean(r.beat_f for r in rs):.3f} "
            f"| {min(r.beat_f for r in rs):.3f} "
            f"| {statistics.mean(r.acc1 for r in rs):.3f} "
            f"| {statistics.mean(r.acc2 for r in rs):.3f} "
            f"| {_f(statistics.median(locks), '.2f')} | {_f(max(locks), '.2f')} "
            f"| {_f(statistics.mean(dfs) if dfs else None)} "
            f"| {cpu[tracker][0]:.1f} | {cpu[tracker][1]:.1f} |"
        )
    if "aubio" in cpu and len(cpu) > 1:
        (a_med, a_mean) = cpu["aubio"]
        parts = [
            f"{t} {med / a_med:.2f}× at the median, {mean / a_mean:.2f}× on the mean"
            for t, (med, mean) in cpu.items()
            if t in ("ours", BEATS_ONLY)
        ]
        if "madmom" in cpu:  # a whole signal per call: only its mean is a figure
            parts.append(f"madmom {cpu['madmom'][1] / a_mean:.2f}× on the mean")
        lines += ["", "CPU per block against aubio's: " + "; ".join(parts) + "."]
    ramps = [
        (r.tracker, r.piece, r.ramp_error)
        for r in results
        if r.ramp_error is not None and r.tracker != BEATS_ONLY  # the same beats as ours
    ]
    if ramps:
        lines += ["", "Tempo error on the ramp, from its start to 2 s after its end (BPM):"]
        lines += [
            f"- {tracker}, {piece}: median {median:.2f}, p95 {p95:.2f}"
            for tracker, piece, (median, p95) in ramps
        ]
    return "\n".join(lines)


def per_piece(results: list[Result]) -> str:
    trackers = [t for t in dict.fromkeys(r.tracker for r in results) if t != BEATS_ONLY]
    head = (
        "| piece | "
        + " | ".join(f"{t} F" for t in trackers)
        + " | ours lock (s) | ours downbeat F |"
    )
    lines = [head, "|---" * (len(trackers) + 3) + "|"]
    for piece in dict.fromkeys(r.piece for r in results):
        by = {r.tracker: r for r in results if r.piece == piece}
        o = by["ours"]
        lines.append(
            f"| {piece} | "
            + " | ".join(_f(by[t].beat_f) if t in by else "–" for t in trackers)
            + f" | {_f(o.lock, '.2f')} | {_f(o.downbeat_f)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", default="all", choices=["all", *SETS])
    parser.add_argument("--block", type=int, default=512)
    parser.add_argument("--only", default="", help="pieces whose name contains this")
    parser.add_argument("--ours-only", action="store_true")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--conditions",
        action="store_true",
        help="ours only, at 44.1 kHz, blocks 256 and 1024 and 30 dB quieter too",
    )
    args = parser.parse_args()
    reason = available()
    if reason:
        sys.exit(reason)
    if args.conditions:
        sets = list(SETS) if args.set == "all" else [args.set]
        text = "\n\n".join(
            conditions([r for r in render_set(n) if args.only in r.piece.name], n) for n in sets
        )
        print(text)
        if args.write_docs:
            write_section(
                "beat-conditions",
                "`python bench/beat.py --conditions --set final --write-docs`\n\n" + text,
            )
        return
    trackers = ["ours"] if args.ours_only else ["ours", BEATS_ONLY, "aubio", "madmom"]
    started = time.monotonic()
    sets = list(SETS) if args.set == "all" else [args.set]
    out = [
        "Pieces rendered from MIDI by `bench/music` (FluidSynth; MuseScore General and TimGM6mb "
        "for `dev`, FluidR3 and TimGM6mb with other seeds and tempi for `heldout`, all three "
        "in turn with other seeds and tempi again for `check`, `final` and `fresh`; `grooves` "
        "plays the styles' other patterns, `grooves_check` the same with other seeds, tempi "
        "and soundfonts; `producers` is 21 grooves of other styles written by a helper who "
        "never read the tracker, scored before any change was made for it, "
        "`producers_check` the same with other seeds, tempi and soundfonts), "
        f"block {args.block} at 48 kHz. `python bench/beat.py --write-docs`. "
        f'"{BEATS_ONLY}" is ours as `soundscape analyze` runs it, without the band '
        "levels, brightness and texture the daemon also computes per block (its beats are "
        "ours to the bit at block 512; only its CPU differs): the job aubio's `tempo` does.",
        "",
    ]
    details = []
    for name in sets:
        pieces = [r for r in render_set(name) if args.only in r.piece.name]
        results = evaluate(pieces, args.block, trackers)
        out += [summary(results, name), ""]
        details += [f"Per piece, {name}:", "", per_piece(results), ""]
        for r in results:
            if r.tracker == "ours":
                print(
                    f"{name:8s} {r.piece:18s} F={r.beat_f:.3f} acc1={r.acc1:.2f} "
                    f"lock={r.lock:.2f} dbF={_f(r.downbeat_f)} cpu={r.cpu_mean:.1f}",
                    flush=True,
                )
    if "madmom" in trackers and _madmom_python() is None:
        out.append("madmom: not installed (`bash bench/madmom_venv.sh` makes it); not scored.")
        out.append("")
    out += details
    out.append(f"Run time {time.monotonic() - started:.0f} s.")
    text = "\n".join(out)
    print(text)
    if args.write_docs:
        write_section("beat", text)


if __name__ == "__main__":
    main()
