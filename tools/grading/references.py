"""Is a drafted reference answer something an answer can be checked against? A sentence, a non-answer, a
derivation or a reply cut at the schema's length limit is not: such a problem is rejected before any critic is
asked, since a critic may wave it through and the judge would then label every trajectory against it."""

from __future__ import annotations

import re

from chimera.tools.grading.extract import is_placeholder
from chimera.tools.grading.text import plain

MAX_REFERENCE_CHARS = 200  # answers are short by design (the drafter's schema allows 400: that is a cut reply)
MAX_REFERENCE_WORDS = 12
_CLAUSE = re.compile(r"(?i)\b(?:is|are|was|were|be|been|has|have|had|can|could|will|would|should|must|does|do|did|"
                     r"because|since|therefore|thus|hence|so that|which|that is|we|they|it|this|there)\b")
_STEPS = re.compile(r"=|\\\\|\\implies|\\Rightarrow|\\therefore|→|⇒")


def unusable_reference(answer: str | None) -> str | None:
    """Why `answer` cannot serve as a reference, or None when it can."""
    if answer is None or is_placeholder(answer):
        return "the reference answer is empty or a placeholder"
    text = plain(answer)
    words = text.split()
    if len(text) > MAX_REFERENCE_CHARS:
        return "the reference answer is a derivation or a reply cut at its length limit, not a final answer"
    if text.count("{") != text.count("}"):  # LaTeX groups always close; interval brackets need not match
        return "the reference answer was cut off (its braces do not close)"
    if len(_STEPS.findall(text)) >= 3:
        return "the reference answer is a derivation, not a final answer"
    if len(words) > MAX_REFERENCE_WORDS or (len(words) >= 5 and _CLAUSE.search(text)):
        return "the reference answer is a sentence, not a final answer"
    return None
