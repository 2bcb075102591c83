"""What the mapping shares with the rig over OSC: beat clock, audio features, scene.

Pure message builders; the engine sends them through the OSC feedback's
``send(address, *args)`` (rate-limited and de-duplicated there). The table
:data:`ADDRESSES` is the reference (docs/mapping.md lists it).
"""

from __future__ import annotations

from typing import Any

from soundscape.mapping.tempo import BeatEvent

Message = tuple[str, tuple[Any, ...]]

ADDRESSES: dict[str, tuple[str, str]] = {
    "/soundscape/beat": ("ii", "On every beat: beat in the bar (1..beats_per_bar), beat count."),
    "/soundscape/bar": ("i", "On every bar line: the bar number (1 = the clock's first bar)."),
    "/soundscape/bpm": ("f", "The clock's tempo, when it changes by 0.1 BPM or more."),
    "/soundscape/beat/source": (
        "s",
        "Which source drives the clock: midi, link, scope, tap, audio, none.",
    ),
    "/soundscape/audio/energy": ("f", "Loudness 0..1, at [mapping].feedback_rate."),
    "/soundscape/audio/brightness": ("f", "Brightness 0..1."),
    "/soundscape/audio/texture": ("f", "Texture (noisiness) 0..1."),
    "/soundscape/audio/onset_strength": ("f", "Attack strength 0..1."),
    "/soundscape/audio/bands/<name>": ("f", "Level of each band 0..1 (low, mid, high)."),
    "/soundscape/audio/onset": ("i", "On each onset: a running count."),
    "/soundscape/scene": ("si", "On a scene change: its name and number (0-based)."),
    "/soundscape/scene/variation": ("s", "On a variation: its name (base = the scene's prompts)."),
    "/soundscape/mapping": ("i", "Mapping rules running (1) or stopped (0), on change."),
}


def _round(value: float) -> float:
    # Three decimals: finer than any fader shows, and repeats drop out in the throttle.
    return round(float(value), 3)


def feature_messages(features: Any) -> list[Message]:
    """The continuous audio features of one reading."""
    messages: list[Message] = [
        ("/soundscape/audio/energy", (_round(features.energy),)),
        ("/soundscape/audio/brightness", (_round(features.brightness),)),
        ("/soundscape/audio/texture", (_round(features.texture),)),
        ("/soundscape/audio/onset_strength", (_round(features.onset_strength),)),
    ]
    messages += [
        (f"/soundscape/audio/bands/{name}", (_round(value),))
        for name, value in features.bands.items()
    ]
    return messages


def beat_messages(event: BeatEvent) -> list[Message]:
    messages: list[Message] = [("/soundscape/beat", (event.beat_in_bar + 1, event.beat))]
    if event.is_bar:
        messages.append(("/soundscape/bar", (event.bar + 1,)))
    return messages


def tempo_messages(bpm: float, source: str | None) -> list[Message]:
    return [
        ("/soundscape/bpm", (round(bpm, 1),)),
        ("/soundscape/beat/source", (source or "none",)),
    ]
