"""Several app processes share one index (docs/ARCHITECTURE.md, section 6): concurrent
writers lose nothing, and a searcher sees another process's commit on its next request.

Each writer is a real ``python`` process building its own app over the test database
and index folder, so the Whoosh writer lock, the SQLite busy timeout (or PostgreSQL's
row locks) and the change log are exercised across processes, not threads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sqlalchemy import func, select

from lessons import search
from lessons.extensions import db
from lessons.models import ChangeLog, Lesson, User

ROOT = Path(__file__).resolve().parent.parent
PER_PROCESS = 50
TIMEOUT = 120  # seconds a writer process may take before the test gives up on it

# argv: database URL, index folder, author, word prefix, how many, barrier file ("" = none).
# Prints "ready" once its app is built, waits for the barrier file, creates and submits the
# lessons through the service (one commit and one index apply each), then prints when its
# first and last lesson were written and how many index applies were deferred (writer lock
# busy, or a database error): those changes stay queued for the next apply in either process.
WRITER_SCRIPT = textwrap.dedent("""
    import logging, os, sys, time
    from sqlalchemy import select
    from lessons import create_app
    from lessons.extensions import db
    from lessons.models import User
    from lessons.services import lessons as service
    from tests.conftest import lesson_fields

    url, index_dir, author, prefix, count, barrier = sys.argv[1:7]
    deferred = []

    class Deferred(logging.Handler):
        def emit(self, record):
            deferred.append(record.exc_info[0].__name__ if record.exc_info else "?")

    logging.getLogger("lessons.search.index").addHandler(Deferred())
    logging.getLogger("lessons.search.index").propagate = False
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url, INDEX_DIR=index_dir)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == author))
        print("ready", flush=True)
        while barrier and not os.path.exists(barrier):
            time.sleep(0.005)
        first = time.time()
        for n in range(int(count)):
            service.create_lesson(user, lesson_fields(
                title=f"Concurrent lesson {prefix}{n:03d}",
                tags=["concurrent"]), submit=True)
        last = time.time()
        db.session.remove()
        db.engine.dispose()
    print(first, last, len(deferred), *sorted(set(deferred)), flush=True)
""")


def _start_writer(app, database_url: str, author: str, prefix: str, count: int,
                  barrier: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MUSTER_ENV": "testing"}
    # -W error, as pytest's filterwarnings: a warning fails the writer as it would fail a
    # test (one raised in a finaliser only prints, but _finish requires an empty stderr).
    return subprocess.Popen(
        [sys.executable, "-W", "error", "-c", WRITER_SCRIPT, database_url,
         app.config["INDEX_DIR"], author, prefix, str(count), str(barrier or "")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> list[str]:
    """Wait for ``process``; assert it succeeded quietly; return its last line's fields."""
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"writer did not finish in {TIMEOUT} s:\n{out}\n{err}") from None
    assert process.returncode == 0, err
    assert not err, err
    return out.split()


def _found(app, username: str, text: str) -> tuple[int, list[str]]:
    """The total and the hits' titles ``username`` gets for ``text``."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        page = search.search_lessons(user, text)
        return page.total, [hit.lesson.title for hit in page.hits]


def test_two_processes_writing_at_once_leave_a_clean_index_that_finds_every_lesson(
        app, make_user, database_url, runner, tmp_path):
    make_user("gb.author", "GBR")
    make_user("us.author", "USA")
    barrier = tmp_path / "go"
    writers = {
        author: _start_writer(app, database_url, author, prefix, PER_PROCESS, barrier)
        for author, prefix in (("gb.author", "zqa"), ("us.author", "zqb"))
    }
    try:
        for process in writers.values():
            assert process.stdout.readline().strip() == "ready"
        started = time.perf_counter()
        barrier.touch()  # both are built and waiting: release them together
        outputs = {author: _finish(process) for author, process in writers.items()}
    finally:
        for process in writers.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    elapsed = time.perf_counter() - started
    spans = [(float(out[0]), float(out[1])) for out in outputs.values()]
    assert max(first for first, _ in spans) < min(last for _, last in spans), "no overlap"
    deferred = {author: out[2:] for author, out in outputs.items()}
    print(f"two writers, {2 * PER_PROCESS} lessons in {elapsed:.1f} s; deferred: {deferred}")

    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Lesson)) == 2 * PER_PROCESS
        if any(int(out[0]) for out in deferred.values()):
            # An apply deferred by a busy writer leaves its change in the log, and the
            # next apply in either process takes everything after the index's position;
            # only when the very last apply was deferred does a change still wait, and
            # then `search sync` is the promised repair. Either way nothing may be lost:
            # whatever the index lacks must still be after its position.
            drift = search.check()
            position = search.store().position().last_id
            queued = set(db.session.scalars(select(ChangeLog.lesson_id)
                                            .where(ChangeLog.id > position)))
            assert set(drift.missing) | set(drift.stale) <= queued and not drift.extra, drift
            result = runner.invoke(args=["search", "sync"])
            assert result.exit_code == 0, result.output
    # Otherwise no repair at all: the writers' own applies left the index in step.
    result = runner.invoke(args=["search", "check"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert search.status().pending == 0
    for author, prefix in (("gb.author", "zqa"), ("us.author", "zqb")):
        assert _found(app, author, "concurrent")[0] == PER_PROCESS
        for n in range(PER_PROCESS):
            word = f"{prefix}{n:03d}"
            assert _found(app, author, word) == (1, [f"Concurrent lesson {word}"])


def test_a_searcher_sees_another_processs_commit_on_its_next_request(
        app, make_user, make_lesson, database_url, login_as):
    make_user("gb.author", "GBR")
    make_lesson("gb.author", "submitted", title="Concurrent lesson zqc000")
    client = login_as("gb.author")
    # Open this thread's searcher (the test client serves requests on this thread too).
    assert _found(app, "gb.author", "concurrent") == (1, ["Concurrent lesson zqc000"])
    assert "Concurrent lesson zqc000" in client.get("/search?q=concurrent").text

    _finish(_start_writer(app, database_url, "gb.author", "zqd", 1))
    # No sleep and no refresh: the next search notices the new commit by itself...
    assert _found(app, "gb.author", "zqd000") == (1, ["Concurrent lesson zqd000"])
    assert _found(app, "gb.author", "concurrent")[0] == 2

    _finish(_start_writer(app, database_url, "gb.author", "zqe", 1))
    # ...and so does the next request of the search page.
    html = client.get("/search?q=zqe000").text
    assert "Concurrent lesson zqe000" in html
    assert 'data-testid="total">1 lesson' in html
