"""Several Scope servers from one daemon: hot/warm standbys and independent screens.

- :mod:`.config`: ``[[scope]]`` entries with roles, and ``[failover]``;
- :mod:`.switch`: the pure frame watchdog that picks the server the outputs show;
- :mod:`.failover`: the switch on the event loop (standby activation, the switch
  back on a bar line, logs, feedback);
- :mod:`.screen`: one screen: its parameter store, its servers, its outputs.
"""
