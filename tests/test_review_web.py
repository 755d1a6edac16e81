"""The review page, driven in headless Chromium by Playwright, and its token rule over plain HTTP."""

import shutil
import socket
import sqlite3
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import CHIMERA, chimera
from test_review_cli import pending, review_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="Debian's chromium is not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_chromium(playwright):
    """Debian's Chromium, headless, with nothing reaching out to the network."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"])


class ReviewServer:
    def __init__(self, db: Path, *args: str):
        self.port = free_port()
        self.process = subprocess.Popen([CHIMERA, "review", str(db), "--web", "--port", str(self.port), *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.banner = self.process.stdout.readline()  # printed once the page is about to be served
        assert "review page for run review at http://" in self.banner, self.process.stderr.read()
        self.url = f"http://127.0.0.1:{self.port}/"

    def get(self, path: str = "", headers: dict | None = None) -> int:
        for _ in range(50):
            try:
                request = urllib.request.Request(self.url + path, headers=headers or {})
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code
            except urllib.error.URLError:
                subprocess.run(["sleep", "0.1"])
        raise AssertionError("the review server never answered")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def reviewed_db(tmp_path):
    assert chimera("run", str(review_config(tmp_path)), "--quiet").returncode == 0
    return tmp_path / "review.db"


@needs_chromium
def test_the_page_lists_items_renders_math_and_takes_an_accept_and_a_reject(reviewed_db):
    from playwright.sync_api import sync_playwright

    items = pending(reviewed_db)
    with_math = next(i for i in items if "$" in i["payload"]["problem"])
    others = [i for i in items if i is not with_math]
    server = ReviewServer(reviewed_db, "--reviewer", "web-ann")
    try:
        server.get()
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page()
            page.goto(server.url)
            assert page.locator("#items tbody tr").count() == len(items)

            page.select_option("select[name=subject]", with_math["subject"])
            page.click("#filter")  # the page runs no script at all (its CSP forbids it): filtering is a button
            page.wait_for_url("**subject=*")
            shown = page.locator("#items tbody tr").count()
            assert shown == sum(i["subject"] == with_math["subject"] for i in items) < len(items)

            page.click(f"a[href='/item/{with_math['id']}']")
            assert page.locator("#problem math").count() >= 1, "LaTeX in the problem is rendered as MathML"
            assert "$" not in page.locator("#problem").inner_text()
            box = page.locator("#problem math").first.bounding_box()
            assert box and box["width"] > 10 and box["height"] > 5, "the browser lays the formula out"
            page.click("button[value=accept]")
            page.wait_for_url(server.url + "?done=*")
            assert f"{with_math['id']}: accept by web-ann" in page.locator("#flash").inner_text()
            assert page.locator("#items tbody tr").count() == len(items) - 1

            page.goto(server.url + f"item/{others[0]['id']}")
            page.fill("input[name=note]", "answer is not unique")
            page.click("button[value=reject]")
            page.wait_for_url(server.url + "?done=*")

            page.goto(server.url + f"item/{others[1]['id']}")
            page.click("button[value=revise]")  # no note: refused on the page, nothing stored
            assert "needs a note" in page.locator("#error").inner_text()
            browser.close()
    finally:
        server.stop()
    rows = dict((r[0], r[1:]) for r in sqlite3.connect(reviewed_db).execute(
        "select id, action, note, reviewer from reviews where action is not null"))
    assert rows == {with_math["id"]: ("accept", None, "web-ann"),
                    others[0]["id"]: ("reject", "answer is not unique", "web-ann")}


def test_beyond_loopback_every_request_needs_the_token(reviewed_db):
    from chimera.cli.page_server import cookie_for

    refused = chimera("review", str(reviewed_db), "--web", "--host", "0.0.0.0")
    assert (refused.returncode, refused.stderr.strip()) == (
        1, "chimera: error: binding the review page to 0.0.0.0 needs --token (anyone who can reach it could decide)")
    short = chimera("review", str(reviewed_db), "--web", "--host", "0.0.0.0", "--token", "x")
    assert short.returncode == 1 and "at least 16 characters" in short.stderr
    token = "s3cret-token-for-this-test"
    server = ReviewServer(reviewed_db, "--host", "0.0.0.0", "--token", token)
    name, value = cookie_for(token, "review")
    try:
        assert server.get() == 403
        assert server.get("item/x") == 403
        assert server.get("?token=wrong") == 403
        assert server.get(f"?token={token}") == 200
        assert server.get("", headers={"Authorization": f"Bearer {token}"}) == 200
        assert server.get("", headers={"Cookie": f"{name}={value}"}) == 200
        assert server.get("", headers={"Cookie": f"{name}={token}"}) == 403, "the cookie never holds the token"
        assert token not in value and name != cookie_for("another-token-of-16+", "review")[0]
    finally:
        server.stop()


def test_on_loopback_no_token_is_needed(reviewed_db):
    server = ReviewServer(reviewed_db)
    try:
        assert server.get() == 200
        assert server.get("item/nope@0") == 404
    finally:
        server.stop()
