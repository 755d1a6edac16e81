"""Rule-based answer grading: extract the final answer, then decide equivalence with math-verify.

A grade is `undecided` when no rule applies (a free-form answer in words that
differs from the reference); the labeler model judges those.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from math_verify import parse, verify

_FINAL_LINE = re.compile(r"(?:final answer|the answer is)\s*[:\-]?\s*(.+)", re.I)


@dataclass(frozen=True)
class Grade:
    correct: bool | None
    method: str  # "math-verify", "exact", "no-answer" or "undecided"
    extracted: str | None
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, begin = 1, i
    while i < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[begin : i - 1].strip() if depth == 0 else None


def extract_final_answer(response: str) -> str | None:
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    lines = _FINAL_LINE.findall(response)
    if lines:
        return lines[-1].strip().rstrip(".").strip("*$ ")
    return None


def _normalize_words(text: str) -> str:
    text = re.sub(r"\\text\{([^}]*)\}", r"\1", text)
    return " ".join(re.sub(r"[^a-z0-9.+\-/^]+", " ", text.lower()).split())


def grade(reference: str, response: str) -> Grade:
    extracted = extract_final_answer(response or "")
    if extracted is None:
        return Grade(None, "no-answer", None, "no \\boxed{} or final-answer line found")
    if _normalize_words(extracted) == _normalize_words(reference):
        return Grade(True, "exact", extracted, "equal after normalization")
    gold = parse(f"${reference}$") or parse(reference)
    predicted = parse(f"${extracted}$") or parse(extracted)
    if gold and predicted and not _is_word(reference):
        return Grade(bool(verify(gold, predicted)), "math-verify", extracted, f"{gold[-1]} vs {predicted[-1]}")
    return Grade(None, "undecided", extracted, "not a mathematical answer; needs a judge")


def _is_word(answer: str) -> bool:
    """An answer made of words (not math) that math-verify would misread as a product of symbols."""
    return bool(re.fullmatch(r"[A-Za-z][A-Za-z \-']{2,}", answer.strip()))
