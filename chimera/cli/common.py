"""What every command shares: the two consoles, and picking the one run a database holds."""

from __future__ import annotations

from typing import Any

from chimera.cli.console import PlainConsole
from chimera.errors import ChimeraError

err = PlainConsole(stderr=True, soft_wrap=True)
out = PlainConsole(soft_wrap=True)
if not out.is_terminal:
    out = PlainConsole(soft_wrap=True, width=160)  # a file or pipe: no reason to squeeze tables to 80


def only_run(store: Any, wanted: str | None) -> str:
    runs = [r["name"] for r in store.runs()]
    if wanted:
        if wanted not in runs:
            raise ChimeraError(f"{store.path}: no run named {wanted!r} (runs: {', '.join(runs) or 'none'})")
        return wanted
    if len(runs) != 1:
        raise ChimeraError(f"{store.path}: holds {len(runs)} runs ({', '.join(runs) or 'none'}); name one with --run")
    return runs[0]
