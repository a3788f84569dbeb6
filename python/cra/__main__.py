"""`python -m cra`: the `cra` command line."""

from .cli import main

raise SystemExit(main())
