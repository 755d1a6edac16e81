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
from chimera.tools.grading.commitment import (
    ALTERNATIVE_AFTER,
    ALTERNATIVE_BETWEEN,
    DISOWNED,
    MORE_RETRACTION,
    NEGATED_BEFORE,
    QUESTIONED,
    REDEFINES,
    RETRACTION,
    REVISION,
    UNDONE_AFTER,
    box_statement,
    kind_of,
    lead_allowed,
    other_candidate,
    sentence_start,
    tail_commits,
    visible,
    without_notes,
)
from chimera.tools.grading.text import plain

Status = Literal["ok", "none", "empty", "placeholder", "hedge", "unsettled"]

_MARKER = re.compile(
    r"(?i)(?:\bfinal\s+answer\b|\bthe\s+(?:final\s+|correct\s+|right\s+)?answer\s+(?:is|would\s+be)\b"
    r"|(?:^|\n)[ \t>*#_-]*answer\b|\banswer\s*(?=\**\s*[:：]))[ \t*_]*(?:is\b)?[ \t*_]*[:：]?")
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
_OPERATOR_END = re.compile(r"(?:^|[^=<>!])(?:[-+*/^_−]|\\(?:cdot|times|pm|mp|div|neq|le|ge|lt|gt))\s*$")


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
    outermost, reach = [], -1
    for box in found:  # a box inside a box is part of the outer one's content: \boxed{\boxed{42} or 43}
        if box[0] >= reach:
            outermost.append(box)
            reach = box[1]
    return outermost


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
    """After a closing </think>, only what follows it is the answer (nothing, if nothing follows)."""
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1].strip()
    return text


_SIZES = r"\\(?:tiny|scriptsize|footnotesize|small|normalsize|large|huge)\b"
_JOINT = re.compile(r"(?i)^(?:[\s$,;.:&{}]|\\quad|\\qquad|" + _SIZES + r"|\\text\s*\{[^{}]{0,12}\}|\band\b|\bor\b"
                    r"|\beither\b|\bmaybe\b"
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
    text = _answer_body(without_notes(visible(clean((response or "")[-MAX_RESPONSE_CHARS:]))).strip())
    if not text:
        return Extraction(None, "empty")
    boxes = _boxes(text)
    # (start, end of statement, answer, box index, a statement of its own: a marker's, or a box alone on its line)
    candidates: list[tuple[int, int, str, int | None, bool]] = [
        (start, end, content, i, _alone(text, start, end)) for i, (start, end, content) in enumerate(boxes)]
    markers = list(_MARKER.finditer(text))
    for match in markers[-2:]:  # the last decides; the one before may contradict it. All would be quadratic
        statement, end = _after_marker(text, match.end())
        if not statement.strip(" .!*_:") and boxes and not match.group(0).rstrip().endswith((":", "：")):
            continue  # "\boxed{5}. This is the final answer.": the marker points back at the box
        inner = _boxes(statement)
        if inner:
            offset = text.find(statement, match.end())
            index = next((i for i, box in enumerate(boxes) if box[0] == offset + inner[-1][0]), None)
            candidates.append((match.start(), offset + inner[-1][1], inner[-1][2], index, True))
        else:
            candidates.append((match.start(), end, statement, None, True))
    if not candidates:
        if len(text) <= SHORT_RESPONSE and "\n" not in text:
            return _finish(text, text, ())
        return Extraction(None, "none")
    candidates.sort(key=lambda c: (c[0], c[1]))
    position, end, answer, index, _ = candidates[-1]
    line_start = text.rfind("\n", 0, position) + 1
    line_end = text.find("\n", end)
    rest_of_line = text[end: line_end if line_end >= 0 else len(text)]
    after = text[end:]
    after_line = text[line_end:] if line_end >= 0 else ""
    group: tuple[str, ...] = ()
    if index is not None:
        group = tuple(content for _, _, content in _group(text, boxes, index))
        if len({plain(c) for c in group}) < 2:
            group = ()
        first = len(group) and index - len(group) + 1 or index
        if not group and first > 0 and plain(boxes[first - 1][2]) != plain(answer) \
                and ALTERNATIVE_BETWEEN.search(text[boxes[first - 1][1]:boxes[first][0]][-300:]):
            return Extraction(answer, "hedge", (boxes[first - 1][2], answer), after)
        if NEGATED_BEFORE.search(text[max(line_start, boxes[index][0] - 120):boxes[index][0]]):
            return Extraction(answer, "hedge", group, after)
        if not group:
            box_start, box_end = boxes[index][0], boxes[index][1]
            box_line_end = text.find("\n", box_end)
            larger = box_statement(text[max(line_start, box_start - 300):box_start], answer,
                                   text[box_end: box_line_end if box_line_end >= 0 else len(text)][:300])
            if larger is not None:
                answer = larger  # the box is part of a larger statement: that statement is the answer
            elif not text[line_start:box_start].strip(" \t$*\\[]()"):
                above = re.sub(r"\*\*|__", "", text[:line_start].rstrip().rsplit("\n", 1)[-1]).strip(" \t$")
                if _OPERATOR_END.search(above):  # "x =\n-\n\boxed{42}": a display broken over lines
                    answer = f"{above} {answer}"
    elif position < len(text) and not text[position:end].lstrip().startswith("\\boxed"):
        lead = text[line_start:position]
        lead = lead[sentence_start(lead):] + text[position:end]
        marker = markers[-1] if markers and markers[-1].start() == position else None
        if marker is not None and not lead_allowed(lead[: len(lead) - (end - marker.end())]):
            answer = " ".join(lead.split())  # "Up to sign, the answer is 42": the sentence, not the number
    if REDEFINES.search(text) or DISOWNED.search(rest_of_line) or QUESTIONED.match(rest_of_line.lstrip(" $)]}*_")):
        return Extraction(answer, "hedge", group, after)
    if RETRACTION.search(rest_of_line) or ALTERNATIVE_AFTER.search(after) or RETRACTION.search(after) \
            or MORE_RETRACTION.search(after) or UNDONE_AFTER.match(rest_of_line) \
            or other_candidate(plain(answer), plain(rest_of_line) if rest_of_line.strip() else "", after_line):
        return Extraction(answer, "hedge", group, after)
    if not group and _contradicted(text, candidates, answer, position):
        return Extraction(answer, "hedge", group, after)
    sentence_end = re.search(r"[.;!?](?=\s|$)", rest_of_line)
    tail = after[sentence_end.end():] if sentence_end else after[len(rest_of_line):]
    if not tail_commits(tail):  # what follows may change it: no rule decides, and a judge reads both
        return Extraction(f"{answer} {' '.join(tail.split())[:200]}", "unsettled", group, after)

    return _finish(answer, rest_of_line, group, after)


def _alone(text: str, start: int, end: int) -> bool:
    """A box that ends its line (a displayed answer, or a sentence's conclusion), not a value inside a sentence."""
    line_end = text.find("\n", end)
    return not text[end: line_end if line_end >= 0 else len(text)].strip(" \t$.:*_\\[]()!")


def _contradicted(text: str, candidates: list[tuple[int, int, str, int | None, bool]], answer: str,
                  position: int) -> bool:
    """Two statements of a final answer close together with different values, and no sign that the second
    corrects the first ("Final answer: 43\nFinal answer: 42"): several candidates, not a revision."""
    earlier = [c for c in candidates[:-1] if c[4] and c[1] <= position]
    if not earlier:
        return False
    _, end, previous, _, _ = earlier[-1]
    between = text[end:position]
    return plain(previous) != plain(answer) and len(between) <= 200 and not REVISION.search(between) \
        and bool(plain(previous).strip(" .:"))


def _finish(answer: str, statement: str, group: tuple[str, ...], after: str = "") -> Extraction:
    answer = _LABEL.sub("", answer.strip().rstrip(".").strip())
    cleaned = plain(answer)
    if is_placeholder(cleaned):
        return Extraction(answer, "placeholder", group, after)
    disowned = DISOWNED.search(cleaned) and kind_of(cleaned) != "yesno"
    if _HEDGE.search(cleaned) or RETRACTION.search(cleaned) or QUESTIONED.search(cleaned[-3:]) or disowned \
            or re.match(r"(?i)(?:not|never|neither|nor)\s+(?=[\d\\(-]|[A-J]\b)", cleaned) \
            or re.match(r"\s*(?:~|¬|\\neg\b|\\lnot\b|!(?!=))", answer):
        return Extraction(answer, "hedge", group, after)
    alternatives = re.split(r"(?i)\s+or\s+", cleaned)
    if len(alternatives) == 2 and all(_SHORT_CHOICE.match(a) or _NUMERIC_ALTERNATIVE.match(a) for a in alternatives) \
            and alternatives[0] != alternatives[1]:
        return Extraction(answer, "hedge", group, after)
    return Extraction(answer, "ok", group, after)
