"""Terminal output is plain text: data is never read as rich markup, and control characters show as codes.

A topic name, critic reason or reviewer note can hold `[/x]` (rich would read it
as a closing tag and crash the whole listing) or raw escape sequences (which
could hide text from the reviewer). Every string a console prints goes through
`visible`, with markup off; our own styling uses Text objects and styles.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from chimera.cli.safe_text import visible


class PlainConsole(Console):
    def __init__(self, **options: Any) -> None:
        super().__init__(markup=False, emoji=False, highlight=False, **options)

    def render_str(self, text: str, **options: Any) -> Text:
        options["markup"] = False
        options["emoji"] = False
        return super().render_str(visible(text), **options)


def plain(value: object, style: str = "") -> Text:
    """A data value as literal text with visible control characters."""
    return Text(visible(str(value)), style=style)
