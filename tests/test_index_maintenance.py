"""Index maintenance in another process (merges, reindex swaps) never breaks a search
here: Whoosh deletes the files a commit no longer references, so a searcher opened just
before would read files that are gone; they are kept until no searcher can need them.

The maintenance runs in a real ``python`` process over the test database and index
folder, as another server worker or ``flask search ...`` would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from sqlalchemy import select
from whoosh.query import Every

from lessons import search
from lessons.extensions import db
from lessons.models import User
from lessons.search import masks
from lessons.search.schema import FACETS

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120

# argv: database URL, index folder, what to do ("merge", "reindex", or "churn SECONDS":
# edit a lesson and merge every segment into one, over and over, for that long).
MAINTAIN_SCRIPT = textwrap.dedent("""
    import sys, time
    from sqlalchemy import select
    from lessons import create_app, search
    from lessons.extensions import db
    from lessons.models import Lesson, User
    from lessons.search.documents import lesson_document
    from lessons.services import lessons as service

    url, index_dir, what, *rest = sys.argv[1:]
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url, INDEX_DIR=index_dir)

    def merge_all():
        _, ix = search.store().open()
        writer = ix.writer(timeout=10)
        writer.commit(optimize=True)

    with app.app_context():
        if what == "merge":
            merge_all()
        elif what == "reindex":
            search.reindex()
        else:
            # As fast as commits go: an edit through the service first, then the same
            # lesson's document rewritten and every segment merged, over and over.
            author = db.session.scalar(select(User).where(User.username == "gb.author"))
            public_id = db.session.scalar(
                select(Lesson.public_id).where(Lesson.status == "draft"))
            lesson = service.update_lesson(author, public_id, {"unit": "Churned"})
            document = lesson_document(lesson)
            rounds, stop = 0, time.monotonic() + float(rest[0])
            while time.monotonic() < stop:
                _, ix = search.store().open()
                writer = ix.writer(timeout=10)
                writer.update_document(**document)
                writer.commit(optimize=rounds % 2 == 0)
                rounds += 1
            print(rounds, flush=True)
        db.session.remove()
        db.engine.dispose()
""")


def _maintain(app, database_url: str, *what: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MUSTER_ENV": "testing"}
    return subprocess.Popen(
        [sys.executable, "-W", "error", "-c", MAINTAIN_SCRIPT, database_url,
         app.config["INDEX_DIR"], *what],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> str:
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"maintenance did not finish:\n{out}\n{err}") from None
    assert process.returncode == 0, err
    assert not err, err
    return out


def _lessons(make_lesson, count: int) -> None:
    """``count`` lessons tagged "maintained", and a draft for the churn to edit."""
    for n in range(count):
        make_lesson("gb.author", "submitted", title=f"Maintained lesson zqm{n:03d}",
                    tags=["maintained"])
    make_lesson("gb.author", "draft", title="Churned draft")


def _answers(searcher, generation: str, count: int) -> None:
    """Everything a search reads from a segment, read through ``searcher``."""
    assert searcher.doc_count() == count
    ids = {int(searcher.stored_fields(n)["lesson_id"]) for n in range(searcher.doc_count_all())
           if not searcher.reader().is_deleted(n)}
    assert len(ids) == count
    assert len(searcher.search(Every(), limit=None)) == count
    leaves = masks.leaves(searcher, generation)
    for leaf in leaves:
        leaf.dates()
        for name in FACETS:
            leaf.facet(name)
    assert masks.popcount(leaf.term("tag", "maintained") for leaf in leaves) == count - 1


def test_a_searcher_opened_before_a_merge_and_a_reindex_elsewhere_keeps_answering(
        app, make_user, make_lesson, database_url, login_as):
    make_user("gb.author", "GBR")
    _lessons(make_lesson, 6)  # one small segment each: the merge replaces them all
    with app.app_context():
        _, ix = search.store().open()
        assert len(ix._segments()) > 1
        generation, searcher = search.store().searcher_with_generation()
        _finish(_maintain(app, database_url, "merge"))
        assert len(search.store().open()[1]._segments()) == 1
        _answers(searcher, generation, 7)

        generation, searcher = search.store().searcher_with_generation()
        _finish(_maintain(app, database_url, "reindex"))
        assert search.store().current_generation() != generation
        _answers(searcher, generation, 7)

    html = login_as("gb.author").get("/search?q=maintained").text
    assert 'data-testid="total">6 lessons' in html


def test_searches_over_http_while_another_process_commits_and_merges_never_fail(
        app, make_user, make_lesson, database_url, login_as):
    make_user("gb.author", "GBR")
    _lessons(make_lesson, 30)
    client = login_as("gb.author")
    assert 'data-testid="total">30 lessons' in client.get("/search?q=maintained").text
    failures: list[str] = []
    searches = 0
    churn = _maintain(app, database_url, "churn", "4")
    try:
        while churn.poll() is None:
            for url in ("/search?q=maintained", "/search?q=zqm007&sort=newest",
                        "/search?q=lesson&tag=maintained", "/search?q=*&sort=newest"):
                response = client.get(url)
                searches += 1
                if response.status_code != 200 or "lesson" not in response.text:
                    failures.append(f"{url}: {response.status_code}")
    finally:
        rounds = int(_finish(churn))
    print(f"{searches} searches over {rounds} commits and merges elsewhere")
    assert rounds >= 3 and searches >= 20
    assert failures == []


def test_many_threads_searching_while_segments_are_merged_elsewhere(
        app, make_user, make_lesson, database_url):
    """Threads keep their searchers between searches, as a threaded server's do."""
    make_user("gb.author", "GBR")
    _lessons(make_lesson, 20)
    errors: list[BaseException] = []
    searches: list[int] = []
    churn = _maintain(app, database_url, "churn", "3")

    def searching() -> None:
        with app.app_context():
            user = db.session.scalar(select(User).where(User.username == "gb.author"))
            while churn.poll() is None:
                try:
                    assert search.search_lessons(user, "maintained").total == 20
                    search.warm()
                    searches.append(1)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
                time.sleep(0.001)
            db.session.remove()

    threads = [threading.Thread(target=searching) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        _finish(churn)
    finally:
        for thread in threads:
            thread.join()
    assert errors == []
    assert searches, "no search ran while the other process was merging"


def test_segment_caches_stay_consistent_under_threads(app, make_user, make_lesson):
    """Threads that each see new segments (here: as many generations) add them to the
    process's segment cache while others prune it."""
    make_user("gb.author", "GBR")
    _lessons(make_lesson, 3)
    errors: list[BaseException] = []
    with app.app_context():
        _, searcher = search.store().searcher_with_generation()

        def hammer(name: str) -> None:
            try:
                for n in range(3000):
                    masks.leaves(searcher, f"{name}-{n}")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            threads = [threading.Thread(target=hammer, args=(f"t{i}",)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(interval)
    assert errors == []
