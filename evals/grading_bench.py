"""Grading throughput benchmark: N distinct (reference, response) pairs across answer kinds.

    python -m chimera.evals.grading_bench --pairs 10000 [--write FILE]
    python -m chimera.evals.grading_bench --hostile      # the slowest grade on answers written to break it

Pairs are generated from a fixed seed, each with its own numbers, so no cache
can make the run faster than grading fresh answers would be. Prints pairs/s
and the share decided by each method.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from collections.abc import Callable

from chimera.tools.grading import grade

BOX = "Checking each case in turn, the computation settles.\n\nThe final answer is $\\boxed{%s}$."


def _pair(rng: random.Random) -> tuple[str, str]:
    a, b, c = rng.randint(2, 999), rng.randint(2, 99), rng.randint(1, 9)
    makers: list[Callable[[], tuple[str, str]]] = [
        lambda: (str(a * b), BOX % f"{a * b + rng.choice([0, 0, 1])}"),
        lambda: (f"{a}/{b}", BOX % f"\\frac{{{a}}}{{{b}}}"),
        lambda: (f"\\frac{{{c}}}{{{b}}}", BOX % f"{c / b:.6f}"),
        lambda: (f"{c}x^2 + {a}x", BOX % f"x({c}x + {a})"),
        lambda: (f"\\{{{a}, {b}\\}}", BOX % f"\\{{{b}, {a}\\}}"),
        lambda: (f"({c}, {a}]", BOX % f"({c},{a}]"),
        lambda: (f"{c}.{a}e-{b % 30}", BOX % f"{c}.{a} \\times 10^{{-{b % 30}}}"),
        lambda: (rng.choice("ABCDE"), f"**Answer: {rng.choice('ABCDE')}**"),
        lambda: (f"{a}, -{b}", BOX % f"-{b}, {a}"),
        lambda: (f"{c}\\sqrt{{{b}}}", BOX % f"\\sqrt{{{c * c * b}}}"),
        lambda: (f"{a}%", BOX % f"{a / 100}"),
        lambda: (f"{a} m/s", f"So the speed is {a} m/s.\nFinal answer: {a} m/s"),
        lambda: (rng.choice(["Yes", "No"]), BOX % rng.choice(["\\text{yes}", "\\text{no}"])),
        lambda: (f"O(n^{c})", BOX % f"O(n^{{{c}}})"),
    ]
    return rng.choice(makers)()


def make_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [_pair(rng) for _ in range(count)]


def hostile_report() -> dict:
    """Seconds per grade on each hostile answer (after one warm-up grade), the slowest first."""
    from chimera.evals.hostile_answers import hostile_cases

    grade("1", "\\boxed{x^2}")  # the first grade loads sympy and math-verify: not the grader's own time
    times = []
    for name, reference, response, problem in hostile_cases():
        started = time.perf_counter()
        result = grade(reference, response, problem)
        times.append((round(time.perf_counter() - started, 4), name, result.method))
    times.sort(reverse=True)
    return {"cases": len(times), "worst_s": times[0][0], "slowest": times[:5],
            "total_s": round(sum(t for t, _, _ in times), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", help="also write the pairs as JSONL (for `chimera grade --jsonl`)")
    parser.add_argument("--hostile", action="store_true", help="time each answer of chimera.evals.hostile_answers")
    args = parser.parse_args()
    if args.hostile:
        print(json.dumps(hostile_report()))
        return
    pairs = make_pairs(args.pairs, args.seed)
    if args.write:
        with open(args.write, "w", encoding="utf-8") as handle:
            for reference, response in pairs:
                handle.write(json.dumps({"reference": reference, "response": response}) + "\n")
    started = time.perf_counter()
    methods = Counter(grade(reference, response).method for reference, response in pairs)
    seconds = time.perf_counter() - started
    print(json.dumps({"pairs": len(pairs), "distinct": len(set(pairs)), "seconds": round(seconds, 2),
                      "pairs_per_s": round(len(pairs) / seconds), "methods": dict(methods)}))


if __name__ == "__main__":
    main()
