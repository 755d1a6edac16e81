"""Python logging for the command line: `-v` (info), `-vv` (one line per model call), `--log-file`, and
`CHIMERA_LOG_LEVEL`. Every line passes through the secret scrubber before it is written."""

from __future__ import annotations

import logging
import os

from chimera.errors import ConfigError
from chimera.models.secrets import redact

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Scrubbed(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


def configure(verbosity: int = 0, log_file: str | None = None) -> None:
    """Warnings go to stderr by default; -v adds progress notes, -vv every model call."""
    named = os.environ.get("CHIMERA_LOG_LEVEL")
    if named:
        level = logging.getLevelName(named.upper())
        if not isinstance(level, int):
            raise ConfigError(f"CHIMERA_LOG_LEVEL: {named!r} is not a level (DEBUG, INFO, WARNING, ERROR)")
    else:
        level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    root = logging.getLogger("chimera")
    root.setLevel(level)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()  # a log file of an earlier configure in this process
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        try:
            handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"--log-file {log_file}: cannot write ({error.strerror or error})") from None
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(_Scrubbed())
        root.addHandler(handler)
