"""Folders a command writes: built beside their destination, then moved in, and never over files chimera did
not write.

A folder chimera writes carries a marker file that lists, by name, every file chimera wrote there. Writing
again replaces those files and removes the ones this write no longer makes; everything else in the folder
(a `.git`, a README a person added, files of another tool) is kept. A folder that holds only chimera's
files is swapped in whole, so a kill leaves it as it was. An existing folder without the marker that holds
anything (a home folder, a project, `.`) is refused unless `--force`, and even then chimera only adds or
replaces its own files there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from chimera.errors import ChimeraError

MARKER = ".chimera-output"
_HEADER = "written by chimera: "
Result = TypeVar("Result")


def _is_ours(folder: Path) -> bool:
    return (folder / MARKER).is_file() and not (folder / MARKER).is_symlink()


def written_files(folder: Path) -> set[str]:
    """The files the marker says chimera wrote (paths relative to the folder); none for an old marker."""
    if not _is_ours(folder):
        return set()
    lines = (folder / MARKER).read_text(encoding="utf-8", errors="replace").splitlines()[1:]
    names = set()
    for line in lines:
        name = line.strip()
        if name and not name.startswith(("/", "..")) and "/../" not in f"/{name}/" and name != MARKER:
            names.add(name)
    return names


OUTPUT_SUFFIXES = (".parquet", ".jsonl", ".json", ".md", ".png", ".csv", ".svg")


def _removable(name: str) -> bool:
    """Could a chimera command have written this file? Only then may a later write remove it."""
    parts = Path(name).parts
    return bool(parts) and not any(part.startswith(".") for part in parts) and name.endswith(OUTPUT_SUFFIXES)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def write_folder(out: Path, build: Callable[[Path], Result], *, what: str, force: bool = False) -> Result:
    """Run `build(staging)` to fill a fresh folder, then put its files in `out`."""
    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise ChimeraError(f"{out}: exists and is not a folder")
    occupied = out.is_dir() and any(out.iterdir())
    ours = _is_ours(out)
    if occupied and not ours and not force:
        raise ChimeraError(f"{out}: the folder holds files chimera did not write; choose a new or empty folder "
                           "(or an earlier output), or pass --force to add the files to it")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Created exclusively under an unpredictable name: a link planted where a side file will be is never followed.
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        result = build(staging)
        made = _files(staging)
        (staging / MARKER).write_text(_HEADER + what + "\n" + "".join(f"{name}\n" for name in made), encoding="utf-8")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = written_files(out) if ours else set()
    allowed = previous | {MARKER}
    only_ours = ours and all(str(p.relative_to(out)) in allowed for p in out.rglob("*")
                             if p.is_file() or p.is_symlink())  # stops at the first other file (a .git, say)
    if not occupied or only_ours:
        _swap(staging, out)  # only chimera's files there: the whole folder at once
        return result
    inside = out.resolve()
    for name in [*made, MARKER]:  # others' files stay; ours are replaced one by one
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.parent.resolve().is_relative_to(inside):
            raise ChimeraError(f"{target}: its folder is a link out of {out}; chimera writes only inside it")
        if target.is_dir() and not target.is_symlink():
            raise ChimeraError(f"{target}: a folder is where chimera writes a file; move it away first")
        os.replace(staging / name, target)
    for name in sorted(previous - set(made)):  # what an earlier write made and this one no longer does
        stale = out / name
        if not _removable(name):
            continue  # the marker may have been edited by whoever handed the folder over: never .git, never other kinds
        if (stale.is_file() or stale.is_symlink()) and stale.parent.resolve().is_relative_to(inside):
            stale.unlink()  # a link itself, never where it points; never through a linked folder
    shutil.rmtree(staging, ignore_errors=True)
    return result


def _swap(staging: Path, out: Path) -> None:
    if out.is_dir():
        old = Path(f"{staging}.old")
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
