"""The tables, as named, append-only migrations: a database records which steps it has, so old files upgrade
in order. Each table's reads and writes live in the module of its aggregate (runs, problems, samples, ...)."""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

PROBLEM_STATUSES = ("pending", "accepted", "rejected", "failed")


def _create_core_tables(db: sqlite_utils.Database) -> None:
    db.table("runs").create({"name": str, "config": str, "created_at": float}, pk="name")
    db.table("topics").create(
        {
            "id": str, "run": str, "subject": str, "name": str, "position": int,
            "source": str, "status": str, "created_at": float, "updated_at": float,
        },
        pk="id",
    )
    db.table("problems").create(
        {
            "id": str, "run": str, "topic_id": str, "subject": str, "topic": str, "slot": int,
            "status": str, "problem": str, "answer": str, "draft_problem": str, "draft_answer": str,
            "revisions": int, "critic_verdicts": str, "rejection_reason": str,
            "created_at": float, "updated_at": float,
        },
        pk="id",
    )
    db.table("samples").create(
        {
            "id": str, "problem_id": str, "run": str, "subject": str, "topic": str,
            "problem": str, "answer": str, "reasoning": str, "solution": str,
            "predicted_answer": str, "correct": int, "label_method": str, "label_detail": str,
            "truncated": int, "finish_reason": str, "models": str, "usage": str,
            "created_at": float,
        },
        pk="id",
    )
    db.table("llm_calls").create(
        {
            "id": int, "run": str, "role": str, "model": str, "base_url": str,
            "topic_id": str, "problem_id": str, "tokens_in": int, "tokens_out": int,
            "reasoning_tokens": int, "latency_s": float, "finish_reason": str,
            "outcome": str, "error": str, "created_at": float,
        },
        pk="id",
    )
    db.table("topics").create_index(["run", "subject"], if_not_exists=True)
    db.table("problems").create_index(["topic_id", "slot"], if_not_exists=True)
    db.table("problems").create_index(["run", "status"], if_not_exists=True)
    db.table("llm_calls").create_index(["problem_id"], if_not_exists=True)


def _add_verification_columns(db: sqlite_utils.Database) -> None:
    db.table("problems").add_column("disagreement", int)
    db.table("problems").add_column("duplicate_of", str)
    db.table("problems").add_column("similarity", float)
    db.table("problems").add_column("indexed", int)
    db.table("problems").add_column("pass_rate", float)
    db.table("samples").add_column("sample_index", int)
    db.table("samples").add_column("pass_rate", float)
    db.table("samples").add_column("retried", int)


def _add_taxonomy(db: sqlite_utils.Database) -> None:
    db.table("topics").add_column("subfield", str)
    db.table("topics").add_column("slots", int)
    db.table("topics").add_column("weight", float)
    db.table("runs").add_column("taxonomy", str)  # how Stage 1 was settled: "expanded" or "imported"
    db.table("topic_merges").create(
        {"run": str, "dropped_id": str, "dropped": str, "kept_id": str, "kept": str, "similarity": float,
         "method": str},
        pk=("run", "dropped_id"),
    )


def _add_call_scope(db: sqlite_utils.Database) -> None:
    db.table("llm_calls").add_column("scope", str)  # what a call outside any problem was for ("Physics / Optics")


def _add_retries(db: sqlite_utils.Database) -> None:
    db.table("problems").add_column("retries", int)  # how many times `chimera run --retry-failed` took the slot again


def _add_reviews(db: sqlite_utils.Database) -> None:
    db.table("reviews").create(
        {
            "id": str, "run": str, "problem_id": str, "topic_id": str, "subject": str, "topic": str,
            "thread_id": str, "round": int, "proposed": str, "reasons": str, "payload": str,
            "action": str, "note": str, "edited_problem": str, "edited_answer": str, "reviewer": str,
            "decided_at": float, "applied_at": float, "created_at": float,
        },
        pk="id",
    )
    db.table("reviews").create_index(["run", "action"], if_not_exists=True)
    db.table("reviews").create_index(["thread_id"], if_not_exists=True)


def _add_evals(db: sqlite_utils.Database) -> None:
    db.table("bench_results").create(
        {"id": str, "suite": str, "question": int, "sample": int, "predicted": str, "correct": int,
         "method": str, "finish_reason": str, "tokens_out": int, "created_at": float}, pk="id")
    db.table("bench_results").create_index(["suite"], if_not_exists=True)
    db.table("quality_ratings").create(
        {"id": str, "source": str, "item": str, "model": str, "clarity": int, "well_posedness": int,
         "self_containedness": int, "reasoning_depth": int, "rationale": str, "created_at": float}, pk="id")
    db.table("eval_reports").create({"id": str, "run": str, "kind": str, "report": str, "created_at": float}, pk="id")


def _add_sample_round(db: sqlite_utils.Database) -> None:
    db.table("samples").add_column("round", int)  # the problem's revision the trajectory answered


def _add_taxonomy_rounds(db: sqlite_utils.Database) -> None:
    db.table("topics").add_column("round", int)  # the Stage 1 refill round that added the topic (0: first expansion)
    db.table("taxonomy_shortfalls").create(  # why Stage 1 gave fewer topics than asked for; rewritten as it settles
        {"run": str, "subject": str, "subfield": str, "kind": str, "detail": str, "target": int, "got": int},
        pk=("run", "subject", "subfield", "kind"),
    )


def _add_call_replies(db: sqlite_utils.Database) -> None:
    # What a call asked (a hash of role, ids and the exact body) and, until its thread is finished, what
    # came back: a resumed run takes the kept reply instead of asking a sampled model again.
    db.table("llm_calls").add_column("request_key", str)
    db.table("llm_calls").add_column("reply", str)
    db.table("llm_calls").create_index(["request_key"], if_not_exists=True)
    db.table("llm_calls").create_index(["topic_id"], if_not_exists=True)


def _add_sample_prompt(db: sqlite_utils.Database) -> None:
    db.table("samples").add_column("prompt", str)  # the exact messages the solver was sent (JSON), for SFT exports


def _add_displaced(db: sqlite_utils.Database) -> None:
    # 1 while a problem dropped as a later near-duplicate of one that arrived after it awaits the settling
    # pass (only then can a chain of near-duplicates have left the kept set order-dependent)
    db.table("problems").add_column("displaced", int)


def _move_votes_to_a_table(db: sqlite_utils.Database) -> None:
    # One row per (problem, round, critic): a vote is written alone, not by rewriting every vote of the problem.
    db.table("votes").create({"problem_id": str, "round": int, "critic": int, "vote": str},
                             pk=("problem_id", "round", "critic"), if_not_exists=True)
    db.execute("insert or ignore into votes (problem_id, round, critic, vote) "
               "select p.id, cast(r.key as integer), cast(c.key as integer), c.value "
               "from problems p, json_each(p.critic_verdicts) r, json_each(r.value) c "
               "where p.critic_verdicts is not null and p.critic_verdicts != '{}'")
    db.execute("update problems set critic_verdicts = null")  # kept as a column for old readers, no longer written


def _add_sample_judges(db: sqlite_utils.Database) -> None:
    # Each judge's verdict (JSON, by role) where one was asked: a label the rules left undecided, or a
    # rule-decided label drawn for the audit of the judge's precision.
    db.table("samples").add_column("judges", str)


def _add_batches(db: sqlite_utils.Database) -> None:
    # A batch is recorded before its file is uploaded and again once the provider named it: a process killed
    # between the two finds its batch by the local id in the provider's metadata instead of sending it twice.
    db.table("batches").create(
        {"id": str, "run": str, "role": str, "base_url": str, "state": str, "provider_id": str,
         "input_file_id": str, "provider_status": str, "items": int, "created_at": float, "sent_at": float,
         "ended_at": float, "error": str},
        pk="id",
    )
    db.table("batches").create_index(["run", "state"], if_not_exists=True)
    db.table("batch_items").create({"batch_id": str, "request_key": str}, pk=("batch_id", "request_key"))
    db.table("llm_calls").add_column("batch_id", str)  # the provider's batch the reply came in
    db.table("llm_calls").add_column("cached_tokens", int)  # input tokens the provider's prompt cache served


def _index_samples_by_problem(db: sqlite_utils.Database) -> None:
    db.table("samples").create_index(["problem_id"], if_not_exists=True)  # PostgreSQL's schema has had it


# Named, append-only: a database records which ones it has, so old files upgrade in order.
MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("0001_core_tables", _create_core_tables),
    ("0002_verification", _add_verification_columns),
    ("0003_taxonomy", _add_taxonomy),
    ("0004_call_scope", _add_call_scope),
    ("0005_retries", _add_retries),
    ("0006_reviews", _add_reviews),
    ("0007_evals", _add_evals),
    ("0008_sample_round", _add_sample_round),
    ("0009_taxonomy_rounds", _add_taxonomy_rounds),
    ("0010_call_replies", _add_call_replies),
    ("0011_sample_prompt", _add_sample_prompt),
    ("0012_displaced", _add_displaced),
    ("0013_votes", _move_votes_to_a_table),
    ("0014_sample_judges", _add_sample_judges),
    ("0015_batches", _add_batches),
    ("0016_samples_by_problem", _index_samples_by_problem),
]
