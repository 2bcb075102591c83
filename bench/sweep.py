"""One style swept over tempi and soundfonts: how the live tracker reads renders it has not seen.

    python bench/sweep.py reggaeton --bpm 84:100:2 --seed 500
    python bench/sweep.py dnb --bpm 166,170,174,178 --seed 300
    python bench/sweep.py hiphop --bpm 84,90 --extra '{"swing": 0.3, "jitter_ms": 6}'
    python bench/sweep.py --like dev --seed 900     # every piece of dev's plan, anew

The probes the docs quote outside the nine sets (from the seventh round on) are these runs.
Each tempo is rendered once per soundfont (TimGM6mb, MuseScore General, FluidR3, in that
order) with its own seed, ``seed + 3 * i + j`` (i: the tempo's index, j: the soundfont's),
30 s long, and read by ``AudioAnalyzer`` block by block as the daemon reads it; scored as
``bench/beat.py`` scores (beat and downbeat F from 5 s, lock), with the median reported
tempo after 10 s. A line per render, then the mean beat F and the renders under 0.90.
Styles: ``bench/music/compose.py``.
``--like SET`` renders every piece of that set's plan (``dev``: the issue's styles and hard
cases; ``grooves``; ``producers``) on every soundfont, with new seeds and each piece's tempo
(and its ramp's or step's) moved by a seeded draw within ±7 %, 30 s long (a breakdown's 40).
Renders are cached like the sets' (``$SOUNDSCAPE_BENCH_CACHE``, subfolder ``sweep``).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.beat import run_ours, score
from bench.music.compose import STYLES, Piece
from bench.music.render import available, render
from bench.music.sets import GROOVES, PLAN, PRODUCERS

PLANS = {"dev": PLAN, "grooves": GROOVES, "producers": PRODUCERS}
SHIFT = 0.07  # --like: each piece's tempo moved within this share either way

FONTS = ("timgm6mb", "musescore", "fluidr3")


def tempi(spec: str) -> list[float]:
    """``"84,90"`` or ``"84:100:2"`` (from, to inclusive, step) as a list of tempi."""
    if ":" in spec:
        start, stop, step = (float(v) for v in spec.split(":"))
        if step <= 0 or stop < start:
            raise ValueError(f"{spec!r}: want FROM:TO:STEP with TO >= FROM and STEP > 0")
        count = round((stop - start) / step) + 1
        return [start + k * step for k in range(count)]
    return [float(v) for v in spec.split(",") if v.strip()]


def plan(
    style: str, bpms: list[float], seed: int, seconds: float, extra: dict | None = None
) -> list[Piece]:
    """The renders of a sweep: every tempo on every soundfont, each with its own seed."""
    return [
        Piece(
            style,
            style,
            bpm,
            seed=seed + 3 * i + j,
            soundfont=font,
            seconds=seconds,
            **(extra or {}),
        )
        for i, bpm in enumerate(bpms)
        for j, font in enumerate(FONTS)
    ]


def like(set_name: str, seed: int) -> list[Piece]:
    """A set's plan rendered anew: every piece on every soundfont, new seeds, and tempi
    (with a ramp's target and a step's new tempo) moved by one seeded draw per render."""
    draw = random.Random(seed)
    out = []
    for j, font in enumerate(FONTS):
        for k, (name, style, bpm, extra) in enumerate(PLANS[set_name]):
            extra = dict(extra)
            extra.setdefault("seconds", 30.0)
            factor = 1.0 + draw.uniform(-SHIFT, SHIFT)
            if "ramp" in extra:
                to, start, end = extra["ramp"]
                extra["ramp"] = (to * factor, start, end)
            if "step" in extra:
                extra["step"] = (extra["step"][0] * factor, extra["step"][1])
            seed_k = seed + 100 * j + k
            out.append(
                Piece(name, style, round(bpm * factor), seed=seed_k, soundfont=font, **extra)
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("style", nargs="?", choices=sorted(STYLES))
    parser.add_argument("--bpm", help="tempi: 84,90 or FROM:TO:STEP")
    parser.add_argument("--like", choices=sorted(PLANS), help="a set's plan, rendered anew")
    parser.add_argument("--seed", type=int, default=500, help="the first render's seed")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--extra", default="{}", help="more Piece fields, as JSON")
    args = parser.parse_args()
    why = available()
    if why is not None:
        print(f"cannot render: {why}", file=sys.stderr)
        return 2
    if args.like:
        pieces = like(args.like, args.seed)
    elif args.style and args.bpm:
        extra = json.loads(args.extra)
        pieces = plan(args.style, tempi(args.bpm), args.seed, args.seconds, extra)
    else:
        parser.error("give a STYLE and --bpm, or --like SET")
    scores = []
    for piece in pieces:
        rendered = render(piece, "sweep")
        run = run_ours(rendered.audio, rendered.sample_rate, 512)
        result = score(rendered, "ours", run)
        late = [bpm for t, bpm in run.tempo if t > 10.0]
        reading = float(np.median(late)) if late else float("nan")
        scores.append(result.beat_f)
        print(
            f"{piece.name} {piece.bpm:g} {piece.soundfont:9s} seed {piece.seed}: "
            f"beat F {result.beat_f:.3f}, downbeat F {result.downbeat_f:.3f}, "
            f"lock {result.lock:.2f} s, tempo after 10 s {reading:.1f}",
            flush=True,
        )
    under = sum(f < 0.9 for f in scores)
    mean = statistics.mean(scores)
    what = args.like or args.style
    print(f"{what}: mean beat F {mean:.3f}, {under} of {len(scores)} under 0.90")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
