"""Text as every store can take it. A NUL is refused by PostgreSQL and a lone surrogate cannot be encoded as
UTF-8 for SQLite; both become U+FFFD, visibly, wherever text from outside (a model's reply, a server's error)
is kept, so one odd reply cannot stop a run, and stop it again on resume."""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: Any) -> Any:
    """`text` with NULs and lone surrogates replaced; anything that is not a string is returned as it is."""
    return _UNSTORABLE.sub("\ufffd", text) if isinstance(text, str) and text else text
