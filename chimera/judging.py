"""Grading outside a run (`chimera grade`): the rules, and the labeler model only where they cannot decide."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chimera.agents.labeler import label_answer
from chimera.config import Config
from chimera.errors import ChimeraError
from chimera.jsonl import json_lines
from chimera.dispatch import Endpoints
from chimera.llm import build_client
from chimera.sim import server as sim_server
from chimera.tools.grading import Grade, grade


def read_pairs(path: Path) -> Iterator[tuple[str, str]]:
    """`{"reference", "response"}` per line; other fields are ignored; a bad line is named."""
    for number, item in json_lines(path):
        if not isinstance(item, dict) or not isinstance(item.get("reference"), str) \
                or not isinstance(item.get("response"), str):
            raise ChimeraError(f"{path}:{number}: needs string fields \"reference\" and \"response\"")
        yield item["reference"], item["response"]


async def grade_pairs(pairs: list[tuple[str, str]], *, config: Config | None, judge: bool) -> list[Grade]:
    """Grade every pair; the judge (models.labeler of `config`) is started only if some pair needs it."""
    grades = [grade(reference, response) for reference, response in pairs]
    undecided = [i for i, g in enumerate(grades) if g.correct is None and g.method == "undecided"]
    if not undecided or not judge:
        return grades
    if config is None:
        raise ChimeraError(f"{len(undecided)} answer(s) need the judge: pass --config CONFIG "
                           "(its models.labeler judges) or --no-judge")
    spec = config.models.labeler
    runner = None
    try:
        sim_url = None
        if spec.provider == "sim":
            runner, sim_url, _ = await sim_server.start(config.sim, seed=config.run.seed)
        client = build_client("labeler", spec, endpoints=Endpoints(config.run.concurrency), sim_url=sim_url,
                              log=lambda call: None)
        try:
            for i in undecided:
                reference, response = pairs[i]
                grades[i] = await label_answer(client, problem="(not given)", reference=reference,
                                               response=response, retries=config.parse_retries)
        finally:
            await client.close()
    finally:
        if runner is not None:
            await runner.cleanup()
    return grades


def grade_json(result: Grade) -> str:
    data: dict[str, Any] = result.to_dict()
    if not data["detail"]:
        data.pop("detail")
    return json.dumps(data, ensure_ascii=False)
