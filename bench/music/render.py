"""Render pieces to audio with FluidSynth and a Debian GM soundfont, into a cache.

    python -m bench.music.render [--set dev|heldout|check|all] [--cache DIR]

Each piece becomes ``<cache>/<set>/<name>-<hash>.wav`` (mono float32 is read
back by :func:`load`) and ``.json`` (beats, downbeats, beats per bar, spec).
The hash covers the piece's spec and this generator's version, so changing
either re-renders; rendering is deterministic (FluidSynth offline, seeded
noise). WAVs live only in the cache, never in git.

Needs ``fluidsynth`` and the soundfont packages (`fluid-soundfont-gm`,
`musescore-general-soundfont`, `timgm6mb-soundfont`).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.music.compose import Piece, compose, to_midi
from bench.music.sets import SETS

VERSION = 1
SAMPLE_RATE = 48000
SOUNDFONTS = {
    "musescore": "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "timgm6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "fluidr3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
}


def default_cache() -> Path:
    base = os.environ.get("SOUNDSCAPE_BENCH_CACHE") or Path.home() / ".cache" / "soundscape-bench"
    return Path(base) / "music"


@dataclasses.dataclass
class Rendered:
    piece: Piece
    audio: np.ndarray  # mono float32
    sample_rate: int
    beats: np.ndarray
    downbeats: np.ndarray
    beats_per_bar: int


def available() -> str | None:
    """None when rendering can work here, else why not."""
    if shutil.which("fluidsynth") is None:
        return "fluidsynth is not installed (apt-get install fluidsynth)"
    missing = [p for p in SOUNDFONTS.values() if not Path(p).exists()]
    if missing:
        return f"soundfont missing: {missing[0]}"
    return None


def _key(piece: Piece) -> str:
    spec = json.dumps([VERSION, dataclasses.asdict(piece)], sort_keys=True)
    return hashlib.sha1(spec.encode()).hexdigest()[:10]


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        raw = w.readframes(w.getnframes())
        ch = w.getnchannels()
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return x.reshape(-1, ch).mean(axis=1)


def _write_wav(path: Path, x: np.ndarray) -> None:
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())


def render(piece: Piece, set_name: str, cache: Path | None = None) -> Rendered:
    """The piece's audio and ground truth, rendered once and then read from the cache."""
    folder = (cache or default_cache()) / set_name
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{piece.name}-{_key(piece)}"
    wav, meta = stem.with_suffix(".wav"), stem.with_suffix(".json")
    score = None
    if not (wav.exists() and meta.exists()):
        score = compose(piece)
        with tempfile.TemporaryDirectory() as tmp:
            mid = Path(tmp) / "piece.mid"
            raw = Path(tmp) / "raw.wav"
            to_midi(score).save(mid)
            cmd = ["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(SAMPLE_RATE)]
            cmd += ["-F", str(raw), SOUNDFONTS[piece.soundfont], str(mid)]
            subprocess.run(cmd, check=True, capture_output=True, timeout=600)
            x = _read_wav(raw)
        x = x[: int(piece.seconds * SAMPLE_RATE)]
        if piece.noise_db is not None:
            rng = np.random.default_rng(piece.seed)
            noise = rng.standard_normal(len(x)).astype(np.float32)
            rms = float(np.sqrt(np.mean(x**2)))
            x = x + noise * rms * 10 ** (-piece.noise_db / 20)
        x = x / max(float(np.abs(x).max()), 1e-9) * 0.89  # -1 dBFS peak
        # Written under other names and renamed, the metadata last: a bench running beside
        # this one (rendering the same piece) sees the pair only once both are whole.
        part = stem.with_name(f"{stem.name}.{os.getpid()}.part")
        info = {
            "piece": dataclasses.asdict(piece),
            "beats": score.beats,
            "downbeats": score.downbeats,
            "beats_per_bar": score.beats_per_bar,
        }
        try:
            _write_wav(part, x)
            os.replace(part, wav)
            part.write_text(json.dumps(info))
            os.replace(part, meta)
        finally:
            part.unlink(missing_ok=True)  # left only if a write failed (or was interrupted)
    info = json.loads(meta.read_text())
    return Rendered(
        piece,
        _read_wav(wav),
        SAMPLE_RATE,
        np.array(info["beats"]),
        np.array(info["downbeats"]),
        int(info["beats_per_bar"]),
    )


def render_set(name: str, cache: Path | None = None) -> list[Rendered]:
    return [render(p, name, cache) for p in SETS[name]()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", default="all", choices=["all", *SETS])
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    reason = available()
    if reason:
        sys.exit(reason)
    for name in SETS if args.set == "all" else [args.set]:
        for r in render_set(name, args.cache):
            print(f"{name:8s} {r.piece.name:20s} {len(r.audio) / SAMPLE_RATE:5.1f} s")


if __name__ == "__main__":
    main()
