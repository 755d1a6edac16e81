"""Adaptive concurrency benchmark: solver requests against the simulator playing a GPU server.

    python -m chimera.evals.controller_bench

The server's throughput stops growing past a knee the client is not told (24 requests at once by default)
and its KV cache holds about twice that many; a request that does not fit waits in the server's queue.
Four budgets of one endpoint send the same requests through the real client over HTTP:
adaptive metrics and adaptive latency (max_in_flight 256 as their ceiling), a fixed budget far too high
(256), and a fixed budget at the knee. For each: the server's throughput over the middle 80% of the
requests against its peak (knee / mean full-speed service time), the mean time a request waited in the
server's queue against the mean time it ran, and the client's mean requests in flight.
Times are scaled down (a request needs about 0.2 s of GPU time) so all four take about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from chimera.config import ModelSpec, SimSettings
from chimera.dispatch import Endpoints
from chimera.llm import build_client
from chimera.sim import server

CASES: list[tuple[str, str, int | None]] = [  # (name, adaptive, max_in_flight: None is the knee)
    ("adaptive metrics", "metrics", 256), ("adaptive latency", "latency", 256),
    ("fixed 256", "off", 256), ("fixed at the knee", "off", None)]
TOKENS_PER_REQUEST = 650  # about what the simulator's solver request and reply hold


async def one_case(adaptive: str, limit: int, args: argparse.Namespace) -> dict[str, Any]:
    settings = SimSettings(gpu_knee=args.knee, gpu_kv_tokens=args.kv_requests * TOKENS_PER_REQUEST,
                           gpu_token_s=args.token_s)
    runner, url, sim = await server.start(settings, seed=args.seed)
    endpoints = Endpoints(limit)
    spec = ModelSpec(provider="sim", max_in_flight=limit, adaptive=adaptive,  # type: ignore[arg-type]
                     adaptive_interval_s=args.interval)
    client = build_client("solver", spec, endpoints=endpoints, sim_url=url, log=lambda call: None)
    budget = endpoints.budgets[url]
    started = time.monotonic()
    try:
        await asyncio.gather(*(client.complete([{"role": "user", "content": f"Problem {i}: what is {i} + {i + 7}?"}])
                               for i in range(args.requests)))
    finally:
        await endpoints.stop_steering()
        await client.close()
        await runner.cleanup()
    assert sim.gpu is not None
    totals = sim.gpu.totals
    finish = sorted(totals.finish_times)
    low, high = finish[len(finish) // 10], finish[len(finish) * 9 // 10]
    throughput = (len(finish) * 9 // 10 - len(finish) // 10) / max(1e-9, high - low)
    peak = args.knee / (totals.work_s / totals.finished)
    wait, service = totals.wait_s / totals.finished, totals.service_s / totals.finished
    return {"requests_per_s": round(throughput, 1), "of_peak": round(throughput / peak, 3),
            "wait_s": round(wait, 3), "service_s": round(service, 3), "wait_of_service": round(wait / service, 3),
            "mean_in_flight": round(budget.mean_in_flight(), 1), "seconds": round(time.monotonic() - started, 1)}


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for name, adaptive, limit in CASES:
        row = {"budget": name, **await one_case(adaptive, limit or args.knee, args)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chimera.evals.controller_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--knee", type=int, default=24, help="requests at once past which throughput stops growing")
    parser.add_argument("--kv-requests", type=int, default=48, help="requests the KV cache holds (about)")
    parser.add_argument("--token-s", type=float, default=0.00035, help="GPU seconds per completion token")
    parser.add_argument("--interval", type=float, default=0.1,
                        help="seconds between the controllers' looks (scaled as the service time is)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = asyncio.run(bench(args))
    print("| budget | requests/s | of peak | queue wait / service | mean in flight |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['budget']} | {row['requests_per_s']} | {row['of_peak']:.2f} | "
              f"{row['wait_s']:.3f} s / {row['service_s']:.3f} s ({row['wait_of_service']:.0%}) | "
              f"{row['mean_in_flight']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
