"""Who decided the labels, and how far the judge can be trusted: per subject, the share of labels decided by
the rules and by the judge, the judge's agreement with the rules on the audited labels (rule-decided labels
also sent to the judge), and the agreement between two judges where two are configured."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

NOT_RULES = ("judge", "judges-disagree", "undecided", "unlabeled", "truncated", None)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _verdicts(raw: Any) -> list[bool]:
    if not raw:
        return []
    values = json.loads(raw) if isinstance(raw, str) else raw
    return [v for v in values.values() if isinstance(v, bool)] if isinstance(values, dict) else []


def label_figures(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """`rows`: samples with subject, label_method, correct and judges. Returns one entry per subject and "all"."""
    tallies: dict[str, dict[str, int]] = {}
    for row in rows:
        if row["label_method"] == "truncated":
            continue
        for key in (row["subject"], "all"):
            t = tallies.setdefault(key, {"labels": 0, "rules": 0, "judge": 0, "audited": 0, "audit_agree": 0,
                                         "audit_verdicts": 0, "paired": 0, "paired_agree": 0})
            t["labels"] += 1
            verdicts = _verdicts(row.get("judges"))
            by_rules = row["label_method"] not in NOT_RULES
            t["rules"] += by_rules
            t["judge"] += row["label_method"] == "judge"
            if by_rules and verdicts and row["correct"] is not None:
                t["audited"] += 1
                t["audit_verdicts"] += len(verdicts)
                t["audit_agree"] += sum(v == bool(row["correct"]) for v in verdicts)
            if len(verdicts) >= 2:
                t["paired"] += 1
                t["paired_agree"] += len(set(verdicts)) == 1
    return {key: {"labels": t["labels"], "rules_share": _share(t["rules"], t["labels"]),
                  "judge_share": _share(t["judge"], t["labels"]), "audited": t["audited"],
                  "judge_agrees_with_rules": _share(t["audit_agree"], t["audit_verdicts"]),
                  "judge_pairs": t["paired"], "judges_agree": _share(t["paired_agree"], t["paired"])}
            for key, t in sorted(tallies.items(), key=lambda kv: (kv[0] == "all", kv[0]))}


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def figure_lines(figures: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per subject, for status, the run summary and the card."""
    lines = []
    for subject, f in figures.items():
        agreement = f"judge agrees with rules {pct(f['judge_agrees_with_rules'])} of {f['audited']} audited"
        pairs = f", judges agree {pct(f['judges_agree'])} of {f['judge_pairs']}" if f["judge_pairs"] else ""
        lines.append(f"{subject}: {f['labels']} labels, rules {pct(f['rules_share'])}, judge {pct(f['judge_share'])}; "
                     f"{agreement}{pairs}")
    return lines
