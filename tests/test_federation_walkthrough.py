"""The README's "Two instances (federation)" walk-through works as printed.

Its blocks marked for this test run, each in a new shell as in its own terminal, in a
throwaway copy of the checkout (links to the repository's files, as tests/test_readme.py
makes one; ``.flaskenv`` from the Makefile's own rule). Instance A's database, index,
files and key folder point into the copy, and B's come from the settings file the
walk-through writes. Each ``make run`` is the Makefile's ``run`` recipe itself, read from
the Makefile (minus installing, done already), its server left running on a free port.
Then, as the README says, ``au.planner`` logs in at B and searches: the GBR lesson
released to AUS is there, a lesson released to GBR alone is not. Last, the online step:
a lesson new at A reaches B by ``flask federation sync`` from A's running server. SQLite,
whatever the suite's database: the README's instances are SQLite files.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.http_client import CSRF_FIELD, Http
from tests.test_exchange import record
from tests.test_exercises import day, exercise_form
from tests.test_readme import KEPT, README, ROOT, Block, free_port, shell_blocks

SECTION = "### Two instances (federation)"
THIS_TEST = "tests/test_federation_walkthrough.py"
PASSWORD = "wallaby-relay-2027"


def section_blocks() -> list[Block]:
    """The walk-through's shell blocks this test runs (their marker names it), in order."""
    text = README.read_text()
    assert SECTION in text, f"README has no {SECTION!r} section"
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return [block for block in shell_blocks(body) if THIS_TEST in (block.arg or "")]


def make_run_function() -> str:
    """A shell function ``make`` doing what ``make run [PORT=N]`` does, built from the
    Makefile's ``run`` recipe (its prerequisites are met: the venv is installed, the
    copy's ``.flaskenv`` made); the server it ends with goes to the background and its
    process id to ``servers.pids``."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    commands = [line.strip() for line in recipe if line.startswith("\t")
                and not line.strip().startswith("@#")]
    assert commands and " run " in commands[-1], commands
    commands = [c.replace("$(FLASK)", ".venv/bin/flask --app wsgi").replace("$(PORT)", "$port")
                for c in commands]
    commands[-1] += ' > "server-$port.log" 2>&1 &\n  echo $! >> servers.pids'
    return ('make() {\n'
            '  [ "$1" = run ] || { echo "only make run is stood in for" >&2; return 2; }\n'
            '  local port=$DEFAULT_PORT\n'
            '  for arg in "${@:2}"; do case $arg in PORT=*) port=${arg#PORT=};; esac; done\n'
            + "".join(f"  {command}\n" for command in commands) + "}\n")


@dataclass
class Checkout:
    folder: Path
    env: dict[str, str]
    ports: dict[int, int]  # the README's port -> the one used here

    def run(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess:
        for printed, used in self.ports.items():
            script = script.replace(f"127.0.0.1:{printed}", f"127.0.0.1:{used}")
            script = script.replace(f"PORT={printed}", f"PORT={used}")
        preamble = f"DEFAULT_PORT={self.ports[5000]}\n" + make_run_function()
        return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", preamble + script],
                              cwd=self.folder, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def wait_for(self, port: int) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                log = self.folder / f"server-{port}.log"
                assert time.monotonic() < deadline, (
                    f"no server on {port}: {log.read_text() if log.exists() else ''}")
                time.sleep(0.1)


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Checkout]:
    folder = tmp_path / "muster"
    folder.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in (".flaskenv", ".git", "instance", ".env"):
            (folder / entry.name).symlink_to(entry)
    env = {name: os.environ[name] for name in KEPT if name in os.environ}
    # A's folder is the copy's instance/ (config.py's defaults would name the checkout's).
    instance = folder / "instance"
    env.update(DATABASE_URL=f"sqlite:///{instance / 'muster.db'}",
               MUSTER_INDEX_DIR=str(instance / "index"),
               MUSTER_FILES_DIR=str(instance / "files"),
               MUSTER_FEDERATION_DIR=str(instance / "federation"))
    made = subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), ".flaskenv"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=30)
    assert made.returncode == 0, made.stderr
    ports = {5000: free_port(), 5001: free_port()}
    try:
        yield Checkout(folder, env, ports)
    finally:
        pids = folder / "servers.pids"
        for pid in (pids.read_text().split() if pids.exists() else []):
            try:
                os.kill(int(pid), signal.SIGTERM)
            except ProcessLookupError:
                pass


def search_until(client: Http, words: str, wanted: str, seconds: float = 20) -> str:
    """The search page for ``words`` once it shows ``wanted`` (B's server indexes what
    the import logged in the background), or as it last was."""
    deadline = time.monotonic() + seconds
    while True:
        page = client.get(f"/search?q={quote(words)}")
        assert page.status == 200, page.text[:300]
        if wanted in page.text or time.monotonic() > deadline:
            return page.text
        time.sleep(0.3)


def csrf(client: Http) -> str:
    """The session's CSRF token (one per session: any form of the app carries it)."""
    token = CSRF_FIELD.search(client.get("/account").text)
    assert token, "no CSRF token on the account page"
    return token.group(1)


def record_effective(planner: Http, lesson_id: str) -> str:
    """As the README says a planner at B does, through B's pages: an exercise with AUS,
    started yesterday, the lesson attached, incorporated and recorded effective.
    Returns the exercise's id."""
    made = planner.send("POST", "/exercises/new", form={
        **exercise_form(lead_nation="AUS", nations=["AUS"], starts_on=day(-1)),
        "csrf_token": csrf(planner)})
    assert made.status == 302, made.text[:500]
    exercise_id = made.headers["location"].rstrip("/").rsplit("/", 1)[-1]
    steps = [(f"/exercises/{exercise_id}/attach?lesson={lesson_id}",
              {"purpose": "training_objective", "objective": "",
               "milestone": "initial_planning_conference", "note": ""})]
    steps += [(f"/exercises/{exercise_id}/lessons/{lesson_id}/step", {"to": to, "note": note})
              for to, note in (("accepted", ""), ("incorporated", ""),
                               ("effective", "The coalition network carried all planning."))]
    for path, form in steps:
        reply = planner.send("POST", path, form={**form, "csrf_token": csrf(planner)})
        assert reply.status == 302, (path, reply.text[:500])
    return exercise_id


def test_the_two_instance_walk_through_runs_as_printed(checkout: Checkout) -> None:
    blocks = section_blocks()
    assert len(blocks) == 6, [block.text[:40] for block in blocks]
    *by_file, online, pull_outcome, pull_decision = blocks
    outputs = []
    for block in by_file:
        result = checkout.run(block.text)
        assert result.returncode == 0, f"{block.text}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        outputs.append(result.stdout)
    exchange = outputs[-1]
    applied = re.search(r"bundle 1 from GBR-army applied: (\d+) new", exchange)
    assert applied and int(applied.group(1)) > 0, exchange
    assert "acknowledgement from AUS-army of bundle 1 recorded" in exchange
    assert (checkout.folder / "instance" / "aus" / "muster.db").exists()

    port_b = checkout.ports[5001]
    checkout.wait_for(checkout.ports[5000])
    checkout.wait_for(port_b)
    planner = Http(f"127.0.0.1:{port_b}").login("au.planner", PASSWORD)
    title = "Late OPTASK LINK kept a UK air defence battery off Link 16"
    assert title in search_until(planner, "OPTASK", title)
    # Released to GBR alone at A: never sent.
    page = search_until(planner, "EYES ONLY markings", "UK EYES ONLY", seconds=0)
    assert "UK EYES ONLY" not in page
    # B started empty: the demo's logins are A's, not B's.
    stranger = Http(f"127.0.0.1:{port_b}")
    form = stranger.get("/login").text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
    assert token, form[:300]
    refused = stranger.send("POST", "/login", form={
        "username": "gb.planner", "password": "demo", "csrf_token": token.group(1)})
    assert refused.status == 401, refused.text[:300]

    # Online: a lesson new at A (submitted there by import), pulled by B's sync in
    # terminal 3, whose gbr and aus the README defined there.
    functions = "\n".join(line for line in by_file[-1].text.splitlines()
                          if line.startswith(("gbr()", "aus()")))
    (checkout.folder / "new.jsonl").write_text(json.dumps(record(
        external_id="gb.analyst:walk-1", title="Kookaburrasync relay codes went stale",
        releasable_to=["AUS", "GBR"], status="submitted", actions=[])) + "\n")
    imported = checkout.run(f"{functions}\ngbr lessons import new.jsonl --as gb.analyst")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    synced = checkout.run(f"{functions}\n{online.text}")
    assert synced.returncode == 0, f"{online.text}\n{synced.stdout}\n{synced.stderr}"
    assert "bundle 2 from GBR-army applied: 1 new" in synced.stdout, synced.stdout
    title = "Kookaburrasync relay codes went stale"
    assert title in search_until(planner, "kookaburrasync", title)

    # And back: the README's lesson, effective in an exercise at B, pulled to A,
    # confirmed there by gb.analyst, and the confirmation pulled back to B.
    title = "Coalition network was built, but US staff kept working on SIPRNet"
    found = re.search(r'href="/lessons/([a-z0-9]+)"[^>]*>' + re.escape(title),
                      search_until(planner, "SIPRNet", title))
    assert found, "the README's lesson is not found at B"
    lesson_id = found.group(1)
    exercise_id = record_effective(planner, lesson_id)
    pulled = checkout.run(f"{functions}\n{pull_outcome.text}")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert "1 outcome(s) or request(s) received" in pulled.stdout, pulled.stdout
    analyst = Http(f"127.0.0.1:{checkout.ports[5000]}").login("gb.analyst")
    review = analyst.get("/lessons?tab=review").text
    item = re.search(r'action="/reviews/partner/([a-z0-9]+)"', review)
    assert item and "From partner instances" in review, review[:500]
    assert "Exercise SOUTHERN JACKAL 2027" in review
    confirmed = analyst.send("POST", f"/reviews/partner/{item.group(1)}", form={
        "decision": "confirm", "csrf_token": csrf(analyst)})
    assert confirmed.status == 302, confirmed.text[:300]
    back = checkout.run(f"{functions}\n{pull_decision.text}")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "1 decision(s) settled" in back.stdout, back.stdout
    page = planner.get(f"/exercises/{exercise_id}").text
    assert "lesson recorded as learned" in page, page[:500]
