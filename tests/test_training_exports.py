"""Outputs people train on: SFT rows hold the solver's exact prompt and its reasoning in the form asked
for (the one a model's chat template keeps), RL rows load as verl and TRL read them, DPO rows pair a correct and an
incorrect trajectory, the Hugging Face folder holds each form with the file exports' columns, and the reward
functions agree with the grader."""

import json
import re
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import jinja2
import pytest
from helpers import chimera, finished_run, write_config

from chimera.products.reward import TOTALS, accuracy_reward, compute_score
from chimera.tools.grading import grade

DATA = Path(__file__).parent / "data"
README = Path(__file__).parent.parent / "README.md"
TEMPLATE = jinja2.Template((DATA / "thinking_chat_template.jinja").read_text())
LABELLED = DATA / "grading_labelled.jsonl"
# The clause DeepSeek-R1-Distill's chat template carries (tokenizer_config.json): an assistant turn keeps only what
# follows its last </think>. The README says to take it out; the R1-style test template carries it verbatim.
R1_CUT = "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"


@pytest.fixture(scope="module")
def run_db(tmp_path_factory):
    """9 problems with 4 trajectories each: the simulator's solver is right about 3 times in 4, so some problems
    have both correct and incorrect trajectories and some only correct ones."""
    folder = tmp_path_factory.mktemp("exports")
    config = write_config(folder, problems_per_topic=3, solver={"samples": 4})
    assert chimera("run", str(config), "--quiet").returncode == 0
    return folder / "t.db"


def export(db, *args):
    result = chimera("export", str(db), *args, "-o", "-")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def render(template, messages, **options):
    return jinja2.Template(template).render(messages=messages, bos_token="<bos>", **options)


def trl_completion(template, prompt, completion):
    """What TRL trains on for a conversational prompt / completion row: it renders the prompt with the generation
    prompt, then prompt and completion together, and masks the first from the second. None if the first is not a
    prefix of the second (TRL warns of a mismatch and the mask cuts the wrong place)."""
    before = render(template, prompt, add_generation_prompt=True)
    whole = render(template, prompt + completion)
    return whole[len(before):] if whole.startswith(before) else None


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
    from chimera.products.hf_export import push

    with pytest.raises(ChimeraError) as error:
        push(tmp_path, "me/data")
    assert str(error.value) == "--push me/data: 401 Client Error: Unauthorized"
    with pytest.raises(ChimeraError):
        push(tmp_path, "me/open", public=True)
    assert [(repo, options["private"]) for repo, options in created] == [("me/data", True), ("me/open", False)]


# -- chat templates: the form each keeps ---------------------------------------------------------------------------------

def test_thinking_rows_give_a_gpt_oss_style_template_the_reasoning_for_its_analysis_channel(run_db):
    template = (DATA / "gpt_oss_style_chat_template.jinja").read_text()
    rows, _ = export(run_db, "--split", "sft", "--reasoning", "thinking")
    inline, _ = export(run_db, "--split", "sft")
    assert rows and len(rows) == len(inline)
    for row, plain in zip(rows, inline):
        reply = row["messages"][-1]
        assert set(reply) == {"role", "thinking", "content"} and reply["thinking"].startswith("Step 1.")
        rendered = render(template, row["messages"])
        assert f"<|channel|>analysis<|message|>{reply['thinking']}<|end|>" in rendered
        assert rendered.endswith(f"<|channel|>final<|message|>{reply['content']}<|return|>")
        assert "<|channel|>final<|message|><think>" in render(template, plain["messages"]), \
            "inline tags would be trained as answer text"
    pairs, _ = export(run_db, "--split", "sft", "--reasoning", "thinking", "--sft-format", "prompt-completion")
    for pair, row in zip(pairs, rows):
        completion = trl_completion(template, pair["prompt"], pair["completion"])
        assert completion is not None and row["messages"][-1]["thinking"] in completion


def test_an_r1_distill_style_template_keeps_inline_reasoning_only_once_its_cut_is_taken_out(run_db):
    template = (DATA / "r1_distill_style_chat_template.jinja").read_text()
    assert R1_CUT in template and R1_CUT in README.read_text(), "the README gives the clause to take out"
    messages, _ = export(run_db, "--split", "sft")
    field, _ = export(run_db, "--split", "sft", "--reasoning", "field")
    pairs, _ = export(run_db, "--split", "sft", "--sft-format", "prompt-completion")
    assert "Step 1." not in render(template, messages[0]["messages"]), "the cut drops an inline reasoning"
    assert "Step 1." not in render(template, field[0]["messages"]), "and reasoning_content is never read"
    assert trl_completion(template, pairs[0]["prompt"], pairs[0]["completion"]) is None, \
        "nor can a completion keep it: the rendered reply no longer starts with the generation prompt's <think>"
    edited = template.replace(R1_CUT, "")
    for pair in pairs:
        reply = pair["completion"][0]["content"]
        assert trl_completion(edited, pair["prompt"], pair["completion"]) == \
            reply.removeprefix("<think>\n") + "<｜end▁of▁sentence｜>"


# -- DPO ----------------------------------------------------------------------------------------------------------------

def labelled_trajectories(db):
    """Each problem's labelled, untruncated trajectories by sample index, problems in export order."""
    by_problem: dict[str, list[dict]] = {}
    for row in export(db, "--split", "all")[0]:
        if row["correct"] is not None and not row["truncated"]:
            by_problem.setdefault(row["problem_id"], []).append(row)
    return {problem: sorted(rows, key=lambda r: r["sample_index"]) for problem, rows in by_problem.items()}


def test_dpo_rows_pair_the_first_correct_with_the_first_incorrect_trajectory_under_the_solvers_exact_prompt(run_db):
    by_problem = labelled_trajectories(run_db)
    both = {p: rows for p, rows in by_problem.items() if {r["correct"] for r in rows} == {True, False}}
    assert both and len(both) < len(by_problem), "the run has problems with both kinds and problems without"
    pairs, stderr = export(run_db, "--split", "dpo")
    assert f"wrote {len(both)} pairs (dpo)" in stderr
    assert [pair["problem_id"] for pair in pairs] == list(both)
    prompts = {row["id"]: row["messages"][:-1] for row in export(run_db, "--split", "sft")[0]}
    for pair in pairs:
        rows = both[pair["problem_id"]]
        chosen = next(r for r in rows if r["correct"])
        rejected = next(r for r in rows if not r["correct"])
        assert (pair["chosen_id"], pair["rejected_id"], pair["id"]) == (
            chosen["id"], rejected["id"], f"{chosen['id']}>{rejected['id']}")
        assert pair["prompt"] == prompts[chosen["id"]] and pair["prompt"][-1]["role"] == "user"
        for side, row in (("chosen", chosen), ("rejected", rejected)):
            assert pair[side] == [{"role": "assistant",
                                   "content": f"<think>\n{row['reasoning']}\n</think>\n\n{row['solution']}"}]
        assert (pair["subject"], pair["topic"], pair["answer"], pair["pass_rate"]) == (
            chosen["subject"], chosen["topic"], chosen["answer"], chosen["pass_rate"])


def test_more_pairs_per_problem_pair_the_kth_correct_with_the_kth_incorrect_and_never_reuse_one(run_db):
    pairs, _ = export(run_db, "--split", "dpo", "--pairs-per-problem", "3", "--reasoning", "field")
    assert len(pairs) > len(export(run_db, "--split", "dpo")[0]), "some problem gives more than one pair"
    for problem, rows in labelled_trajectories(run_db).items():
        good, bad = ([r for r in rows if r["correct"] is kind] for kind in (True, False))
        mine = [pair for pair in pairs if pair["problem_id"] == problem]
        assert [(p["chosen_id"], p["rejected_id"]) for p in mine] == [(g["id"], b["id"]) for g, b in zip(good, bad)][:3]
        for pair, (g, b) in zip(mine, zip(good, bad)):
            assert pair["chosen"][0]["reasoning_content"] == g["reasoning"]
            assert pair["rejected"][0] == {"role": "assistant", "reasoning_content": b["reasoning"],
                                           "content": b["solution"]}
    refused = chimera("export", str(run_db), "--split", "dpo", "--pairs-per-problem", "0", "-o", "-")
    assert refused.returncode == 1 and refused.stderr == "chimera: error: --pairs-per-problem 0: give 1 or more\n"


def test_a_problem_all_right_all_wrong_or_with_its_wrong_answers_cut_gives_no_dpo_row(run_db, tmp_path):
    db = tmp_path / "t.db"
    shutil.copy(run_db, db)
    before = [pair["problem_id"] for pair in export(db, "--split", "dpo")[0]]
    right, wrong, cut = before[:3]
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("update samples set correct = 1 where problem_id = ?", (right,))
        conn.execute("update samples set correct = 0 where problem_id = ?", (wrong,))
        conn.execute("update samples set truncated = 1 where problem_id = ? and correct = 0", (cut,))
        conn.commit()
    after = [pair["problem_id"] for pair in export(db, "--split", "dpo")[0]]
    assert after == before[3:]


# -- the Hugging Face folder ----------------------------------------------------------------------------------------------

VERL_COLUMNS = {"data_source", "prompt", "ability", "reward_model", "extra_info"}  # what verl's RLHFDataset reads
HF_CONFIGS = {  # each config of `--format hf --reasoning field --sft-format prompt-completion --pairs-per-problem 2`,
    # and the file export that writes the same rows
    "all": ["--split", "all"],
    "sft": ["--split", "sft", "--reasoning", "field", "--sft-format", "prompt-completion"],
    "rl": ["--split", "rl"],
    "rl_verl": ["--split", "rl", "--schema", "verl"],
    "rl_trl": ["--split", "rl", "--schema", "trl"],
    "dpo": ["--split", "dpo", "--reasoning", "field", "--pairs-per-problem", "2"],
}


def test_each_hf_config_is_one_training_form_with_the_columns_and_rows_of_its_file_export(run_db, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "hf"
    result = chimera("export", str(run_db), "--format", "hf", "--reasoning", "field", "--sft-format",
                     "prompt-completion", "--pairs-per-problem", "2", "-o", str(out))
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
    loaded = {}
    for name, args in HF_CONFIGS.items():
        rows, _ = export(run_db, *args)
        loaded[name] = datasets.load_dataset(str(out), name, split="train", cache_dir=str(tmp_path / "cache"))
        assert loaded[name].column_names == list(rows[0]), name
        assert len(loaded[name]) == len(rows), name
        key = "id" if "id" in rows[0] else "extra_info"
        assert [row[key] for row in loaded[name]] == [row[key] for row in rows], name
    assert set(loaded["rl_verl"].column_names) == VERL_COLUMNS
    assert loaded["rl_verl"][0]["reward_model"]["style"] == "rule"
    assert loaded["rl_trl"][0]["prompt"][-1]["role"] == "user", "TRL's GRPOTrainer reads `prompt`"
    assert loaded["sft"][0]["completion"][0]["reasoning_content"].startswith("Step 1.")
    assert loaded["dpo"][0]["chosen"][0]["reasoning_content"].startswith("Step 1.")


def test_flags_an_export_does_not_use_are_named_in_one_line_warnings(run_db, tmp_path):
    hf = chimera("export", str(run_db), "--format", "hf", "--split", "rl", "--schema", "trl", "-o", str(tmp_path / "hf"))
    assert hf.returncode == 0
    assert [line for line in hf.stderr.splitlines() if "warning" in line] == [
        "chimera: warning: --split rl is not used with --format hf (it writes every split, and rl as rl, rl_verl "
        "and rl_trl); ignored",
        "chimera: warning: --schema trl is not used with --format hf (it writes every split, and rl as rl, rl_verl "
        "and rl_trl); ignored"]
    _, stderr = export(run_db, "--split", "sft", "--schema", "verl", "--pairs-per-problem", "2")
    assert [line for line in stderr.splitlines() if "warning" in line] == [
        "chimera: warning: --schema verl is not used with --split sft; ignored",
        "chimera: warning: --pairs-per-problem 2 is not used with --split sft; ignored"]
    _, used = export(run_db, "--split", "dpo", "--reasoning", "field", "--pairs-per-problem", "2")
    assert "warning" not in used


def test_the_card_lists_the_configs_written_and_names_the_benchmark_by_file_name_only(run_db, tmp_path):
    import yaml

    from chimera.products.hf_export import benchmark_name

    db = tmp_path / "t.db"
    shutil.copy(run_db, db)
    benchmark = tmp_path / "private" / "held-out.jsonl"
    benchmark.parent.mkdir()
    benchmark.write_text(json.dumps({"question": "How many moles of water are in 18 g of water?"}) + "\n")
    assert chimera("eval", "contamination", str(db), "--against", str(benchmark)).returncode == 0
    out = tmp_path / "hf"
    assert chimera("export", str(db), "--format", "hf", "-o", str(out)).returncode == 0
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert [c["config_name"] for c in front["configs"]] == list(HF_CONFIGS)
    assert all(f"| `{name}` |" in card and (out / name).is_dir() for name in HF_CONFIGS)
    assert "`held-out.jsonl`" in card and str(tmp_path) not in card and "private" not in card
    assert benchmark_name("C:\\Users\\me\\evals\\aime.jsonl") == benchmark_name("/home/me/aime.jsonl") == "aime.jsonl"

    one = tmp_path / "one"  # one trajectory per problem: no pair
    one.mkdir()
    result = chimera("export", str(finished_run(one)), "--format", "hf", "-o", str(one / "hf"))
    assert result.returncode == 0 and "left out configs with no rows: dpo" in result.stderr
    card = (one / "hf" / "README.md").read_text()
    assert "dpo" not in [c["config_name"] for c in yaml.safe_load(card.split("---\n")[1])["configs"]]
    assert "Left out for having no rows: `dpo`." in card and not (one / "hf" / "dpo").exists()


# -- verl's reward keys -------------------------------------------------------------------------------------------------

# What verl reads, from its source (github.com/verl-project/verl, formerly volcengine/verl), by release tag:
# - to v0.7.0: verl/trainer/ppo/reward.py's get_custom_reward_fn reads config.get("custom_reward_function"), the group
#   verl/trainer/config/ppo_trainer.yaml declares at the top level (path, name);
# - from v0.7.1 (through v0.9.0 and main in August 2026): it reads config.reward.get("custom_reward_function"),
#   declared in verl/trainer/config/reward/reward.yaml (path, name). v0.7.1 and v0.8.0's main_ppo still copy a
#   top-level group there (migrate_legacy_reward_impl); from v0.9.0 it does not, so top-level keys are ignored.
# Neither declares reward_kwargs, which get_custom_reward_fn also reads: an override adds it with Hydra's "+".
VERL_REWARD_GROUP = {"0.7.0 and earlier": "custom_reward_function", "0.7.1 and later": "reward.custom_reward_function"}


def readme_verl_overrides() -> dict[str, dict[str, str]]:
    """The reward overrides of the README's verl command lines, by the verl versions their comment names."""
    section = README.read_text().split("## Training exports", 1)[1].split("\n## ", 1)[0]
    found: dict[str, dict[str, str]] = {}
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        versions = None
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("#"):
                versions = next((v for v in VERL_REWARD_GROUP if v in line), None)
                continue
            for key, value in re.findall(r"(?:^|\s)(\+?[\w.]*custom_reward_function[\w.]*)=(\$\(.*?\)(?=\s|$)|\S+)", line):
                assert versions, f"{key}: no comment above it says which verl reads it"
                found.setdefault(versions, {})[key] = value
    return found


def test_the_readme_gives_each_verl_version_the_reward_keys_it_reads():
    overrides = readme_verl_overrides()
    assert set(overrides) == set(VERL_REWARD_GROUP)
    for versions, keys in overrides.items():
        group = VERL_REWARD_GROUP[versions]
        assert set(keys) == {f"{group}.path", f"{group}.name"}, versions
        assert keys[f"{group}.name"] == "compute_score" and "chimera.products.reward" in keys[f"{group}.path"]
    section = README.read_text().split("## Training exports", 1)[1].split("\n## ", 1)[0]
    kwargs = re.findall(r"`(\+?[\w.]*custom_reward_function\.reward_kwargs[\w.]*)", section)
    assert kwargs and all(key.startswith("+") for key in kwargs), kwargs


def test_verls_own_loader_takes_the_readme_keys_for_the_installed_version():
    """Where verl installs (it pulls a CUDA torch, so not in CI): its Hydra config composes with the README's keys
    for its version, and its own loader finds compute_score there."""
    verl = pytest.importorskip("verl")
    hydra = pytest.importorskip("hydra")
    from packaging.version import Version

    versions = "0.7.1 and later" if Version(verl.__version__) >= Version("0.7.1") else "0.7.0 and earlier"
    group = VERL_REWARD_GROUP[versions]
    reward = str(Path(__file__).parent.parent / "chimera" / "reward.py")
    overrides = [f"{key}={reward if key.endswith('.path') else value}"
                 for key, value in readme_verl_overrides()[versions].items()]
    with hydra.initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"),
                                     version_base=None):
        config = hydra.compose(config_name="ppo_trainer", overrides=[
            *overrides, f"+{group}.reward_kwargs.judge_url=http://127.0.0.1:9/v1"])
    from verl.trainer.ppo.reward import get_custom_reward_fn

    score = get_custom_reward_fn(config)
    assert score is not None and score("chimera", "\\boxed{42}", "42", {"problem": "p"})["score"] == 1.0
