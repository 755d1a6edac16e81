"""Pure routing decisions of the per-problem graph (no I/O, easy to test)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from chimera.graphs.tasks import Trajectory, Vote

Action = Literal["solve", "revise", "reject", "fail"]


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str | None = None


def decide(votes: Mapping[int, Vote], revisions_done: int, max_revisions: int) -> Decision:
    """What to do with a problem after both critics voted in this round.

    Accept only when both critics accept and both agree with the reference (the
    paper's cross-validation). Any reject is final. Anything else earns a revision
    while revisions remain, then a rejection that says why.
    """
    ordered = [votes[i] for i in sorted(votes)]
    failed = [v for v in ordered if v["verdict"] == "failed"]
    if failed:
        return Decision("fail", failed[0].get("reason") or "critic call failed")
    unparseable = [v for v in ordered if v.get("unparseable")]
    if unparseable:
        return Decision("reject", f"critic reply unparseable: {unparseable[0]['unparseable']}")
    if any(v["verdict"] == "reject" for v in ordered):
        return Decision("reject", "rejected by critic")
    if all(v["verdict"] == "accept" and v["agrees"] for v in ordered):
        return Decision("solve")
    if revisions_done < max_revisions:
        return Decision("revise")
    disagreement = len({v["verdict"] for v in ordered}) > 1 or any(not v["agrees"] for v in ordered)
    why = "critics disagree" if disagreement else "critics asked for revision"
    return Decision("reject", f"{why} after {revisions_done} revision{'s' if revisions_done != 1 else ''}")


def disagreed(votes: Mapping[int, Vote]) -> bool:
    """The critics split on the verdict, or one's own answer does not match the reference."""
    counted = [v for v in votes.values() if v["verdict"] != "failed"]
    return len({v["verdict"] for v in counted}) > 1 or any(not v["agrees"] for v in counted)


def pass_rate(solved: Sequence[Trajectory]) -> float | None:
    """Share of labeled trajectories that are correct; truncated and unlabeled ones do not count."""
    labeled = [s for s in solved if s.get("correct") is not None]
    return sum(bool(s["correct"]) for s in labeled) / len(labeled) if labeled else None


def audit_chosen(seed: int, sample_id: str, rate: float) -> bool:
    """Whether a sample's rule-decided label is also sent to the judge: a seeded draw per sample, so a resumed
    run audits the same samples."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:audit:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < rate
