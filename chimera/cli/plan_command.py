"""`chimera plan CONFIG`: what the run will cost and take, before it runs.

By default a pilot: Stage 1, then a share of the topics (2%, at least one per subject) run to their end on the
run's own database. `chimera run CONFIG` then resumes from there, so the pilot's calls are not paid twice.
`--from DB` projects from an earlier run's calls instead, and sends nothing."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from rich.table import Table

from chimera.cli.common import err, out

if TYPE_CHECKING:
    from chimera.config import Config

SET_HELP = "change a config value for this invocation (repeatable), as chimera run takes it"


def add_plan_command(sub: Any) -> None:
    plan = sub.add_parser("plan", help="project a run's calls, tokens, cost and time from a pilot or an earlier run")
    plan.add_argument("config", help="YAML config file")
    plan.add_argument("--pilot", type=float, default=0.02, metavar="SHARE",
                      help="share of each subject's topics the pilot runs (default 0.02; at least one topic each)")
    plan.add_argument("--from", dest="source", metavar="DB",
                      help="project from this earlier run's calls instead of a pilot (nothing is sent)")
    plan.add_argument("--run", help="with --from: the run in DB to go by (when it holds several)")
    plan.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help=SET_HELP)
    plan.add_argument("--json", action="store_true", help="the projection as JSON on stdout")
    plan.add_argument("--quiet", action="store_true", help="no progress display during the pilot")
    plan.set_defaults(func=plan_command)


def plan_command(args: argparse.Namespace) -> int:
    from chimera.config import load_config
    from chimera.errors import ConfigError

    config = load_config(args.config, args.set)
    if not 0 < args.pilot <= 1:
        raise ConfigError(f"--pilot {args.pilot:g}: give a share of the topics between 0 and 1")
    plan = _from_earlier_run(config, args.source, args.run) if args.source else _from_pilot(config, args)
    if args.json:
        print(json.dumps(plan.as_json(), indent=2))
    else:
        _print_plan(plan, args.config)
    return 0


def _prices(config: Config) -> dict[str, tuple[Any, str]]:
    """Role -> (its prices, where they come from): the config, else the price table, else none."""
    from chimera.models.costs import Prices
    from chimera.models.price_table import table_prices, table_source

    roles = config.models.run_roles()
    prices: dict[str, tuple[Any, str]] = {}
    for role, spec in roles.items():
        own = Prices.of(spec)
        if own is not None:
            prices[role] = (own, "config")
            continue
        url = spec.base_url[0] if isinstance(spec.base_url, list) else spec.base_url
        listed = table_prices(spec.model or "", url, spec.batch_discount) if spec.provider == "openai" else None
        prices[role] = (listed, table_source() or "") if listed else (None, "none")
    return prices


def _from_pilot(config: Any, args: argparse.Namespace) -> Any:
    from chimera.cli.run import pipeline_with_progress
    from chimera.engine.plan import pilot_topics, project
    from chimera.store import Store

    chosen: list[Any] = []

    def pick(topics: list[Any]) -> list[Any]:
        chosen[:] = pilot_topics(topics, args.pilot)
        return chosen
    pipeline_with_progress(config, quiet=args.quiet or args.json, pilot=pick)
    store = Store(config.run.db, read_only=True)
    try:
        run = config.run.name
        topics = store.topics(run, live=True)
        picked = {t["id"] for t in chosen}
        shape: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for topic in topics:
            shape[topic["subject"]][0] += 1
            shape[topic["subject"]][1] += config.problems_per_topic if topic["slots"] is None else topic["slots"]
        sample = {t["id"]: (t["subject"], config.problems_per_topic if t["slots"] is None else t["slots"])
                  for t in topics if t["id"] in picked}
        by_topic = store.usage_by_group(run, "topic")
        topic_usage = [row for row in by_topic if row[0] in picked]
        return project(basis=f"a pilot of {len(sample)} of {len(topics)} topics, on {config.run.db}", config=config,
                       topic_usage=topic_usage, sample_slots=sample,
                       outside=_outside(store.usage_by_role(run), by_topic),
                       outside_scale=1.0, shape={s: (t, n) for s, (t, n) in shape.items()}, prices=_prices(config),
                       latency=store.latency_by_role(run))
    finally:
        store.close()


def _from_earlier_run(config: Any, source: str, wanted: str | None) -> Any:
    from chimera.engine.plan import config_shape, project
    from chimera.engine.status import only_run
    from chimera.store import Store

    store = Store(source, read_only=True)
    try:
        run = only_run(store, wanted)
        live = store.topics(run, live=True)
        topics = [t for t in live if t["status"] == "done"]
        if not topics:
            from chimera.errors import ChimeraError

            raise ChimeraError(f"{store.shown_path}: run {run} has no finished topic to project from")
        done = {t["id"]: (t["subject"], t["slots"] or 0) for t in topics}
        by_topic = store.usage_by_group(run, "topic")
        topic_usage = [row for row in by_topic if row[0] in done]
        shape = config_shape(config)
        earlier_topics = len(live) or 1
        return project(basis=f"{len(done)} finished topics of run {run} in {store.shown_path}", config=config,
                       topic_usage=topic_usage, sample_slots=done,
                       outside=_outside(store.usage_by_role(run), by_topic),
                       outside_scale=sum(t for t, _ in shape.values()) / earlier_topics, shape=shape,
                       prices=_prices(config), latency=store.latency_by_role(run))
    finally:
        store.close()


def _outside(total: list[Any], by_topic: list[tuple[str, str, Any]]) -> list[Any]:
    """Usage of calls made outside any problem (Stage 1, embeddings): the run's total less its topics'."""
    from chimera.store.rows import RoleUsage

    inside: dict[tuple[str, bool], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for _, _, usage in by_topic:
        figures = inside[(usage["role"], usage["batched"])]
        for i, name in enumerate(("calls", "tokens_in", "tokens_out", "cached_tokens")):
            figures[i] += usage[name]
    left = []
    for usage in total:
        calls, tokens_in, tokens_out, cached = inside.get((usage["role"], usage["batched"]), [0, 0, 0, 0])
        if usage["calls"] - calls > 0:
            left.append(RoleUsage(role=usage["role"], batched=usage["batched"], calls=usage["calls"] - calls,
                                  tokens_in=usage["tokens_in"] - tokens_in, tokens_out=usage["tokens_out"] - tokens_out,
                                  cached_tokens=usage["cached_tokens"] - cached))
    return left


def dollars(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


def duration(hours: float) -> str:
    return f"{hours:,.1f} h" if hours >= 1 else f"{hours * 60:.1f} min" if hours * 60 >= 1 else f"{hours * 3600:.0f} s"


def _print_plan(plan: Any, config_path: str) -> None:
    table = Table(title=f"plan: {plan.topics:,} topics, {plan.slots:,} problem slots (from {plan.basis})")
    for column in ("role", "calls", "tokens in", "tokens out", "cached in", "cost", "prices"):
        table.add_column(column, justify="right" if column not in ("role", "prices") else "left")
    for role, figures in sorted(plan.roles.items()):
        cost = "-" if figures.cost_usd is None else dollars(figures.cost_usd)
        batched = " (batch)" if role in plan.batched_roles else ""
        table.add_row(role + batched, f"{figures.calls:,.0f}", f"{figures.tokens_in:,.0f}", f"{figures.tokens_out:,.0f}",
                      f"{figures.cached_tokens / figures.tokens_in:.0%}" if figures.tokens_in else "-", cost,
                      plan.price_sources.get(role, "none"))
    out.print(table)
    low, high = plan.range_of(plan.tokens)
    out.print(f"tokens: {plan.tokens:,.0f} ({low:,.0f} to {high:,.0f})", markup=False)
    if plan.cost_usd is None:
        unpriced = sorted(role for role, figures in plan.roles.items() if figures.cost_usd is None)
        out.print(f"cost: unknown: no price for {', '.join(unpriced)} (set price_per_mtok_in/out, or install "
                  "chimera-engine[prices] for the price table)", markup=False)
    else:
        low, high = plan.range_of(plan.cost_usd)
        out.print(f"cost: {dollars(plan.cost_usd)} ({dollars(low)} to {dollars(high)})", markup=False)
    if plan.hours is not None:
        low, high = plan.range_of(plan.hours)
        extra = f", plus the batches' turnaround for {', '.join(plan.batched_roles)}" if plan.batched_roles else ""
        out.print(f"time at the configured budgets: {duration(plan.hours)} ({duration(low)} to {duration(high)}){extra}",
                  markup=False)
    if plan.basis.startswith("a pilot"):
        err.print(f"the pilot's topics are part of the run: chimera run {config_path} goes on from them", markup=False)
