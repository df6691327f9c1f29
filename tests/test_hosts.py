"""Several hosts on one database, each with its own index fed from the change log
(docs/ARCHITECTURE.md, section 6): a change made through either host is found through
both; the late-commit gap cannot skip a change; the log is pruned once every index has
applied it; a stopped host catches up when it starts; one that fell too far behind, or
follows another history (a restore), rebuilds.

A "host" here is an app with its own index folder and its own background indexer
thread (``lessons.search.indexer``), as two machines behind a load balancer would run.
Runs on SQLite and, with TEST_DATABASE_URL, PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from lessons import create_app, search
from lessons.extensions import db
from lessons.models import ChangeLog, Lesson, SearchIndex, User
from lessons.models.base import utcnow
from lessons.search import changelog, index, indexer
from lessons.services import lessons as service
from tests.conftest import lesson_fields, login
from tests.test_capture import form_data

VISIBLE_WITHIN = 1.0  # seconds: the promise for a change to reach every host's index


@dataclass
class Host:
    name: str
    app: Flask
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        """Start this host's indexer (as a serving process's standby thread would)."""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=indexer.serve, args=(self.app, self.stop),
                                       kwargs={"standby_seconds": 0.05}, daemon=True)
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
            assert not self.thread.is_alive(), f"{self.name}'s indexer did not stop"
            self.thread = None

    def client(self, username: str) -> FlaskClient:
        client = self.app.test_client()
        login(client, username)
        return client

    def status(self) -> search.IndexStatus:
        with self.app.app_context():
            return search.status()


@pytest.fixture
def make_host(app: Flask, database_url: str, tmp_path) -> Iterator[Callable[[str], Host]]:
    made: list[Host] = []

    def _make(name: str) -> Host:
        host = Host(name, create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                                     INDEX_DIR=str(tmp_path / f"index-{name}"),
                                     SEARCH_INDEXER="background", SEARCH_POLL_SECONDS=0.05))
        made.append(host)
        return host

    yield _make
    for host in made:
        host.halt()
        with host.app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def people(make_user) -> None:
    make_user("gb.author", "GBR")
    make_user("gb.an", "GBR", ("analyst",))


def found(client: FlaskClient, word: str) -> bool:
    page = client.get(f"/search?q={word}")
    assert page.status_code == 200, page.text
    return 'data-testid="total">0 lessons' not in page.text and word in page.text


def wait_until_found(client: FlaskClient, word: str, within: float) -> float:
    """Seconds until ``client`` finds ``word``; fails the test past ``within``."""
    started = time.monotonic()
    while not found(client, word):
        assert time.monotonic() - started < within, f"{word} not found within {within} s"
        time.sleep(0.02)
    return time.monotonic() - started


def create_through(client: FlaskClient, word: str) -> str:
    response = client.post("/lessons/new", data=form_data(
        action="submit", title=f"Coalition radio fill {word}"))
    assert response.status_code == 302, response.text
    return response.headers["Location"].rsplit("/", 1)[-1]


def test_a_lesson_created_through_either_host_is_found_through_both_within_a_second(
        people, make_host):
    hosts = [make_host("a"), make_host("b")]
    for host in hosts:
        with host.app.app_context():
            search.sync()  # each host's index exists, as on a host that has been serving
        host.start()
    readers = [host.client("gb.an") for host in hosts]
    for reader in readers:
        assert not found(reader, "zqhost0")  # each reader's searcher is open already
    for n, host in enumerate(hosts):
        word = f"zqhost{n}"
        create_through(host.client("gb.author"), word)
        for reader in readers:
            seconds = wait_until_found(reader, word, VISIBLE_WITHIN)
            print(f"created through {host.name}: visible after {seconds:.3f} s")
    for host in hosts:
        state = host.status()
        assert (state.state, state.pending) == ("ok", 0)


def test_a_request_only_commits_and_the_author_still_finds_their_change_at_once(
        people, make_host):
    """Read-your-writes: the indexer is slow here (it looks every 0.5 s), yet the author's
    next search on the host that served them waits for their own change."""
    host = make_host("a")
    host.app.config["SEARCH_POLL_SECONDS"] = 0.5
    with host.app.app_context():
        search.sync()  # the index exists and is registered before the indexer runs
    host.start()
    author = host.client("gb.author")
    for n in range(3):
        word = f"zqown{n}"
        create_through(author, word)
        assert found(author, word)


def test_with_no_indexer_running_a_request_leaves_the_index_alone(people, make_host):
    host = make_host("a")
    with host.app.app_context():
        search.sync()
    author = host.client("gb.author")
    create_through(author, "zqlater")
    assert host.status().pending == 1  # committed and logged; not applied by the request
    host.start()
    wait_until_found(author, "zqlater", VISIBLE_WITHIN)


class Paused:
    """Holds one transaction between taking its log number and committing."""

    def __init__(self, monkeypatch) -> None:
        self.taken = threading.Event()
        self.release = threading.Event()
        self.pause_thread: int | None = None
        original = changelog._take_numbers

        def take(session, count):
            last = original(session, count)
            if threading.get_ident() == self.pause_thread:
                self.taken.set()
                assert self.release.wait(30), "never released"
            return last

        monkeypatch.setattr(changelog, "_take_numbers", take)


def test_a_transaction_that_commits_late_is_never_skipped(app, people, make_host,
                                                          monkeypatch):
    """The classic gap: transaction A takes number n and commits after transaction B took
    a higher one. An indexer that moved past B's number would never apply A's change.
    Here B cannot take a number until A has committed, so the index always gets both."""
    host = make_host("a")
    with host.app.app_context():
        search.sync()
    slow, fast = {}, {}
    paused = Paused(monkeypatch)

    def write(title: str, out: dict, pause: bool) -> None:
        if pause:
            paused.pause_thread = threading.get_ident()
        with host.app.app_context():
            user = db.session.scalar(select(User).where(User.username == "gb.author"))
            lesson = service.create_lesson(user, lesson_fields(title=title))
            out["id"] = lesson.id
            out["number"] = changelog.last_written()
            out["done"] = time.monotonic()
            db.session.remove()

    a = threading.Thread(target=write, args=("Late commit zqslow", slow, True))
    a.start()
    assert paused.taken.wait(30)
    b = threading.Thread(target=write, args=("Early commit zqfast", fast, False))
    b.start()
    time.sleep(0.5)  # B is blocked now (the head row's lock, or SQLite's write lock)
    assert "done" not in fast
    with host.app.app_context():
        before = search.store().position().last_id
        assert index.apply_pending(search.store()) == 0  # neither A nor B committed yet
        assert search.store().position().last_id == before == changelog.head().last_id
    paused.release.set()
    a.join(timeout=30)
    b.join(timeout=30)
    assert slow["done"] <= fast["done"] and slow["number"] < fast["number"]
    with host.app.app_context():
        index.apply_pending(search.store())
        assert search.check().clean
    author = host.client("gb.author")
    assert found(author, "zqslow") and found(author, "zqfast")


def test_the_log_is_pruned_once_every_index_has_applied_it(app, people, make_host, make_lesson,
                                                           runner):
    a, b = make_host("a"), make_host("b")
    for host in (a, b):
        with host.app.app_context():
            search.sync()
    for n in range(3):
        make_lesson("gb.author", "draft", title=f"Pruned lesson {n}")
    with a.app.app_context():
        head = changelog.head().last_id
        assert search.sync() == 3
        pruned = search.prune()  # b has applied none of them: nothing goes
        assert (pruned.deleted, pruned.pruned_through) == (0, head - 3)
    with b.app.app_context():
        assert search.sync() == 3
    result = runner.invoke(args=["search", "status"])
    assert result.exit_code == 0, result.output
    # a, b and the test app's own index (it applied the lessons as it made them)
    assert result.output.count(f" {head:>10} {0:>8} ") == 3, result.output
    assert "index-a\n" in result.output and "index-b\n" in result.output
    result = runner.invoke(args=["search", "prune"])
    assert result.exit_code == 0 and f"pruned through {head}" in result.output, result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ChangeLog)) == 0
    make_lesson("gb.author", "draft", title="After the prune zqafter")
    for host in (a, b):
        with host.app.app_context():
            assert search.sync() == 1
            assert search.check().clean


def test_a_stopped_host_catches_up_when_it_starts(people, make_host):
    a, b = make_host("a"), make_host("b")
    for host in (a, b):
        with host.app.app_context():
            search.sync()
    a.start()
    author_a, reader_b = a.client("gb.author"), b.client("gb.an")
    for n in range(3):
        create_through(author_a, f"zqaway{n}")
    assert not found(reader_b, "zqaway0")
    assert b.status().pending == 3
    b.start()
    for n in range(3):
        wait_until_found(reader_b, f"zqaway{n}", 10)
    assert b.status().pending == 0


def test_an_index_that_fell_too_far_behind_rebuilds(app, people, make_host):
    a, b = make_host("a"), make_host("b")
    for host in (a, b):
        with host.app.app_context():
            search.sync()
    a.start()
    author_a, reader_b = a.client("gb.author"), b.client("gb.an")
    create_through(author_a, "zqgone0")
    with app.app_context():  # b has been away longer than the log keeps waiting for it
        db.session.execute(update(SearchIndex).where(SearchIndex.folder.like("%index-b"))
                           .values(seen_at=utcnow() - timedelta(days=30)))
        db.session.commit()
    wait_until_found(a.client("gb.an"), "zqgone0", 10)
    with a.app.app_context():
        pruned = search.prune()
        assert pruned.forgotten and pruned.deleted >= 1
        assert search.check().clean
    with b.app.app_context():
        with pytest.raises(search.IndexBehind, match="pruned past it"):
            search.sync()
        assert search.status().state == "behind"
    b.start()
    wait_until_found(reader_b, "zqgone0", 30)
    assert b.status().state == "ok" and b.status().pending == 0
    with b.app.app_context():
        assert search.check().clean


def test_after_a_restore_every_host_rebuilds_from_the_new_history(people, make_host,
                                                                  make_lesson):
    a, b = make_host("a"), make_host("b")
    make_lesson("gb.author", "submitted", title="Before the restore zqepoch")
    for host in (a, b):
        with host.app.app_context():
            search.sync()
    generation = b.status().generation
    with a.app.app_context():
        search.new_history()
        with pytest.raises(search.IndexBehind, match="another history"):
            search.sync()
    b.start()
    deadline = time.monotonic() + 30
    while b.status().generation == generation or b.status().state != "ok":
        assert time.monotonic() < deadline, "b never rebuilt"
        time.sleep(0.05)
    assert found(b.client("gb.an"), "zqepoch")


def test_one_indexer_per_host_and_a_standby_takes_over(people, make_host, database_url):
    a = make_host("a")
    twin = Host("a-twin", create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                                     INDEX_DIR=a.app.config["INDEX_DIR"],
                                     SEARCH_INDEXER="background", SEARCH_POLL_SECONDS=0.05))
    try:
        a.start()
        time.sleep(0.3)
        twin.start()  # another serving process on the same host: stands by
        author = a.client("gb.author")
        create_through(author, "zqfirst")
        wait_until_found(author, "zqfirst", 5)
        a.halt()  # the process holding the lock goes away
        create_through(twin.client("gb.author"), "zqsecond")
        wait_until_found(twin.client("gb.an"), "zqsecond", 5)
    finally:
        twin.halt()
        with twin.app.app_context():
            db.engine.dispose()


def test_the_worker_command_applies_and_reports(people, make_host, make_lesson):
    host = make_host("a")
    with host.app.app_context():
        search.sync()
    make_lesson("gb.author", "draft", title="Worker lesson zqworker")
    result = host.app.test_cli_runner().invoke(args=["search", "worker", "--once"])
    assert result.exit_code == 0 and "Applied 1 change(s)." in result.output, result.output
    with host.app.app_context():
        assert search.check().clean
        assert db.session.scalar(select(func.count()).select_from(Lesson)) == 1


def test_an_index_folder_copied_to_another_place_registers_as_an_index_of_its_own(
        people, make_host, make_lesson, tmp_path):
    import shutil

    a = make_host("a")
    make_lesson("gb.author", "submitted", title="Copied lesson zqcopy")
    with a.app.app_context():
        search.sync()
        original = search.store().index_id()
    shutil.copytree(a.app.config["INDEX_DIR"], tmp_path / "index-copy")
    copy = make_host("copy")
    copy.app.config["INDEX_DIR"] = str(tmp_path / "index-copy")
    with copy.app.app_context():
        search.sync()
        assert search.store().index_id() != original
        assert search.check().clean
    with a.app.app_context():
        assert search.store().index_id() == original
        assert len(changelog.registered()) == 3  # a, the copy and the test app's own
