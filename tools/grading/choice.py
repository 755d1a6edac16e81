"""Multiple choice: the letter, or the option's text when the problem lists its options."""

from __future__ import annotations

import re

from chimera.tools.grading.names import fold

_LETTER = re.compile(r"(?i)^(?:option|choice|answer)?\s*\(?([A-J])\)?(?:[.:)\s]\s*(?P<text>.*))?$")
_OPTION = re.compile(r"(?m)(?:^|\s)\(?([A-J])[).:]\s+(.+?)(?=\s+\(?[A-J][).:]\s|\s*$)")


def options(problem: str | None) -> dict[str, str]:
    """Letter -> option text, for options written "(A) ...", "A) ..." or "A. ..." in the problem."""
    if not problem:
        return {}
    found: dict[str, str] = {}
    for letter, text in _OPTION.findall(problem):
        found.setdefault(letter.upper(), text.strip())
    letters = sorted(found)
    if len(letters) < 2 or letters[0] != "A":
        return {}
    return found


def letter(text: str, choices: dict[str, str]) -> str | None:
    """The option a response names, by letter or, when the options are known, by its text."""
    text = text.strip()
    match = _LETTER.match(text)
    if match and (len(text) <= 3 or match.group("text") is not None or text.lower().startswith(("option", "choice"))):
        named = match.group(1).upper()
        rest = (match.group("text") or "").strip()
        if rest and (not choices.get(named) or fold(rest) != fold(choices[named])):
            return None  # "(B) Toni Morrison" when B is another option, or when the options are unknown
        if named in choices or not choices:
            return named
    by_text = [key for key, value in choices.items() if fold(value) == fold(text)]
    return by_text[0] if len(by_text) == 1 else None


def compare(reference: str, response: str, problem: str | None) -> tuple[bool | None, str] | None:
    choices = options(problem)
    ref = letter(reference, choices) if re.fullmatch(r"\(?[A-Ja-j]\)?", reference.strip()) or choices else None
    if ref is None:
        return None
    got = letter(response, choices)
    if got is None:
        return (None, "the response names no option") if choices else None
    return got == ref, f"option {got} against {ref}"
