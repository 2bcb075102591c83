"""``python -m soundscape``: the same as the ``soundscape`` command."""

from soundscape.cli import main

raise SystemExit(main())
