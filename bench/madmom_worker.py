"""madmom's online beat tracker as a worker, run by ``bench/beat.py`` in madmom's own venv.

madmom 0.16.1 (the last release) does not build against numpy 2, which the daemon
needs, so it lives in a venv of its own (``bench/madmom_venv.sh`` makes it). Each line
on stdin is JSON, the path of a ``.npy`` file (mono float32) and its sample rate; each
line on stdout is JSON: the beats (s) and the thread time the tracker took (s; the
parent pins BLAS to one thread, so that is all its work). Nothing here
imports the daemon: this runs on numpy 1.23.

As madmom's online mode is meant: ``RNNBeatProcessor(online=True)`` (its causal,
unidirectional networks) and ``DBNBeatTrackingProcessor(online=True)`` (forward
decoding, each beat reported when its frame arrives), at 44.1 kHz, the rate its
networks were trained at.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings

import numpy as np
from madmom.audio.signal import Signal
from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor
from scipy.signal import resample_poly

RATE = 44100


def beats_of(x: np.ndarray, sr: int) -> tuple[list[float], float]:
    if sr != RATE:
        g = math.gcd(RATE, sr)
        x = resample_poly(x, RATE // g, sr // g).astype(np.float32)
    # Built before the clock starts (loading the networks is not tracking), and anew
    # for every piece: the online decoder keeps its state from one call to the next.
    rnn = RNNBeatProcessor(online=True)
    dbn = DBNBeatTrackingProcessor(fps=100, online=True)
    signal = Signal(x, sample_rate=RATE)
    started = time.thread_time()
    beats = dbn(rnn(signal))
    return [float(b) for b in beats], time.thread_time() - started


def main() -> None:
    warnings.simplefilter("ignore")  # numpy 1.23's deprecation notes on madmom's aliases
    for line in sys.stdin:
        request = json.loads(line)
        beats, cpu = beats_of(np.load(request["path"]), int(request["sr"]))
        print(json.dumps({"beats": beats, "cpu_s": cpu}), flush=True)


if __name__ == "__main__":
    main()
