"""Resume stays exact with models that are not deterministic: a call finished before a kill is answered
from its kept reply, never asked again, so every row still agrees with the others."""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from aiohttp import web
from helpers import CHIMERA, chimera, finished_run, write_config
from hostile import is_solve
from stop_at import StopAt, asks_for, counted

from chimera.config import SimSettings

ANSWERED = "('ok', 'truncated', 'malformed_reply')"


def inconsistencies(db: sqlite3.Connection) -> dict[str, int]:
    return {
        "answered calls asked twice": db.execute(
            f"select count(*) from (select request_key from llm_calls where outcome in {ANSWERED} "
            "and request_key is not null group by request_key having count(*) > 1)").fetchone()[0],
        "samples solved for another text of their problem": db.execute(
            "select count(*) from samples s join problems p on p.id = s.problem_id "
            "where s.round = coalesce(p.revisions, 0) and (s.problem != p.problem or s.answer != p.answer)"
        ).fetchone()[0],
        "accepted problems without a sample": db.execute(
            "select count(*) from problems p where status = 'accepted' and not exists "
            "(select 1 from samples s where s.problem_id = p.id)").fetchone()[0],
    }


def test_the_sampled_simulator_answers_a_repeated_request_anew():
    from chimera.sim.oracle import Oracle

    body = {"model": "m", "messages": [{"role": "user", "content": "What is 17 * 23?\n\nPlease reason step by step"}]}
    sampled = Oracle(SimSettings(deterministic=False))
    fixed = Oracle(SimSettings())
    texts = {json.dumps(sampled.respond(body)["choices"][0]["message"]) for _ in range(6)}
    assert len(texts) > 1
    assert len({json.dumps(fixed.respond(body)["choices"][0]["message"]) for _ in range(3)}) == 1


def schema_of(body):
    return ((body.get("response_format") or {}).get("json_schema") or {}).get("name")


def short_first_lists(body, reply):
    """The expander's first answer to a subfield holds one name, so Stage 1 asks a second round."""
    if schema_of(body) == "TopicList" and "(none)" in body["messages"][-1]["content"]:
        message = reply["choices"][0]["message"]
        message["content"] = json.dumps({"topics": json.loads(message["content"])["topics"][:1]})
    return reply


def ungradable_answers(body, reply):
    """Final answers no rule can decide, so every trajectory waits for the judge after it is saved."""
    if is_solve(body):
        message = reply["choices"][0]["message"]
        message["content"] = re.sub(r"\\boxed\{.*\}", r"\\boxed{the quantity found in step three}",
                                    message["content"])
    return reply


WINDOWS = {  # where a kill finds answered calls whose step has no checkpoint yet
    "between two Stage 1 rounds": (short_first_lists,
                                  lambda body: schema_of(body) == "TopicList" and "(none)" not in
                                  body["messages"][-1]["content"]),
    "trajectory saved, judge asked": (ungradable_answers, lambda body: schema_of(body) == "LabelVerdict"),
}


@pytest.mark.parametrize("window", list(WINDOWS))
def test_a_run_killed_with_answered_calls_unsaved_asks_none_of_them_again_on_resume(tmp_path, window):
    rewrite, trigger = WINDOWS[window]

    async def mischief(body, reply, request):
        return web.json_response(rewrite(body, reply))

    with StopAt(SimSettings(deterministic=False, latency_s=0.02), mischief=mischief) as endpoint:
        config = write_config(tmp_path, models=endpoint.models(), subjects=[{"name": "Mathematics", "topics": 4}],
                              problems_per_topic=2, solver={"samples": 2})
        endpoint.run(["run", str(config), "--quiet"], when=trigger)
        db = sqlite3.connect(tmp_path / "t.db")
        answered_before = db.execute(f"select count(*) from llm_calls where outcome in {ANSWERED}").fetchone()[0]
        resumed = chimera("run", str(config), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert answered_before > 0
    assert inconsistencies(db) == {"answered calls asked twice": 0,
                                   "samples solved for another text of their problem": 0,
                                   "accepted problems without a sample": 0}
    assert "answered from their kept replies, not asked again" in resumed.stderr


def test_a_run_killed_at_any_point_resumes_to_consistent_rows(tmp_path):
    db_path = tmp_path / "t.db"
    # deterministic: false makes the simulator answer a repeated request anew, as a sampled model does
    sampled = SimSettings(deterministic=False, latency_s=0.03, latency_by_task={"solve": 0.4, "label": 0.2})
    with StopAt(sampled) as endpoint:
        config = write_config(tmp_path, models=endpoint.models(), problems_per_topic=3,
                              subjects=[{"name": "Mathematics", "topics": 3}, {"name": "Physics", "topics": 2}])
        killed = endpoint.run(["run", str(config), "--quiet"],
                              when=counted(db_path, "select count(*) from problems where status = 'accepted'", 3))
        assert killed.returncode == -signal.SIGKILL
        db = sqlite3.connect(db_path)
        accepted_before = {row[0] for row in db.execute("select id from problems where status = 'accepted'")}
        samples_before = dict(db.execute("select id, solution from samples where label_method is not null"))
        assert db.execute("select count(*) from topics where status != 'done'").fetchone()[0], "killed mid-run"
        resumed = chimera("run", str(config), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert inconsistencies(db) == {"answered calls asked twice": 0,
                                   "samples solved for another text of their problem": 0,
                                   "accepted problems without a sample": 0}
    accepted_after = {row[0] for row in db.execute("select id from problems where status = 'accepted'")}
    assert len(accepted_before) >= 3 and accepted_before <= accepted_after, \
        "a problem accepted before the kill stays accepted"
    after = dict(db.execute("select id, solution from samples"))
    assert {k: after[k] for k in samples_before} == samples_before, "no labeled trajectory is solved again"
    kept = db.execute("select id, role, topic_id, problem_id, outcome, scope, request_key from llm_calls "
                      "where reply is not null").fetchall()
    assert kept == [], "kept replies are dropped once their threads finish"


def test_a_second_run_on_the_same_database_stops_with_one_line_naming_the_first(tmp_path):
    config = write_config(tmp_path, sim={"latency_s": 1.0})  # steps of a second: the first run lasts a while
    first = subprocess.Popen([CHIMERA, "run", str(config), "--quiet"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "t.db.lock").exists() or not (tmp_path / "t.db.lock").read_text():
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        second = chimera("run", str(config), "--quiet")
        reading = chimera("status", str(tmp_path / "t.db"))
        assert first.poll() is None, "the first run was still going"
    finally:
        assert first.wait(120) == 0, first.stderr.read()
    assert second.returncode == 1
    assert second.stderr.strip() == (f"chimera: error: {tmp_path / 't.db'}: another chimera run is using this "
                                     f"database (pid {first.pid} on {socket.gethostname()}, since "
                                     f"{second.stderr.split('since ')[1].split(')')[0]}); wait for it to finish "
                                     "or stop it, then run again to resume")
    assert reading.returncode == 0, "read-only commands work during a run"
    assert chimera("run", str(config), "--quiet").returncode == 0, "once it is done, the database is free"


def test_a_killed_run_leaves_no_lock_behind(tmp_path):
    with StopAt(SimSettings(latency_s=0.2)) as endpoint:
        config = write_config(tmp_path, models=endpoint.models())
        endpoint.run(["run", str(config), "--quiet"], when=asks_for("CriticVerdict"))
        assert chimera("run", str(config), "--quiet").returncode == 0


def test_a_database_held_locked_past_the_wait_ends_the_run_with_one_line_and_it_resumes(tmp_path):
    config = write_config(tmp_path, sim={"latency_s": 0.3})
    text = config.read_text().replace("concurrency: 8", "concurrency: 8\n  lock_wait_s: 1")
    config.write_text(text)
    db_path = tmp_path / "t.db"
    run = subprocess.Popen([CHIMERA, "run", str(config), "--quiet"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while True:  # hold the write lock once the run is under way
        assert time.monotonic() < deadline and run.poll() is None
        try:
            if sqlite3.connect(db_path).execute("select count(*) from problems").fetchone()[0]:
                break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.02)
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("begin immediate")
    try:
        stderr = run.communicate(timeout=30)[1]  # it must end, not hang
    finally:
        holder.execute("rollback")
    assert run.returncode == 1
    assert stderr.strip().splitlines()[-1].startswith(
        "chimera: error: another process held a lock on the database for longer than run.lock_wait_s")
    assert "Traceback" not in stderr
    assert chimera("run", str(config), "--quiet").returncode == 0


def test_status_check_names_rows_that_disagree_and_passes_a_sound_run(tmp_path):
    config = write_config(tmp_path, review={"policy": "all"})
    assert chimera("run", str(config), "--quiet").returncode == 0
    sound = chimera("status", str(tmp_path / "t.db"), "--check")
    assert (sound.returncode, sound.stdout.strip()) == (0, "run t: consistent (8 checks)")
    db = sqlite3.connect(tmp_path / "t.db")
    (review_id, problem_id), *_ = db.execute("select id, problem_id from reviews")
    db.execute("update reviews set action = 'accept', applied_at = 1 where id = ?", [review_id])
    (sample_id,) = db.execute("select id from samples limit 1").fetchone()
    db.execute("update samples set answer = 'something else' where id = ?", [sample_id])
    db.commit()
    broken = chimera("status", str(tmp_path / "t.db"), "--check")
    assert broken.returncode == 1
    assert broken.stdout.splitlines() == [
        f"run t: 1 samples solved for another text of their problem: {sample_id}",
        f"run t: 1 decisions recorded as applied whose problem still waits: {review_id}"]


def test_an_export_to_standard_output_or_a_device_writes_there_and_replaces_nothing(tmp_path):
    finished_run(tmp_path)
    dash = chimera("export", str(tmp_path / "t.db"), "--split", "rl", "-o", "-", cwd=tmp_path)
    assert dash.returncode == 0 and not (tmp_path / "-").exists()
    rows = [json.loads(line) for line in dash.stdout.splitlines()]
    assert rows and all("answer" in row for row in rows)
    assert "wrote" in dash.stderr and "wrote" not in dash.stdout
    device = chimera("export", str(tmp_path / "t.db"), "--split", "rl", "-o", "/dev/stdout", process=True)  # its own fd 1
    assert device.returncode == 0 and [json.loads(line) for line in device.stdout.splitlines()] == rows
    assert os.path.islink("/dev/stdout"), "the device link is still a link"
    # Run in this process, /dev/stdout leads to pytest's capture file: a link to a file is written at its
    # target, never replaced by one.
    (tmp_path / "real.jsonl").write_text("old\n")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "real.jsonl")
    assert chimera("export", str(tmp_path / "t.db"), "--split", "rl", "-o", str(tmp_path / "link.jsonl")).returncode == 0
    assert (tmp_path / "link.jsonl").is_symlink()
    assert [json.loads(line) for line in (tmp_path / "real.jsonl").read_text().splitlines()] == rows


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs: a real full disk. Mounting needs root, which CI has; elsewhere the test says why it ran not."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_stops_the_run_with_one_line_and_more_space_lets_it_finish(tmp_path, small_disk):
    config = write_config(small_disk, sim={"trajectory_words": 12000, "trajectory_jitter": 0.1},
                          subjects=[{"name": "Mathematics", "topics": 6}], problems_per_topic=4)
    full = chimera("run", str(config), "--quiet")
    assert full.returncode == 1, full.stderr
    assert full.stderr.strip().splitlines()[-1].startswith("chimera: error: no space left for the database")
    assert "Traceback" not in full.stderr
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    assert chimera("run", str(config), "--quiet").returncode == 0
    assert chimera("status", str(small_disk / "t.db"), "--check").returncode == 0
    db = sqlite3.connect(small_disk / "t.db")
    assert db.execute("select count(*) from problems where status = 'pending'").fetchone()[0] == 0


def test_a_killed_stats_out_leaves_the_old_folder_or_the_new_one(tmp_path):
    finished_run(tmp_path)
    out = tmp_path / "stats"
    assert chimera("stats", str(tmp_path / "t.db"), "--out", str(out)).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for _ in range(3):
        process = subprocess.Popen([CHIMERA, "stats", str(tmp_path / "t.db"), "--out", str(out)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not list(tmp_path.glob(".stats.partial-*")):  # the new folder is being built beside the old one
            assert process.poll() is None, "stats ended before it began its new folder"
            time.sleep(0.002)
        process.kill()
        process.wait()
        left = list(tmp_path.glob(".stats.partial-*"))
        assert left, "the kill landed after the new folder was put in place: nothing was tested"
        now = {p.name: p.read_bytes() for p in out.iterdir()}
        assert set(now) == set(before) and all(now.values()), "every file there, none empty"
        assert now["stats.json"] == before["stats.json"]
        for partial in left:
            shutil.rmtree(partial)


def write_lock_held(db: Path) -> bool:
    """Whether another connection holds the database's write lock (a transaction under way)."""
    with contextlib.closing(sqlite3.connect(db, timeout=0)) as conn:
        try:
            conn.execute("begin immediate")
        except sqlite3.OperationalError:
            return True
        conn.rollback()
        return False


def test_a_taxonomy_import_killed_inside_its_transaction_leaves_the_old_taxonomy(tmp_path):
    config = write_config(tmp_path, subjects=[{"name": "Mathematics", "topics": 4}])
    assert chimera("run", str(config), "--topics-only", "--quiet").returncode == 0
    db = tmp_path / "t.db"
    tree = json.loads(chimera("taxonomy", str(db), "--json").stdout)
    old = sorted(t["name"] for s in tree["subjects"] for f in s["subfields"] for t in f["topics"])
    tree["subjects"][0]["subfields"] = [{"name": f"Area {i}", "topics": [{"name": f"Topic {i}.{j}"} for j in range(200)]}
                                        for i in range(100)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(tree))
    live = "select name from topics where status not in ('merged', 'removed', 'surplus') order by name"
    for _ in range(3):
        process = subprocess.Popen([CHIMERA, "taxonomy", str(db), "--import", str(path)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not write_lock_held(db):  # the import's transaction has begun
            assert process.poll() is None, "the import ended before its transaction was seen"
            time.sleep(0.001)
        process.kill()
        process.wait()
        with contextlib.closing(sqlite3.connect(db)) as conn:
            names = [r[0] for r in conn.execute(live)]
        assert names == old, f"a taxonomy of {len(names)} topics after a kill inside the import's transaction"


def test_kill_fuzz_with_revisions_samples_and_review_decisions_between_kills(tmp_path):
    import random

    rng = random.Random(7)
    config = write_config(tmp_path, sim={"deterministic": False, "latency_s": 0.05, "latency_jitter": 0.8,
                                         "drafter_error_rate": 0.35},
                          subjects=[{"name": "Mathematics", "topics": 3}, {"name": "Physics", "topics": 2}],
                          problems_per_topic=3, solver={"samples": 2}, review={"policy": "disagreement"})
    db_path = tmp_path / "t.db"
    decided = 0

    def decide_pending():
        nonlocal decided
        listed = chimera("review", str(db_path), "--list", "--json")
        for item in json.loads(listed.stdout) if listed.returncode == 0 else []:
            action = ("--accept", "--reject", "--revise")[decided % 3]
            extra = ["--note", "state the units"] if action == "--revise" else []
            assert chimera("review", str(db_path), item["id"], action, *extra).returncode == 0
            decided += 1

    for _ in range(4):
        process = subprocess.Popen([CHIMERA, "run", str(config), "--quiet"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 2.5))
        process.kill()
        process.wait()
        decide_pending()
    for _ in range(6):  # finish, deciding whatever still waits
        assert chimera("run", str(config), "--quiet").returncode == 0
        before = decided
        decide_pending()
        if decided == before:
            break
    db = sqlite3.connect(db_path)
    assert inconsistencies(db) == {"answered calls asked twice": 0,
                                   "samples solved for another text of their problem": 0,
                                   "accepted problems without a sample": 0}
    assert chimera("status", str(db_path), "--check").returncode == 0
    assert db.execute("select count(*) from problems where status = 'pending'").fetchone()[0] == 0
    assert decided > 0, "the fuzz made review decisions between kills"
