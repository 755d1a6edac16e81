"""What `chimera status --json` reports on a run database, and picking the one run a command works on.

Read from an open `Store`; the command line and the Python API (chimera.api) both report through here, so
their numbers are the same."""

from __future__ import annotations

from typing import Any

from chimera.engine.health import failure_groups
from chimera.errors import ChimeraError
from chimera.models.costs import prices_of, usage_report
from chimera.products.label_report import label_figures


def only_run(store: Any, wanted: str | None, *, naming: str = "--run") -> str:
    """The run named `wanted`, which the database must hold; with no name, the database's one run (else an error
    that says to name one with `naming`)."""
    runs = [r["name"] for r in store.runs()]
    if wanted:
        if wanted not in runs:
            raise ChimeraError(f"{store.path}: no run named {wanted!r} (runs: {', '.join(runs) or 'none'})")
        return wanted
    if len(runs) != 1:
        raise ChimeraError(f"{store.path}: holds {len(runs)} runs ({', '.join(runs) or 'none'}); name one with {naming}")
    return runs[0]


def batch_in_flight(batch: Any) -> dict[str, Any]:
    """A batch still open, as status shows it: the provider's id, role, items, state and age."""
    import time

    return {"provider_id": batch["provider_id"], "role": batch["role"], "items": batch["items"],
            "state": batch["provider_status"] or batch["state"], "age_s": round(time.time() - batch["created_at"], 1)}


def status_report(store: Any, runs: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per run (default: every run in the database): `Store.counts`, with the unlabeled samples, the label
    figures (chimera.products.label_report), the failed calls grouped by role, outcome and message, the Stage 1
    shortfalls and, on PostgreSQL, the workers and the leases that ran out."""
    names = [r["name"] for r in store.runs()] if runs is None else runs
    report = {name: {**store.counts(name), "unlabeled": store.unlabeled_samples(name),
                     "labels": label_figures(store.label_rows(name)),
                     "failures": failure_groups(store.call_rows(name)),
                     "shortfalls": store.shortfalls(name),
                     "usage": usage_report(store.usage_by_role(name), prices_of(store.config_of(name))),
                     "batches": [batch_in_flight(b) for b in store.batches(name)]} for name in names}
    if store.backend == "postgres":
        for name in names:
            report[name] |= {"workers": store.workers(name), "expired_leases": store.expired_leases(name)}
    return report
