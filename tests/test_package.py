"""The wheel installs one namespace, `chimera`, and ships the prompt files."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_only_the_chimera_namespace(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    wheel = next(tmp_path.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    packaged = [n for n in names if ".dist-info/" not in n]
    assert packaged, "the wheel is empty"
    assert all(n.startswith("chimera/") for n in packaged), [n for n in packaged if not n.startswith("chimera/")]
    for module in ("chimera/agents/drafter.py", "chimera/graphs/topic.py", "chimera/tools/reasoning.py",
                   "chimera/evals/__init__.py", "chimera/agents/prompts/critic.system.md"):
        assert module in names
