"""One run at a time on a SQLite database: a second `chimera run` on the same file stops with one line
naming the process that holds it, instead of racing it into `database is locked` tracebacks.

The lock is an advisory `flock` on a file beside the database. The kernel drops it when the holder
exits, SIGKILL included, so a killed run never leaves it stale; the file only says who held it last.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from chimera.errors import ChimeraError


def lock_path(db: str) -> Path:
    return Path(f"{db}.lock")


@contextlib.contextmanager
def holding_run(db: str) -> Iterator[None]:
    path = lock_path(db)
    try:  # never through a link: one planted at DB.lock would have the run write where it points
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        raise ChimeraError(f"{path}: cannot open the run's lock file ({error.strerror}"
                           f"{'; it is a symbolic link' if path.is_symlink() else ''})") from None
    handle = os.fdopen(descriptor, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ChimeraError(f"{db}: another chimera run is using this database ({holder}); wait for it to "
                               "finish or stop it, then run again to resume") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        yield
    finally:
        handle.close()
