"""The performer's state on disk: what the show looks like now, and what MIDI learn bound.

A crash, a ``kill -9``, a systemd restart or a reboot must bring the show back
to the same picture. Two files live in the state directory (see
:mod:`soundscape.state.paths`):

- ``<name>.show.json`` — each screen's parameters, scene and manual values under
  the mapping rules (by screen name), soft-takeover positions, tempo and beat
  source, each server's last Scope session; written atomically and debounced by
  :class:`~soundscape.state.writer.StateWriter`, restored on start (``--fresh``
  skips it);
- ``<name>.midi-learned.json`` — bindings made by MIDI learn, merged over the
  config's ``[[midi.mappings]]`` at start and on every reload (the config file
  is root-owned and read-only for the service user).

Pure parts (:mod:`~soundscape.state.snapshot`, :mod:`~soundscape.state.paths`)
sit apart from file I/O (:mod:`~soundscape.state.files`,
:mod:`~soundscape.state.writer`) and from the glue that reads and restores the
daemon's parts (:mod:`~soundscape.state.show`).
"""
