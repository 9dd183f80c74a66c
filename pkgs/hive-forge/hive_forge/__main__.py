"""`python -m hive_forge`: the same as the `hive-forge` console script."""

from hive_forge.cli import main

raise SystemExit(main())
