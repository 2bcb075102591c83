"""The daemon's local control endpoint and operator's page (``[http]``, ``--http``)."""
