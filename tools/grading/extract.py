"""The final answer a long response commits to: its last explicit statement.

A "Final answer:" after the last \\boxed{} wins (the model revised itself); two
different boxed values joined by "or", or a hedge ("either A or B", "or
possibly"), is not one answer; an empty or placeholder answer is never an answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from chimera.tools.grading.text import plain

Status = Literal["ok", "none", "empty", "placeholder", "hedge"]

_MARKER = re.compile(
    r"(?i)(?:\bfinal\s+answer\b|\bthe\s+(?:final\s+|correct\s+|right\s+)?answer\s+(?:is|would\s+be)\b"
    r"|(?:^|\n)[ \t>*#_-]*answer\b)[ \t*_]*(?:is\b)?[ \t*_]*[:：]?")
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LABEL = re.compile(r"(?i)^(?:output|result|answer|final answer|solution)\s*[:：=]\s*")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:|[.…_?\-\s]+|\\boxed\{\s*\}|\{\s*\}|n/?a|tbd|todo|\\ldots|\\cdots|\\dots"
    r"|[\[<({]?\s*(?:your|the|final|insert)?\s*(?:final\s+)?(?:answer|solution|result|value)"
    r"(?:\s+(?:goes\s+)?here)?\s*[\]>)}]?)$")
_HEDGE = re.compile(r"(?i)\beither\s+\S.*\s+or\s+\S|\bor\s+(?:possibly|perhaps|maybe|alternatively)\b|\(or\s+[^)]*\)"
                    r"|\bor\s+equivalently\s+something\s+else\b")
_SHORT_CHOICE = re.compile(r"^\(?[A-J]\)?$")
_NUMERIC_ALTERNATIVE = re.compile(r"^[-+]?\d[\d.,]*(?:\s*[A-Za-zµΩ°/^\d\-]+)?$")
SHORT_RESPONSE = 80


@dataclass(frozen=True)
class Extraction:
    answer: str | None
    status: Status


def is_placeholder(text: str | None) -> bool:
    """Empty, dots, empty braces or template words such as "[your answer here]"."""
    if text is None:
        return True
    return bool(_PLACEHOLDER.match(plain(text)))


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every \\boxed{...} with balanced braces."""
    found = []
    for match in _BOX.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            found.append((match.start(), i, text[match.end():i - 1].strip()))
    return found


def _after_marker(text: str, end: int) -> str:
    """The rest of the marker's line, or the next paragraph when the marker is a heading."""
    rest = text[end:]
    line = rest.split("\n", 1)[0].strip()
    if line.strip("*_ :") or "\n" not in rest:
        return line
    for paragraph in rest.split("\n", 1)[1].split("\n\n"):
        if paragraph.strip():
            return paragraph.strip()
    return ""


def _answer_body(text: str) -> str:
    """After a closing </think>, only what follows it is the answer."""
    if "</think>" in text:
        after = text.rsplit("</think>", 1)[1].strip()
        if after:
            return after
    return text


def extract(response: str | None) -> Extraction:
    text = _answer_body((response or "").strip())
    if not text:
        return Extraction(None, "empty")
    boxes = _boxes(text)
    candidates: list[tuple[int, str]] = [(start, content) for start, _, content in boxes]
    for match in _MARKER.finditer(text):
        statement = _after_marker(text, match.end())
        inner = _boxes(statement)
        candidates.append((match.start(), inner[-1][2] if inner else statement))
    if not candidates:
        if len(text) <= SHORT_RESPONSE and "\n" not in text:
            return _finish(text, text)
        return Extraction(None, "none")
    position, answer = max(candidates, key=lambda c: c[0])
    line_start = text.rfind("\n", 0, position) + 1
    line_end = text.find("\n", position)
    line = text[line_start: line_end if line_end >= 0 else len(text)]
    end_of_line = line_end if line_end >= 0 else len(text)
    in_line = [(start, end, content) for start, end, content in boxes if line_start <= start < end_of_line]
    if len(in_line) >= 2 and len({plain(c) for _, _, c in in_line}) >= 2:
        joints = [text[in_line[i][1]:in_line[i + 1][0]] for i in range(len(in_line) - 1)]
        if any(re.search(r"(?i)\bor\b", joint) for joint in joints):
            return Extraction(answer, "hedge")
        if all(re.fullmatch(r"(?i)[\s$,;]*(?:and)?[\s$,;]*", joint) for joint in joints):
            answer = ", ".join(c for _, _, c in in_line)  # "x = \boxed{2} and \boxed{3}": one answer in parts
    return _finish(answer, line)


def _finish(answer: str, statement: str) -> Extraction:
    answer = _LABEL.sub("", answer.strip().rstrip(".").strip())
    cleaned = plain(answer)
    if is_placeholder(cleaned):
        return Extraction(answer, "placeholder")
    if _HEDGE.search(cleaned) or _HEDGE.search(plain(statement)) and "\\boxed" not in statement:
        return Extraction(answer, "hedge")
    alternatives = re.split(r"(?i)\s+or\s+", cleaned)
    if len(alternatives) == 2 and all(_SHORT_CHOICE.match(a) or _NUMERIC_ALTERNATIVE.match(a) for a in alternatives) \
            and alternatives[0] != alternatives[1]:
        return Extraction(answer, "hedge")
    return Extraction(answer, "ok")
