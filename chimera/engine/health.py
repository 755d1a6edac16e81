"""Whether a finished run did its job, from its counts and its calls: the exit status and the lines that
explain it. Pure decisions over what the store reports (`Store.counts`, `Store.call_rows`).

The counts are the whole run's; the calls are this invocation's, so a resumed run is not judged by the
failures of the one before a restart (`earlier_failures` counts those).

0: every problem slot ended accepted, rejected or waiting for review, and some were accepted.
1: a role failed on every call it made, a subject ended Stage 1 with no topics, the run produced nothing
   because calls failed, or it accepted nothing (or every sample of what it accepted was cut): the line says
   why and what to change.
3: the run finished, but some slots ended `failed` (their calls ran out of retries).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from chimera.store.rows import CallCount

ANSWERED = ("ok", "truncated", "malformed_reply")  # the server answered, whatever we made of it
SUCCEEDED = ("ok", "truncated")
# Where a role's settings live in a config, by the name a rejection reason gives it (else models.NAME).
ROLE_SETTINGS = {"critic": "models.critics[*]", "judge": "models.labeler"}
_UNPARSEABLE = re.compile(r"^(\w+) (?:reply|revision) unparseable: (.*)$")
_LOCAL_PORT = re.compile(r"(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+")


_CLIENT_PREFIX = re.compile(r"^Error code: \d+ - ")  # the openai client's; the status is in the outcome already


def without_ports(text: str) -> str:
    """Loopback addresses lose their port, so failures of one kind group across runs and restarts."""
    return _LOCAL_PORT.sub(r"\1:PORT", _CLIENT_PREFIX.sub("", text or ""))


@dataclass(frozen=True)
class RoleCalls:
    role: str
    base_url: str
    calls: int
    answered: int  # replies with a body (ok, truncated, or unparseable)
    ok: int
    failures: dict[tuple[str, str], int]  # (outcome, server message) -> count


@dataclass
class Health:
    exit_code: int
    lines: list[str] = field(default_factory=list)


def role_calls(rows: list[CallCount]) -> list[RoleCalls]:
    """Per role and endpoint: calls, answered, ok, and the failures by outcome and message."""
    roles: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        entry = roles.setdefault((row["role"], row["base_url"] or ""), {"calls": 0, "answered": 0, "ok": 0,
                                                                       "failures": {}})
        entry["calls"] += row["count"]
        if row["outcome"] in ANSWERED:
            entry["answered"] += row["count"]
        if row["outcome"] in SUCCEEDED:
            entry["ok"] += row["count"]
        else:
            key = (row["outcome"], without_ports(row["error"] or ""))
            entry["failures"][key] = entry["failures"].get(key, 0) + row["count"]
    return [RoleCalls(role, url, **entry) for (role, url), entry in sorted(roles.items())]


def failure_groups(rows: list[CallCount]) -> list[dict[str, Any]]:
    """Failed calls grouped by role, outcome and message (ports dropped), largest first."""
    groups: dict[tuple[str, str, str], int] = {}
    for row in rows:
        if row["outcome"] in SUCCEEDED:
            continue
        key = (row["role"], row["outcome"], without_ports(row.get("error") or ""))
        groups[key] = groups.get(key, 0) + row.get("count", 1)
    return [{"role": role, "outcome": outcome, "message": message, "calls": calls}
            for (role, outcome, message), calls in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))]


def earlier_failures(call_outcomes: dict[str, int], this_run: list[CallCount]) -> int:
    """Failed calls of the run logged before this invocation: the run's outcomes less this invocation's."""
    in_the_run = sum(count for outcome, count in call_outcomes.items() if outcome not in SUCCEEDED)
    in_this_one = sum(row["count"] for row in this_run if row["outcome"] not in SUCCEEDED)
    return in_the_run - in_this_one


def broken_roles(roles: list[RoleCalls]) -> list[RoleCalls]:
    return [r for r in roles if r.calls and r.ok == 0]


def describe(role: RoleCalls) -> str:
    """The endpoint as configured, port and all (the one to go and look at); messages lose theirs to group."""
    (outcome, message), count = max(role.failures.items(), key=lambda kv: kv[1]) if role.failures else (("?", ""), 0)
    said = f": {message}" if message else ""
    return f"{role.role} at {role.base_url}: every call failed ({role.calls} calls; {count} {outcome}{said})"


def rejected_because(reason: str) -> str:
    """How "N problems were rejected" goes on for this rejection reason, naming the setting to change where
    one would help."""
    unparseable = _UNPARSEABLE.match(reason)
    if unparseable:
        role, why = unparseable.groups()
        setting = ROLE_SETTINGS.get(role, f"models.{role}")
        if "cut at max_tokens" in why:
            return f" because the {role}'s replies were cut at max_tokens (raise {setting}.max_tokens or " \
                   "max_tokens_cap)"
        return f" because the {role}'s replies could not be read: {why} (try another {setting}.structured_output, " \
               "such as json_object)"
    if reason == "duplicate":
        return " as near-duplicates of earlier problems (raise dedup.threshold)"
    if reason.startswith(("critics disagree after", "critics asked for revision after")):
        return f": {reason} (raise max_revisions)"
    return f": {reason}"


def nothing_accepted(counts: dict[str, Any]) -> str | None:
    """Why a run that ended with problems, none accepted and none waiting for review, accepted nothing: the
    dominant rejection reason (half the problems or more) with the setting to change, else the first few.
    With failed slots too the reasons are not told apart from the failures', so the line only counts them."""
    by_status = counts["by_status"]
    rejected, failed, total = by_status.get("rejected", 0), by_status.get("failed", 0), counts["problems"]
    if by_status.get("accepted", 0) or counts["reviews"]["pending"] or not rejected:
        return None
    if failed:
        return f"0 accepted: {rejected} of {total} problems were rejected and {failed} failed (chimera status " \
               "lists why)"
    reasons = counts["rejection_reasons"]
    if not reasons:
        return f"0 accepted: all {rejected} problems were rejected"
    top = reasons[0]
    if 2 * top["count"] >= total:
        return f"0 accepted: {top['count']} of {total} problems were rejected{rejected_because(top['reason'])}"
    listed = "; ".join(f"{r['reason']} ({r['count']})" for r in reasons[:3])
    return f"0 accepted: {rejected} of {total} problems were rejected, for several reasons: {listed}"


def every_sample_cut(counts: dict[str, Any]) -> str | None:
    """Accepted problems whose every sample was cut: no trajectory to train on."""
    samples, cut = counts["samples"], counts["truncated"]
    if not samples or cut < samples:
        return None
    return (f"no usable samples: all {samples} samples of the accepted problems were cut, at max_tokens or past "
            "solver.max_trajectory_chars (raise models.solver.max_tokens, or set solver.max_tokens_retry)")


def empty_subjects(shortfalls: list[dict[str, Any]]) -> list[str]:
    """One line per subject that Stage 1 left with no topic at all, with the expander's trouble if any."""
    lines = []
    for short in shortfalls:
        if short["kind"] == "short" and not short["subfield"] and short["got"] == 0:
            trouble = [s["detail"] for s in shortfalls if s["subject"] == short["subject"] and s["kind"] == "reply"]
            lines.append(f"subject {short['subject']} has no topics ({short['detail']})"
                         + (f"; {trouble[0]}" if trouble else ""))
    return lines


def assess(counts: dict[str, Any], roles: list[RoleCalls], *, retry_command: str,
           shortfalls: list[dict[str, Any]] | None = None) -> Health:
    by_status = counts["by_status"]
    failed = by_status.get("failed", 0)
    produced = by_status.get("accepted", 0) + by_status.get("rejected", 0) + counts["reviews"]["pending"]
    broken = broken_roles(roles)
    if broken:
        names = " and ".join(f"the {r.role}" for r in broken)
        again = [f"once {names} {'answers' if len(broken) == 1 else 'answer'} again, take the {failed} failed "
                 f"slot{'s' if failed != 1 else ''} again with: {retry_command}"] if failed else []
        return Health(1, [describe(r) for r in broken] + again)
    empty = empty_subjects(shortfalls or [])
    if empty:
        return Health(1, empty)
    slots_failed = [f"{failed} problem slot{'s' if failed != 1 else ''} ended failed (calls ran out of "
                    f"retries); take them again with: {retry_command}"] if failed else []
    if counts["problems"] and not produced and failed:
        worst = sorted(roles, key=lambda r: -(r.calls - r.ok))[:2]
        return Health(1, [f"the run produced nothing: all {failed} problem slots failed"]
                      + [describe(r).replace("every call failed", f"{r.calls - r.ok} of {r.calls} calls failed")
                         for r in worst if r.calls > r.ok] + slots_failed)
    empty_result = nothing_accepted(counts) or every_sample_cut(counts)
    if empty_result:
        return Health(1, [empty_result] + slots_failed)
    if failed:
        return Health(3, slots_failed)
    return Health(0)


def assess_eval(*, done: int, failed: int, roles: list[RoleCalls], retry_command: str) -> Health:
    """The same rules for `chimera eval bench` and `eval quality`, over this invocation's calls: 1 when a
    role failed on every call or nothing was done because calls failed, 3 when some items failed."""
    broken = broken_roles(roles)
    if broken:
        return Health(1, [describe(r) for r in broken])
    if failed and not done:
        return Health(1, [f"nothing was done: all {failed} calls failed"])
    if failed:
        return Health(3, [f"{failed} item{'s' if failed != 1 else ''} failed (calls ran out of retries); ask them "
                          f"again with: {retry_command}"])
    return Health(0)
