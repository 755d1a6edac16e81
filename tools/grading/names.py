"""Names and short phrases: equal after folding case, punctuation and diacritics, or not certain.

Two different names may still be one person ("Napoleon", "Napoleon Bonaparte"),
so a rule never says `false` about them, except where the only difference is a
regnal number (Louis XIV, Louis XVI).
"""

from __future__ import annotations

import re

from chimera.tools.grading.text import strip_marks

_ROMAN = re.compile(r"^M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})$")
_ARTICLE = re.compile(r"^(?:the|a|an)\s+")


def fold(text: str) -> str:
    text = strip_marks(text).lower()
    text = re.sub(r"[*_`\"“”]", "", text)
    text = text.replace("'s ", "s ").replace("'", "")
    text = re.sub(r"(?<=\w)\.(?=\s|\w|$)", " ", text)  # T.S. -> t s
    text = re.sub(r"[,;:!?]", " ", text)
    text = re.sub(r"(?<=\w)-(?=\w)", " ", text)
    text = " ".join(text.split())
    text = _ARTICLE.sub("", text)
    if any(len(word) > 1 for word in text.split()):  # a name spelled letter by letter ("P-a-r-i-s") is not one
        text = re.sub(r"\b(\w) (?=\w\b)", r"\1", text)  # initials: t s eliot -> ts eliot
    return text


def compare(reference: str, response: str) -> tuple[bool | None, str] | None:
    ref, got = fold(reference), fold(response)
    if not ref or not got:
        return None
    extra = set(re.findall(r"[^\w\s.,'’*-]", response)) - set(re.findall(r"[^\w\s.,'’*-]", reference))
    if extra:
        return None, f"characters the reference does not have ({''.join(sorted(extra))[:10]})"
    if len(reference.strip(" .")) <= 3 and reference.strip(" .").lower() != response.strip(" .").lower():
        return None, "a short answer written otherwise: a judge decides"
    if ref == got and len(reference.strip()) <= 3 and reference.strip() != response.strip() \
            and reference.strip().lower() == response.strip().lower():
        return None, "a short symbol in another case (Co and CO, Fe and FE): a judge decides"
    if ref == got:
        return True, "the same after folding case, punctuation and diacritics"
    ref_words, got_words = ref.split(), got.split()
    if len(ref_words) == len(got_words) >= 2:
        differing = [(a, b) for a, b in zip(ref_words, got_words) if a != b]
        originals = set(re.findall(r"\w+", reference)) | set(re.findall(r"\w+", response))
        if len(differing) == 1 and all(w.upper() in originals and _ROMAN.match(w.upper()) for w in differing[0]):
            return False, "a different regnal number"
    return None, "different words; a judge decides"
