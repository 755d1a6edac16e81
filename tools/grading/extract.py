"""The final answer a long response commits to: its last explicit statement.

A "Final answer:" after the last \\boxed{} wins (the model revised itself); two
different boxed values joined by "or", or a hedge ("either A or B", "or
possibly"), is not one answer; an empty or placeholder answer is never an answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from chimera.tools.grading.bounds import MAX_RESPONSE_CHARS, clean
from chimera.tools.grading.commitment import ALTERNATIVE_AFTER, ALTERNATIVE_BETWEEN, RETRACTION, without_notes
from chimera.tools.grading.text import plain

Status = Literal["ok", "none", "empty", "placeholder", "hedge"]

_MARKER = re.compile(
    r"(?i)(?:\bfinal\s+answer\b|\bthe\s+(?:final\s+|correct\s+|right\s+)?answer\s+(?:is|would\s+be)\b"
    r"|(?:^|\n)[ \t>*#_-]*answer\b|\*\*\s*answer\s*(?=[:：]))[ \t*_]*(?:is\b)?[ \t*_]*[:：]?")
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LABEL = re.compile(r"(?i)^(?:output|result|answer|final answer|solution)\s*[:：=]\s*")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:|[.…_?\-\s]+|\\boxed\{\s*\}|\{\s*\}|n/a|(?-i:NA)|tbd|todo|\\ldots|\\cdots|\\dots"
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
    group: tuple[str, ...] = ()  # two or more different boxes that end the response together
    after: str = ""  # what follows the committed answer


def is_placeholder(text: str | None) -> bool:
    """Empty, dots, empty braces or template words such as "[your answer here]"."""
    if text is None:
        return True
    return bool(_PLACEHOLDER.match(plain(text)))


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every \\boxed{...} with balanced braces, in one pass (unclosed boxes cost
    nothing extra: a response of 70 KB of "\\boxed{" is read in linear time)."""
    opens = {match.end() - 1: match.start() for match in _BOX.finditer(text)}
    found, stack = [], []
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            brace = stack.pop()
            if brace in opens:
                found.append((opens[brace], i + 1, text[brace + 1:i].strip()))
    found.sort()
    return found


def _after_marker(text: str, end: int) -> tuple[str, int]:
    """The rest of the marker's line, or the next paragraph when the marker is a heading; and where it ends."""
    line_end = text.find("\n", end)
    line = text[end: line_end if line_end >= 0 else len(text)]
    if line.strip().strip("*_ :") or line_end < 0:
        return line.strip(), end + len(line.rstrip())
    start = line_end + 1
    while start < len(text):
        paragraph_end = text.find("\n\n", start)
        paragraph_end = paragraph_end if paragraph_end >= 0 else len(text)
        paragraph = text[start:paragraph_end]
        if paragraph.strip():
            return paragraph.strip(), start + len(paragraph.rstrip())
        start = paragraph_end + 2
    return "", len(text)


def _answer_body(text: str) -> str:
    """After a closing </think>, only what follows it is the answer."""
    if "</think>" in text:
        after = text.rsplit("</think>", 1)[1].strip()
        if after:
            return after
    return text


_JOINT = re.compile(r"(?i)^(?:[\s$,;.:&]|\\quad|\\qquad|\\text\s*\{[^{}]{0,12}\}|\band\b|\bor\b|\beither\b|\bmaybe\b"
                    r"|\bpossibly\b|\bperhaps\b|\balternatively\b|\\\\|\\\(|\\\)|\\\[|\\\]"
                    r"|\b[a-zA-Z](?:_\{?\d+\}?)?\s*=)*$")


def _group(text: str, boxes: list[tuple[int, int, str]], last: int) -> list[tuple[int, int, str]]:
    """The boxes that end the response together with box `last`: joined only by punctuation, "and", "or",
    "x =" and the like, on one line or on consecutive lines (several roots, or several candidates)."""
    group = [boxes[last]]
    for i in range(last - 1, -1, -1):
        joint = text[boxes[i][1]:group[0][0]]
        if boxes[i][1] > group[0][0] or len(joint) > 80 or not _JOINT.match(joint):
            break
        group.insert(0, boxes[i])
    return group


def extract(response: str | None) -> Extraction:
    text = _answer_body(without_notes(clean((response or "")[-MAX_RESPONSE_CHARS:])).strip())
    if not text:
        return Extraction(None, "empty")
    boxes = _boxes(text)
    candidates: list[tuple[int, int, str, int | None]] = [  # (start, end of statement, answer, box index)
        (start, end, content, i) for i, (start, end, content) in enumerate(boxes)]
    markers = list(_MARKER.finditer(text))
    for match in markers[-1:]:  # only the last can be the answer; reading every one would be quadratic
        statement, end = _after_marker(text, match.end())
        if not statement.strip(" .!*_:") and boxes:
            continue  # "\\boxed{5}. This is the final answer.": the marker points back at the box
        inner = _boxes(statement)
        if inner:
            offset = text.find(statement, match.end())
            index = next((i for i, box in enumerate(boxes) if box[0] == offset + inner[-1][0]), None)
            candidates.append((match.start(), offset + inner[-1][1], inner[-1][2], index))
        else:
            candidates.append((match.start(), end, statement, None))
    if not candidates:
        if len(text) <= SHORT_RESPONSE and "\n" not in text:
            return _finish(text, text, ())
        return Extraction(None, "none")
    position, end, answer, index = max(candidates, key=lambda c: (c[0], c[1]))
    line_end = text.find("\n", end)
    rest_of_line = text[end: line_end if line_end >= 0 else len(text)]
    after = text[end:]
    group: tuple[str, ...] = ()
    if index is not None:
        group = tuple(content for _, _, content in _group(text, boxes, index))
        if len({plain(c) for c in group}) < 2:
            group = ()
        first = len(group) and index - len(group) + 1 or index
        if not group and first > 0 and plain(boxes[first - 1][2]) != plain(answer) \
                and ALTERNATIVE_BETWEEN.search(text[boxes[first - 1][1]:boxes[first][0]][-300:]):
            return Extraction(answer, "hedge", (boxes[first - 1][2], answer), text[end:])
    if RETRACTION.search(rest_of_line) or ALTERNATIVE_AFTER.search(after) or RETRACTION.search(after):
        return Extraction(answer, "hedge", group, after)
    return _finish(answer, rest_of_line, group, after)


def _finish(answer: str, statement: str, group: tuple[str, ...], after: str = "") -> Extraction:
    answer = _LABEL.sub("", answer.strip().rstrip(".").strip())
    cleaned = plain(answer)
    if is_placeholder(cleaned):
        return Extraction(answer, "placeholder", group, after)
    if _HEDGE.search(cleaned) or RETRACTION.search(cleaned):
        return Extraction(answer, "hedge", group, after)
    alternatives = re.split(r"(?i)\s+or\s+", cleaned)
    if len(alternatives) == 2 and all(_SHORT_CHOICE.match(a) or _NUMERIC_ALTERNATIVE.match(a) for a in alternatives) \
            and alternatives[0] != alternatives[1]:
        return Extraction(answer, "hedge", group, after)
    return Extraction(answer, "ok", group, after)
