"""Adaptive concurrency benchmark: solver requests against the simulator playing a GPU server.

    python -m chimera.evals.controller_bench

The server's throughput stops growing past a knee the client is not told (24 requests at once by default)
and its KV cache holds about twice that many; a request that does not fit waits in the server's queue.
Four budgets of one endpoint send the same requests through the real client over HTTP:
adaptive metrics and adaptive latency (max_in_flight 256 as their ceiling), a fixed budget far too high
(256), and a fixed budget at the knee. For each: the server's throughput over the middle 80% of the
requests against its peak (knee / mean full-speed service time), the mean time a request waited in the
server's queue against the mean time it ran (from the server's /metrics), and the client's mean requests
in flight.
Times are scaled down (a request needs about 0.2 s of GPU time) so all four take about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any, Literal

import aiohttp

from chimera.config import ModelSpec, SimSettings
from chimera.engine.session import simulator
from chimera.models.concurrency import default_metrics_url, samples
from chimera.models.dispatch import Endpoints
from chimera.models.llm import build_client

Adaptive = Literal["off", "metrics", "latency"]
CASES: list[tuple[str, Adaptive, int | None]] = [  # (name, adaptive, max_in_flight: None is the knee)
    ("adaptive metrics", "metrics", 256), ("adaptive latency", "latency", 256),
    ("fixed 256", "off", 256), ("fixed at the knee", "off", None)]
TOKENS_PER_REQUEST = 650  # about what the simulator's solver request and reply hold


async def one_case(adaptive: Adaptive, limit: int, args: argparse.Namespace) -> dict[str, Any]:
    settings = SimSettings(gpu_knee=args.knee, gpu_kv_tokens=args.kv_requests * TOKENS_PER_REQUEST,
                           gpu_token_s=args.token_s)
    finished: list[float] = []
    work: list[float] = []  # each request's GPU seconds at full speed

    async def solve(i: int) -> None:
        reply = await client.complete([{"role": "user", "content": f"Problem {i}: what is {i} + {i + 7}?"}])
        finished.append(time.monotonic())
        work.append(settings.gpu_request_s + settings.gpu_token_s * reply.tokens_out)

    async with simulator(settings, seed=args.seed) as url:
        endpoints = Endpoints(limit)
        spec = ModelSpec(provider="sim", max_in_flight=limit, adaptive=adaptive, adaptive_interval_s=args.interval)
        client = build_client("solver", spec, endpoints=endpoints, sim_url=url, log=lambda call: None)
        started = time.monotonic()
        try:
            await asyncio.gather(*(solve(i) for i in range(args.requests)))
        finally:
            await endpoints.stop_steering()
            await client.close()
        async with aiohttp.ClientSession() as session, session.get(default_metrics_url(url)) as response:
            server: dict[str, float] = {}
            for name, value in samples(await response.text()):
                server[name] = server.get(name, 0.0) + value
    # The middle 80% of the requests: the client's ramp at the start and the drain at the end left out.
    low, high = finished[len(finished) // 10], finished[len(finished) * 9 // 10]
    throughput = (len(finished) * 9 // 10 - len(finished) // 10) / max(1e-9, high - low)
    peak = args.knee / (sum(work) / len(work))
    count = server["vllm:request_queue_time_seconds_count"]
    wait = server["vllm:request_queue_time_seconds_sum"] / count
    service = server["vllm:request_inference_time_seconds_sum"] / count
    return {"requests_per_s": round(throughput, 1), "peak_per_s": round(peak, 1), "of_peak": round(throughput / peak, 3),
            "wait_s": round(wait, 3), "service_s": round(service, 3), "wait_of_service": round(wait / service, 3),
            "mean_in_flight": round(endpoints.budgets[url].mean_in_flight(), 1),
            "seconds": round(time.monotonic() - started, 1)}


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
