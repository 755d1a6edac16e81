"""Evals and data products: statistics, contamination, pass@k, the benchmark runner, quality, the HF export."""

import itertools
import json
import os
import random
import sqlite3
from math import comb
from pathlib import Path

import pytest
from helpers import chimera, finished_run, write_config

from chimera.config import parse_config
from chimera.evals.contamination import BenchmarkIndex, contamination
from chimera.evals.passk import curve, pass_at_k
from chimera.evals.quality import bootstrap_difference
from chimera.evals.stats import dataset_stats
from chimera.sim import problems as sim_problems
from chimera.store import Store


def stored_config(path: Path, **models: dict) -> dict:
    """A config as `chimera run` stores it: every role on the simulator, without prices unless given."""
    return parse_config({"run": {"name": "k", "db": str(path)}, "subjects": [{"name": "Math", "topics": 1}],
                         "models": {"default": {"provider": "sim"}, **models}}).redacted()


def known_store(path: Path) -> Store:
    """Two subjects; 3 accepted problems (one revised), 1 rejected, 1 failed; 4 samples, 1 truncated."""
    store = Store(path)
    store.save_run("k", stored_config(path))
    rows = [("p1", "Math", "Algebra", "hello world", "accepted", 0), ("p2", "Math", "Algebra", "a b c d", "accepted", 2),
            ("p3", "Chem", "Moles", "one two three four five six", "accepted", 0),
            ("p4", "Chem", "Moles", "x y", "rejected", 1), ("p5", "Math", "Geometry", "z", "failed", 0)]
    for slot, (pid, subject, topic, text, status, revisions) in enumerate(rows):
        store.save_draft(id=pid, run="k", topic_id=f"t-{topic}", subject=subject, topic=topic, slot=slot,
                         problem=text, answer="1")
        if revisions:
            store.save_revision(pid, revision=revisions, problem=text, answer="1")
        store.finish_problem(pid, status, {"rejected": "rejected by critic", "failed": "timeout"}.get(status))
    samples = [("p1", 0, "r r", "s", 1, 0), ("p1", 1, "r", "s s s", 0, 0), ("p2", 0, "r r r r", "s s", 1, 0),
               ("p3", 0, "r " * 9, "s", None, 1)]
    for pid, j, reasoning, solution, correct, truncated in samples:
        problem = store.problem(pid)
        store.save_sample({"id": f"{pid}-{j}", "problem_id": pid, "sample_index": j, "run": "k",
                           "subject": problem["subject"], "topic": problem["topic"], "problem": problem["problem"],
                           "answer": "1", "reasoning": reasoning, "solution": solution, "correct": correct,
                           "truncated": truncated, "models": {}, "usage": {}})
    store.set_pass_rate("p1", 0.5)
    store.set_pass_rate("p2", 1.0)
    store.log_call({"run": "k", "role": "solver", "model": "m", "tokens_in": 100, "tokens_out": 300, "outcome": "ok"})
    return store


def test_statistics_of_a_small_known_database_equal_hand_computed_values(tmp_path):
    stats = dataset_stats(known_store(tmp_path / "k.db"), "k")
    assert (stats["problems_drafted"], stats["problems_accepted"], stats["samples"]) == (5, 3, 4)
    assert (stats["subjects"], stats["topics"]) == (2, 2)
    assert stats["accepted_by_subject"] == {"Chem": 1, "Math": 2}
    assert stats["share_by_subject"] == {"Chem": round(1 / 3, 4), "Math": round(2 / 3, 4)}
    assert stats["acceptance_by_subject"] == {"Chem": 0.5, "Math": round(2 / 3, 4)}
    assert stats["problem_words"] == {"mean": 4.0, "median": 4.0}  # 2, 4, 6 words
    assert stats["problem_tokens"] == {"mean": 4.0, "median": 4.0}  # cl100k: "hello world" is 2 tokens
    assert stats["solution_words"] == {"mean": 5.75, "median": 5.0}  # 3, 4, 6, 10 words
    assert stats["correct_rate"] == round(2 / 3, 4) and stats["truncated_rate"] == 0.25
    assert stats["revisions_total"] == 3 and stats["accepted_revised_share"] == round(1 / 3, 4)
    assert stats["rejection_reasons"] == {"rejected by critic": 1, "timeout": 1}
    assert stats["tokens_per_accepted_sample"] == 100.0 and stats["cost_per_accepted_sample"] is None
    assert sorted(stats["pass_rates"]) == [0.5, 1.0]


def test_cost_per_accepted_sample_comes_from_the_configured_prices(tmp_path):
    store = known_store(tmp_path / "k.db")
    store.save_run("k", stored_config(tmp_path / "k.db", solver={"price_per_mtok_in": 1.0, "price_per_mtok_out": 10.0}))
    assert dataset_stats(store, "k")["cost_per_accepted_sample"] == round((100 * 1 + 300 * 10) / 1e6 / 4, 6)


def test_stats_command_prints_the_table_and_writes_json_markdown_and_four_plots(tmp_path):
    known_store(tmp_path / "k.db").close()
    result = chimera("stats", str(tmp_path / "k.db"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "problems accepted / drafted" in result.stdout and "3 / 5" in result.stdout
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["problems_accepted"] == 3
    assert "| correct rate | 66.7% |" in (tmp_path / "out" / "stats.md").read_text()
    for plot in ("problems_per_subject", "solution_length", "acceptance_by_subject", "pass_rate"):
        assert (tmp_path / "out" / f"{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_contamination_finds_planted_overlaps_and_scores_unrelated_text_near_zero():
    rng = random.Random(0)
    vocabulary = [f"w{i}" for i in range(5000)]
    benchmark = [" ".join(rng.choices(vocabulary, k=60)) for _ in range(300)]
    ours = [(f"p{i}", " ".join(rng.choices(vocabulary, k=60))) for i in range(50)]
    ours[7] = ("planted-copy", benchmark[42])
    ours[9] = ("planted-edit", " ".join(benchmark[100].split()[:45] + ["fresh"] * 15))
    report = contamination(ours, benchmark, [8, 13], threshold=0.5)
    eight = report["by_n"]["8"]
    top = {pair["problem_id"]: pair for pair in eight["top_pairs"]}
    assert top["planted-copy"]["similarity"] == 1.0 and top["planted-copy"]["benchmark_index"] == 42
    assert 0.5 < top["planted-edit"]["similarity"] < 1 and top["planted-edit"]["benchmark_index"] == 100
    assert eight["above_threshold"] == 2
    index = BenchmarkIndex(benchmark, 8)
    unrelated = [index.best(text).similarity for pid, text in ours if not pid.startswith("planted")]
    assert len(unrelated) == 48 and max(unrelated) < 0.01


def test_contamination_command_reads_a_benchmark_file_and_names_a_bad_line(tmp_path):
    config = write_config(tmp_path)
    assert chimera("run", str(config), "--quiet").returncode == 0
    db = tmp_path / "t.db"
    text = sqlite3.connect(db).execute("select problem from problems where status = 'accepted'").fetchone()[0]
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": text}) + "\n" + json.dumps({"question": "an unrelated item"}) + "\n")
    result = chimera("eval", "contamination", str(db), "--against", str(bench), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["by_n"]["8"]["top_pairs"][0]["similarity"] == 1.0
    bench.write_text(json.dumps({"prompt": "x"}) + "\n")
    bad = chimera("eval", "contamination", str(db), "--against", str(bench))
    assert bad.stderr.strip() == f"chimera: error: {bench}:1: no text field 'question' (choose one with --field)"


def brute_pass_at_k(n, c, k):
    outcomes = [1] * c + [0] * (n - c)
    draws = list(itertools.combinations(range(n), k))
    return sum(any(outcomes[i] for i in draw) for draw in draws) / len(draws)


@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (4, 1, 2), (8, 3, 4), (10, 0, 8), (10, 9, 2), (16, 5, 8)])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k))
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_pass_at_k_curve_averages_over_questions():
    assert curve([(4, 1), (4, 4), (4, 0)]) == pytest.approx({1: (0.25 + 1 + 0) / 3, 2: (0.5 + 1 + 0) / 3,
                                                             4: (1 + 1 + 0) / 3})
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def qa_file(path: Path, count: int = 12) -> Path:
    rng = random.Random(1)
    lines = []
    for i in range(count):
        text = sim_problems.KINDS[i % len(sim_problems.KINDS)].make(rng)
        lines.append(json.dumps({"question": text, "answer": sim_problems.identify(text)[1]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_benchmark_runner_reports_pass_at_k_and_resumes_without_asking_again(tmp_path):
    data, results = qa_file(tmp_path / "qa.jsonl"), tmp_path / "results.db"
    first = chimera("eval", "bench", "--data", str(data), "--samples", "2", "--results", str(results),
                    "--out", str(tmp_path / "out"), "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["asked"] == 24 and report["questions_complete"] == 12
    assert 0.4 < report["pass@1"] < 1 and report["pass@k"]["2"] >= report["pass@1"]
    assert (tmp_path / "out" / "pass_at_k.png").exists()
    calls = sqlite3.connect(results).execute("select count(*) from llm_calls").fetchone()[0]
    bodies = sqlite3.connect(results).execute("select count(*) from bench_results").fetchone()[0]
    assert (calls, bodies) == (24, 24)

    again = json.loads(chimera("eval", "bench", "--data", str(data), "--samples", "2", "--results", str(results),
                               "--json").stdout)
    assert (again["asked"], again["reused"], again["pass@1"]) == (0, 24, report["pass@1"])
    more = json.loads(chimera("eval", "bench", "--data", str(data), "--samples", "4", "--results", str(results),
                              "--json").stdout)
    assert (more["asked"], more["reused"]) == (24, 24) and set(more["pass@k"]) == {"1", "2", "4"}
    assert sqlite3.connect(results).execute("select count(*) from llm_calls").fetchone()[0] == 48


def test_the_benchmark_runner_sends_the_papers_sampling(tmp_path):
    from hostile import HostileEndpoint

    data = qa_file(tmp_path / "qa.jsonl", 2)
    with HostileEndpoint() as endpoint:
        result = chimera("eval", "bench", "--data", str(data), "--model", endpoint.url, "--model-name", "qwen3-235b",
                         "--samples", "1", "--results", str(tmp_path / "t.db"))
    assert result.returncode == 0, result.stderr
    sent = [r["body"] for r in endpoint.requests if r["path"].endswith("/chat/completions")]
    assert len(sent) == 2
    for body in sent:
        assert body["model"] == "qwen3-235b"
        assert (body["temperature"], body["top_p"], body["top_k"]) == (0.6, 0.95, 20)
        assert body["max_completion_tokens"] == 32768


def test_quality_rates_both_sets_side_by_side_and_resumes(tmp_path):
    finished_run(tmp_path)
    human = tmp_path / "human.jsonl"
    human.write_text("\n".join(json.dumps({"question": q}) for q in [
        "Using the figure above, find the angle.", "What is 2 + 2?",
        "A train leaves at noon at 60 km/h; another leaves the same station at 1 pm at 90 km/h on the same track. "
        "When does the second catch up with the first?"]) + "\n")
    result = chimera("eval", "quality", str(tmp_path / "t.db"), "--against", str(human), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["by_source"]["human"]["rated"] == 3 and report["by_source"]["dataset"]["rated"] >= 4
    for source in report["by_source"].values():
        assert all(1 <= source[c] <= 5 for c in report["criteria"])
    difference = report["difference"]
    assert difference["ci95"][0] <= difference["mean"] <= difference["ci95"][1]
    again = chimera("eval", "quality", str(tmp_path / "t.db"), "--against", str(human))
    assert "rated 0, reused" in again.stderr


def test_bootstrap_interval_brackets_a_clear_difference():
    low, high = bootstrap_difference([4.0, 5.0, 4.5, 5.0] * 5, [2.0, 3.0, 2.5] * 5)
    assert 1.5 < low < 2.0 < high < 2.5


def test_the_hf_export_loads_with_datasets_and_has_the_expected_columns(tmp_path):
    datasets = pytest.importorskip("datasets")
    finished_run(tmp_path)
    db, out = tmp_path / "t.db", tmp_path / "hf"
    assert chimera("eval", "contamination", str(db), "--against", str(qa_file(tmp_path / "qa.jsonl"))).returncode == 0
    result = chimera("export", str(db), "--format", "hf", "--out", str(out))
    assert result.returncode == 0, result.stderr
    os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    sft = datasets.load_dataset(str(out), "sft", split="train", cache_dir=str(tmp_path / "cache"))
    assert sft.column_names == ["messages", "id", "problem_id", "subject", "topic", "answer", "pass_rate"]
    assert sft[0]["messages"][1]["content"].startswith("<think>")
    rl = datasets.load_dataset("parquet", data_files=str(out / "rl" / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert {"problem", "answer", "pass_rate"} <= set(rl.column_names)
    every = datasets.load_dataset(str(out), "all", split="train", cache_dir=str(tmp_path / "cache"))
    assert {"subject", "topic", "problem", "answer", "reasoning", "solution", "correct"} <= set(every.column_names)
    card = (out / "README.md").read_text()
    front = card.split("---\n")[1]
    assert "configs:" in front and "## Statistics" in card and "## Contamination" in card
    assert "| solver | simulator (sim-solver) |" in card
