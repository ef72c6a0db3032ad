"""``python -m ferroflow``: the ``ferroflow`` command line."""

from ferroflow.cli import main

raise SystemExit(main())
