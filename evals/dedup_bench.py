"""Near-duplicate detection benchmark: N problems through the run's check-then-add path.

    python -m chimera.evals.dedup_bench --problems 10000

Problems come from the simulator's kinds with random numbers; a share of them
are reworded copies of earlier ones (a clause added, words swapped). Prints the
time, problems per second, and how many planted copies were caught.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from chimera.sim import problems
from chimera.tools.dedup import ProblemIndex

PADDING = ["Justify every step.", "Give an exact answer.", "Assume all quantities are exact.",
           "No calculator is needed.", "Explain the reasoning that leads to the result."]


def corpus(count: int, copy_share: float, seed: int) -> tuple[list[str], set[int]]:
    rng = random.Random(seed)
    texts: list[str] = []
    copies: set[int] = set()
    for i in range(count):
        if texts and rng.random() < copy_share:
            words = rng.choice(texts).split()
            words.insert(rng.randrange(len(words)), rng.choice(["exactly", "carefully"]))  # a reworded copy
            texts.append(" ".join(words))
            copies.add(i)
        else:
            kind = rng.choice(problems.KINDS)
            texts.append(f"{kind.make(rng)} {rng.choice(PADDING)} Problem {i}: {rng.choice(PADDING)}")
    return texts, copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=10_000)
    parser.add_argument("--copies", type=float, default=0.05)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    texts, copies = corpus(args.problems, args.copies, args.seed)
    index = ProblemIndex(threshold=args.threshold)
    started = time.perf_counter()
    flagged = set()
    for i, text in enumerate(texts):
        if index.find(text) is not None:
            flagged.add(i)
        else:
            index.add(str(i), text)
    seconds = time.perf_counter() - started
    print(json.dumps({"problems": len(texts), "seconds": round(seconds, 2), "per_s": round(len(texts) / seconds),
                      "planted_copies": len(copies), "caught": len(flagged & copies),
                      "flagged_not_planted": len(flagged - copies)}))


if __name__ == "__main__":
    main()
