"""`python -m chimera`: the same command as `chimera`."""

from chimera.cli import main

raise SystemExit(main())
