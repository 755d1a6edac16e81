"""What every command shares: the two consoles, and picking the one run a database holds."""

from __future__ import annotations

from chimera.cli.console import PlainConsole
from chimera.engine.status import only_run as only_run  # where every command picks its run

err = PlainConsole(stderr=True, soft_wrap=True)
out = PlainConsole(soft_wrap=True)
if not out.is_terminal:
    out = PlainConsole(soft_wrap=True, width=160)  # a file or pipe: no reason to squeeze tables to 80
