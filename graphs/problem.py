"""The per-problem subgraph: both critics in parallel -> decide -> revise | solve -> label -> commit | reject.

State carries ids and small routing fields only; problem text, votes, and
trajectories are written to the store by the nodes, keyed by deterministic
ids, so re-running a node after a crash overwrites rather than duplicates.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from chimera.agents import critic, drafter, labeler, solver
from chimera.errors import CallFailed, ReplyError
from chimera.graphs.decisions import decide
from chimera.graphs.deps import Deps
from chimera.tools.grading import Grade

CRITICS = (0, 1)


def _merge(left: dict, right: dict) -> dict:
    return {**left, **right}


class ProblemInput(TypedDict):
    topic_id: str
    subject: str
    topic: str
    problem_id: str
    slot: int


class ProblemOutput(TypedDict):
    outcomes: Annotated[list[dict[str, Any]], operator.add]


class ProblemState(ProblemInput, ProblemOutput, total=False):
    revisions: int
    # "round:critic" -> {"verdict", "agrees", ...}: just enough to route; full votes live in the store.
    votes: Annotated[dict[str, dict[str, Any]], _merge]
    action: str
    reason: str | None


def build_problem_graph(deps: Deps) -> StateGraph:
    store, clients, config = deps.store, deps.clients, deps.config

    def context(state: ProblemState) -> dict[str, Any]:
        return deps.context(topic_id=state["topic_id"], problem_id=state["problem_id"])

    def make_critic(index: int):
        async def critic_node(state: ProblemState) -> dict[str, Any]:
            round_ = state.get("revisions", 0)
            row = store.problem(state["problem_id"])
            try:
                verdict = await critic.critique(
                    clients[f"critic{index}"], subject=state["subject"], topic=state["topic"],
                    problem=row["problem"], answer=row["answer"], retries=deps.retries, context=context(state))
                vote = {"verdict": verdict.verdict, "agrees": verdict.agrees_with_reference}
                stored = {**verdict.model_dump(), "model": clients[f"critic{index}"].model}
            except ReplyError as error:
                vote = {"verdict": "reject", "agrees": False, "unparseable": error.reason}
                stored = {"verdict": "reject", "reasons": f"unparseable reply: {error.reason}", "own_answer": None,
                          "agrees_with_reference": False, "model": clients[f"critic{index}"].model}
            except CallFailed as error:
                vote = {"verdict": "failed", "agrees": False, "reason": str(error)}
                stored = {"verdict": "failed", "reasons": str(error), "own_answer": None,
                          "agrees_with_reference": False, "model": clients[f"critic{index}"].model}
            store.record_vote(state["problem_id"], round_=round_, critic=index, vote=stored)
            return {"votes": {f"{round_}:{index}": vote}}

        critic_node.__name__ = f"critic{index}"
        return critic_node

    async def judge(state: ProblemState) -> dict[str, Any]:
        round_ = state.get("revisions", 0)
        votes = {i: state["votes"][f"{round_}:{i}"] for i in CRITICS}
        decision = decide(votes, round_, config.max_revisions)
        return {"action": decision.action, "reason": decision.reason}

    async def revise(state: ProblemState) -> dict[str, Any]:
        round_ = state.get("revisions", 0)
        row = store.problem(state["problem_id"])
        votes = store.votes(state["problem_id"], round_)
        critiques = [f"Reviewer {i + 1} ({v['verdict']}): {v['reasons']}" for i, v in sorted(votes.items())]
        try:
            revised = await drafter.revise(
                clients["drafter"], subject=state["subject"], topic=state["topic"], problem=row["problem"],
                answer=row["answer"], critiques=critiques, retries=deps.retries, context=context(state))
        except ReplyError as error:
            return {"action": "reject", "reason": f"drafter revision unparseable: {error.reason}"}
        except CallFailed as error:
            return {"action": "fail", "reason": str(error)}
        store.save_revision(state["problem_id"], revision=round_ + 1, problem=revised.problem, answer=revised.answer)
        return {"revisions": round_ + 1, "action": "critique"}

    async def solve(state: ProblemState) -> dict[str, Any]:
        row = store.problem(state["problem_id"])
        try:
            reply = await solver.solve(clients["solver"], problem=row["problem"], context=context(state))
        except CallFailed as error:
            return {"action": "fail", "reason": str(error)}
        store.save_sample({
            "id": state["problem_id"], "problem_id": state["problem_id"], "run": deps.run,
            "subject": state["subject"], "topic": state["topic"], "problem": row["problem"], "answer": row["answer"],
            "reasoning": reply.reasoning, "solution": reply.content, "predicted_answer": None, "correct": None,
            "label_method": None, "label_detail": None, "truncated": int(reply.truncated),
            "finish_reason": reply.finish_reason,
            "models": {role: client.model for role, client in clients.items() if role != "expander"},
            "usage": {"solver_tokens_in": reply.tokens_in, "solver_tokens_out": reply.tokens_out,
                      "solver_reasoning_tokens": reply.reasoning_tokens},
        })
        return {"action": "label"}

    async def label(state: ProblemState) -> dict[str, Any]:
        sample = store.sample(state["problem_id"])
        if sample["truncated"]:
            # A trajectory cut at max_tokens is not a wrong answer: it is kept, flagged, and left unlabeled.
            store.update_sample(sample["id"], {"label_method": "truncated", "label_detail": "cut at max_tokens"})
            return {"action": "commit"}
        try:
            result = await labeler.label_answer(
                clients["labeler"], problem=sample["problem"], reference=sample["answer"],
                response=sample["solution"], retries=deps.retries, context=context(state))
        except ReplyError as error:
            result = Grade(None, "unlabeled", None, f"judge reply unparseable: {error.reason}")
        except CallFailed as error:
            return {"action": "fail", "reason": str(error)}
        fields = {"predicted_answer": result.extracted, "correct": result.correct,
                  "label_method": result.method, "label_detail": result.detail}
        store.update_sample(sample["id"], {**fields, "correct": None if fields["correct"] is None else int(fields["correct"])})
        return {"action": "commit"}

    def finish(status: str):
        async def finish_node(state: ProblemState) -> dict[str, Any]:
            reason = state.get("reason") if status != "accepted" else None
            store.finish_problem(state["problem_id"], status, reason)
            return {"outcomes": [{"problem_id": state["problem_id"], "status": status}]}

        return finish_node

    def route(state: ProblemState) -> str:
        return state["action"]

    def after_revise(state: ProblemState) -> str | list[str]:
        return [f"critic{i}" for i in CRITICS] if state["action"] == "critique" else state["action"]

    graph = StateGraph(ProblemState, input_schema=ProblemInput, output_schema=ProblemOutput)
    for index in CRITICS:
        graph.add_node(f"critic{index}", make_critic(index))
        graph.add_edge(START, f"critic{index}")
    graph.add_node("judge", judge)
    graph.add_node("revise", revise)
    graph.add_node("solve", solve)
    graph.add_node("label", label)
    graph.add_node("commit", finish("accepted"))
    graph.add_node("reject", finish("rejected"))
    graph.add_node("fail", finish("failed"))
    graph.add_edge([f"critic{i}" for i in CRITICS], "judge")
    graph.add_conditional_edges("judge", route, {"solve": "solve", "revise": "revise", "reject": "reject", "fail": "fail"})
    graph.add_conditional_edges("revise", after_revise, [*(f"critic{i}" for i in CRITICS), "reject", "fail"])
    graph.add_conditional_edges("solve", route, {"label": "label", "fail": "fail"})
    graph.add_conditional_edges("label", route, {"commit": "commit", "fail": "fail"})
    for end in ("commit", "reject", "fail"):
        graph.add_edge(end, END)
    return graph
