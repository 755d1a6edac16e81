"""Folders a command writes: built beside their destination and moved in whole, and never over files
chimera did not write.

A folder chimera writes carries a marker file. An existing folder without it
that holds anything (a home folder, a project, `.`) is refused unless
`--force`, and even then chimera only adds or replaces its own files there,
never deletes the folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from chimera.errors import ChimeraError

MARKER = ".chimera-output"
Result = TypeVar("Result")


def _is_ours(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def write_folder(out: Path, build: Callable[[Path], Result], *, what: str, force: bool = False) -> Result:
    """Run `build(staging)` to fill a fresh folder, then make it `out`. A kill leaves `out` as it was."""
    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise ChimeraError(f"{out}: exists and is not a folder")
    occupied = out.is_dir() and any(out.iterdir())
    if occupied and not _is_ours(out) and not force:
        raise ChimeraError(f"{out}: the folder holds files chimera did not write; choose a new or empty folder "
                           "(or an earlier output), or pass --force to add the files to it")
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        result = build(staging)
        (staging / MARKER).write_text(f"written by chimera: {what}\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if occupied and not _is_ours(out):  # --force into someone else's folder: add our files, touch nothing else
        for item in staging.iterdir():
            target = out / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
        staging.rmdir()
        return result
    if out.is_dir():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
    return result
