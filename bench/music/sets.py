"""The evaluation sets: which pieces, in which styles, with which soundfont.

``dev`` is the set the tracker was tuned on; ``heldout`` is never used for
tuning: other seeds (other keys, progressions, velocities, jitter), other
tempi inside each style's range, and other soundfonts (FluidR3 and TimGM6mb
instead of MuseScore General), so a score on it says how the tracker does on
music it has not seen. ``check`` is a third set (other seeds and tempi again, the
three soundfonts in turn), scored only at the end of a tuning round; ``final`` a fourth,
for when ``check`` has been looked at too; ``fresh`` a fifth, for when ``final`` has.
``grooves`` plays the same styles with other patterns (a snare backbeat in afrobeat,
two-step drum & bass, boom-bap, 12/8...), as other producers write them: how the
tracker does on grooves it was not built on; ``grooves_check`` plays them again with
other seeds, tempi and soundfonts, for a look after ``grooves`` has been tuned on.
``producers`` is new grooves of other styles (tech house, acid, jungle, drill, amapiano,
one drop, a 6/8 ballad...) made by someone who never saw the tracker, and scored once
before any change was made for it; ``producers_check`` plays them again with other
seeds, tempi and soundfonts, for a look after ``producers`` has been looked at.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.music.compose import Piece

# (style, bpm, extra) — the styles VJs play, with the hard cases the issue lists.
PLAN: list[tuple[str, str, float, dict]] = [
    ("house", "house", 126, {}),
    ("house_softkick", "house", 128, {"kick_gain": 0.55}),
    ("techno", "techno", 132, {}),
    ("techno_breakdown", "techno", 128, {"breakdown": (6, 4), "seconds": 40.0}),
    ("deephouse_swing", "deephouse", 121, {"swing": 0.25}),
    ("dnb", "dnb", 174, {}),
    ("dnb_breakdown", "dnb", 172, {"breakdown": (10, 4), "seconds": 40.0}),
    ("dubstep", "dubstep", 140, {}),
    ("trap", "trap", 142, {}),
    ("hiphop_swing", "hiphop", 90, {"swing": 0.3, "jitter_ms": 6.0}),
    ("reggaeton", "reggaeton", 95, {}),
    ("afrobeat_live", "afrobeat", 108, {"jitter_ms": 10.0, "drift": 0.015}),
    ("pop", "pop", 112, {}),
    ("rock_fills", "rock", 128, {"fills": True}),
    ("rock_live", "rock", 118, {"fills": True, "jitter_ms": 12.0, "drift": 0.02}),
    ("funk", "funk", 105, {}),
    ("funk_live", "funk", 100, {"jitter_ms": 8.0, "drift": 0.015}),
    ("breakbeat", "breakbeat", 130, {}),
    ("ambient_pulse", "ambient", 100, {}),
    ("waltz", "waltz", 160, {}),
    ("sixeight", "sixeight", 76, {}),
    ("ramp_house", "house", 120, {"ramp": (128.0, 8.0, 24.0)}),
    ("step_pop", "pop", 110, {"step": (124.0, 18.0)}),
    ("house_noise", "house", 124, {"noise_db": 12.0}),
    ("techno_fills", "techno", 136, {"fills": True}),
    ("hiphop", "hiphop", 86, {}),
]

# Held-out tempo offsets per style: other tempi within each style's usual range.
_SHIFT = {
    "house": 2,
    "techno": -4,
    "deephouse": 2,
    "dnb": 2,
    "dubstep": 0,
    "trap": -4,
    "hiphop": 4,
    "reggaeton": 4,
    "afrobeat": -6,
    "pop": 8,
    "rock": -8,
    "funk": 6,
    "breakbeat": -4,
    "ambient": -8,
    "waltz": -16,
    "sixeight": 6,
}


def dev() -> list[Piece]:
    """The tuning set: MuseScore General, every third piece TimGM6mb."""
    out = []
    for i, (name, style, bpm, extra) in enumerate(PLAN):
        sf = "timgm6mb" if i % 3 == 2 else "musescore"
        out.append(Piece(name, style, bpm, seed=1000 + i, soundfont=sf, **extra))
    return out


def heldout() -> list[Piece]:
    """Never tuned on: other seeds, tempi and soundfonts (FluidR3, TimGM6mb)."""
    out = []
    for i, (name, style, bpm, extra) in enumerate(PLAN):
        sf = "timgm6mb" if i % 2 else "fluidr3"
        extra = dict(extra)
        if "ramp" in extra:
            to, a, b = extra["ramp"]
            extra["ramp"] = (to - 1, a + 2, b + 2)
        if "step" in extra:
            extra["step"] = (extra["step"][0] - 10, extra["step"][1] + 2)
        out.append(
            Piece(name, style, bpm + _SHIFT[style], seed=7000 + 37 * i, soundfont=sf, **extra)
        )
    return out


def _variant(
    seed: tuple[int, int],
    fonts: tuple[str, ...],
    shift: Callable[[int, str], int],
    ramp: tuple[float, float],
    step: tuple[float, float],
    plan: list[tuple[str, str, float, dict]] = PLAN,
) -> list[Piece]:
    """Every piece of the plan again: seeds ``seed[0] + seed[1] * i``, soundfonts in
    turn, tempo ``shift(i, style)`` away, the ramp's end and times moved by ``ramp``,
    the tempo step's tempo and time by ``step``."""
    out = []
    for i, (name, style, bpm, extra) in enumerate(plan):
        extra = dict(extra)
        if "ramp" in extra:
            to, a, b = extra["ramp"]
            extra["ramp"] = (to + ramp[0], a + ramp[1], b + ramp[1])
        if "step" in extra:
            extra["step"] = (extra["step"][0] + step[0], extra["step"][1] + step[1])
        out.append(
            Piece(
                name,
                style,
                bpm + shift(i, style),
                seed=seed[0] + seed[1] * i,
                soundfont=fonts[i % len(fonts)],
                **extra,
            )
        )
    return out


def check() -> list[Piece]:
    """A third look, kept for the end of a tuning round: yet other seeds and tempi, and
    the three soundfonts in turn, so a change that only fits ``dev`` and ``heldout``
    shows here."""
    return _variant(
        (20000, 53),
        ("fluidr3", "musescore", "timgm6mb"),
        lambda i, style: -(_SHIFT[style] // 2) + (1 if i % 2 else -1),
        (-2, 4),
        (6, -2),
    )


def final() -> list[Piece]:
    """The last look, for a round's end once ``check`` has been tuned on too: other
    seeds and tempi again (shifted the other way), the soundfonts in another order."""
    return _variant(
        (40000, 71),
        ("timgm6mb", "fluidr3", "musescore"),
        lambda i, style: (_SHIFT[style] + 1) // 3 - (1 if i % 3 == 0 else 0),
        (1, 1),
        (-4, 1),
    )


def fresh() -> list[Piece]:
    """Made at the end of the third tuning round (after ``final`` had been looked at)
    and scored once then: other seeds, tempi (either side of the plan's), soundfonts in
    yet another order, the ramp and the tempo step moved again."""
    return _variant(
        (80000, 97),
        ("musescore", "timgm6mb", "fluidr3"),
        lambda i, style: (i % 3) - 1 - _SHIFT[style] // 3,
        (2, -1),
        (4, 2),
    )


# (name, groove, bpm, extra): other patterns of the styles (compose.GROOVES).
GROOVES: list[tuple[str, str, float, dict]] = [
    ("house_snare", "house_snare", 123, {}),
    ("house_snare_breakdown", "house_snare", 125, {"breakdown": (5, 4), "seconds": 40.0}),
    ("techno_ride", "techno_ride", 130, {}),
    ("techno_ride_fills", "techno_ride", 138, {"fills": True}),
    ("dnb_twostep", "dnb_twostep", 172, {}),
    ("dnb_twostep_live", "dnb_twostep", 170, {"jitter_ms": 6.0, "drift": 0.01}),
    ("dubstep_triplet", "dubstep_triplet", 142, {}),
    ("trap_rolls", "trap_rolls", 136, {}),
    ("hiphop_boombap", "hiphop_boombap", 92, {"swing": 0.2}),
    ("hiphop_boombap_live", "hiphop_boombap", 84, {"jitter_ms": 8.0, "drift": 0.015}),
    ("reggaeton_rim", "reggaeton_rim", 92, {}),
    ("afrobeat_snare", "afrobeat_snare", 104, {}),
    ("afrobeat_snare_live", "afrobeat_snare", 110, {"jitter_ms": 10.0, "drift": 0.015}),
    ("afrobeats_pop", "afrobeats_pop", 106, {}),
    ("pop_fourfloor", "pop_fourfloor", 118, {}),
    ("pop_fourfloor_step", "pop_fourfloor", 116, {"step": (126.0, 17.0)}),
    ("rock_eighths", "rock_eighths", 132, {"fills": True}),
    ("rock_eighths_live", "rock_eighths", 112, {"fills": True, "jitter_ms": 12.0, "drift": 0.02}),
    ("funk_ghosts", "funk_ghosts", 98, {}),
    ("breakbeat_think", "breakbeat_think", 126, {}),
    ("garage_2step", "garage_2step", 132, {"swing": 0.2}),
    ("ambient_rim", "ambient_rim", 96, {}),
    ("waltz_jazz", "waltz_jazz", 150, {"swing": 0.3}),
    ("twelveeight", "twelveeight", 66, {"seconds": 40.0}),
    ("house_snare_ramp", "house_snare", 122, {"ramp": (129.0, 9.0, 25.0)}),
    ("techno_ride_noise", "techno_ride", 128, {"noise_db": 12.0}),
]


def grooves() -> list[Piece]:
    """The styles' other patterns (made in the fourth tuning round, to see how the
    tracker does on grooves it was not built on): the three soundfonts in turn."""
    return _variant(
        (120000, 61),
        ("timgm6mb", "musescore", "fluidr3"),
        lambda i, style: 0,
        (0, 0),
        (0, 0),
        plan=GROOVES,
    )


def grooves_check() -> list[Piece]:
    """``grooves`` again for a last look, once ``grooves`` has been tuned on: other
    seeds, tempi a few BPM the other way (the slow 12/8 a little faster), the
    soundfonts in another order."""
    return _variant(
        (160000, 67),
        ("fluidr3", "timgm6mb", "musescore"),
        lambda i, style: 2 if style == "twelveeight" else (3 if i % 2 else -3),
        (-2, 1),
        (3, 1),
        plan=GROOVES,
    )


# (name, groove, bpm, extra): new grooves of other styles (compose.PRODUCERS), at each
# style's usual tempo; half-time styles at their notated tempo (halftime and drill at
# 140-ish, drum & bass and jungle at 170-ish), the 6/8 ballad in dotted quarters.
PRODUCERS: list[tuple[str, str, float, dict]] = [
    ("tech_house", "tech_house", 125, {"swing": 0.2}),
    ("tech_house_step", "tech_house", 124, {"step": (128.0, 18.0)}),
    ("melodic_techno", "melodic_techno", 124, {}),
    ("melodic_techno_breakdown", "melodic_techno", 122, {"breakdown": (6, 4), "seconds": 40.0}),
    ("minimal_techno", "minimal_techno", 128, {}),
    ("progressive_house", "progressive_house", 126, {}),
    ("acid_house", "acid_house", 124, {}),
    ("electro", "electro", 128, {}),
    ("jungle", "jungle", 168, {}),
    ("liquid_dnb", "liquid_dnb", 174, {}),
    ("liquid_dnb_breakdown", "liquid_dnb", 172, {"breakdown": (12, 4), "seconds": 40.0}),
    ("halftime", "halftime", 140, {}),
    ("uk_drill", "uk_drill", 142, {}),
    ("lofi_hiphop_live", "lofi_hiphop", 78, {"swing": 0.3, "jitter_ms": 8.0, "drift": 0.01}),
    ("lofi_hiphop_noise", "lofi_hiphop", 82, {"swing": 0.25, "noise_db": 16.0}),
    ("dancehall_steppers", "dancehall_steppers", 100, {}),
    ("amapiano", "amapiano", 113, {}),
    ("afro_house_fills", "afro_house", 122, {"fills": True}),
    ("nu_disco", "nu_disco", 120, {}),
    ("nu_disco_ramp", "nu_disco", 116, {"ramp": (124.0, 8.0, 24.0)}),
    (
        "ballad_sixeight_live",
        "ballad_sixeight",
        63,
        {"seconds": 42.0, "jitter_ms": 8.0, "drift": 0.015},
    ),
    ("waltz_pop", "waltz_pop", 138, {}),
    ("rock_shuffle_live", "rock_shuffle", 124, {"jitter_ms": 10.0, "drift": 0.02}),
    ("reggae_onedrop_live", "reggae_onedrop", 76, {"swing": 0.2, "jitter_ms": 6.0, "drift": 0.01}),
    ("baile_funk", "baile_funk", 130, {}),
    ("synthwave_fills", "synthwave", 100, {"fills": True}),
]


def producers() -> list[Piece]:
    """New grooves of other styles (``compose.PRODUCERS``), written by someone who never
    saw the tracker and scored once: the three soundfonts in turn, seeds of their own."""
    return _variant(
        (200000, 43),
        ("musescore", "timgm6mb", "fluidr3"),
        lambda i, style: 0,
        (0, 0),
        (0, 0),
        plan=PRODUCERS,
    )


def producers_check() -> list[Piece]:
    """``producers`` again, for a look once ``producers`` has been looked at: other
    seeds, tempi a few BPM either way, the soundfonts in another order."""
    return _variant(
        (240000, 53),
        ("fluidr3", "musescore", "timgm6mb"),
        lambda i, style: 3 if i % 2 else -3,
        (2, -1),
        (-3, 2),
        plan=PRODUCERS,
    )


SETS = {
    "dev": dev,
    "heldout": heldout,
    "check": check,
    "final": final,
    "fresh": fresh,
    "grooves": grooves,
    "grooves_check": grooves_check,
    "producers": producers,
    "producers_check": producers_check,
}
