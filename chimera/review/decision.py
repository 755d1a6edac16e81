"""A reviewer's decision on one problem, validated once wherever it comes from (CLI, terminal, web)."""

from __future__ import annotations

import getpass
import os
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Action = Literal["accept", "reject", "edit", "revise"]
ACTIONS: tuple[Action, ...] = ("accept", "reject", "edit", "revise")


class ReviewDecision(BaseModel):
    """accept / reject (with a note) / edit (new problem and/or answer, back to the critics) /
    revise (back to the drafter with the note)."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    note: str = ""
    problem: str | None = None
    answer: str | None = None
    reviewer: str = Field(min_length=1)
    decided_at: float = Field(default_factory=time.time)

    @model_validator(mode="after")
    def _complete(self) -> ReviewDecision:
        self.note = self.note.strip()
        self.problem = (self.problem or "").strip() or None
        self.answer = (self.answer or "").strip() or None
        if self.action == "edit" and not (self.problem or self.answer):
            raise ValueError("an edit needs a corrected problem or answer")
        if self.action == "revise" and not self.note:
            raise ValueError("sending back for revision needs a note for the drafter")
        if self.action != "edit" and (self.problem or self.answer):
            raise ValueError(f"'{self.action}' takes no corrected problem or answer (use edit)")
        return self


def default_reviewer() -> str:
    """Who is deciding: $CHIMERA_REVIEWER, else the login name."""
    return os.environ.get("CHIMERA_REVIEWER") or getpass.getuser()
