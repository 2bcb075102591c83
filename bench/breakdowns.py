"""Breakdowns and drops: does the beat clock fly on through them and relock at the drop?

    python bench/breakdowns.py [--write-docs]

The issue asks that through a breakdown the clock fly on at the last tempo and
relock within 1 s of the drop. The beat bench (``bench/beat.py``) has two
breakdown pieces per set; this one renders many more (``bench/music``,
FluidSynth): techno, house and drum & bass, each with three soundfonts, the
breakdown early (bars 4-7, after 7-8 s of groove) or late (bars 8-11), two
seeds each — 36 pieces of 30-40 s. In a breakdown the drums and the bass stop;
the pads and the style's chord stabs go on.

Per piece, from ``bench/beat.py``'s run of the daemon's analyzer (48 kHz,
block 512) against the score: *kept* = beat F (±70 ms) over the breakdown
(the clock flying on); *relock* = seconds from the drop to the first of four
true beats in a row each matched within 70 ms (0 when the drop's first beat
and the three after it are).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._docs import write_section
from bench.beat import WINDOW, lock_time, run_ours
from bench.music.compose import STYLES, Piece
from bench.music.render import Rendered, available, render

# (style, tempo): the styles with breakdowns and drops VJs play most.
STYLE_TEMPI = (("techno", 130), ("house", 124), ("dnb", 172))
FONTS = ("timgm6mb", "musescore", "fluidr3")
PLACES = ((4, 4), (8, 4))  # (first bar, bars) of the breakdown
SEEDS = (0, 1)
GOAL = 1.0  # s, relock after the drop


def pieces() -> list[Piece]:
    out = []
    for s, (style, bpm) in enumerate(STYLE_TEMPI):
        for f, font in enumerate(FONTS):
            for p, place in enumerate(PLACES):
                for seed in SEEDS:
                    k = ((s * len(FONTS) + f) * len(PLACES) + p) * len(SEEDS) + seed
                    bars = place[0] + place[1] + 4  # four bars after the drop
                    beats = bars * STYLES[style].beats_per_bar
                    out.append(
                        Piece(
                            f"{style}-{font}-bar{place[0]}-{seed}",
                            style,
                            bpm + (k % 5) - 2,  # a few tempi around the style's
                            seed=60000 + 17 * k,
                            soundfont=font,
                            seconds=round(beats * 60.0 / (bpm - 2) + 0.5, 1),
                            breakdown=place,
                        )
                    )
    return out


def measure(r: Rendered) -> tuple[float, float]:
    """Beat F over the breakdown, and the relock time after the drop (s)."""
    import mir_eval

    first, bars = r.piece.breakdown  # type: ignore[misc]
    bpb = r.beats_per_bar
    drop = r.beats[(first + bars) * bpb]
    est = run_ours(r.audio, r.sample_rate, 512).beats
    inside = r.beats[first * bpb + 1 : (first + bars) * bpb]  # the beats between the hits
    near = est[(est > inside[0] - WINDOW) & (est < inside[-1] + WINDOW)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = mir_eval.beat.f_measure(inside, near, WINDOW)
    return float(kept), lock_time(r.beats[r.beats >= drop], est)


def table(results: list[tuple[Piece, float, float]]) -> str:
    lines = [
        "| style | pieces | kept through the breakdown: mean F (min) "
        f"| relock after the drop: median / max (s) | relocked within {GOAL:g} s |",
        "|---|---|---|---|---|",
    ]
    groups = {style: [x for x in results if x[0].style == style] for style, _ in STYLE_TEMPI}
    groups["all"] = results
    for name, rows in groups.items():
        kept = [k for _, k, _ in rows]
        relock = [r for _, _, r in rows]
        within = sum(r <= GOAL for r in relock)
        lines.append(
            f"| {name} | {len(rows)} | {statistics.mean(kept):.3f} ({min(kept):.2f}) "
            f"| {statistics.median(relock):.2f} / {max(relock):.2f} "
            f"| {within} of {len(rows)} |"
        )
    late = [f"{p.name} ({r:.2f} s)" for p, _, r in results if r > GOAL]
    lines += ["", "Relocked later than the goal: " + (", ".join(late) or "none") + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    reason = available()
    if reason:
        sys.exit(reason)
    started = time.monotonic()
    results = []
    for piece in pieces():
        kept, relock = measure(render(piece, "breakdowns"))
        results.append((piece, kept, relock))
        print(f"{piece.name:28s} kept {kept:.2f} relock {relock:.2f}", flush=True)
    text = (
        f"{table(results)}\n\n`python bench/breakdowns.py --write-docs`, "
        f"run time {time.monotonic() - started:.0f} s."
    )
    print(text)
    if args.write_docs:
        write_section("breakdowns", text)


if __name__ == "__main__":
    main()
