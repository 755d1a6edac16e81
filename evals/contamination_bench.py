"""Time `chimera eval contamination`'s core on generated text: N problems against M benchmark items.

    python -m chimera.evals.contamination_bench --problems 10000 --items 10000

Problems are the simulator's templated statements (they share many n-grams with
each other, the hard case for an inverted index); benchmark items are Zipf-
distributed word sequences of GPQA-like length, with a few planted copies.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from chimera.evals.contamination import contamination
from chimera.sim import problems as sim_problems


def generated(problems: int, items: int, seed: int = 0) -> tuple[list[tuple[str, str]], list[str]]:
    rng = random.Random(seed)
    vocabulary = [f"word{i}" for i in range(30000)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    ours = [(f"p{i}", sim_problems.KINDS[i % len(sim_problems.KINDS)].make(rng)) for i in range(problems)]
    benchmark = [" ".join(rng.choices(vocabulary, weights, k=rng.randint(40, 200))) for _ in range(items)]
    for k in range(min(10, items)):  # planted: some of ours verbatim in the benchmark
        benchmark[k * 7] = ours[k * 13][1]
    return ours, benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=10000)
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--n", type=int, nargs="+", default=[8, 13])
    args = parser.parse_args()
    ours, benchmark = generated(args.problems, args.items)
    started = time.perf_counter()
    report = contamination(ours, benchmark, args.n, threshold=0.5)
    seconds = time.perf_counter() - started
    print(json.dumps({"problems": args.problems, "items": args.items, "seconds": round(seconds, 2),
                      **{f"above_threshold_n{n}": r["above_threshold"] for n, r in report["by_n"].items()},
                      **{f"mean_max_n{n}": r["mean_max_similarity"] for n, r in report["by_n"].items()}}))


if __name__ == "__main__":
    main()
