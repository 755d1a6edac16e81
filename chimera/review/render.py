"""Pure text transforms for review: math to MathML for the page, and the $EDITOR buffer both ways."""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

# $$...$$ and \[...\] are display math; $...$ and \(...\) inline. A lone "$5" (no closing $ on the line) stays text.
_MATH = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|\$([^\s$](?:[^$\n]*?[^\s$])?)\$", re.DOTALL)


def math_html(text: str) -> str:
    """Escaped text with each LaTeX span turned into MathML, which browsers render natively (no script, no CDN).
    A span the converter cannot read stays visible as its source."""
    parts, last = [], 0
    for match in _MATH.finditer(text or ""):
        parts.append(html.escape(text[last:match.start()]))
        display = match.group(1) is not None or match.group(2) is not None
        latex = next(group for group in match.groups() if group is not None)
        try:
            parts.append(convert(latex, display="block" if display else "inline"))
        except Exception:  # noqa: BLE001 - any parse failure of one span must not break the page
            parts.append(f"<code>{html.escape(match.group(0))}</code>")
        last = match.end()
    parts.append(html.escape((text or "")[last:]))
    return "".join(parts)


def yes_no(value: object) -> str:
    """A tri-state flag (None, falsy, truthy) as the review views show it."""
    return "-" if value is None else ("yes" if value else "no")


PROBLEM_MARK = "=== PROBLEM ==="
ANSWER_MARK = "=== REFERENCE ANSWER ==="


def edit_buffer(problem: str, answer: str) -> str:
    return (f"# Correct the problem and/or the reference answer, save and quit. Lines starting with '#' are\n"
            f"# ignored. Saving both unchanged cancels the edit.\n{PROBLEM_MARK}\n{problem}\n{ANSWER_MARK}\n{answer}\n")


def parse_edit_buffer(text: str) -> tuple[str, str]:
    """(problem, answer) from an edited buffer; a buffer missing a section marker is an error."""
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    body = "\n".join(lines)
    if PROBLEM_MARK not in body or ANSWER_MARK not in body:
        raise ValueError(f"the edited text must keep the lines {PROBLEM_MARK!r} and {ANSWER_MARK!r}")
    problem = body.split(PROBLEM_MARK, 1)[1].split(ANSWER_MARK, 1)[0]
    answer = body.split(ANSWER_MARK, 1)[1]
    return problem.strip(), answer.strip()
