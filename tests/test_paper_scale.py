"""Paper scale on one machine: `chimera bench --scale paper` and its tiny versions report wall time against the
ideal, CPU per call, an RSS series, the database's bytes per sample split three ways and the finished
database's commands timed; the simulator's opt-in draft variety keeps near-duplicates rare and changes
nothing when off; exports stream rows to the file."""

import io
import json
import sqlite3
from contextlib import closing

import pyarrow.parquet as pq
from helpers import chimera, finished_run, write_config

from chimera.agents.drafter import draft_messages
from chimera.config import SimSettings
from chimera.evals.throughput_bench import describe, paper_spec, rss_summary, scaled
from chimera.models.reply_schemas import DraftedProblem, response_format_for
from chimera.products import export
from chimera.sim.oracle import Oracle
from chimera.store import Store


def test_a_tiny_bench_reports_every_paper_scale_figure(tmp_path):
    out = tmp_path / "bench.json"
    result = chimera("bench", "--subjects", "2", "--topics", "4", "--problems-per-topic", "2",
                     "--trajectory-words", "60", "--latency", "other=0.02", "--budget", "16", "--draft-variety",
                     "--no-restart", "--no-baseline", "--finished-db", "--rss-every", "0.1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("benchmark: 2 subjects, 4 topics x 2 problems = 8 problems; trajectories of "
                                    "about 60 words;")
    figures = json.loads(out.read_text())
    pipeline = figures["pipeline"]
    assert pipeline["seconds"] > 0 and pipeline["ideal_requests_per_s"] > 0 and pipeline["cpu_ms_per_call"] > 0
    assert 0 < pipeline["throughput_ratio"] and pipeline["samples"] > 0
    assert 0 <= pipeline["near_duplicate_rate"] < 1

    rss = figures["rss"]
    assert len(rss["series"]) >= 2 and rss["series"][0]["t_s"] == 0
    assert rss["peak_mb"] == max(point["rss_mb"] for point in rss["series"]) >= rss["final_mb"] > 0
    assert rss["at_tenth_mb"] > 0 and rss["peak_over_tenth"] >= 1

    split = figures["bytes"]
    assert 0 < split["samples"] <= pipeline["samples"]  # accepted problems' samples
    parts = [split[f"{part}_bytes"] for part in ("dataset_tables", "checkpoints", "kept_replies")]
    assert parts[0] > 0 and parts[1] > 0 and parts[2] >= 0 and sum(parts) == split["total_bytes"]
    assert split["file_bytes"] >= split["total_bytes"]
    assert split["total_per_sample"] == round(split["total_bytes"] / split["samples"])

    commands = figures["commands"]
    assert set(commands) == {"status", "export_sft", "stats"}
    assert all(timed["seconds"] > 0 and timed["peak_rss_mb"] > 0 for timed in commands.values())
    assert commands["export_sft"]["rows"] > 0 and commands["export_sft"]["bytes"] > 0
    printed = result.stdout
    for row in ("RSS peak / final / at a tenth of the run", "dataset / checkpoints / kept replies",
                "chimera export --split sft on the finished database", "near-duplicates rejected"):
        assert row in printed


def test_the_paper_preset_says_what_it_runs_and_flags_beside_it_win():
    paper = paper_spec()
    text = describe(paper)
    assert "8 subjects, 1,180 topics x 8 problems = 9,440 problems; trajectories of about 11,000 words" in text
    assert "latency solve 2 s, other 0.3 s" in text and "budget 256" in text and "draft variety on" in text
    assert "status, export --split sft and stats timed on the finished database" in text
    smaller = scaled(paper, topics=16, trajectory_words=100)
    assert (smaller.problems, smaller.subjects, smaller.trajectory_words, smaller.draft_variety) == (128, 8, 100, True)


def test_bench_names_a_bad_scale_knob_in_one_line():
    result = chimera("bench", "--subjects", "9")
    assert result.returncode != 0
    assert result.stderr.strip() == "chimera: error: --subjects 9: give 1 to 8"
    result = chimera("bench", "--subjects", "4", "--topics", "2")
    assert result.stderr.strip() == "chimera: error: --topics 2: give at least one topic per subject (4)"


def test_the_rss_summary_reads_the_tenth_of_the_run_from_the_series():
    points = [{"t_s": t, "rss_mb": mb, "samples": 0} for t, mb in ((0, 100), (5, 180), (10, 200), (50, 230))]
    summary = rss_summary(points)
    assert (summary["at_tenth_mb"], summary["at_tenth_t_s"]) == (180, 5)  # the first point at or past 5 s
    assert (summary["peak_mb"], summary["final_mb"], summary["peak_over_tenth"]) == (230, 230, 1.28)


def draft(settings: SimSettings, subject: str, topic: str, earlier: list[str] | None = None) -> dict:
    body = {"model": "sim", "messages": draft_messages(subject, topic, earlier or []),
            "response_format": response_format_for(DraftedProblem)}
    return json.loads(Oracle(settings, seed=3).respond(body)["choices"][0]["message"]["content"])


def test_drafts_without_variety_are_the_simulators_drafts_as_before():
    # Pinned from the simulator before draft_variety existed: other tests and the docs read its exact drafts.
    assert draft(SimSettings(), "History", "Medieval Europe") == {
        "problem": "In which year did the Battle of Hastings take place?", "answer": "1066"}
    assert draft(SimSettings(draft_variety=False), "Mathematics", "Graph theory") == {
        "problem": "Compute the remainder when $48^{196}$ is divided by 1000.",
        "answer": "They are all positive numbers, so the quantity asked for follows from the givens."}


def test_draft_variety_sets_a_scene_before_the_same_problem_and_answer():
    for subject, topic in (("History", "Medieval Europe"), ("Chemistry", "Stoichiometry"), ("Physics", "Optics")):
        plain, varied = draft(SimSettings(), subject, topic), draft(SimSettings(draft_variety=True), subject, topic)
        assert varied["answer"] == plain["answer"]
        assert varied["problem"].endswith(" " + plain["problem"]) and varied["problem"] != plain["problem"]
    # the scene differs by topic and by slot (the drafts before it)
    scenes = {draft(SimSettings(draft_variety=True), "History", topic, earlier)["problem"]
              for topic in ("Medieval Europe", "Ancient Rome") for earlier in ([], ["an earlier draft"])}
    assert len(scenes) == 4


def near_duplicates(folder, variety: bool) -> int:
    config = write_config(folder, name="dup", subjects=[{"name": "History", "topics": ["Medieval Europe", "Ancient Rome"]}],
                          problems_per_topic=6, sim={"draft_variety": variety})
    result = chimera("run", str(config), "--quiet")
    assert result.returncode == 0, result.stderr
    with closing(sqlite3.connect(folder / "dup.db")) as conn:
        return conn.execute("select count(*) from problems where duplicate_of is not null").fetchone()[0]


def test_draft_variety_makes_near_duplicates_rarer(tmp_path):
    (tmp_path / "off").mkdir()
    (tmp_path / "on").mkdir()
    without, with_variety = near_duplicates(tmp_path / "off", False), near_duplicates(tmp_path / "on", True)
    assert with_variety < without


def test_a_jsonl_export_writes_each_row_before_it_reads_the_next():
    handle = io.BytesIO()
    lines_before_each_row = []

    def rows():
        for i in range(3):
            lines_before_each_row.append(handle.getvalue().count(b"\n"))
            yield {"id": i}

    assert export.write_rows(rows(), "jsonl", handle) == 3
    assert lines_before_each_row == [0, 1, 2]


def test_a_parquet_export_in_row_groups_holds_the_rows_of_the_jsonl_export(tmp_path, monkeypatch):
    db = finished_run(tmp_path)
    monkeypatch.setattr(export, "ROW_GROUP_ROWS", 2)
    store = Store(db, read_only=True)
    count = export.write(store, tmp_path / "all.parquet", split="all", fmt="parquet")
    export.write(store, tmp_path / "all.jsonl", split="all", fmt="jsonl")
    store.close()
    parquet = pq.ParquetFile(tmp_path / "all.parquet")
    assert count > 2 and parquet.metadata.num_row_groups >= 2
    read = parquet.read().to_pylist()
    written = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert [row["id"] for row in read] == [row["id"] for row in written]
    assert [row["reasoning"] for row in read] == [row["reasoning"] for row in written]
    assert [json.loads(row["usage"]) for row in read] == [row["usage"] for row in written]
