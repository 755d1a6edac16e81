"""A checkout's top-level folders (agents/, graphs/, tools/, evals/, examples/) are installed as
chimera.agents, chimera.graphs, ...: see pyproject's package-dir. Imported by folder name from the
repository root (`import agents`, as a script or `python -m pytest` there may), a folder would run its code a
second time as another package, with module state of its own. Each folder's `__init__` hands over to this
module instead, which makes the folder name and every module under it the installed modules themselves."""

from __future__ import annotations

import importlib
import pkgutil
import sys

FOLDERS = {"agents": "chimera.agents", "graphs": "chimera.graphs", "tools": "chimera.tools",
           "evals": "chimera.evals", "examples": "chimera.examples"}


def alias(folder: str) -> None:
    installed = importlib.import_module(FOLDERS[folder])
    sys.modules[folder] = installed
    for found in pkgutil.walk_packages(installed.__path__, prefix=f"{installed.__name__}."):
        module = importlib.import_module(found.name)
        sys.modules[folder + found.name.removeprefix(installed.__name__)] = module
