"""Grading outside a run (`chimera grade`): the rules, and the labeler model only where they cannot decide."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chimera.agents.labeler import label_answer
from chimera.config import JUDGE_ROLES, Config
from chimera.dispatch import Endpoints
from chimera.errors import ChimeraError
from chimera.jsonl import json_lines
from chimera.llm import build_client
from chimera.session import simulator_for
from chimera.tools.grading import Grade, grade


@dataclass(frozen=True)
class Pair:
    reference: str
    response: str
    problem: str | None = None
    subject: str | None = None
    match: bool | None = None  # the human label, in a labelled file
    part: str | None = None  # e.g. "main" / "later": written before or after the rules were frozen


def read_pairs(path: Path, *, labelled: bool = False) -> Iterator[Pair]:
    """`{"reference", "response"}` per line, with optional "problem" (options of a multiple-choice question),
    "subject", "part", and, in a labelled file, "match"; a bad line is named."""
    for number, item in json_lines(path):
        if not isinstance(item, dict) or not isinstance(item.get("reference"), str) \
                or not isinstance(item.get("response"), str):
            raise ChimeraError(f"{path}:{number}: needs string fields \"reference\" and \"response\"")
        if labelled and not isinstance(item.get("match"), bool):
            raise ChimeraError(f"{path}:{number}: --labelled needs a true/false \"match\" field")
        problem = item.get("problem")
        yield Pair(item["reference"], item["response"], problem if isinstance(problem, str) else None,
                   str(item["subject"]) if item.get("subject") is not None else None,
                   item.get("match") if isinstance(item.get("match"), bool) else None,
                   str(item["part"]) if item.get("part") is not None else None)


async def grade_pairs(pairs: list[Pair], *, config: Config | None, judge: bool) -> list[Grade]:
    """Grade every pair; the judges (models.labeler of `config`) are started only if some pair needs them."""
    grades = [grade(p.reference, p.response, p.problem) for p in pairs]
    undecided = [i for i, g in enumerate(grades) if g.correct is None and g.method == "undecided"]
    if not undecided or not judge:
        return grades
    if config is None:
        raise ChimeraError(f"{len(undecided)} answer(s) need the judge: pass --config CONFIG "
                           "(its models.labeler judges) or --no-judge")
    async with simulator_for(config, config.models.judges) as sim_url:
        endpoints = Endpoints(config.run.concurrency)
        clients = [build_client(role, spec, endpoints=endpoints, sim_url=sim_url, log=lambda call: None)
                   for role, spec in zip(JUDGE_ROLES, config.models.judges)]
        try:
            for i in undecided:
                pair = pairs[i]
                grades[i] = await label_answer(clients, problem=pair.problem or "(not given)",
                                               reference=pair.reference, response=pair.response,
                                               retries=config.parse_retries)
        finally:
            for client in clients:
                await client.close()
    return grades


@dataclass
class Tally:
    pairs: int = 0
    decided: int = 0
    right: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    def add(self, grade_: Grade, match: bool) -> None:
        self.pairs += 1
        if grade_.correct is None:
            return
        self.decided += 1
        if grade_.correct == match:
            self.right += 1
        elif grade_.correct:
            self.false_positives += 1
        else:
            self.false_negatives += 1

    def row(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "decided": self.decided,
                "decided_share": round(self.decided / self.pairs, 3) if self.pairs else None,
                "right_when_decided": round(self.right / self.decided, 4) if self.decided else None,
                "false_positives": self.false_positives, "false_negatives": self.false_negatives}


def labelled_report(pairs: list[Pair], grades: list[Grade]) -> dict[str, dict[str, dict[str, Any]]]:
    """Agreement with the human labels, by subject, by method and by part (all pairs under "all")."""
    groups: dict[str, dict[str, Tally]] = {"subject": {}, "method": {}, "part": {}}
    overall = Tally()
    for pair, result in zip(pairs, grades):
        assert pair.match is not None
        overall.add(result, pair.match)
        for axis, key in (("subject", pair.subject or "(none)"), ("method", result.method),
                          ("part", pair.part or "(none)")):
            groups[axis].setdefault(key, Tally()).add(result, pair.match)
    report = {axis: {key: tally.row() for key, tally in sorted(tallies.items())} for axis, tallies in groups.items()}
    report["all"] = {"all": overall.row()}
    return report


def grade_json(result: Grade) -> str:
    data: dict[str, Any] = result.to_dict()
    if not data["detail"]:
        data.pop("detail")
    return json.dumps(data, ensure_ascii=False)
