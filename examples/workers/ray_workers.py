"""N chimera workers as Ray tasks, on one PostgreSQL run database.

    chimera run postgres.yaml &        # Stage 1 once, then it takes topics too
    python examples/workers/ray_workers.py postgres.yaml 16

Each task runs `chimera worker CONFIG` on whichever node Ray places it; a task whose node is lost is retried
by Ray, and its topics are taken over by the other workers once its lease runs out in any case.
"""

from __future__ import annotations

import subprocess
import sys

import ray


@ray.remote(num_cpus=1, max_retries=3)
def chimera_worker(config: str) -> int:
    return subprocess.run(["chimera", "worker", config, "--quiet", "-v"], check=False).returncode


def main() -> int:
    config, workers = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 4
    ray.init()
    codes = ray.get([chimera_worker.remote(config) for _ in range(workers)])
    print(f"{workers} workers exited with {sorted(set(codes))}")
    return max(codes)


if __name__ == "__main__":
    raise SystemExit(main())
