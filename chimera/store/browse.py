"""The queries behind `chimera view`: one page of a run's problems under filters, the values each filter can
take, and everything stored about one problem. A page is cut in SQL (LIMIT/OFFSET), so a run of any size
costs one page of rows; long texts come back as excerpts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from typing_extensions import TypedDict

from chimera.store.base import StoreBase
from chimera.store.rows import ProblemRow

EXCERPT_CHARS = 240
IN_REVIEW = "in review"  # a status filter beside the problem statuses: pending, with a review not yet applied
LABELS = ("correct", "incorrect", "unlabeled")
REVIEW_COLUMNS = ("id", "round", "reasons", "proposed", "action", "note", "edited_problem", "edited_answer", "reviewer",
                  "decided_at", "applied_at")
_LABEL_SQL = {"correct": "s.correct = 1", "incorrect": "s.correct = 0", "unlabeled": "s.correct is null"}


@dataclass(frozen=True)
class ProblemFilter:
    """Which problems a page lists; None matches any. `label` and `method` hold of one sample together; `text`
    is a case-insensitive substring of the problem, its reference answer, or a sample's solution."""

    subject: str | None = None
    topic: str | None = None
    status: str | None = None  # a PROBLEM_STATUSES value or IN_REVIEW
    reason: str | None = None  # the rejection or failure reason
    label: str | None = None  # one of LABELS
    method: str | None = None  # a sample's label_method (a rule's name, judge, judges-disagree, truncated, ...)
    text: str | None = None


class ProblemListRow(TypedDict):
    id: str
    subject: str
    topic: str
    slot: int
    status: str
    rejection_reason: str | None
    revisions: int | None
    problem: str  # the first EXCERPT_CHARS characters
    answer: str  # the first EXCERPT_CHARS characters
    samples: int
    correct: int
    in_review: bool


class FilterChoices(TypedDict):
    subjects: list[str]
    topics: list[str]  # of the chosen subject, or of every subject
    statuses: list[str]
    reasons: list[str]
    methods: list[str]


class ProblemRecord(TypedDict):
    problem: ProblemRow
    votes: dict[int, dict[int, dict[str, Any]]]  # round -> critic -> vote
    samples: list[dict[str, Any]]  # JSON columns (models, usage, judges) parsed
    reviews: list[dict[str, Any]]  # REVIEW_COLUMNS, reasons parsed


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _where(run: str, wanted: ProblemFilter) -> tuple[str, list[Any]]:
    """SQL written here (never from the filter's text, which only ever becomes parameters) and its arguments."""
    where, args = ["p.run = ?"], [run]
    for column in ("subject", "topic", "rejection_reason"):
        value = getattr(wanted, "reason" if column == "rejection_reason" else column)
        if value is not None:
            where.append(f"p.{column} = ?")
            args.append(value)
    if wanted.status == IN_REVIEW:
        where.append("p.status = 'pending' and p.id in (select r.problem_id from reviews r where r.run = ? "
                     "and r.applied_at is null)")
        args.append(run)
    elif wanted.status is not None:
        where.append("p.status = ?")
        args.append(wanted.status)
    if wanted.label is not None or wanted.method is not None:
        conditions = ["s.run = ?"]
        args.append(run)
        if wanted.label is not None:
            conditions.append(_LABEL_SQL[wanted.label])
        if wanted.method is not None:
            conditions.append("s.label_method = ?")
            args.append(wanted.method)
        where.append(f"p.id in (select s.problem_id from samples s where {' and '.join(conditions)})")
    if wanted.text:
        pattern = _like(wanted.text)
        where.append("(lower(p.problem) like ? escape '\\' or lower(p.answer) like ? escape '\\' or p.id in "
                     "(select s.problem_id from samples s where s.run = ? and lower(s.solution) like ? escape '\\'))")
        args += [pattern, pattern, run, pattern]
    return " and ".join(where), args


class Browse(StoreBase):
    def problem_page(self, run: str, wanted: ProblemFilter, *, limit: int, offset: int) -> tuple[int, list[ProblemListRow]]:
        """(how many problems match, the `limit` of them from `offset`), by subject, topic and slot."""
        where, args = _where(run, wanted)
        total = int(self.conn.execute(f"select count(*) from problems p where {where}", args).fetchone()[0])
        rows = self.conn.execute(
            f"select p.id, p.subject, p.topic, p.slot, p.status, p.rejection_reason, p.revisions, "
            f"substr(p.problem, 1, {EXCERPT_CHARS}), substr(p.answer, 1, {EXCERPT_CHARS}) from problems p "
            f"where {where} order by p.subject, p.topic, p.slot, p.id limit ? offset ?",
            [*args, limit, offset]).fetchall()
        ids = [row[0] for row in rows]
        counts: dict[str, tuple[int, int]] = {}
        waiting: set[str] = set()
        if ids:
            marks = ", ".join("?" * len(ids))
            counts = {pid: (n, correct or 0) for pid, n, correct in self.conn.execute(
                "select problem_id, count(*), sum(case when correct = 1 then 1 else 0 end) from samples "
                f"where problem_id in ({marks}) group by problem_id", ids)}
            waiting = {row[0] for row in self.conn.execute(
                f"select distinct problem_id from reviews where applied_at is null and problem_id in ({marks})", ids)}
        names = ("id", "subject", "topic", "slot", "status", "rejection_reason", "revisions", "problem", "answer")
        page = []
        for row in rows:
            samples, correct = counts.get(row[0], (0, 0))
            page.append(cast(ProblemListRow, {**dict(zip(names, row)), "samples": samples, "correct": correct,
                                              "in_review": row[0] in waiting}))
        return total, page

    def filter_choices(self, run: str, subject: str | None = None) -> FilterChoices:
        """The values present in the run for each filter (topics: of `subject` when one is given)."""
        def distinct(sql: str, args: list[Any]) -> list[str]:
            return sorted(str(row[0]) for row in self.conn.execute(sql, args) if row[0] is not None)

        topic_where, topic_args = ("run = ? and subject = ?", [run, subject]) if subject else ("run = ?", [run])
        return FilterChoices(
            subjects=distinct("select distinct subject from problems where run = ?", [run]),
            topics=distinct(f"select distinct topic from problems where {topic_where}", topic_args),
            statuses=distinct("select distinct status from problems where run = ?", [run]),
            reasons=distinct("select distinct rejection_reason from problems where run = ? and rejection_reason != ''",
                             [run]),
            methods=distinct("select distinct label_method from samples where run = ?", [run]))

    def problem_record(self, run: str, problem_id: str) -> ProblemRecord | None:
        """The problem with every round of critic votes, its samples and its human reviews; None when the run
        holds no problem of that id."""
        rows = self._rows("problems", "id = ? and run = ?", [problem_id, run])
        if not rows:
            return None
        votes: dict[int, dict[int, dict[str, Any]]] = {}
        for round_, critic, vote in self.conn.execute(
                "select round, critic, vote from votes where problem_id = ? order by round, critic", [problem_id]):
            votes.setdefault(round_, {})[critic] = _parsed(vote)
        samples = [{**row, **{key: _parsed(row.get(key)) for key in ("models", "usage", "judges")}}
                   for row in self._rows("samples", "problem_id = ?", [problem_id], order_by="sample_index, id")]
        reviews = [{**dict(zip(REVIEW_COLUMNS, row)), "reasons": _parsed(row[2]) or []} for row in self.conn.execute(
            f"select {', '.join(REVIEW_COLUMNS)} from reviews where problem_id = ? order by created_at, id",
            [problem_id])]
        return ProblemRecord(problem=cast(ProblemRow, rows[0]), votes=votes, samples=samples, reviews=reviews)


def _parsed(value: Any) -> Any:
    """A JSON column's value; text that is not JSON stays the text it was (a page shows it, escaped)."""
    if not isinstance(value, str) or not value:
        return value or None
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return value
