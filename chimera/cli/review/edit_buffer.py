"""The $EDITOR buffer a reviewer corrects a problem in, both ways: written with section markers, read back."""

from __future__ import annotations

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
