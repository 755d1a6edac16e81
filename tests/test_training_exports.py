"""Outputs people train on: SFT rows hold the solver's exact prompt and its reasoning in the form asked
for, RL rows load as verl and TRL read them, and the reward functions agree with the grader."""

import json
from pathlib import Path

import jinja2
import pytest
from helpers import chimera, finished_run, write_config

from chimera.reward import TOTALS, accuracy_reward, compute_score
from chimera.tools.grading import grade

TEMPLATE = jinja2.Template((Path(__file__).parent / "data" / "thinking_chat_template.jinja").read_text())
LABELLED = Path(__file__).parent / "data" / "grading_labelled.jsonl"


@pytest.fixture(scope="module")
def run_db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    assert chimera("run", str(write_config(folder, problems_per_topic=3)), "--quiet").returncode == 0
    return folder / "t.db"


def export(db, *args):
    result = chimera("export", str(db), *args, "-o", "-")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


@pytest.mark.parametrize("mode", ["inline", "field"])
def test_sft_rows_are_the_solvers_exact_prompt_and_render_with_the_reasoning_kept(run_db, mode):
    rows, _ = export(run_db, "--split", "sft", "--reasoning", mode)
    assert rows
    for row in rows:
        user, assistant = row["messages"]
        assert user["role"] == "user" and user["content"].endswith(
            "Please reason step by step, and put your final answer within \\boxed{}.")
        rendered = TEMPLATE.render(messages=row["messages"])
        reasoning = assistant["reasoning_content"] if mode == "field" else \
            assistant["content"].split("</think>")[0].removeprefix("<think>\n").rstrip("\n")
        assert reasoning.startswith("Step 1.") and f"<think>\n{reasoning}\n</think>" in rendered
        assert rendered.rstrip().endswith("<|im_end|>") and "\\boxed{" in rendered.split("</think>")[-1]


def test_sft_without_reasoning_and_in_trls_prompt_completion_form(run_db):
    plain, _ = export(run_db, "--split", "sft", "--reasoning", "none")
    assert all("<think>" not in row["messages"][1]["content"] for row in plain)
    pairs, _ = export(run_db, "--split", "sft", "--sft-format", "prompt-completion")
    assert [p["prompt"] + p["completion"] for p in pairs] == [
        row["messages"] for row in export(run_db, "--split", "sft")[0]]


def test_samples_with_empty_reasoning_are_left_out_and_counted(run_db, tmp_path):
    import shutil
    import sqlite3

    db = tmp_path / "hidden.db"
    shutil.copy(run_db, db)
    conn = sqlite3.connect(db)
    conn.execute("update samples set reasoning = '' where rowid % 2 = 0")  # a provider that hides reasoning
    hidden = conn.execute("select count(*) from samples where reasoning = '' and correct = 1 and truncated = 0"
                          ).fetchone()[0]
    conn.commit()
    rows, stderr = export(db, "--split", "sft")
    assert hidden and f"left out {hidden} correct samples whose reasoning is empty" in stderr
    assert all(row["messages"][1]["content"] != "<think>\n\n</think>\n\n" for row in rows)
    kept, _ = export(db, "--split", "sft", "--reasoning", "none")
    assert len(kept) == len(rows) + hidden
    folder = chimera("export", str(db), "--format", "hf", "-o", str(tmp_path / "hf"))
    assert folder.returncode == 0 and f"left out of sft {hidden} correct samples" in folder.stderr


def test_rl_rows_load_with_datasets_in_verl_and_trl_form(run_db, tmp_path):
    datasets = pytest.importorskip("datasets")
    verl = tmp_path / "verl.parquet"
    assert chimera("export", str(run_db), "--split", "rl", "--schema", "verl", "--format", "parquet",
                   "-o", str(verl)).returncode == 0
    rows = datasets.load_dataset("parquet", data_files=str(verl), split="train")
    assert set(rows.column_names) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    first = rows[0]
    assert first["reward_model"]["style"] == "rule" and first["reward_model"]["ground_truth"]
    assert first["prompt"][0]["role"] == "user" and first["extra_info"]["problem"] in first["prompt"][0]["content"]
    trl = tmp_path / "trl.jsonl"
    assert chimera("export", str(run_db), "--split", "rl", "--schema", "trl", "-o", str(trl)).returncode == 0
    grpo = datasets.load_dataset("json", data_files=str(trl), split="train")
    assert {"prompt", "solution"} <= set(grpo.column_names) and len(grpo) == len(rows)


def labelled_pairs():
    return [json.loads(line) for line in LABELLED.read_text().splitlines() if line.strip()]


def test_the_reward_functions_agree_with_the_grader_and_count_what_no_rule_decides():
    pairs = labelled_pairs()
    TOTALS.clear()
    expected = [1.0 if grade(p["reference"], p["response"], p.get("problem")).correct else 0.0 for p in pairs]
    results = [compute_score("chimera", p["response"], p["reference"], {"problem": p.get("problem")}) for p in pairs]
    assert [r["score"] for r in results] == expected
    undecided = sum(grade(p["reference"], p["response"], p.get("problem")).correct is None for p in pairs)
    assert sum(r["undecided"] for r in results) == TOTALS["undecided"] == undecided
    assert TOTALS["graded"] == len(pairs)
    plain = [p for p in pairs if not p.get("problem")]
    conversations = [[{"role": "assistant", "content": p["response"]}] for p in plain]
    assert accuracy_reward(conversations, [p["reference"] for p in plain]) == \
        accuracy_reward([p["response"] for p in plain], [p["reference"] for p in plain]) == \
        [1.0 if grade(p["reference"], p["response"]).correct else 0.0 for p in plain]


def test_the_dataset_card_names_license_and_models_but_no_endpoint(tmp_path):
    import os

    import yaml
    from hostile import HostileEndpoint

    with HostileEndpoint() as endpoint:
        models = {"default": {"base_url": endpoint.url, "model": "org/drafter-7b", "headers": {"X-Team": "t"}},
                  "solver": {"base_url": endpoint.url, "model": "org/solver-235b"}}
        config = write_config(tmp_path, models=models, dataset={"license": "cc-by-4.0", "language": ["en", "de"],
                                                                  "pretty_name": "Hard problems"})
        assert chimera("run", str(config), "--quiet", env=dict(os.environ)).returncode == 0
    sent = {(r["body"]["model"], {k.lower(): v for k, v in r["headers"].items()}["x-team"]) for r in endpoint.requests}
    assert sent == {("org/drafter-7b", "t"), ("org/solver-235b", "t")}, "the card leaves out what the run did send"
    out = tmp_path / "hf"
    assert chimera("export", str(tmp_path / "t.db"), "--format", "hf", "-o", str(out)).returncode == 0
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert (front["license"], front["language"], front["pretty_name"]) == ("cc-by-4.0", ["en", "de"], "Hard problems")
    assert front["task_categories"] and front["size_categories"]
    assert "| solver | org/solver-235b |" in card and "| drafter | org/drafter-7b |" in card
    assert "127.0.0.1" not in card and "X-Team" not in card and str(tmp_path) not in card


def test_pushing_needs_a_license_and_goes_private_unless_public(tmp_path, monkeypatch):
    import sys
    import types

    finished_run(tmp_path)
    refused = chimera("export", str(tmp_path / "t.db"), "--format", "hf", "-o", str(tmp_path / "hf"),
                      "--push", "me/data")
    assert refused.returncode == 1 and "names no dataset.license" in refused.stderr
    assert not (tmp_path / "hf").exists(), "refused before anything is written"

    created = []

    class Hub:  # records what chimera asks of huggingface_hub; the hub itself is not reachable offline
        def create_repo(self, repo, **options):
            created.append((repo, options))

        def upload_folder(self, **options):
            raise RuntimeError("401 Client Error: Unauthorized\nmore detail")

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(HfApi=Hub))
    from chimera.errors import ChimeraError
    from chimera.hf_export import push

    with pytest.raises(ChimeraError) as error:
        push(tmp_path, "me/data")
    assert str(error.value) == "--push me/data: 401 Client Error: Unauthorized"
    with pytest.raises(ChimeraError):
        push(tmp_path, "me/open", public=True)
    assert [(repo, options["private"]) for repo, options in created] == [("me/data", True), ("me/open", False)]
