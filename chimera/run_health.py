"""Whether a finished run did its job, from its counts and its calls: the exit status and the lines that
explain it. Pure decisions over what the store reports (`Store.counts`, `Store.call_failures`).

0: every problem slot ended accepted, rejected or waiting for review.
1: a role failed on every call it made, a subject ended Stage 1 with no topics, or the run produced nothing
   because calls failed.
3: the run finished, but some slots ended `failed` (their calls ran out of retries).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from chimera.store.rows import CallCount

ANSWERED = ("ok", "truncated", "malformed_reply")  # the server answered, whatever we made of it
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
        if row["outcome"] in ("ok", "truncated"):
            entry["ok"] += row["count"]
        else:
            key = (row["outcome"], without_ports(row["error"] or ""))
            entry["failures"][key] = entry["failures"].get(key, 0) + row["count"]
    return [RoleCalls(role, url, **entry) for (role, url), entry in sorted(roles.items())]


def failure_groups(rows: list[CallCount]) -> list[dict[str, Any]]:
    """Failed calls grouped by role, outcome and message (ports dropped), largest first."""
    groups: dict[tuple[str, str, str], int] = {}
    for row in rows:
        if row["outcome"] in ("ok", "truncated"):
            continue
        key = (row["role"], row["outcome"], without_ports(row.get("error") or ""))
        groups[key] = groups.get(key, 0) + row.get("count", 1)
    return [{"role": role, "outcome": outcome, "message": message, "calls": calls}
            for (role, outcome, message), calls in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))]


def broken_roles(roles: list[RoleCalls]) -> list[RoleCalls]:
    return [r for r in roles if r.calls and r.ok == 0]


def describe(role: RoleCalls) -> str:
    (outcome, message), count = max(role.failures.items(), key=lambda kv: kv[1]) if role.failures else (("?", ""), 0)
    said = f": {message}" if message else ""
    return f"{role.role} at {without_ports(role.base_url)}: every call failed ({role.calls} calls; " \
           f"{count} {outcome}{said})"


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
        return Health(1, [describe(r) for r in broken])
    empty = empty_subjects(shortfalls or [])
    if empty:
        return Health(1, empty)
    if counts["problems"] and not produced and failed:
        worst = sorted(roles, key=lambda r: -(r.calls - r.ok))[:2]
        return Health(1, [f"the run produced nothing: all {failed} problem slots failed"]
                      + [describe(r).replace("every call failed", f"{r.calls - r.ok} of {r.calls} calls failed")
                         for r in worst if r.calls > r.ok])
    if failed:
        return Health(3, [f"{failed} problem slot{'s' if failed != 1 else ''} ended failed (calls ran out of "
                          f"retries); take them again with: {retry_command}"])
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
