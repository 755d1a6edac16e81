"""Reading a user's JSONL file: one parsed value per non-blank line, or a one-line error naming the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chimera.errors import ChimeraError


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of `path`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ChimeraError(f"{path}: no such file") from None
    except OSError as error:
        raise ChimeraError(f"{path}: cannot read ({error.strerror or error})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise ChimeraError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        yield number, value
