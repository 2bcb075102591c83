"""A performer's hands on the audio beat clock: commands that put it right where it is wrong.

The tracker reads most music right; where it does not (a loud bass on every off-beat over
a soft clap, two octaves that fit about as well), a performer says so, as on a DJ deck or
in a VJ app: ``downbeat`` (the one is now), ``tempo_half`` / ``tempo_double`` (the other
octave), and ``downbeat_release`` / ``tempo_auto`` to hand each back. They are commands
on the daemon's bus, so OSC, MIDI and the operator page reach them alike (docs/mapping.md).
Each acts on whichever audio engine the daemon runs now (a reload may replace it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from soundscape.audio.beat import BeatTracker
from soundscape.audio.engine import AudioEngine
from soundscape.control.commands import CommandBus
from soundscape.errors import ParamError

log = structlog.get_logger(__name__)


class AudioClockControls:
    """The commands, bound to the daemon's current audio engine and its clock's source."""

    def __init__(
        self, audio: Callable[[], AudioEngine | None], clock_source: Callable[[], str | None]
    ) -> None:
        self._audio = audio
        self._clock_source = clock_source

    def register(self, bus: CommandBus) -> None:
        bus.register("downbeat", self.downbeat)
        bus.register("downbeat_release", self.downbeat_release)
        bus.register("tempo_half", self.tempo_half)
        bus.register("tempo_double", self.tempo_double)
        bus.register("tempo_auto", self.tempo_auto)

    def _engine(self, what: str) -> AudioEngine:
        """The engine, once its tracker has a tempo to correct."""
        audio = self._audio()
        if audio is None:
            raise ParamError(f"{what}: no audio input ([audio] enabled = false)")
        if not audio.analyzer.beats.settled:
            raise ParamError(f"{what}: the audio has no tempo yet (it settles about 2 s in)")
        return audio

    def downbeat(self, pressed: bool = True, *, source: str) -> float | None:
        """The one is now: the audio beat clock puts its bar line here and holds it."""
        if pressed is False:
            return None  # a momentary button's release
        at = time.monotonic()  # before anything else: the press's moment is the point
        audio = self._engine("downbeat")
        if not audio.analyzer.beats.mark_downbeat(at):
            raise ParamError("downbeat: the audio has no tempo yet (it settles about 2 s in)")
        bpm = round(audio.latest.bpm, 2)
        # The clock follows the audio's bar lines only while the audio drives it.
        log.info("downbeat_marked", source=source, bpm=bpm, clock=self._clock_source())
        return bpm

    def downbeat_release(self, pressed: bool = True, *, source: str) -> bool | None:
        """The audio beat clock's grid and bar line are the tracker's again."""
        return self._hand_back(BeatTracker.release_downbeat, "downbeat_released", pressed, source)

    def tempo_half(self, pressed: bool = True, *, source: str) -> float | None:
        """Half time: the audio tracker reads half its tempo from now on."""
        return self._octave(0.5, pressed, source)

    def tempo_double(self, pressed: bool = True, *, source: str) -> float | None:
        """Double time: the audio tracker reads twice its tempo from now on."""
        return self._octave(2.0, pressed, source)

    def _octave(self, factor: float, pressed: bool, source: str) -> float | None:
        if pressed is False:
            return None
        audio = self._engine("tempo octave")
        was = audio.latest.bpm
        if not audio.analyzer.beats.set_octave(factor):
            beat = audio.config.beat
            raise ParamError(
                f"tempo octave: {was * factor:.1f} BPM is out of the tempo range, [audio] "
                f"beat.min_bpm..beat.max_bpm ({beat.min_bpm:g}-{beat.max_bpm:g})"
            )
        bpm = round(was * factor, 2)
        log.info("tempo_octave_set", source=source, bpm=bpm, was=round(was, 2))
        return bpm

    def tempo_auto(self, pressed: bool = True, *, source: str) -> bool | None:
        """The audio tracker's octave is its own again (the show's beat.prior_bpm)."""
        return self._hand_back(BeatTracker.end_octave, "tempo_octave_ended", pressed, source)

    def _hand_back(
        self, undo: Callable[[BeatTracker], bool], event: str, pressed: bool, source: str
    ) -> bool | None:
        """Undo a correction (True when there was one to undo), and log it."""
        if pressed is False:
            return None
        audio = self._audio()
        undone = audio is not None and undo(audio.analyzer.beats)
        log.info(event, source=source, undone=undone)
        return undone
