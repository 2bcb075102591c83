"""Pieces of music as MIDI, with the exact beat and bar times (pure, deterministic).

Each :class:`Piece` names a style, a tempo (or a ramp, a step change, a
drift like a live drummer's), a structure (breakdown and drop, fills) and a
seed; :func:`compose` turns it into note events in seconds plus the ground
truth: every beat and every downbeat, taken from the score, not from audio.
Styles give a drum kit part (General MIDI channel 10), a bass line and
harmony (pads, stabs, comping), so every piece has drums, bass and harmony.

Per-note timing jitter ("live-played") moves the notes, not the annotations:
the beat is where the band's grid is, as a human tapper would put it.
"""

from __future__ import annotations

import dataclasses
import math
import random

import mido

# General MIDI drum notes.
KICK, RIM, SNARE, CLAP, CHAT, PHAT, OHAT = 36, 37, 38, 39, 42, 44, 46
CRASH, RIDE, TOM_HI, TOM_MID, TOM_LO = 49, 51, 50, 47, 45
SHAKER, COWBELL, CLAVES, TAMB, CONGA_HI, CONGA_LO = 70, 56, 75, 54, 63, 64
BONGO_HI, BONGO_LO, WOODBLOCK = 60, 61, 76

DRUMS, BASS, HARM, PAD = 9, 0, 1, 2  # MIDI channels

# A minor-key progression (chord roots as semitones above the key) and chord shapes.
PROGRESSIONS = ([0, 8, 3, 10], [0, 5, 8, 7], [0, 3, 8, 10], [0, 10, 8, 7])
MINOR, MAJOR = (0, 3, 7, 10), (0, 4, 7, 11)


@dataclasses.dataclass(frozen=True)
class Piece:
    """One piece of the evaluation set."""

    name: str
    style: str
    bpm: float
    seed: int
    soundfont: str = "musescore"
    seconds: float = 36.0
    ramp: tuple[float, float, float] | None = None  # (to_bpm, from_s, to_s)
    step: tuple[float, float] | None = None  # (new_bpm, at_s): a tempo change on a bar line
    breakdown: tuple[int, int] | None = None  # (first bar, bars): drums and bass drop out
    fills: bool = False  # a tom/snare fill on the last beat of every 4th bar
    jitter_ms: float = 0.0  # per-note timing spread (live playing)
    drift: float = 0.0  # slow tempo wander, relative (live playing)
    swing: float = 0.0  # delay of the off 16ths, as a share of a 16th
    noise_db: float | None = None  # SNR of added noise, if any
    kick_gain: float = 1.0  # <1: a kick softer than the snare/clap


@dataclasses.dataclass
class Score:
    """Notes in seconds and the ground truth."""

    notes: list[tuple[float, int, int, int, float]]  # (t, channel, note, velocity, duration)
    programs: dict[int, int]
    beats: list[float]
    downbeats: list[float]
    beats_per_bar: int


# ------------------------------------------------------------------ styles
#
# A style: (beats per bar, steps per beat, drum pattern, bass steps, harmony
# steps, programs). Drum pattern: note -> {step: velocity}; a step list of
# (step, length in steps) for the bass and the harmony ("pad" = whole bar).

Pattern = dict[int, dict[int, int]]


def _steps(steps: str, vel: int) -> dict[int, int]:
    """'x...x...' -> {0: vel, 4: vel}; upper-case X is an accent, lower-case o a ghost."""
    out = {}
    for i, c in enumerate(steps.replace(" ", "")):
        if c == "x":
            out[i] = vel
        elif c == "X":
            out[i] = min(127, vel + 25)
        elif c == "o":
            out[i] = max(20, vel // 3)
    return out


@dataclasses.dataclass(frozen=True)
class Style:
    beats_per_bar: int
    steps_per_beat: int
    drums: Pattern
    bass: tuple[tuple[int, int], ...]
    harmony: tuple[tuple[int, int], ...] | str
    programs: dict[int, int]
    alt_drums: Pattern | None = None  # every other bar
    # Semitones above the chord's root, one per bass step (an octave line, a 303 line);
    # None: the root, now and then the fifth.
    bass_notes: tuple[int, ...] | None = None


STYLES: dict[str, Style] = {
    "house": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 110),
            CLAP: _steps("....x.......x...", 105),
            OHAT: _steps("..x...x...x...x.", 80),
            CHAT: _steps("x.x.x.x.x.x.x.x.", 50),
        },
        ((2, 2), (6, 2), (10, 2), (14, 2)),
        "pad",
        {BASS: 38, HARM: 89, PAD: 4},
    ),
    "techno": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 115),
            CHAT: _steps("..x...x...x...x.", 85),
            RIM: _steps("...x......x....x", 70),
            CLAP: _steps("....x.......x...", 70),
        },
        ((1, 1), (2, 1), (3, 1), (5, 1), (6, 1), (7, 1), (9, 1), (10, 1), (11, 1), (13, 1)),
        ((3, 1), (10, 2)),
        {BASS: 39, HARM: 81, PAD: 90},
    ),
    "deephouse": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 95),
            CLAP: _steps("....x.......x...", 85),
            SHAKER: _steps("xxxxxxxxxxxxxxxx", 45),
            OHAT: _steps("..x...x...x...x.", 55),
        },
        ((0, 2), (3, 2), (6, 1), (10, 3), (14, 1)),
        ((2, 3), (7, 3), (10, 4)),
        {BASS: 33, HARM: 4, PAD: 89},
    ),
    "dnb": Style(
        4,
        4,
        {
            KICK: _steps("x.........x.....", 115),
            SNARE: _steps("....x..o....x..o", 110),
            CHAT: _steps("x.x.x.x.x.x.x.x.", 65),
        },
        ((0, 6), (10, 4)),
        "pad",
        {BASS: 38, HARM: 89, PAD: 91},
        alt_drums={
            KICK: _steps("x.x.......x.....", 115),
            SNARE: _steps("....x..o....x.o.", 110),
            CHAT: _steps("x.x.x.x.x.x.x.xx", 65),
        },
    ),
    "dubstep": Style(
        4,
        4,
        {
            KICK: _steps("x.........x.....", 120),
            SNARE: _steps("........X.......", 105),
            CHAT: _steps("x.x.x.x.x.x.x.x.", 60),
        },
        ((0, 3), (3, 3), (6, 2), (10, 3), (13, 3)),
        "pad",
        {BASS: 39, HARM: 90, PAD: 50},
        alt_drums={
            KICK: _steps("x.....x...x.....", 120),
            SNARE: _steps("........X.......", 105),
            CHAT: _steps("x.x.x.x.x.xxx.x.", 60),
        },
    ),
    "trap": Style(
        4,
        4,
        {
            KICK: _steps("x......x..x.....", 120),
            CLAP: _steps("........X.......", 110),
            CHAT: _steps("xxxxxxxxxxxxxxxx", 55),
        },
        ((0, 7), (7, 3), (10, 6)),
        ((0, 2), (4, 2), (8, 2), (12, 2)),
        {BASS: 38, HARM: 11, PAD: 89},
        alt_drums={
            KICK: _steps("x..x.......x....", 120),
            CLAP: _steps("........X.......", 110),
            CHAT: _steps("x.x.x.x.xxxxxxxx", 55),
        },
    ),
    "hiphop": Style(
        4,
        4,
        {
            KICK: _steps("x......x..x.....", 115),
            SNARE: _steps("....X.......X...", 105),
            CHAT: _steps("x.x.x.x.x.x.x.x.", 60),
        },
        ((0, 3), (7, 2), (10, 4)),
        ((0, 6), (8, 6)),
        {BASS: 33, HARM: 4, PAD: 48},
    ),
    "reggaeton": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 110),
            SNARE: _steps("...x..x....x..x.", 95),
            CHAT: _steps("x.x.x.x.x.x.x.x.", 50),
        },
        ((0, 3), (3, 3), (8, 3), (11, 3)),
        ((0, 3), (3, 3), (8, 3), (11, 3)),
        {BASS: 38, HARM: 81, PAD: 89},
    ),
    "afrobeat": Style(
        4,
        4,
        {
            KICK: _steps("x.....x...x.....", 105),
            RIM: _steps("....x..o....x..o", 85),
            SHAKER: _steps("xxxxxxxxxxxxxxxx", 55),
            COWBELL: _steps("x.x.xx.x.x.x", 65),
        },
        ((0, 2), (3, 1), (6, 2), (10, 2), (13, 1)),
        ((2, 1), (5, 1), (8, 1), (11, 1), (14, 1)),
        {BASS: 33, HARM: 27, PAD: 61},
    ),
    "pop": Style(
        4,
        4,
        {
            KICK: _steps("x.......x.x.....", 110),
            SNARE: _steps("....x.......x...", 105),
            CHAT: _steps("x.x.x.x.x.x.x.x.", 65),
        },
        ((0, 2), (2, 2), (4, 2), (6, 2), (8, 2), (10, 2), (12, 2), (14, 2)),
        ((0, 4), (4, 4), (8, 4), (12, 4)),
        {BASS: 34, HARM: 0, PAD: 48},
    ),
    "rock": Style(
        4,
        4,
        {
            KICK: _steps("x.....x.x.......", 115),
            SNARE: _steps("....X.......X...", 110),
            CHAT: _steps("x.x.x.x.x.x.x.x.", 75),
        },
        ((0, 2), (2, 2), (4, 2), (6, 2), (8, 2), (10, 2), (12, 2), (14, 2)),
        ((0, 2), (2, 2), (4, 2), (6, 2), (8, 2), (10, 2), (12, 2), (14, 2)),
        {BASS: 34, HARM: 29, PAD: 16},
    ),
    "funk": Style(
        4,
        4,
        {
            KICK: _steps("x..x......x.....", 110),
            SNARE: _steps("....X..o.o..X.o.", 105),
            CHAT: _steps("XxxxXxxxXxxxXx.x", 55),
            OHAT: _steps("..............x.", 70),
        },
        ((0, 1), (3, 1), (6, 1), (7, 1), (10, 1), (12, 1), (14, 1)),
        ((2, 1), (5, 1), (8, 1), (11, 1), (13, 1)),
        {BASS: 36, HARM: 7, PAD: 61},
    ),
    "breakbeat": Style(
        4,
        4,
        {
            KICK: _steps("x.x.......xx....", 115),
            SNARE: _steps("....X..x.x..X..x", 105),
            RIDE: _steps("x.x.x.x.x.x.x.x.", 60),
        },
        ((0, 3), (3, 2), (10, 3), (14, 2)),
        "pad",
        {BASS: 38, HARM: 89, PAD: 81},
        alt_drums={
            KICK: _steps("x.x.......x.....", 115),
            SNARE: _steps("....X..x.x..X...", 105),
            RIDE: _steps("x.x.x.x.x.x.x.x.", 60),
        },
    ),
    "ambient": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 60),
            SHAKER: _steps("..x...x...x...x.", 30),
        },
        ((0, 16),),
        "pad",
        {BASS: 38, HARM: 89, PAD: 95},
    ),
    "waltz": Style(
        3,
        4,
        {
            KICK: _steps("x...........", 105),
            SNARE: _steps("....x...x...", 75),
            CHAT: _steps("x.x.x.x.x.x.", 50),
        },
        ((0, 4),),
        ((4, 3), (8, 3)),
        {BASS: 32, HARM: 0, PAD: 48},
    ),
    "sixeight": Style(
        2,
        3,
        {
            KICK: _steps("x.....", 105),
            SNARE: _steps("...x..", 95),
            CHAT: _steps("xxxxxx", 55),
        },
        ((0, 3), (3, 3)),
        ((0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1)),
        {BASS: 33, HARM: 24, PAD: 48},
    ),
}

# Other grooves of the same styles, as other producers and drummers play them: the
# ``grooves`` set (see sets.py) scores the tracker on patterns it was not built on.
GROOVES: dict[str, Style] = {
    "house_snare": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 110),
            SNARE: _steps("....x.......x...", 95),
            OHAT: _steps("..x...x...x...x.", 75),
            SHAKER: _steps("xxxxxxxxxxxxxxxx", 40),
        },
        ((2, 1), (6, 1), (10, 1), (14, 1)),
        ((3, 1), (10, 2)),
        {BASS: 38, HARM: 4, PAD: 89},
    ),
    "techno_ride": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 118),
            CHAT: _steps("xxxxxxxxxxxxxxxx", 60),
            OHAT: _steps("..x...x...x...x.", 70),
            CLAP: _steps("....x.......x...", 90),
            RIDE: _steps("x.x.x.x.x.x.x.x.", 50),
        },
        ((2, 1), (6, 1), (10, 1), (14, 1)),
        ((0, 1), (6, 1), (12, 1)),
        {BASS: 38, HARM: 81, PAD: 90},
    ),
    "dnb_twostep": Style(
        4,
        4,
        {
            KICK: _steps("x.........x.....", 115),
            SNARE: _steps("....x.......x...", 110),
            RIDE: _steps("x.x.x.x.x.x.x.x.", 70),
        },
        ((0, 3), (10, 3)),
        "pad",
        {BASS: 38, HARM: 89, PAD: 91},
        alt_drums={
            KICK: _steps("x.........x..x..", 115),
            SNARE: _steps("....x.......x...", 110),
            RIDE: _steps("x.x.x.x.x.x.x.x.", 70),
        },
    ),
    "dubstep_triplet": Style(
        4,
        4,
        {
            KICK: _steps("x.............x.", 120),
            SNARE: _steps("........X.......", 110),
            CHAT: _steps("x.x.x.x.x.x.x.x.", 55),
            OHAT: _steps("......x.......x.", 60),
        },
        ((0, 4), (6, 2), (8, 4), (14, 2)),
        "pad",
        {BASS: 38, HARM: 90, PAD: 50},
    ),
    "trap_rolls": Style(
        4,
        4,
        {
            KICK: _steps("x.....x...x..x..", 120),
            SNARE: _steps("........X.......", 110),
            CHAT: _steps("x.x.x.x.x.xxx.x.", 60),
        },
        ((0, 6), (6, 4), (13, 3)),
        ((0, 4), (8, 4)),
        {BASS: 38, HARM: 11, PAD: 89},
    ),
    "hiphop_boombap": Style(
        4,
        4,
        {
            KICK: _steps("x.........x.x...", 115),
            SNARE: _steps("....X.......X...", 110),
            CHAT: _steps("x.x.x.x.x.x.x.x.", 55),
        },
        ((0, 4), (10, 2), (12, 4)),
        ((0, 8), (8, 8)),
        {BASS: 33, HARM: 0, PAD: 48},
    ),
    "reggaeton_rim": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 108),
            RIM: _steps("...x..x....x..x.", 100),
            CHAT: _steps("..x...x...x...x.", 55),
        },
        ((0, 3), (3, 3), (8, 3), (11, 3)),
        ((3, 1), (6, 1), (11, 1), (14, 1)),
        {BASS: 38, HARM: 11, PAD: 89},
    ),
    "afrobeat_snare": Style(
        4,
        4,
        {
            KICK: _steps("x.....x...x.....", 105),
            SNARE: _steps("....x..o....x..o", 100),
            CHAT: _steps("x.xxx.xxx.xxx.xx", 55),
            OHAT: _steps("..x.......x.....", 65),
        },
        ((0, 2), (3, 1), (6, 2), (10, 2), (13, 1)),
        ((2, 1), (5, 1), (8, 1), (11, 1), (14, 1)),
        {BASS: 33, HARM: 27, PAD: 61},
    ),
    "afrobeats_pop": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 105),
            RIM: _steps("...x..x...x..x..", 95),
            CLAP: _steps("....x.......x...", 90),
            SHAKER: _steps("x.xxx.xxx.xxx.xx", 50),
        },
        ((0, 3), (3, 3), (6, 2), (10, 2), (12, 2)),
        ((0, 2), (3, 2), (6, 2), (10, 2)),
        {BASS: 38, HARM: 25, PAD: 89},
    ),
    "pop_fourfloor": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 110),
            CLAP: _steps("....x.......x...", 105),
            CHAT: _steps("x.x.x.x.x.x.x.x.", 60),
            TAMB: _steps("..x...x...x...x.", 45),
        },
        ((0, 2), (3, 2), (6, 2), (8, 2), (11, 2), (14, 2)),
        ((0, 4), (4, 4), (8, 4), (12, 4)),
        {BASS: 34, HARM: 0, PAD: 48},
    ),
    "rock_eighths": Style(
        4,
        4,
        {
            KICK: _steps("x.......x.......", 115),
            SNARE: _steps("....X.......X...", 110),
            RIDE: _steps("x.x.x.x.x.x.x.x.", 70),
            OHAT: _steps("..............x.", 65),
        },
        ((0, 2), (2, 2), (4, 2), (6, 2), (8, 2), (10, 2), (12, 2), (14, 2)),
        ((0, 4), (4, 4), (8, 4), (12, 4)),
        {BASS: 34, HARM: 30, PAD: 16},
    ),
    "funk_ghosts": Style(
        4,
        4,
        {
            KICK: _steps("x.x...x...x..x..", 110),
            SNARE: _steps("o...X..o.o.oX..o", 105),
            CHAT: _steps("xxxxxxxxxxxxxxxx", 55),
        },
        ((0, 1), (2, 1), (6, 1), (10, 1), (13, 1)),
        ((0, 1), (3, 1), (6, 1), (9, 1), (12, 1)),
        {BASS: 36, HARM: 28, PAD: 61},
    ),
    "breakbeat_think": Style(
        4,
        4,
        {
            KICK: _steps("x..x..x.x.......", 115),
            SNARE: _steps("....X.......X..x", 105),
            CHAT: _steps("x.x.x.x.x.x.x.x.", 65),
        },
        ((0, 3), (6, 2), (8, 4)),
        "pad",
        {BASS: 38, HARM: 89, PAD: 81},
    ),
    "garage_2step": Style(
        4,
        4,
        {
            KICK: _steps("x.........x.....", 110),
            SNARE: _steps("....x.......x...", 100),
            CHAT: _steps("..x...x...x...x.", 70),
            RIM: _steps(".......x......x.", 60),
        },
        ((0, 2), (7, 1), (10, 3)),
        ((3, 1), (11, 1)),
        {BASS: 38, HARM: 4, PAD: 89},
    ),
    "ambient_rim": Style(
        4,
        4,
        {
            KICK: _steps("x.......x.......", 60),
            RIM: _steps("....x.......x...", 45),
            SHAKER: _steps("x.x.x.x.x.x.x.x.", 30),
        },
        ((0, 16),),
        "pad",
        {BASS: 38, HARM: 89, PAD: 95},
    ),
    "waltz_jazz": Style(
        3,
        4,
        {
            KICK: _steps("x...........", 90),
            RIDE: _steps("x...x..xx..x", 75),
            PHAT: _steps("....x.......", 60),
        },
        ((0, 4), (4, 4), (8, 4)),
        ((4, 2), (8, 2)),
        {BASS: 32, HARM: 0, PAD: 48},
    ),
    "twelveeight": Style(
        4,
        3,
        {
            KICK: _steps("x.....x.....", 105),
            SNARE: _steps("...x.....x..", 100),
            RIDE: _steps("xxxxxxxxxxxx", 55),
        },
        ((0, 3), (3, 2), (5, 1), (6, 3), (9, 3)),
        ((0, 3), (3, 3), (6, 3), (9, 3)),
        {BASS: 33, HARM: 24, PAD: 48},
    ),
}
STYLES.update(GROOVES)

# New grooves written for the ``producers`` set (see sets.py) by someone who never saw
# the tracker: the styles as producers in them write a loop today, with parts the
# tables above do not have (octave and 303 bass lines, congas, log drums, shuffles).
PRODUCERS: dict[str, Style] = {
    # Tech house: shuffled 16th hats (ghosted on the beat, accented on the "and"), a
    # rim line, an off-beat bass with a 16th pickup an octave up, organ stabs on the
    # last 16th of beats 2 and 4.
    "tech_house": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 112),
            CLAP: _steps("....x.......x...", 95),
            CHAT: _steps("oxXxoxXxoxXxoxXx", 60),
            RIM: _steps("...x..x....x.x..", 60),
        },
        ((2, 1), (3, 1), (6, 1), (10, 1), (11, 1), (14, 1)),
        ((7, 1), (15, 1)),
        {BASS: 38, HARM: 17, PAD: 89},
        bass_notes=(0, 12, 0, 0, 12, 0),
    ),
    # Melodic techno: the kick's rumble (a short low note on every off 16th), clap on 2
    # and 4, congas and an open hat, a 3-3-2 lead figure.
    "melodic_techno": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 118),
            CLAP: _steps("....x.......x...", 80),
            OHAT: _steps("..x...x...x...x.", 55),
            CONGA_HI: _steps(".....x.x......x.", 50),
            CONGA_LO: _steps("..x.......x.....", 55),
        },
        ((1, 1), (3, 1), (5, 1), (7, 1), (9, 1), (11, 1), (13, 1), (15, 1)),
        ((0, 3), (3, 3), (6, 2), (8, 3), (11, 3), (14, 2)),
        {BASS: 38, HARM: 81, PAD: 89},
    ),
    # Minimal techno: a soft clap layered on every kick, clicky hats and claves, a sparse
    # bass and one electric-piano stab a bar.
    "minimal_techno": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 105),
            CLAP: _steps("x...x...x...x...", 55),
            CHAT: _steps("..xx..x...xx..x.", 50),
            CLAVES: _steps(".x....x....x....", 55),
        },
        ((3, 1), (6, 1), (11, 1), (14, 1)),
        ((10, 1),),
        {BASS: 38, HARM: 4, PAD: 89},
    ),
    # Progressive house: an off-beat ride, a 16th shaker, a rolling off-beat bass (two
    # 16ths after every beat), a polysynth pad.
    "progressive_house": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 110),
            CLAP: _steps("....x.......x...", 90),
            RIDE: _steps("..x...x...x...x.", 60),
            SHAKER: _steps("oxxxoxxxoxxxoxxx", 50),
        },
        ((2, 1), (3, 1), (6, 1), (7, 1), (10, 1), (11, 1), (14, 1), (15, 1)),
        "pad",
        {BASS: 38, HARM: 81, PAD: 90},
    ),
    # Acid house: 909 kick, clap, open hats off the beat, flat 16th closed hats, and a
    # 303-style 16th line (octaves, minor third, fifth, seventh); a piano stab.
    "acid_house": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 112),
            CLAP: _steps("....x.......x...", 90),
            OHAT: _steps("..x...x...x...x.", 65),
            CHAT: _steps("xxxxxxxxxxxxxxxx", 40),
        },
        (
            (0, 1),
            (1, 1),
            (3, 1),
            (4, 1),
            (6, 2),
            (8, 1),
            (9, 1),
            (10, 1),
            (12, 1),
            (13, 1),
            (14, 1),
            (15, 1),
        ),
        ((0, 2), (6, 1)),
        {BASS: 39, HARM: 2, PAD: 89},
        bass_notes=(0, 12, 0, 15, 0, 12, 10, 0, 12, 0, 7, 12),
    ),
    # Electro: an 808 kick on 1, 1a, 3, 3a (the second bar ends on 4&), clap on 2 and 4,
    # busy closed hats, an 808 cowbell; the bass follows the kick.
    "electro": Style(
        4,
        4,
        {
            KICK: _steps("x..x....x..x....", 120),
            CLAP: _steps("....x.......x...", 100),
            CHAT: _steps("x.xxx.xxx.xxx.xx", 50),
            COWBELL: _steps("......x.......x.", 55),
        },
        ((0, 2), (3, 2), (8, 2), (11, 1), (14, 2)),
        ((4, 1), (12, 2)),
        {BASS: 38, HARM: 81, PAD: 89},
        alt_drums={
            KICK: _steps("x..x....x.....x.", 120),
            CLAP: _steps("....x.......x...", 100),
            CHAT: _steps("x.xxx.xxx.xxx.xx", 50),
            COWBELL: _steps("......x.......x.", 55),
        },
        bass_notes=(0, 0, 0, 12, 10),
    ),
    # Jungle: a chopped break (kicks and ghost snares moved around, a roll into the
    # second bar's end), a long sub bass, a choir pad.
    "jungle": Style(
        4,
        4,
        {
            KICK: _steps("x.x.....x.x.....", 115),
            SNARE: _steps("....X..o.o..X..o", 105),
            CHAT: _steps("x.x.x.x.x.xxx.x.", 55),
        },
        ((0, 12), (12, 4)),
        "pad",
        {BASS: 38, HARM: 89, PAD: 52},
        alt_drums={
            KICK: _steps("x.........xx....", 115),
            SNARE: _steps("..o.X..o.o.oX.Xo", 105),
            CHAT: _steps("x.x.x.x.x.x.x.xx", 55),
        },
        bass_notes=(0, -2),
    ),
    # Liquid drum & bass: kick on 1 and 2a, 3&, snare on 2 and 4 with ghosts, a quiet
    # 16th shaker and a quarter ride, electric-piano chords, a rolling bass.
    "liquid_dnb": Style(
        4,
        4,
        {
            KICK: _steps("x......x..x.....", 110),
            SNARE: _steps("....X.o.....X..o", 105),
            SHAKER: _steps("xxxxxxxxxxxxxxxx", 35),
            RIDE: _steps("x...x...x...x...", 50),
        },
        ((0, 3), (3, 1), (7, 3), (10, 6)),
        ((0, 7), (10, 6)),
        {BASS: 38, HARM: 4, PAD: 89},
        bass_notes=(0, 12, 7, 0),
    ),
    # Halftime: kick on 1 and 1&, then 3a (the second bar 2&), the snare on 3, quarter
    # hats and an open hat, a halo pad.
    "halftime": Style(
        4,
        4,
        {
            KICK: _steps("x.x........x....", 122),
            SNARE: _steps("........X.......", 110),
            CHAT: _steps("x...x...x...x...", 55),
            OHAT: _steps("..x.......x.....", 50),
        },
        ((0, 2), (2, 6), (11, 5)),
        "pad",
        {BASS: 39, HARM: 90, PAD: 94},
        alt_drums={
            KICK: _steps("x.x...x.........", 122),
            SNARE: _steps("........X.......", 110),
            CHAT: _steps("x...x...x...x...", 55),
            OHAT: _steps("..x.......x.....", 50),
        },
        bass_notes=(0, 12, -2),
    ),
    # UK drill: the 808 kick on off-positions (1, 2a, 4e; the second bar 1a, 3&), snare
    # on 3 and a late one on 4&, 3-3-2 hats with a roll, long 808 notes, pizzicato.
    "uk_drill": Style(
        4,
        4,
        {
            KICK: _steps("x......x.....x..", 120),
            SNARE: _steps("........X.......", 110),
            CHAT: _steps("x..x..x.x..x..x.", 55),
        },
        ((0, 7), (7, 6), (13, 3)),
        ((0, 2), (3, 2), (6, 2), (10, 2), (13, 2)),
        {BASS: 38, HARM: 45, PAD: 48},
        alt_drums={
            KICK: _steps("...x......x.....", 120),
            SNARE: _steps(".....o..X.....x.", 110),
            CHAT: _steps("x..x..x.x.xxx.x.", 55),
        },
        bass_notes=(0, 3, -2),
    ),
    # Lo-fi hip hop: kick on 1, 3 and 3a, a soft snare with a ghost before 4, lazy hats,
    # Rhodes chords held across the bar line's last 8th, an upright bass.
    "lofi_hiphop": Style(
        4,
        4,
        {
            KICK: _steps("x.......x..x....", 100),
            SNARE: _steps("....x......ox...", 90),
            CHAT: _steps("x.xxx.x.x.xxx.x.", 45),
        },
        ((0, 4), (6, 2), (8, 4), (14, 2)),
        ((0, 6), (7, 5), (14, 2)),
        {BASS: 32, HARM: 4, PAD: 89},
        bass_notes=(0, 7, 0, 10),
    ),
    # Dancehall steppers: kick on every beat, snare on 2 and 4, a rim on the 3-3-2, an
    # off-beat tambourine, organ skanks off the beat.
    "dancehall_steppers": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 105),
            SNARE: _steps("....x.......x...", 95),
            RIM: _steps("x..x..x.x..x..x.", 70),
            TAMB: _steps("..x...x...x...x.", 50),
        },
        ((0, 2), (3, 1), (6, 2), (8, 2), (11, 1), (14, 2)),
        ((2, 1), (6, 1), (10, 1), (14, 1)),
        {BASS: 38, HARM: 16, PAD: 89},
    ),
    # Amapiano: kick on 1 and 3, clap on 2 and 4, a woodblock on 1a, 2&, 3&, a 16th
    # shaker accented off the beat, the log drum (a pitched drum as the bass) on
    # syncopated 16ths, jazzy piano.
    "amapiano": Style(
        4,
        4,
        {
            KICK: _steps("x.......x.......", 105),
            CLAP: _steps("....x.......x...", 80),
            WOODBLOCK: _steps("...x..x...x.....", 60),
            SHAKER: _steps("xxXxxxXxxxXxxxXx", 40),
        },
        ((3, 1), (6, 2), (9, 1), (11, 2), (14, 2)),
        ((0, 2), (6, 2), (12, 3)),
        {BASS: 117, HARM: 0, PAD: 89},
        bass_notes=(0, 0, 12, 0, -2),
    ),
    # Afro house: four on the floor, cross-stick on 2 and 4, high and low congas, a
    # bongo, an off 16th shaker, kalimba chords on a 3-3-2.
    "afro_house": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 110),
            RIM: _steps("....x.......x...", 70),
            CONGA_HI: _steps("..x..x....x..x..", 60),
            CONGA_LO: _steps("......x.x.....x.", 65),
            BONGO_HI: _steps(".x.......x......", 45),
            SHAKER: _steps("..xx..xx..xx..xx", 40),
        },
        ((0, 2), (3, 2), (7, 1), (10, 2), (13, 2)),
        ((0, 1), (3, 1), (6, 1), (8, 1), (11, 1), (14, 1)),
        {BASS: 38, HARM: 108, PAD: 89},
        bass_notes=(0, 0, 12, 0, 7),
    ),
    # Nu-disco: four on the floor, snare and clap on 2 and 4, open hats off the beat and
    # closed 16ths around them, an 8th tambourine, an octave bass with 16th pickups,
    # muted-guitar chops.
    "nu_disco": Style(
        4,
        4,
        {
            KICK: _steps("x...x...x...x...", 110),
            SNARE: _steps("....x.......x...", 95),
            CLAP: _steps("....x.......x...", 70),
            OHAT: _steps("..x...x...x...x.", 70),
            CHAT: _steps("xx.xxx.xxx.xxx.x", 50),
            TAMB: _steps("x.x.x.x.x.x.x.x.", 40),
        },
        ((0, 1), (2, 1), (4, 1), (6, 1), (7, 1), (8, 1), (10, 1), (12, 1), (14, 1), (15, 1)),
        ((2, 1), (4, 1), (7, 1), (10, 1), (12, 1), (15, 1)),
        {BASS: 33, HARM: 28, PAD: 48},
        bass_notes=(0, 12, 0, 12, 0, 0, 12, 0, 12, 12),
    ),
    # Pop ballad in 6/8 (two dotted-quarter beats a bar): kick on 1 with a pickup on the
    # bar's last 8th every other bar, cross-stick on 2, hats accented on the beats, a
    # piano figure, strings.
    "ballad_sixeight": Style(
        2,
        3,
        {
            KICK: _steps("x....x", 95),
            RIM: _steps("...X..", 80),
            CHAT: _steps("xoxxox", 50),
        },
        ((0, 3), (3, 2), (5, 1)),
        ((0, 2), (2, 1), (3, 2), (5, 1)),
        {BASS: 33, HARM: 0, PAD: 49},
        alt_drums={
            KICK: _steps("x.....", 95),
            RIM: _steps("...X..", 80),
            CHAT: _steps("xoxxox", 50),
        },
    ),
    # Pop in 3/4: kick on 1 and 3&, snare on 3, tambourine on 2 and 3, a soft 8th shaker,
    # steel-string guitar chords on 1 and 2&, the bass walking 1-5-8.
    "waltz_pop": Style(
        3,
        4,
        {
            KICK: _steps("x.........x.", 105),
            SNARE: _steps("........x...", 95),
            TAMB: _steps("....x...x...", 55),
            SHAKER: _steps("x.x.x.x.x.x.", 35),
        },
        ((0, 6), (8, 2), (10, 2)),
        ((0, 6), (6, 6)),
        {BASS: 32, HARM: 25, PAD: 48},
        bass_notes=(0, 7, 12),
    ),
    # Rock shuffle (triplet 8ths): kick on 1, 2-let and 3, snare on 2 and 4 with a ghost
    # before 1, shuffled hats, a boogie bass (1-5-6-5), overdriven guitar chops.
    "rock_shuffle": Style(
        4,
        3,
        {
            KICK: _steps("x....xx.....", 115),
            SNARE: _steps("...X.....X.o", 105),
            CHAT: _steps("x.xx.xx.xx.x", 70),
        },
        ((0, 2), (2, 1), (3, 2), (5, 1), (6, 2), (8, 1), (9, 2), (11, 1)),
        ((0, 2), (3, 2), (6, 2), (9, 2)),
        {BASS: 34, HARM: 29, PAD: 16},
        bass_notes=(0, 0, 7, 7, 9, 9, 7, 7),
    ),
    # Reggae one drop: kick and rim together on 3 only, 8th hats with a 16th at the end,
    # a bass that leaves beat 1 empty, guitar skank on 2 and 4.
    "reggae_onedrop": Style(
        4,
        4,
        {
            KICK: _steps("........x.......", 110),
            RIM: _steps("........x.......", 95),
            CHAT: _steps("x.x.x.x.x.x.x.xx", 50),
        },
        ((2, 2), (4, 1), (5, 1), (6, 2), (10, 2), (12, 3)),
        ((4, 1), (12, 1)),
        {BASS: 33, HARM: 27, PAD: 16},
        bass_notes=(0, 0, 3, 5, 7, 0),
    ),
    # Baile funk: the tamborzão kick (3-3-2 twice), snare on 2, 2a and 4, 8th hats, an
    # 808 bass, orchestra hits.
    "baile_funk": Style(
        4,
        4,
        {
            KICK: _steps("x..x..x.x..x..x.", 110),
            SNARE: _steps("....x..x....x...", 90),
            CHAT: _steps("x.x.x.x.x.x.x.x.", 50),
        },
        ((0, 3), (6, 2), (8, 3), (14, 2)),
        ((0, 1), (6, 1), (8, 1)),
        {BASS: 38, HARM: 55, PAD: 89},
    ),
    # Synthwave: kick on 1 and 3, a big snare and clap on 2 and 4, 8th hats, a 16th
    # octave-pulse bass, a polysynth pad.
    "synthwave": Style(
        4,
        4,
        {
            KICK: _steps("x.......x.......", 115),
            SNARE: _steps("....X.......X...", 105),
            CLAP: _steps("....x.......x...", 70),
            CHAT: _steps("x.x.x.x.x.x.x.x.", 55),
        },
        tuple((i, 1) for i in range(16)),
        "pad",
        {BASS: 38, HARM: 81, PAD: 90},
        bass_notes=(0, 0, 12, 0) * 4,
    ),
}
STYLES.update(PRODUCERS)

FILL = {TOM_HI: (0, 1), TOM_MID: (2,), TOM_LO: (3,), SNARE: (1,)}  # steps in the last beat


# ------------------------------------------------------------------ timing


def _beat_times(piece: Piece, rng: random.Random) -> list[float]:
    """Times of beats 0..n (covering ``piece.seconds``), integrating the tempo."""
    times = [0.1]
    phase = rng.uniform(0, 2 * math.pi)
    style = STYLES[piece.style]
    while times[-1] < piece.seconds + 2.0:
        t = times[-1]
        bpm = piece.bpm
        if piece.ramp is not None:
            to, a, b = piece.ramp
            bpm = piece.bpm + (to - piece.bpm) * min(max((t - a) / (b - a), 0.0), 1.0)
        if piece.drift:
            bpm *= 1.0 + piece.drift * math.sin(2 * math.pi * t / 23.0 + phase)
        times.append(t + 60.0 / bpm)
    if piece.step is not None:
        # Move the change onto a bar line: recompute with the switch at the first bar at/after it.
        new, at = piece.step
        bpb = style.beats_per_bar
        first = next(i for i, t in enumerate(times) if t >= at)
        first = math.ceil(first / bpb) * bpb
        fixed = times[: first + 1]
        while fixed[-1] < piece.seconds + 2.0:
            fixed.append(fixed[-1] + 60.0 / new)
        times = fixed
    return times


def _at(times: list[float], pos: float) -> float:
    """Time of a position in beats (linear within a beat)."""
    i = min(int(pos), len(times) - 2)
    return times[i] + (pos - i) * (times[i + 1] - times[i])


# ------------------------------------------------------------------ compose


def compose(piece: Piece) -> Score:
    rng = random.Random(piece.seed)
    style = STYLES[piece.style]
    times = _beat_times(piece, rng)
    bpb, spb = style.beats_per_bar, style.steps_per_beat
    steps_per_bar = bpb * spb
    key = 36 + rng.randrange(0, 12)  # bass octave
    prog = PROGRESSIONS[rng.randrange(len(PROGRESSIONS))]
    shape = MINOR if rng.random() < 0.7 else MAJOR
    n_beats = len(times) - 1
    n_bars = n_beats // bpb
    notes: list[tuple[float, int, int, int, float]] = []

    def when(bar: int, step: float) -> float:
        pos = bar * bpb + step / spb
        if piece.swing and spb == 4 and int(step) % 2 == 1:
            pos += piece.swing / spb
        t = _at(times, pos)
        if piece.jitter_ms:
            t += rng.gauss(0.0, piece.jitter_ms / 1000.0)
        return max(t, 0.0)

    def step_len(bar: int, steps: float) -> float:
        return (
            steps * (times[min(bar * bpb + 1, n_beats)] - times[min(bar * bpb, n_beats - 1)]) / spb
        )

    def add(t: float, ch: int, note: int, vel: int, dur: float) -> None:
        if t < piece.seconds:
            vel = int(min(127, max(1, vel * rng.uniform(0.9, 1.05))))
            notes.append((t, ch, note, vel, dur))

    for bar in range(n_bars):
        in_break = (
            piece.breakdown is not None
            and piece.breakdown[0] <= bar < piece.breakdown[0] + piece.breakdown[1]
        )
        root = key + prog[(bar // 2) % len(prog)]
        chord = [root + 24 + i for i in shape[:3]]
        # Harmony (always, also in a breakdown).
        if style.harmony == "pad" or in_break:
            for n in chord:
                add(when(bar, 0), PAD, n, 70, step_len(bar, steps_per_bar) * 0.98)
        if style.harmony != "pad":
            for s, ln in style.harmony:  # type: ignore[union-attr]
                for n in chord:
                    add(when(bar, s), HARM, n + 12, 80, step_len(bar, ln) * 0.9)
        if in_break:
            continue
        # Bass.
        for i, (s, ln) in enumerate(style.bass):
            if style.bass_notes is not None:
                note = root + style.bass_notes[i]
            else:
                note = root + (7 if i % 4 == 3 and rng.random() < 0.5 else 0)
            add(when(bar, s), BASS, note, 100, step_len(bar, ln) * 0.9)
        # Drums.
        pattern = style.alt_drums if style.alt_drums and bar % 2 else style.drums
        fill = piece.fills and bar % 4 == 3
        for note, hits in pattern.items():
            for s, vel in hits.items():
                if fill and s >= steps_per_bar - spb:
                    continue
                if note == KICK:
                    vel = int(vel * piece.kick_gain)
                add(when(bar, s), DRUMS, note, vel, 0.1)
        if fill:
            for note, ss in FILL.items():
                for s in ss:
                    add(when(bar, steps_per_bar - spb + s), DRUMS, note, 110, 0.1)
        first_after_break = piece.breakdown is not None and bar == sum(piece.breakdown)
        if bar % 8 == 0 or first_after_break:
            add(when(bar, 0), DRUMS, CRASH, 100, 0.5)

    beats = [t for t in times if t < piece.seconds]
    downbeats = beats[::bpb]
    return Score(notes, dict(style.programs), beats, downbeats, bpb)


def to_midi(score: Score) -> mido.MidiFile:
    """One track at a fixed 120 BPM with 960 ticks per second: note times are seconds."""
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    for ch, program in score.programs.items():
        track.append(mido.Message("program_change", channel=ch, program=program, time=0))
    events: list[tuple[int, int, mido.Message]] = []
    for t, ch, note, vel, dur in score.notes:
        on = round(t * 960)
        off = max(round((t + dur) * 960), on + 1)
        events.append((on, 1, mido.Message("note_on", channel=ch, note=note, velocity=vel)))
        events.append((off, 0, mido.Message("note_off", channel=ch, note=note, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    last = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    return mid
