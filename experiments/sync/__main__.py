"""``python -m experiments.sync``: see :mod:`experiments.sync.cli`."""

from experiments.sync.cli import main

raise SystemExit(main())
