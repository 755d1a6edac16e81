"""chimera from Python: run the quickstart on the built-in simulator, read the samples back, and make a
`datasets.Dataset` of the SFT split.

Each `# %%` starts a cell (Jupyter, VS Code, PyCharm open the file as a notebook); it runs as a plain script
too: `python examples/python_api.py`, or `python -m chimera.examples.python_api` where chimera is installed.
Needs the datasets package for the last cells (pip install 'chimera-engine[datasets]').
"""

# %% The quickstart config (every role on the simulator), run into a database in a temporary folder.
import asyncio
import concurrent.futures
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import chimera

quickstart = Path(str(resources.files("chimera.examples") / "quickstart.yaml"))
folder = Path(tempfile.mkdtemp(prefix="chimera-python-api-"))
db = folder / "quickstart.db"

# %% Run it. `settings` changes config values as `chimera run --set KEY.PATH=VALUE` does.
# A script has no event loop running, so chimera.run starts one and waits. A notebook runs its own loop,
# where chimera.run refuses: in a cell of your own, `result = await chimera.arun(quickstart, db=db)` is the
# way; this cell hands chimera.run to a thread of its own there, so that the file runs unchanged in both.
settings = {"run.concurrency": 16}
try:
    asyncio.get_running_loop()
    in_a_notebook = True
except RuntimeError:
    in_a_notebook = False
if in_a_notebook:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        result = pool.submit(chimera.run, quickstart, db=db, settings=settings).result()
else:
    result = chimera.run(quickstart, db=db, settings=settings)

print(f"run {result.run} ended with exit code {result.exit_code}: {result.problems} problems, "
      f"{result.accepted} accepted, {result.samples} samples ({result.correct} correct) in {result.seconds:.1f}s")
for reason in result.reasons:  # why the exit code is not 0, as `chimera run` says it
    print(reason)

# %% Read the run back: the rows `chimera export` writes, split by split, and the `chimera status` numbers.
with chimera.open_run(result.db) as run:
    rows = {split: list(run.samples(split)) for split in ("all", "sft", "rl")}
    status = run.status()
    by_status: dict[str, int] = {}
    for problem in run.problems():
        by_status[problem["status"]] = by_status.get(problem["status"], 0) + 1
print(f"splits: all {len(rows['all'])} samples, sft {len(rows['sft'])} chats, rl {len(rows['rl'])} problems")
print(f"problems by status: {by_status}; {status['calls']} model calls, "
      f"{status['tokens_in'] + status['tokens_out']:,} tokens")
first = rows["sft"][0]["messages"] if rows["sft"] else []
print("an sft chat: " + " -> ".join(f"{m['role']} ({len(m['content'])} chars)" for m in first))

# %% The SFT split as a datasets.Dataset (what a trainer such as TRL's SFTTrainer takes).
with chimera.open_run(result.db) as run:
    dataset = run.to_dataset("sft")
print(f"sft dataset: {dataset.num_rows} rows, columns {', '.join(dataset.column_names)}")

# %% Done: the database goes with its folder (keep it to look further: chimera status, chimera export).
shutil.rmtree(folder)
