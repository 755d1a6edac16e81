"""Reading a user's JSONL file: one parsed value per non-blank line, or a one-line error naming the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chimera.errors import ChimeraError

MAX_LINE_BYTES = 8 << 20  # one item larger than this is refused, not read into memory


def json_lines(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of `path`, read one line at a time."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise ChimeraError(f"{path}: no such file") from None
    except OSError as error:
        raise ChimeraError(f"{path}: cannot read ({error.strerror or error})") from None
    with handle:
        number = 0
        while True:
            try:
                raw = handle.readline(max_line_bytes + 1)
            except OSError as error:
                raise ChimeraError(f"{path}: cannot read ({error.strerror or error})") from None
            if not raw:
                return
            number += 1
            if len(raw) > max_line_bytes:
                raise ChimeraError(f"{path}:{number}: line longer than {max_line_bytes >> 20} MB")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ChimeraError(f"{path}:{number}: not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as error:
                msg = error.msg if isinstance(error, json.JSONDecodeError) else "nested too deeply"
                raise ChimeraError(f"{path}:{number}: not valid JSON ({msg})") from None
            yield number, value
