"""The wheel installs one namespace, `chimera`, ships the prompt files and example configs, and runs the
quickstart from a folder outside the repository."""

import os
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# One wheel for the module, built once: two xdist workers building it at once share the checkout's build/ folder.
pytestmark = pytest.mark.xdist_group("wheel")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    return next(out.glob("*.whl"))


def test_wheel_holds_only_the_chimera_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    packaged = [n for n in names if ".dist-info/" not in n]
    assert packaged, "the wheel is empty"
    assert all(n.startswith("chimera/") for n in packaged), [n for n in packaged if not n.startswith("chimera/")]
    for module in ("chimera/agents/drafter.py", "chimera/graphs/topic.py", "chimera/tools/grading/extract.py",
                   "chimera/evals/__init__.py", "chimera/agents/prompts/critic.system.md",
                   "chimera/examples/quickstart.yaml", "chimera/__main__.py", "chimera/py.typed",
                   "chimera/cli/review/templates/page.html"):
        assert module in names
    [license_file] = [n for n in names if ".dist-info/" in n and n.rsplit("/", 1)[-1] == "LICENSE"]
    assert "Apache License" in zipfile.ZipFile(wheel).read(license_file).decode()[:200]


def test_the_installed_wheel_writes_the_examples_and_runs_the_quickstart_outside_the_repo(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}  # ahead of the editable install of this checkout

    def chimera(*args):
        return subprocess.run([sys.executable, "-m", "chimera", *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)

    where = subprocess.run([sys.executable, "-c", "import chimera; print(chimera.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(site)), where
    assert chimera("init").returncode == 0
    assert sorted(p.name for p in work.iterdir()) == ["local-vllm.yaml", "paper.yaml", "postgres.yaml", "quickstart.yaml",
                                                        "review.yaml", "workers"]
    # postgres.yaml points to the worker job files: they come with it
    assert sorted(p.name for p in (work / "workers").iterdir()) == ["kubernetes.yaml", "ray_workers.py", "slurm.sbatch"]
    run = chimera("run", "quickstart.yaml", "--quiet")
    assert run.returncode == 0, run.stderr
    exported = chimera("export", "quickstart.db", "--split", "rl", "-o", "rl.parquet")
    assert exported.returncode == 0, exported.stderr
    assert (work / "rl.parquet").read_bytes()[:4] == b"PAR1", "the format follows the suffix"
    assert chimera("--version").stdout.strip() == f"chimera {version('chimera-engine')}"
