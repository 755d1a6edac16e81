"""The application: every command, the terminal and web review front ends, the progress display, and the
LangGraph server's graph factories. Nothing outside this package imports it."""

from chimera.cli.commands import main

__all__ = ["main"]
