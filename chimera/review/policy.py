"""Which problems a human reviews before their outcome is final. Pure: facts in, reasons out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

Proposed = Literal["accept", "reject"]


@dataclass(frozen=True)
class Facts:
    """What the pipeline knows about a problem at the moment its outcome would become final."""

    proposed: Proposed
    critics_disagreed: bool  # in the round that decided: split verdicts, or an own answer off the reference
    solver_missed: bool  # some labeled trajectory does not match the reference
    sampled: bool  # picked by the seeded `sample` share
    judges_split: bool = False  # two judges disagreed on a trajectory's label


def review_reasons(policy: frozenset[str], facts: Facts) -> list[str]:
    """Why this problem waits for a human under `policy`; empty means it does not."""
    reasons = []
    if "disagreement" in policy and facts.critics_disagreed:
        reasons.append("critics disagreed")
    if "disagreement" in policy and facts.solver_missed:
        reasons.append("solver missed the reference")
    if "disagreement" in policy and facts.judges_split:
        reasons.append("judges disagreed")
    if "rejected" in policy and facts.proposed == "reject":
        reasons.append("rejection")
    if "all" in policy and facts.proposed == "accept":
        reasons.append("accept")
    if "sample" in policy and facts.sampled:
        reasons.append("sampled")
    return reasons


def sampled(problem_id: str, seed: int, rate: float) -> bool:
    """A stable pick: the same problem, seed and rate always give the same answer, on any machine."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{problem_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate
