"""chimera: synthesize verified long chain-of-thought reasoning datasets."""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from chimera.api import Run, RunResult, arun, open_run, run

# The Python API (chimera.api), imported on first use: `import chimera` stays light for the command line.
_API = ("run", "arun", "open_run", "Run", "RunResult")
__all__ = ["Run", "RunResult", "__version__", "arun", "open_run", "run"]


def __getattr__(name: str) -> Any:
    if name in _API:
        from chimera import api

        return getattr(api, name)
    raise AttributeError(f"module 'chimera' has no attribute {name!r}")
