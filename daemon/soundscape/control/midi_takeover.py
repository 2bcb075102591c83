"""Soft takeover: a knob never makes the picture jump.

An absolute knob or fader only knows where it physically is. When the value it
controls was changed elsewhere (a scene change, OSC, audio, another knob), the
knob and the value disagree, and following the knob at once would jump.

Everything here works on the knob's own 0..1 scale (the caller converts the
current value through the mapping's range and curve), so "near" means the same
travel whatever the curve. Pure logic: the caller passes the knob position and
the current value on every move.

The takeover notices "moved elsewhere" by itself: it remembers what it last
set, and any other current value means someone else moved it.
"""

from __future__ import annotations

from dataclasses import dataclass

_SAME = 1e-6  # knob-scale tolerance for "still what I set" (float round trips)


@dataclass
class SoftTakeover:
    mode: str = "pickup"  # pickup | scale | none
    threshold: float = 0.03
    synced: bool = False
    _last_knob: float | None = None
    _last_set: float | None = None

    def feed(self, knob: float, current: float | None) -> float | None:
        """The knob moved to ``knob``; ``current`` is the value now (knob scale).

        Returns the knob-scale value to apply, or None to leave the value alone.
        """
        previous, self._last_knob = self._last_knob, knob
        if self.mode == "none" or current is None:
            return self._set(knob, synced=True)
        if self._last_set is None or abs(current - self._last_set) > _SAME:
            self.synced = False  # moved by someone else since our last move
        if self.synced or abs(knob - current) <= self.threshold:
            return self._set(knob, synced=True)
        if self.mode == "pickup":
            if previous is not None and (previous - current) * (knob - current) <= 0:
                return self._set(knob, synced=True)  # crossed the value between two messages
            return None
        # scale: close the gap in proportion, so both reach the end of travel together.
        if previous is None or knob == previous:
            return None
        if knob > previous:
            value = current + (knob - previous) * (1.0 - current) / (1.0 - previous)
        else:
            value = current - (previous - knob) * current / previous
        value = min(1.0, max(0.0, value))
        if abs(value - knob) <= self.threshold:
            return self._set(knob, synced=True)
        return self._set(value, synced=False)

    def forget_knob(self) -> None:
        """The knob's position is unknown again (device replugged): no crossing from it."""
        self._last_knob = None

    def release(self) -> None:
        """Forget the sync (e.g. after a reload); the next move must pick up again."""
        self.synced = False
        self._last_set = None

    def position(self) -> tuple[float | None, float | None, bool]:
        """(last knob position, last value set, synced): what a restart must keep."""
        return self._last_knob, self._last_set, self.synced

    def restore(self, knob: float | None, last_set: float | None, synced: bool) -> None:
        """Take a saved position (a restart, a reload): a synced knob goes on without pickup,
        as long as the value is still what it last set."""
        self._last_knob, self._last_set, self.synced = knob, last_set, synced

    def _set(self, value: float, *, synced: bool) -> float:
        self.synced = synced
        self._last_set = value
        return value
