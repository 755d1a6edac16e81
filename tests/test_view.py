"""`chimera view DB`: the read-only dataset page. Its list and filters over plain HTTP, checked against the
database itself; its pages in headless Chromium, on a real simulated run and on hostile text."""

import html
import re
import shutil
import sqlite3
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from helpers import CHIMERA, chimera
from test_hostile_input import PAYLOADS
from test_review_cli import review_config
from test_review_web import free_port, launch_chromium, needs_chromium

from chimera.store import Store
from chimera.store.browse import ProblemFilter

RUN = "review"
HOSTILE = " ".join([*PAYLOADS, "<script>alert(1)</script>", "<svg onload=alert(2)>", "\u202egnp.exe"])


class ViewServer:
    def __init__(self, db, *args: str):
        self.port = free_port()
        self.process = subprocess.Popen([CHIMERA, "view", str(db), "--port", str(self.port), *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.banner = self.process.stdout.readline()  # printed once the page is about to be served
        assert "dataset page for run review at http://" in self.banner, self.process.stderr.read()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.fetch("")  # waits until it answers

    def fetch(self, path: str, headers: dict | None = None) -> tuple[int, str, dict]:
        for _ in range(50):
            try:
                request = urllib.request.Request(self.url + path, headers=headers or {})
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, response.read().decode(), dict(response.headers)
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode(), dict(error.headers)
            except urllib.error.URLError:
                subprocess.run(["sleep", "0.1"])
        raise AssertionError("the view server never answered")

    def listed(self, query: str = "") -> list[str]:
        status, page, _ = self.fetch("?" + query if query else "")
        assert status == 200, page
        table = page.split('<table id="problems">', 1)[1].split("</table>", 1)[0]
        return [html.unescape(found) for found in re.findall(r'<tr data-id="([^"]+)"', table)]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def sample(problem_id: str, index: int, **fields) -> dict:
    return {"id": f"{problem_id}-{index}", "problem_id": problem_id, "sample_index": index, "round": 0, "run": RUN,
            "subject": "Mathematics", "topic": "Crafted", "problem": "", "answer": "", "reasoning": "thinking",
            "solution": "so it is 4", "predicted_answer": "4", "correct": 1, "label_method": "exact",
            "label_detail": "same text", "truncated": 0, "retried": 0, "finish_reason": "stop", "pass_rate": None,
            "prompt": [], "models": {"solver": "sim-solver"},
            "usage": {"solver_tokens_in": 10, "solver_tokens_out": 20, "solver_reasoning_tokens": 5}, **fields}


def add_problem(store: Store, problem_id: str, *, problem: str, answer: str, status: str = "accepted",
                reason: str | None = None, subject: str = "Mathematics", topic: str = "Crafted", run: str = RUN,
                samples: tuple[dict, ...] = (), votes: tuple[dict, ...] = ()) -> None:
    """A problem written the way the graph writes one: draft, votes, outcome, samples."""
    store.save_draft(id=problem_id, run=run, topic_id="t-crafted", subject=subject, topic=topic,
                     slot=int(problem_id.rsplit("-", 1)[-1]), problem=problem, answer=answer)
    for critic, vote in enumerate(votes):
        store.record_vote(problem_id, round_=0, critic=critic, vote=vote)
    store.finish_problem(problem_id, status, reason)
    for row in samples:
        store.save_sample(row)


def crafted(store: Store) -> None:
    """Beside a real run's rows: what a small simulated run rarely gives (rejected and failed problems, a judge's
    label, a truncated sample) and text a search must treat literally."""
    add_problem(store, "crafted-0", problem="Rejected: what is 0/0?", answer="undefined", status="rejected",
                reason="critics rejected")
    add_problem(store, "crafted-1", problem="Failed at half past noon", answer="", status="failed",
                reason="drafter call failed")
    add_problem(store, "crafted-2", problem="A shop sells at 50% off_peak. What is 2+2?", answer="4", samples=(
        sample("crafted-2", 0, correct=0, predicted_answer="5", label_method="judge", label_detail="the judge said no",
               judges='{"labeler": false}', solution="I think the zebracorn answer is 5"),
        sample("crafted-2", 1, correct=None, predicted_answer=None, label_method="truncated",
               label_detail="cut at max_tokens", truncated=1, finish_reason="length"),
        sample("crafted-2", 2, correct=1, label_method="exact", judges='{"labeler": true}')),
        votes=({"model": "sim-critic0", "verdict": "accept", "reasons": "fine, $x^2$ checks", "own_answer": "4",
                "agrees_with_reference": True},
               {"model": "sim-critic1", "verdict": "revise", "reasons": "ambiguous wording", "own_answer": "four",
                "agrees_with_reference": False}))
    add_problem(store, "elsewhere-0", problem="a problem of another run", answer="1", run="other")


@pytest.fixture(scope="module")
def run_db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("view")
    assert chimera("run", str(review_config(folder)), "--quiet").returncode == 0
    db = folder / "review.db"
    store = Store(db)
    crafted(store)
    store.close()
    return db


@pytest.fixture(scope="module")
def server(run_db):
    served = ViewServer(run_db)
    yield served
    served.stop()


def oracle(db: Path, keep) -> list[str]:
    """The run's problem ids that `keep(problem, samples, in_review)` holds for, in the page's order: the
    expected answer, computed in Python from the raw rows."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    problems = [dict(r) for r in conn.execute("select * from problems where run = ?", [RUN])]
    samples: dict[str, list[dict]] = {}
    for row in conn.execute("select * from samples"):
        samples.setdefault(row["problem_id"], []).append(dict(row))
    waiting = {r[0] for r in conn.execute("select problem_id from reviews where applied_at is null")}
    kept = [p for p in problems if keep(p, samples.get(p["id"], []), p["id"] in waiting)]
    return [p["id"] for p in sorted(kept, key=lambda p: (p["subject"], p["topic"], p["slot"], p["id"]))]


def contains(text: str | None, needle: str) -> bool:
    return needle.lower() in (text or "").lower()


FILTERS = {
    "subject=Physics": lambda p, s, w: p["subject"] == "Physics",
    "topic=Crafted": lambda p, s, w: p["topic"] == "Crafted",
    "status=accepted": lambda p, s, w: p["status"] == "accepted",
    "status=rejected": lambda p, s, w: p["status"] == "rejected",
    "status=failed": lambda p, s, w: p["status"] == "failed",
    "status=pending": lambda p, s, w: p["status"] == "pending",
    "status=in+review": lambda p, s, w: p["status"] == "pending" and w,
    "reason=drafter+call+failed": lambda p, s, w: p["rejection_reason"] == "drafter call failed",
    "label=correct": lambda p, s, w: any(x["correct"] == 1 for x in s),
    "label=incorrect": lambda p, s, w: any(x["correct"] == 0 for x in s),
    "label=unlabeled": lambda p, s, w: any(x["correct"] is None for x in s),
    "method=judge": lambda p, s, w: any(x["label_method"] == "judge" for x in s),
    "method=number": lambda p, s, w: any(x["label_method"] == "number" for x in s),
    "label=correct&method=judge": lambda p, s, w: any(x["correct"] == 1 and x["label_method"] == "judge" for x in s),
    "subject=Mathematics&label=incorrect": lambda p, s, w: p["subject"] == "Mathematics"
    and any(x["correct"] == 0 for x in s),
    "q=ZEBRACORN": lambda p, s, w: any(contains(x["solution"], "zebracorn") for x in s),
    "q=kmno4": lambda p, s, w: contains(p["problem"], "kmno4") or contains(p["answer"], "kmno4"),
    "q=%25": lambda p, s, w: "%" in p["problem"] + p["answer"] or any("%" in x["solution"] for x in s),
    "q=f_p": lambda p, s, w: "f_p" in p["problem"],
    "q=joules&subject=Chemistry": lambda p, s, w: p["subject"] == "Chemistry" and (
        contains(p["problem"], "joules") or contains(p["answer"], "joules")
        or any(contains(x["solution"], "joules") for x in s)),
}


def test_the_list_shows_every_problem_of_the_run_with_its_sample_and_correct_counts(server, run_db):
    assert server.listed() == oracle(run_db, lambda p, s, w: True)
    assert "elsewhere-0" not in server.listed(), "a problem of another run is not listed"
    _, page, _ = server.fetch("?q=zebracorn")
    row = page.split('<tr data-id="crafted-2">', 1)[1].split("</tr>", 1)[0]
    assert '<td class="samples">3 (1 correct)</td>' in row
    assert '<td class="status">accepted</td>' in row
    _, page, _ = server.fetch("?status=failed")
    assert "failed (drafter call failed)" in page


@pytest.mark.parametrize("query", list(FILTERS))
def test_each_filter_and_the_search_list_exactly_the_problems_they_name(server, run_db, query):
    expected = oracle(run_db, FILTERS[query])
    assert server.listed(query) == expected
    if query in ("q=ZEBRACORN", "label=correct&method=judge", "status=failed", "q=f_p"):
        assert len(expected) == (0 if query == "label=correct&method=judge" else 1), "the case is one the data has"


def test_the_filters_offer_the_values_the_run_holds_and_keep_the_chosen_ones(server):
    _, page, _ = server.fetch("?subject=Chemistry&method=judge&q=a+%22quoted%22+word")
    subjects = re.search(r'<select name="subject">(.*?)</select>', page).group(1)
    assert re.findall(r'<option value="([^"]*)"', subjects) == ["", "Chemistry", "Mathematics", "Physics"]
    assert '<option value="Chemistry" selected>' in subjects
    topics = re.search(r'<select name="topic">(.*?)</select>', page).group(1)
    assert "Crafted" not in topics and "stoichiometry" in topics, "topics of the chosen subject"
    methods = re.search(r'<select name="method">(.*?)</select>', page).group(1)
    assert '<option value="judge" selected>' in methods and '<option value="truncated">' in methods
    assert 'name="q" value="a &quot;quoted&quot; word"' in page


def test_pages_split_the_list_in_order_and_their_links_keep_the_filters(server, run_db):
    everything = oracle(run_db, lambda p, s, w: True)
    seen, path, pages = [], "?per=4", 0
    while path is not None:
        status, page, _ = server.fetch(path)
        assert status == 200
        ids = re.findall(r'<tr data-id="([^"]+)"', page)
        assert 0 < len(ids) <= 4
        seen += ids
        pages += 1
        following = re.search(r'<a id="next" href="/\?([^"]+)"', page)
        path = "?" + html.unescape(following.group(1)) if following else None
    assert seen == everything and pages == -(-len(everything) // 4)
    assert f"page {pages} of {pages}" in page
    status, page, _ = server.fetch("?status=accepted&per=2&page=2")
    assert re.findall(r'<tr data-id="([^"]+)"', page) == oracle(run_db, FILTERS["status=accepted"])[2:4]
    assert 'id="next" href="/?status=accepted&amp;page=3&amp;per=2"' in page
    assert 'id="prev" href="/?status=accepted&amp;per=2"' in page


def test_a_page_past_the_last_is_empty_and_an_unreadable_query_is_a_400_naming_the_field(server):
    status, page, _ = server.fetch("?page=999")
    assert status == 200 and "past the last page" in page and 'id="next"' not in page
    for query, says in [("page=0", "page must be a whole number"), ("page=x", "page must be a whole number"),
                        ("per=100000", "per must be a whole number from 1 to 200"),
                        ("status=done", "status must be one of pending, accepted, rejected, failed, in review"),
                        ("label=maybe", "label must be one of correct, incorrect, unlabeled"),
                        ("q=" + "x" * 501, "longer than 500 characters")]:
        status, text, _ = server.fetch("?" + query)
        assert status == 400 and says in text and text.count("\n") == 1, (query, text)


def test_an_unknown_problem_or_one_of_another_run_is_404(server):
    assert server.fetch("problem/crafted-2")[0] == 200
    for path in ["problem/nope", "problem/elsewhere-0", "problem/%3Cscript%3E", "nowhere"]:
        assert server.fetch(path)[0] == 404, path


def test_the_problem_page_shows_votes_status_and_how_each_sample_was_labelled(server):
    _, page, _ = server.fetch("problem/crafted-2")
    votes = page.split('<div id="votes">', 1)[1].split("</div>", 1)[0]
    assert "round 0: first draft" in votes and "sim-critic1" in votes and "ambiguous wording" in votes
    assert '<td class="verdict">revise</td>' in votes and "<math" in votes, "the reasons' math is rendered"
    samples = {index: page.split(f'<section class="box sample" id="sample-{index}"', 1)[1].split("</section>", 1)[0]
               for index in range(3)}
    assert 'data-label="incorrect"' in samples[0]
    assert "decided by the judge (the rules could not decide)" in samples[0] and "labeler: incorrect" in samples[0]
    assert "zebracorn" in samples[0].split('class="solution text">', 1)[1]
    assert '<details class="reasoning">' in samples[0], "the reasoning is folded"
    assert 'data-label="unlabeled"' in samples[1] and "<strong>truncated</strong>" in samples[1]
    assert "cut off before an answer" in samples[1] and "length" in samples[1]
    assert "decided by the rule exact" in samples[2]
    assert "the judge was also asked, to audit the rules: labeler: correct" in samples[2]
    assert "tokens in 10, tokens out 20" in samples[2]
    _, page, _ = server.fetch("problem/crafted-0")
    assert '<strong id="status" class="rejected">rejected (critics rejected)</strong>' in page


def test_a_real_run_problem_page_shows_its_critics_and_reviews(server, run_db):
    waiting = sqlite3.connect(run_db).execute("select problem_id, reasons from reviews limit 1").fetchone()
    _, page, _ = server.fetch(f"problem/{waiting[0]}")
    assert "in review" in page and '<table id="reviews">' in page and "waiting for a decision" in page
    assert page.count('<tr class="vote">') == 2


def test_the_store_cuts_a_page_of_a_large_run_in_sql(tmp_path):
    db = tmp_path / "big.db"
    store = Store(db)
    store.save_run("big", {})
    rows = [(f"p{i:05d}", "big", "Mathematics", "T", i, "accepted" if i % 3 else "rejected", f"problem {i}", "1")
            for i in range(10_000)]
    with store.transaction():
        store.conn.executemany("insert into problems (id, run, subject, topic, slot, status, problem, answer) "
                               "values (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    store.save_sample(sample("p09998", 0, run="big"))
    total, page = store.problem_page("big", ProblemFilter(), limit=50, offset=9_950)
    assert total == 10_000 and [r["id"] for r in page] == [f"p{i:05d}" for i in range(9_950, 10_000)]
    assert [(r["samples"], r["correct"]) for r in page if r["id"] == "p09998"] == [(1, 1)]
    total, page = store.problem_page("big", ProblemFilter(status="rejected"), limit=10, offset=3_330)
    assert total == 3_334 and [r["id"] for r in page] == [f"p{i:05d}" for i in range(9_990, 10_000, 3)]


def test_beyond_loopback_every_request_needs_the_token_and_foreign_hosts_are_refused(run_db):
    from chimera.cli.page_server import cookie_for

    refused = chimera("view", str(run_db), "--host", "0.0.0.0")
    assert (refused.returncode, refused.stderr.strip()) == (
        1, "chimera: error: binding the dataset page to 0.0.0.0 needs --token (anyone who can reach it could read "
           "the dataset)")
    short = chimera("view", str(run_db), "--host", "0.0.0.0", "--token", "x")
    assert short.returncode == 1 and "at least 16 characters" in short.stderr
    token = "s3cret-token-for-the-view-page"
    served = ViewServer(run_db, "--host", "0.0.0.0", "--token", token)
    name, value = cookie_for(token, "view")
    try:
        assert served.fetch("")[0] == 403
        assert served.fetch("problem/crafted-2")[0] == 403
        assert served.fetch("?token=wrong")[0] == 403
        status, _, headers = served.fetch(f"?token={token}")
        assert status == 200 and headers["Set-Cookie"].startswith(f"{name}={value}")
        assert served.fetch("", headers={"Authorization": f"Bearer {token}"})[0] == 200
        assert served.fetch("problem/crafted-2", headers={"Cookie": f"{name}={value}"})[0] == 200
        review_cookie = "=".join(cookie_for(token, "review"))
        assert served.fetch("", headers={"Cookie": review_cookie})[0] == 403, "the review page's cookie is not this"
    finally:
        served.stop()
    local = ViewServer(run_db)
    try:
        status, _, headers = local.fetch("")
        policy = headers["Content-Security-Policy"]
        assert status == 200 and "default-src 'none'" in policy and "script-src" not in policy
        assert "frame-ancestors 'none'" in policy and headers["X-Content-Type-Options"] == "nosniff"
        assert local.fetch("", headers={"Host": f"evil.example:{local.port}"})[0] == 421
    finally:
        local.stop()


def test_a_database_with_several_runs_needs_run(tmp_path, run_db):
    db = tmp_path / "two.db"
    shutil.copy(run_db, db)
    store = Store(db)
    store.save_run("other", {})
    store.close()
    result = chimera("view", str(db))
    assert result.returncode == 1 and "holds 2 runs" in result.stderr and "--run" in result.stderr
    missing = chimera("view", str(tmp_path / "absent.db"))
    assert missing.returncode == 1 and "no such database" in missing.stderr


@needs_chromium
def test_in_chromium_the_list_filters_by_its_form_and_a_problem_shows_math_and_folded_reasoning(server, run_db):
    from playwright.sync_api import sync_playwright

    with_math = sqlite3.connect(run_db).execute(  # one with a trajectory, whose reasoning is folded
        "select id from problems where run = ? and problem like '%$%' and id in (select problem_id from samples) "
        "order by id limit 1", [RUN]).fetchone()[0]
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        page.goto(server.url)
        assert page.locator("#problems tbody tr").count() == len(oracle(run_db, lambda p, s, w: True))
        page.select_option("select[name=subject]", "Physics")
        page.select_option("select[name=status]", "accepted")
        page.click("#filter")  # the page runs no script (its policy forbids it): filtering is a form
        page.wait_for_url("**status=accepted*")
        expected = oracle(run_db, lambda p, s, w: p["subject"] == "Physics" and p["status"] == "accepted")
        assert [page.locator("#problems tbody tr").nth(i).get_attribute("data-id")
                for i in range(page.locator("#problems tbody tr").count())] == expected

        page.goto(server.url + f"problem/{with_math}")
        assert page.locator("#problem math").count() >= 1, "LaTeX in the problem is rendered as MathML"
        assert "$" not in page.locator("#problem").inner_text()
        box = page.locator("#problem math").first.bounding_box()
        assert box and box["width"] > 10 and box["height"] > 5, "the browser lays the formula out"
        reasoning = page.locator("details.reasoning").first
        assert reasoning.get_attribute("open") is None and not reasoning.locator(".text").is_visible()
        reasoning.locator("summary").click()
        assert reasoning.locator(".text").is_visible(), "the reasoning unfolds"
        browser.close()


@needs_chromium
def test_hostile_text_in_every_field_runs_no_script_and_shows_literally(tmp_path, run_db):
    from playwright.sync_api import sync_playwright

    db = tmp_path / "hostile.db"
    shutil.copy(run_db, db)
    store = Store(db)
    vote = {"model": HOSTILE, "verdict": HOSTILE, "reasons": HOSTILE, "own_answer": HOSTILE,
            "agrees_with_reference": HOSTILE, "match_method": HOSTILE}
    add_problem(store, "hostile-0", problem=HOSTILE, answer=HOSTILE, status="rejected", reason=HOSTILE,
                subject=HOSTILE, topic=HOSTILE, votes=(vote, {"not": "a vote"}), samples=(
                    sample("hostile-0", 0, subject=HOSTILE, topic=HOSTILE, reasoning=HOSTILE, solution=HOSTILE,
                           predicted_answer=HOSTILE, label_method=HOSTILE, label_detail=HOSTILE,
                           finish_reason=HOSTILE, judges='{"<b>judge</b>": "<i>maybe</i>"}', models=HOSTILE,
                           usage={HOSTILE: HOSTILE}),))
    store.close()
    served = ViewServer(db)
    dialogs: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page()
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            for path in ["", "?q=pwned", "?subject=" + urllib.request.quote(HOSTILE), "problem/hostile-0"]:
                page.goto(served.url + path)
                page.wait_for_load_state("load")
                assert page.evaluate("window.__pwned") is None, path
                assert page.locator("script, img, svg, iframe, b, i").count() == 0, path
                fixed = page.evaluate("[...document.querySelectorAll('*')].filter("
                                      "e => getComputedStyle(e).position === 'fixed').length")
                assert fixed == 0, path
            page.locator("details.reasoning summary").click()
            for where in ["#problem", "#answer", "#sample-0 .solution", "#sample-0 details.reasoning .text"]:
                shown = page.locator(where).inner_text().replace("\xa0", " ")
                assert "<script>window.__pwned = 1</script>" in shown and "<script>alert(1)</script>" in shown, where
                assert "<img src=x onerror='window.__pwned=1'>" in shown, where
                assert "⟨U+202E⟩gnp.exe" in shown, "a bidi override is shown as its code"
            facts = page.locator("#sample-0 table.facts").inner_text()
            assert "<b>judge</b>: <i>maybe</i>" in facts
            browser.close()
    finally:
        served.stop()
    assert dialogs == []


@pytest.mark.xdist_group("postgres")
def test_on_postgres_the_filters_find_what_they_find_on_sqlite_and_the_page_serves(tmp_path, run_db, postgres):
    import yaml

    from chimera.cli.view.query import read_query

    url = postgres.new_database("view")
    config = review_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["run"]["db"] = url
    config.write_text(yaml.safe_dump(raw))
    assert chimera("run", str(config), "--quiet").returncode == 0
    crafted(Store(url))
    on_postgres, on_sqlite = Store(url, read_only=True), Store(run_db, read_only=True)
    for query in FILTERS:
        wanted = read_query(dict(pair.split("=") for pair in urllib.parse.unquote_plus(query).split("&"))).wanted
        pg_total, pg_rows = on_postgres.problem_page(RUN, wanted, limit=200, offset=0)
        total, rows = on_sqlite.problem_page(RUN, wanted, limit=200, offset=0)
        assert (pg_total, {r["id"]: r for r in pg_rows}) == (total, {r["id"]: r for r in rows}), query
    assert on_postgres.filter_choices(RUN) == on_sqlite.filter_choices(RUN)
    records = [store.problem_record(RUN, "crafted-2") for store in (on_postgres, on_sqlite)]
    for record in records:  # written at different times
        for row in (record["problem"], *record["samples"]):
            row.pop("created_at")
            row.pop("updated_at", None)
    assert records[0] == records[1]
    served = ViewServer(url)
    try:
        assert len(served.listed("per=3")) == 3
        status, page, _ = served.fetch("problem/crafted-2")
        assert status == 200 and "decided by the judge" in page and "postgresql://postgres@127.0.0.1" in page
    finally:
        served.stop()
