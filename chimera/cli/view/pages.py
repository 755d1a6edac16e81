"""The HTML of `chimera view`'s two pages, from store rows: pure functions, no I/O.

Every value comes from models or from a database someone handed over, so every one is hostile: text is
escaped with its control and bidi characters shown as codes (`visible`), math becomes sanitized MathML
(`math_html`), JSON columns that are not the shape expected are shown as text, and nothing from the data
ever lands in an attribute but escaped (or in a URL but percent-encoded).
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from chimera.cli.page_server import template
from chimera.cli.safe_text import math_html, select_options, visible, yes_no
from chimera.cli.view.query import STATUSES, ListQuery
from chimera.products.label_report import NOT_RULES
from chimera.store.browse import LABELS, FilterChoices, ProblemListRow, ProblemRecord

_LIST, _PROBLEM = template("chimera.cli.view", "list.html"), template("chimera.cli.view", "problem.html")


def text(value: object) -> str:
    """Any value as escaped, visible text (quotes escaped too: safe inside an attribute)."""
    return html.escape(visible("" if value is None else str(value)), quote=True)


def problem_href(problem_id: str) -> str:
    return "/problem/" + quote(str(problem_id), safe="")


def _mapping(value: Any) -> dict[str, Any]:
    """A JSON column meant to be an object; anything else (hostile or old) becomes {"value": it}."""
    if isinstance(value, dict):
        return value
    return {} if value is None else {"value": value}


def _status(status: Any, reason: Any, in_review: bool) -> str:
    shown = "in review" if in_review and status == "pending" else str(status)
    return shown + (f" ({reason})" if reason else "")


def _choices(values: list[str], chosen: str | None) -> list[str]:
    """A filter's values, with the chosen one kept even where the run has none (a shared link stays applied)."""
    return values if chosen is None or chosen in values else [*values, chosen]


# -- the list -------------------------------------------------------------------------------------------

def list_body(query: ListQuery, total: int, rows: list[ProblemListRow], choices: FilterChoices) -> str:
    wanted = query.wanted
    table_rows = "\n".join(
        f'<tr data-id="{text(r["id"])}"><td><a href="{problem_href(r["id"])}">{text(r["id"])}</a></td>'
        f'<td>{text(r["subject"])} / {text(r["topic"])}</td>'
        f'<td class="status">{text(_status(r["status"], r["rejection_reason"], r["in_review"]))}</td>'
        f'<td class="samples">{r["samples"]} ({r["correct"]} correct)</td>'
        f'<td class="excerpt">{text(r["problem"])}</td><td class="excerpt">{text(r["answer"])}</td></tr>'
        for r in rows)
    pages = max(1, -(-total // query.per))
    if not rows:
        why = "no problem matches these filters" if total == 0 else f"past the last page ({pages})"
        table_rows = f'<tr><td colspan="6" class="muted" id="empty">{why}</td></tr>'
    first = query.offset + 1 if rows else 0
    count = (f"{total} problem{'s' if total != 1 else ''}" + (f" · {first}–{query.offset + len(rows)} shown"
                                                               if rows else "") + f" · page {query.page} of {pages}")
    previous = f'<a id="prev" href="{text(query.link(query.page - 1))}">&larr; previous</a>' if query.page > 1 else ""
    following = f'<a id="next" href="{text(query.link(query.page + 1))}">next &rarr;</a>' if query.page < pages else ""
    return _LIST.substitute(
        subject_options=select_options(_choices(choices["subjects"], wanted.subject), wanted.subject, "every subject"),
        topic_options=select_options(_choices(choices["topics"], wanted.topic), wanted.topic, "every topic"),
        status_options=select_options(list(STATUSES), wanted.status, "every status"),
        reason_options=select_options(_choices(choices["reasons"], wanted.reason), wanted.reason, "every reason"),
        label_options=select_options(list(LABELS), wanted.label, "any label"),
        method_options=select_options(_choices(choices["methods"], wanted.method), wanted.method, "any method"),
        q=text(wanted.text or ""), per=query.per, count=text(count), rows=table_rows, previous=previous,
        following=following)


# -- one problem ----------------------------------------------------------------------------------------

def problem_body(record: ProblemRecord) -> str:
    p = record["problem"]
    waiting = any(r.get("applied_at") is None for r in record["reviews"])
    notes = [f"revised {p['revisions']} time{'s' if p['revisions'] != 1 else ''}" if p.get("revisions") else
             "never revised"]
    if p.get("disagreement"):
        notes.append("the critics disagreed")
    if p.get("duplicate_of"):
        notes.append(f"near-duplicate of {p['duplicate_of']} (similarity {p.get('similarity')})")
    if p.get("pass_rate") is not None:
        notes.append(f"solver pass rate {p['pass_rate']}")
    if p.get("retries"):
        notes.append(f"retried {p['retries']} time{'s' if p['retries'] != 1 else ''}")
    draft = ""
    if (p.get("draft_problem"), p.get("draft_answer")) != (p.get("problem"), p.get("answer")):
        draft = ('<details class="box" id="draft"><summary>the first draft, before revision</summary>'
                 f'<div class="problem">{math_html(str(p.get("draft_problem") or ""))}</div>'
                 f'<p><strong>Reference answer:</strong> {math_html(str(p.get("draft_answer") or ""))}</p></details>')
    samples = record["samples"]
    return _PROBLEM.substitute(
        id=text(p["id"]), subject=text(p.get("subject")), topic=text(p.get("topic")), slot=text(p.get("slot")),
        status_class=text(p.get("status")), status=text(_status(p.get("status"), p.get("rejection_reason"), waiting)),
        notes=text(" · ".join(notes)), problem_html=math_html(str(p.get("problem") or "")),
        answer_html=math_html(str(p.get("answer") or "")), draft=draft, votes=_votes(record["votes"]),
        reviews=_reviews(record["reviews"]), sample_count=len(samples),
        samples="\n".join(_sample(s, p.get("revisions")) for s in samples) or '<p class="muted">no samples</p>')


def _votes(rounds: dict[int, dict[int, dict[str, Any]]]) -> str:
    if not rounds:
        return '<p class="muted" id="votes">no critic has voted</p>'
    tables = []
    for round_, critics in rounds.items():
        rows = []
        for critic, raw in critics.items():
            vote = _mapping(raw)
            matched = yes_no(vote.get("own_answer_matches"))
            if vote.get("match_method"):
                matched += f" ({text(vote['match_method'])})"
            rows.append(
                f'<tr class="vote"><td>{_critic_number(critic)} ({text(vote.get("model") or "?")})</td>'
                f'<td class="verdict">{text(vote.get("verdict") or "-")}</td>'
                f'<td>{math_html(str(vote.get("own_answer") or "-"))}</td>'
                f'<td>{yes_no(vote.get("agrees_with_reference", vote.get("matches_reference")))}</td>'
                f'<td>{matched}</td><td class="reasons">{math_html(str(vote.get("reasons") or vote.get("value") or ""))}'
                "</td></tr>")
        title = "first draft" if round_ == 0 else f"revision {text(round_)}"
        tables.append(f'<h4>round {text(round_)}: {title}</h4><table class="votes"><thead><tr><th>critic</th>'
                      "<th>verdict</th><th>own answer</th><th>agrees with reference</th><th>own answer matches</th>"
                      f"<th>reasons</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return f'<div id="votes">{"".join(tables)}</div>'


def _critic_number(critic: Any) -> str:
    """Critics are counted from 1 on the page (from 0 in the database)."""
    return str(critic + 1) if isinstance(critic, int) else text(critic)


def _reviews(reviews: list[dict[str, Any]]) -> str:
    if not reviews:
        return ""
    rows = []
    for r in reviews:
        decided = f"{r['action']} by {r.get('reviewer') or '?'}" if r.get("action") else "waiting for a decision"
        edits = [f"problem: {r['edited_problem']}" if r.get("edited_problem") else "",
                 f"answer: {r['edited_answer']}" if r.get("edited_answer") else ""]
        raw = r.get("reasons")
        reasons: list[Any] = raw if isinstance(raw, list) else [raw]
        rows.append(f"<tr><td>{text(r.get('round'))}</td>"
                    f"<td>{''.join(f'<span class=tag>{text(reason)}</span>' for reason in reasons)}</td>"
                    f"<td>{text('accepted' if r.get('proposed') == 'accept' else 'rejected')}</td>"
                    f"<td>{text(decided)}</td><td>{text(r.get('note') or '')}</td>"
                    f"<td>{text('; '.join(e for e in edits if e))}</td></tr>")
    return ('<h3>Human review</h3><table id="reviews"><thead><tr><th>round</th><th>why</th><th>would be</th>'
            f"<th>decision</th><th>note</th><th>edits</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def label_of(sample: dict[str, Any]) -> str:
    """correct, incorrect, or unlabeled (a truncated sample is never labelled)."""
    correct = sample.get("correct")
    return "unlabeled" if correct is None else ("correct" if correct else "incorrect")


def how_labelled(sample: dict[str, Any]) -> list[str]:
    """Sentences saying how the label was decided: which rule or judge, its detail, and each judge's verdict."""
    method = sample.get("label_method")
    said = {None: "not labelled yet", "judge": "decided by the judge (the rules could not decide)",
            "judges-disagree": "the judges disagreed, so the label stays undecided (kept out of SFT)",
            "undecided": "undecided: no rule applied and no judge decided",
            "unlabeled": "not labelled", "truncated": "cut off before an answer: not labelled"}
    lines = [said.get(method, f"label method {method}") if method in NOT_RULES or method in said
             else f"decided by the rule {method}"]
    if sample.get("label_detail"):
        lines.append(f"detail: {sample['label_detail']}")
    judges = _mapping(sample.get("judges"))
    if judges:
        verdicts = "; ".join(f"{role}: " + ("no verdict" if v is None else "correct" if v is True else
                                            "incorrect" if v is False else str(v)) for role, v in judges.items())
        audit = method not in NOT_RULES
        lines.append(("the judge was also asked, to audit the rules: " if audit else "judges asked: ") + verdicts)
    return lines


def _tokens(usage: dict[str, Any]) -> str:
    return ", ".join(f"{str(key).removeprefix('solver_').replace('_', ' ')} {value}"
                     for key, value in sorted(usage.items(), key=lambda kv: str(kv[0]))) or "-"


def _sample(sample: dict[str, Any], problem_round: Any) -> str:
    label = label_of(sample)
    index = sample.get("sample_index")
    models = _mapping(sample.get("models"))
    facts = [("extracted answer", math_html(str(sample.get("predicted_answer") or "-")), "predicted"),
             ("label decided", "<br>".join(text(line) for line in how_labelled(sample)), "how"),
             ("tokens", text(_tokens(_mapping(sample.get("usage")))), "tokens"),
             ("finish", text(sample.get("finish_reason") or "-") + (" · <strong>truncated</strong>"
                                                                     if sample.get("truncated") else ""), "finish"),
             ("solver", text(models.get("solver") or models.get("value") or "-"), "model")]
    if sample.get("round") is not None and problem_round is not None and sample.get("round") != problem_round:
        facts.append(("answered", text(f"revision {sample.get('round')} of the problem, not the current one"),
                      "round"))
    if sample.get("retried"):
        facts.append(("retried", "yes", "retried"))
    rows = "".join(f'<tr class="{name}"><th>{title}</th><td>{value}</td></tr>' for title, value, name in facts)
    reasoning = str(sample.get("reasoning") or "")
    return (f'<section class="box sample" id="sample-{text(index)}" data-label="{label}">'
            f'<h4>sample {text(index)} <span class="label {label}">{label}</span></h4>'
            f'<table class="facts">{rows}</table>'
            f'<details class="reasoning"><summary>reasoning ({len(reasoning):,} characters)</summary>'
            f'<div class="text">{math_html(reasoning)}</div></details>'
            f'<h5>solution</h5><div class="solution text">{math_html(str(sample.get("solution") or ""))}</div>'
            "</section>")
