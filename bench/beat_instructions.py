"""CPU per block as instructions (valgrind's callgrind): ours against aubio, on any machine.

    python bench/beat_instructions.py [--set dev] [--only house,dnb,afrobeat_live]

Thread time per block (``bench/beat.py``) depends on the machine and on its neighbours:
the same code has read 1.34× aubio's at the median on one day's machine and 3.0× on
another's, whose cores ran the interpreter slower than aubio's C. Instructions do not:
callgrind counts them, the same for the same code and input whatever else the machine
is doing. Each piece is run under callgrind three times: loading only, then aubio's
``tempo``, then ours as ``soundscape analyze`` runs it (onsets, beats, downbeats); each
tracker's instructions are its run's less the loading run's, per 512-sample block (a
mean: the tempo updates included, and so are ``import aubio`` and building our
analyzer, once a piece). The same for the same build on CPUs with
the same vector instructions (numpy and aubio pick their code paths by them). Needs
``valgrind`` (Debian's package); about two minutes per piece.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.beat import run_aubio, run_ours_beats
from bench.music.render import Rendered, render
from bench.music.sets import SETS

BLOCK = 512
MODES = ("load", "aubio", "ours")


def _rendered(set_name: str, piece: str) -> Rendered:
    """One piece of a set, rendered if it is not in the cache yet."""
    return render(next(p for p in SETS[set_name]() if p.name == piece), set_name)


def _child(set_name: str, piece: str, mode: str) -> None:
    """Run in the measured process: load the piece, then run one tracker over it."""
    rendered = _rendered(set_name, piece)
    if mode == "aubio":
        run_aubio(rendered.audio, rendered.sample_rate, BLOCK)
    elif mode == "ours":
        run_ours_beats(rendered.audio, rendered.sample_rate, BLOCK)
    print(len(rendered.audio) // BLOCK)


def _instructions(set_name: str, piece: str, mode: str) -> tuple[int, int]:
    """Instructions callgrind counted for one run, and the blocks the piece holds."""
    # One BLAS thread: a spinning worker thread would add to the count.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/out",
                sys.executable,
                __file__,
                "--child",
                set_name,
                piece,
                mode,
            ],
            capture_output=True,
            text=True,
            env=env,
        )
    if out.returncode:
        raise RuntimeError(f"valgrind failed ({out.returncode}):\n{out.stderr[-2000:]}")
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"callgrind reported no count:\n{out.stderr[-2000:]}")
    return int(found.group(1)), int(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="dev")
    parser.add_argument("--only", default="house,dnb,afrobeat_live", help="pieces, by name")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    pieces = args.only.split(",")
    for piece in pieces:
        _rendered(args.set, piece)  # before counting, so that no child renders
    ratios = []
    print("| piece | aubio (instructions per block) | ours, beats only | ours / aubio |")
    print("|---|---|---|---|")
    for piece in pieces:
        counts = {mode: _instructions(args.set, piece, mode) for mode in MODES}
        blocks = counts["load"][1]
        aubio = (counts["aubio"][0] - counts["load"][0]) / blocks
        ours = (counts["ours"][0] - counts["load"][0]) / blocks
        ratios.append(ours / aubio)
        row = f"| {args.set} {piece} | {aubio / 1e3:.0f} k | {ours / 1e3:.0f} k"
        print(f"{row} | {ours / aubio:.2f}× |", flush=True)
    print(f"\nours / aubio, instructions per block: {min(ratios):.2f}-{max(ratios):.2f}×")


if __name__ == "__main__":
    main()
