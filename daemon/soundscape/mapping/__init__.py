"""The music drives the picture: beat clock, mapping rules, control channels, scenes.

See docs/mapping.md. The component is :class:`~soundscape.mapping.engine.MappingEngine`;
its config sections are in :mod:`soundscape.mapping.config`.
"""
