"""Grading outside a run (`chimera grade`): the rules, and the labeler model only where they cannot decide."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chimera.agents.labeler import label_answer
from chimera.config import JUDGE_ROLES, Config
from chimera.engine.session import simulator_for
from chimera.errors import ChimeraError
from chimera.jsonl import json_lines
from chimera.models.dispatch import Endpoints
from chimera.models.llm import build_client
from chimera.products.label_report import label_figures
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


async def grade_pairs(pairs: list[Pair], *, config: Config | None, judge: bool,
                      verdicts: list[dict[str, bool | None]] | None = None) -> list[Grade]:
    """Grade every pair; the judges (models.labeler of `config`) are started only if some pair needs them.
    With `verdicts` (a list to fill), every pair goes to the judges, rule-decided ones too, and each judge's
    verdict is recorded there: that measures a judge before a run."""
    grades = [grade(p.reference, p.response, p.problem) for p in pairs]
    undecided = [i for i, g in enumerate(grades) if g.correct is None and g.method == "undecided"]
    if verdicts is not None and config is not None:
        verdicts.extend({} for _ in pairs)
        undecided = list(range(len(pairs)))
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
                labeled = await label_answer(clients, problem=pair.problem or "(not given)",
                                             reference=pair.reference, response=pair.response,
                                             retries=config.parse_retries, audit=verdicts is not None)
                grades[i] = labeled.grade
                if verdicts is not None:
                    verdicts[i] = labeled.judges
        finally:
            for client in clients:
                await client.close()
            await endpoints.stop_steering()
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


def judge_report(pairs: list[Pair], grades: list[Grade],
                 verdicts: list[dict[str, bool | None]]) -> dict[str, dict[str, Any]]:
    """The run's label figures on a labelled file (rules share, judge share, the judge's agreement with the rules
    and between judges), and each judge against the human labels, by subject and for all pairs."""
    figures = label_figures({"subject": p.subject or "(none)", "label_method": g.method, "correct": g.correct,
                             "judges": v} for p, g, v in zip(pairs, grades, verdicts))
    against_humans: dict[str, Tally] = {}
    for pair, asked in zip(pairs, verdicts):
        assert pair.match is not None
        for verdict in asked.values():
            if verdict is None:
                continue
            for key in (pair.subject or "(none)", "all"):
                against_humans.setdefault(key, Tally()).add(Grade(verdict, "judge", None), pair.match)
    for key, tally in against_humans.items():
        row = tally.row()
        figures.setdefault(key, {}).update({"judge_right": row["right_when_decided"],
                                            "judge_false_positives": row["false_positives"],
                                            "judge_false_negatives": row["false_negatives"]})
    return figures


def grade_json(result: Grade) -> str:
    data: dict[str, Any] = result.to_dict()
    if not data["detail"]:
        data.pop("detail")
    return json.dumps(data, ensure_ascii=False)
