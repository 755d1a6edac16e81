"""`chimera review DB`: walk the pending items one by one in the terminal.

Single keys on a terminal (readchar); from a pipe, one line per answer, so a
script can drive it. Edits open $EDITOR on the problem and reference answer.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from chimera.cli.console import plain
from chimera.cli.review.edit_buffer import edit_buffer, parse_edit_buffer
from chimera.cli.safe_text import yes_no
from chimera.errors import ChimeraError
from chimera.review.decision import ReviewDecision
from chimera.store import Store
from chimera.store.rows import ReviewRow

KEYS = {"a": "accept", "r": "reject", "e": "edit", "v": "revise", "s": "skip", "q": "quit"}
MENU = "[a]ccept  [r]eject  [e]dit  re[v]ise  [s]kip  [q]uit"


def item_view(item: ReviewRow, position: str) -> Panel:
    """One pending item as the reviewer sees it."""
    payload = item["payload"]
    votes = Table(show_header=True, header_style="bold", expand=True)
    for column in ("critic", "verdict", "own answer", "matches", "reasons"):
        votes.add_column(column, overflow="fold")
    for vote in payload.get("critics", []):
        votes.add_row(f"{vote['critic'] + 1} ({vote.get('model') or '?'})", str(vote.get("verdict")),
                      str(vote.get("own_answer") or "-"), yes_no(vote.get("matches_reference")),
                      str(vote.get("reasons") or ""))
    parts: list[Any] = [
        plain(f"{payload['subject']} / {payload['topic']}  ·  round {payload['round']}  ·  "
              f"would be {'accepted' if payload['proposed'] == 'accept' else 'rejected'}"
              + (f" ({payload['rejection_reason']})" if payload.get("rejection_reason") else ""), style="dim"),
        plain("Why here: " + ", ".join(item["reasons"]), style="bold yellow"),
        Panel(plain(payload["problem"]), title="problem", title_align="left"),
        Text.assemble(("Reference answer: ", "bold"), plain(payload["answer"])),
        votes,
    ]
    if payload.get("solver"):
        solver = Table(show_header=True, header_style="bold")
        for column in ("sample", "solver's answer", "correct", "graded by"):
            solver.add_column(column, overflow="fold")
        for sample in payload["solver"]:
            solver.add_row(str(sample["sample"]), str(sample.get("answer") or "-"),
                           "truncated" if sample.get("truncated") else yes_no(sample.get("correct")),
                           str(sample.get("grade") or "-"))
        parts.append(solver)
    return Panel(Group(*parts), title=plain(f"{position}  {item['id']}"), title_align="left")


class Prompter:
    """Where answers come from: single keys on a terminal, lines from a pipe."""

    def __init__(self, console: Console, stdin=None):
        self.console = console
        self.stdin = stdin or sys.stdin
        self.interactive = self.stdin.isatty()

    def key(self) -> str:
        self.console.print(MENU, markup=False)
        if self.interactive:
            import readchar

            return readchar.readkey().lower()
        line = self.stdin.readline()
        if not line:
            return "q"  # end of input: stop, leaving the rest pending
        return line.strip().lower()[:1]

    def line(self, question: str) -> str:
        self.console.print(question, markup=False, end=" ")
        if self.interactive:
            return input()
        return self.stdin.readline().rstrip("\n")


def edit_in_editor(problem: str, answer: str) -> tuple[str, str] | None:
    """Open $VISUAL / $EDITOR (vi if unset) on both texts; None when saved unchanged."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w", suffix=".md", prefix="chimera-edit-", delete=False,
                                     encoding="utf-8") as handle:
        handle.write(edit_buffer(problem, answer))
        path = handle.name
    try:
        result = subprocess.run([*shlex.split(editor), path], check=False)
        if result.returncode != 0:
            raise ChimeraError(f"editor {editor!r} exited with status {result.returncode}; nothing was changed")
        with open(path, encoding="utf-8") as handle:
            try:
                edited = parse_edit_buffer(handle.read())
            except ValueError as error:
                raise ChimeraError(f"{error}; nothing was changed") from None
    finally:
        os.unlink(path)
    return None if edited == (problem.strip(), answer.strip()) else edited


def walk(store: Store, items: list[ReviewRow], console: Console, prompter: Prompter, reviewer: str,
         edit: Callable[[str, str], tuple[str, str] | None] = edit_in_editor) -> Counter:
    """Show each item, take a decision, store it. Returns how many of each action were taken."""
    taken: Counter = Counter()
    for position, item in enumerate(items, 1):
        console.print(item_view(item, f"{position}/{len(items)}"))
        while True:
            choice = KEYS.get(prompter.key())
            if choice is None:
                console.print("unknown key; " + MENU, markup=False)
                continue
            if choice == "quit":
                return taken
            if choice == "skip":
                break
            fields = _fields_for(choice, item, prompter, edit)
            if fields is None:
                console.print("edit cancelled (nothing changed)", markup=False)
                continue
            try:
                decision = ReviewDecision.model_validate({"action": choice, "reviewer": reviewer, **fields})
            except ValidationError as error:
                console.print(f"not taken: {error.errors()[0]['msg'].removeprefix('Value error, ')}", markup=False)
                continue
            store.decide_review(item["id"], decision.model_dump())
            taken[choice] += 1
            console.print(f"{item['id']}: {choice}", style="green", markup=False)
            break
    return taken


def _fields_for(choice: str, item: ReviewRow, prompter: Prompter,
                edit: Callable[[str, str], tuple[str, str] | None]) -> dict[str, Any] | None:
    if choice == "accept":
        return {}
    if choice == "reject":
        return {"note": prompter.line("note (why rejected, may be empty):")}
    if choice == "revise":
        return {"note": prompter.line("note for the drafter:")}
    payload = item["payload"]
    edited = edit(payload["problem"], payload["answer"])
    if edited is None:
        return None
    problem, answer = edited
    return {"problem": problem if problem != payload["problem"].strip() else None,
            "answer": answer if answer != payload["answer"].strip() else None}
