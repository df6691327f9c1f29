"""The index follows the database: the change log applied after commit, repaired by sync,
rebuilt by reindex, drift reported by check."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from whoosh import index as whoosh_index

from lessons import search
from lessons.extensions import db
from lessons.models import ChangeLog, Lesson, User
from lessons.services import lessons as service

ROOT = Path(__file__).resolve().parent.parent


def _indexed(app) -> dict[int, int]:
    """lesson id -> indexed version, read straight from the live generation."""
    with app.app_context():
        _, ix = search.store().open()
        with ix.searcher() as searcher:
            return {int(f["lesson_id"]): f["version"] for f in searcher.all_stored_fields()}


def _found(app, username: str, text: str) -> list[str]:
    """Public ids of every lesson ``username`` finds with ``text``."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        ids = search.matching_ids(user, text)
        return list(db.session.scalars(select(Lesson.public_id).where(Lesson.id.in_(ids))))


def test_each_committed_change_is_indexed_at_its_version(app, make_user, make_lesson):
    make_user("gb.author", "GBR")
    make_user("gb.an", "GBR", ("analyst",))
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    with app.app_context():
        row = db.session.scalar(select(Lesson).where(Lesson.public_id == lesson.public_id))
        assert _indexed(app) == {row.id: row.version}
        assert search.status().pending == 0
        assert search.check().clean


def test_a_lock_timeout_leaves_the_change_queued_and_sync_repairs_it(app, make_user,
                                                                     make_lesson, runner):
    make_user("gb.author", "GBR")
    lesson = make_lesson("gb.author", "draft", title="Before the outage")
    with app.app_context():
        _, ix = search.store().open()
        blocker = ix.writer()  # another writer holds the only lock
        try:
            user = db.session.scalar(select(User).where(User.username == "gb.author"))
            service.update_lesson(user, lesson.public_id, {"title": "Radio crypto fill"})
        finally:
            blocker.cancel()
        assert search.status().pending == 1
        drift = search.check()
        assert drift.stale and drift.pending == 1
    assert _found(app, "gb.author", "crypto") == []
    result = runner.invoke(args=["search", "check"])
    assert result.exit_code == 1 and "waiting to be applied" in result.output
    result = runner.invoke(args=["search", "sync"])
    assert result.exit_code == 0 and "Applied 1 pending change(s)." in result.output
    assert _found(app, "gb.author", "crypto") == [lesson.public_id]
    assert runner.invoke(args=["search", "check"]).exit_code == 0


def test_the_next_apply_also_repairs_an_earlier_failure(app, make_user, make_lesson):
    make_user("gb.author", "GBR")
    first = make_lesson("gb.author", "draft", title="First")
    with app.app_context():
        _, ix = search.store().open()
        blocker = ix.writer()
        try:
            user = db.session.scalar(select(User).where(User.username == "gb.author"))
            service.update_lesson(user, first.public_id, {"title": "Interpreter shortage"})
        finally:
            blocker.cancel()
    make_lesson("gb.author", "draft", title="Second")  # its apply carries the first along
    assert _found(app, "gb.author", "interpreter") == [first.public_id]
    with app.app_context():
        assert search.check().clean


def test_a_rolled_back_change_never_reaches_the_index(app, make_user, make_lesson):
    make_user("gb.author", "GBR")
    lesson = make_lesson("gb.author", "draft", title="Original title")
    with app.app_context():
        row = db.session.scalar(select(Lesson).where(Lesson.public_id == lesson.public_id))
        row.title = "Leaked secret word zanzibar"
        row.version += 1
        db.session.flush()
        search.queue_lesson(row)
        db.session.rollback()
        assert search.sync() == 0
        assert search.check().clean
    assert _found(app, "gb.author", "zanzibar") == []


def test_a_refused_request_queues_nothing(app, make_user, make_lesson, login_as):
    make_user("gb.author", "GBR")
    lesson = make_lesson("gb.author", "draft")
    with app.app_context():
        logged = db.session.scalar(select(func.count()).select_from(ChangeLog))
    client = login_as("gb.author")
    response = client.post(f"/lessons/{lesson.public_id}/edit",
                           data={"title": "x" * 301, "observation": "o", "kind": "lesson",
                                 "classification": "UNCLASSIFIED", "version": "1"})
    assert response.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ChangeLog)) == logged
        assert search.check().clean


def test_narrowing_rel_to_removes_the_lesson_from_other_nations_results_at_once(
        app, make_user, make_lesson, login_as):
    make_user("gb.author", "GBR")
    make_user("gb.an", "GBR", ("analyst",))
    make_user("au.user", "AUS")
    lesson = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["FVEY"],
                         title="Bowser coupling mismatch")
    au = login_as("au.user")
    assert lesson.public_id in au.get("/search?q=bowser").text
    assert '<p class="total" data-testid="total">1 lesson found' in au.get(
        "/search?q=bowser").text
    analyst = login_as("gb.an")
    response = analyst.post(f"/lessons/{lesson.public_id}/edit", data={
        "title": "Bowser coupling mismatch", "observation": "o", "recommendation": "r",
        "kind": "lesson", "classification": "UNCLASSIFIED", "releasable_to": ["GBR"],
        "version": str(lesson.version)})
    assert response.status_code == 302
    page = au.get("/search?q=bowser").text
    assert lesson.public_id not in page
    assert "0 lessons found" in page


def test_reindex_rebuilds_swaps_and_reports_clean(app, make_user, make_lesson, runner):
    make_user("gb.author", "GBR")
    for n in range(3):
        make_lesson("gb.author", "draft", title=f"Lesson {n}")
    with app.app_context():
        old_generation = search.store().current_generation()
    result = runner.invoke(args=["search", "reindex"])
    assert result.exit_code == 0, result.output
    assert "Indexed 3 lessons" in result.output
    with app.app_context():
        assert search.store().current_generation() != old_generation
        assert search.check().clean
    assert len(_found(app, "gb.author", "lesson")) == 3


def test_check_reports_a_lesson_missing_from_the_index(app, make_user, make_lesson, runner):
    make_user("gb.author", "GBR")
    lesson = make_lesson("gb.author", "draft")
    with app.app_context():
        row = db.session.scalar(select(Lesson).where(Lesson.public_id == lesson.public_id))
        generation, ix = search.store().open()
        with ix.writer() as writer:
            writer.delete_by_term("lesson_id", str(row.id))
    result = runner.invoke(args=["search", "check"])
    assert result.exit_code == 1
    assert "1 lesson(s) missing from the index" in result.output


WRITER_SCRIPT = textwrap.dedent("""
    import sys
    from sqlalchemy import select
    from lessons import create_app
    from lessons.extensions import db
    from lessons.models import User
    from lessons.services import lessons as service

    app = create_app("testing", SQLALCHEMY_DATABASE_URI=sys.argv[1], INDEX_DIR=sys.argv[2],
                     SEARCH_WRITER_TIMEOUT=30.0)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "gb.author"))
        for n in range(int(sys.argv[3])):
            service.create_lesson(user, {"title": f"Concurrent lesson {n}",
                                         "observation": "Written during a reindex."})
            if n == 0:
                print("started", flush=True)
""")


def test_reindex_while_another_process_writes_loses_nothing(app, make_user, make_lesson,
                                                            database_url):
    make_user("gb.author", "GBR")
    for n in range(40):
        make_lesson("gb.author", "draft", title=f"Existing lesson {n}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, database_url, app.config["INDEX_DIR"], "30"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reindexes = 0
    try:
        assert writer.stdout.readline().strip() == "started"
        with app.app_context():
            # Rebuild again and again for as long as the other process is writing.
            while writer.poll() is None or reindexes < 2:
                search.reindex()
                reindexes += 1
    finally:
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    with app.app_context():
        search.sync()
        drift = search.check()
        assert drift.clean, drift
        assert db.session.scalar(select(func.count()).select_from(Lesson)) == 70
    assert len(_found(app, "gb.author", "concurrent")) == 30
    assert len(_found(app, "gb.author", "lesson")) == 70


def test_old_generations_are_pruned(app, make_user, make_lesson):
    make_user("gb.author", "GBR")
    make_lesson("gb.author", "draft")
    with app.app_context():
        for _ in range(4):
            search.reindex()
        generations = sorted(p.name for p in search.store().root.glob("gen-*"))
        assert len(generations) == 2
        assert search.store().current_generation() in generations
        assert whoosh_index.exists_in(str(search.store().root / generations[-1]))


@pytest.mark.parametrize("procs", [1, 2])
def test_reindex_in_segments_and_processes_finds_everything(app, make_user, make_lesson,
                                                           monkeypatch, procs):
    from lessons.search import index as index_module

    make_user("gb.author", "GBR")
    for n in range(12):
        make_lesson("gb.author", "draft", title=f"Segmented lesson number{n}")
    # A pool this small makes a new segment every few lessons.
    monkeypatch.setattr(index_module, "REINDEX_POOL_MB", 0.002)
    app.config["SEARCH_REINDEX_PROCS"] = procs
    with app.app_context():
        report = search.reindex()
        assert report.documents == 12
        generation, ix = search.store().open()
        assert len(ix._segments()) >= 3
        assert search.check().clean
    assert len(_found(app, "gb.author", "segmented")) == 12
    assert len(_found(app, "gb.author", "number7")) == 1


def test_an_index_from_an_older_schema_is_reported_for_rebuilding(app, make_user, make_lesson,
                                                                 runner):
    from lessons.search.index import SCHEMA_FILE

    make_user("gb.author", "GBR")
    make_lesson("gb.author", "draft")
    with app.app_context():
        generation, _ = search.store().open()
        (search.store().root / generation / SCHEMA_FILE).write_text("1", "utf-8")
        assert search.check().schema_outdated
    result = runner.invoke(args=["search", "check"])
    assert result.exit_code == 1 and "older version of Muster" in result.output
    assert runner.invoke(args=["search", "reindex"]).exit_code == 0
    assert runner.invoke(args=["search", "check"]).exit_code == 0


def test_warm_up_reads_every_segment_once(app, make_user, make_lesson):
    from lessons.search import masks

    make_user("gb.author", "GBR")
    make_lesson("gb.author", "draft", tags=["warm-tag"])
    with app.app_context():
        search.warm()
        generation, searcher = search.store().searcher_with_generation()
        for leaf in masks.leaves(searcher, generation):
            assert set(leaf.masks.facets) == set(search.FACETS)
            assert leaf.masks.dates is not None
            assert {"title", "content"} <= set(leaf.masks.lengths)
        assert any("warm-tag" in leaf.masks.facets["tag"]
                   for leaf in masks.leaves(searcher, generation))


def test_serving_warms_the_index_in_the_background_at_the_first_request(app, make_user,
                                                                        make_lesson,
                                                                        monkeypatch):
    from lessons import create_app

    calls = []
    monkeypatch.setattr(search, "warm", lambda: calls.append(1))
    served = create_app("testing", SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
                        INDEX_DIR=app.config["INDEX_DIR"], SEARCH_WARM_UP=True)
    client = served.test_client()
    client.get("/login")
    client.get("/login")
    for _ in range(100):
        if calls:
            break
        time.sleep(0.02)
    assert calls == [1]
    with served.app_context():
        db.engine.dispose()


def test_segment_names_do_not_repeat_when_random_is_reseeded(app, make_user, make_lesson):
    """Forked workers share ``random``'s state, and test tools reseed it: the index must
    not draw a live segment's name again (it would overwrite that segment's files)."""
    import random

    from lessons import search

    make_user("seed.author", "GBR", ("contributor",))
    ids = []
    for title in ("Reseeded lesson alpha", "Reseeded lesson bravo", "Reseeded lesson charlie"):
        random.seed(1944)
        ids.append(make_lesson("seed.author", "draft", title=title).public_id)
    with app.app_context():
        drift = search.check()
        assert not (drift.missing or drift.stale or drift.extra or drift.pending)
        names = [segment.segment_id() for segment in search.store().open()[1]._segments()]
        assert len(names) == len(set(names))


def _segment_sizes(app) -> list[int]:
    with app.app_context():
        return [s.doc_count_all() for s in search.store().open()[1]._segments()]


def test_edits_leave_merging_small_segments_until_after_the_response(
        app, make_user, make_lesson, login_as, monkeypatch):
    """Each edit commits one small segment. Merging them is due every few edits; it runs
    when the server closes the response, so the edit that made it due does not wait."""
    from lessons.search import index as search_index
    from tests.test_capture import form_data

    # (Whoosh's MERGE_SMALL merges from five segments up.)
    monkeypatch.setattr(search_index, "MAX_SEGMENTS_UNMERGED", 5)
    make_user("gb.author", "GBR")
    lesson = make_lesson("gb.author", "draft")
    client = login_as("gb.author")
    responses = []
    for word in ("alpha", "bravo", "charlie", "delta", "echo"):
        responses.append(client.post(f"/lessons/{lesson.public_id}/edit",
                                     data=form_data(observation=f"Edit {word} wins.",
                                                    version=str(len(responses) + 1))))
        assert responses[-1].status_code == 302
    before = _segment_sizes(app)
    assert sum(1 for size in before if size < search_index.SMALL_SEGMENT_DOCS) >= 5
    for response in responses:
        response.close()  # what the WSGI server does once the response is sent
    after = _segment_sizes(app)
    assert len(after) < len(before)
    assert _found(app, "gb.author", "echo") == [lesson.public_id]
    assert _found(app, "gb.author", "delta") == []
    with app.app_context():
        assert search.check().clean


def test_small_segments_piled_up_are_merged_by_the_next_commit(app, make_user, make_lesson,
                                                               monkeypatch):
    """Where no response is ever closed (a client that hangs on), commits merge the pile."""
    from lessons.search import index as search_index

    monkeypatch.setattr(search_index, "MAX_SEGMENTS_UNMERGED", 100)  # never after a response
    monkeypatch.setattr(search_index, "MAX_SEGMENTS_PILED_UP", 6)
    make_user("gb.author", "GBR")
    counts = []
    for k in range(8):
        make_lesson("gb.author", "draft", title=f"Pile {k}")
        counts.append(len(_segment_sizes(app)))
    assert counts[:6] == [1, 2, 3, 4, 5, 6]
    assert max(counts) <= 7 and counts[-1] < 6
    assert len(_found(app, "gb.author", "pile")) == 8


def test_sync_merges_small_segments(app, make_user, make_lesson, runner, monkeypatch):
    from lessons.search import index as search_index

    monkeypatch.setattr(search_index, "MAX_SEGMENTS_PILED_UP", 100)
    make_user("gb.author", "GBR")
    with app.test_request_context():  # a request whose response never closes
        for k in range(6):
            make_lesson("gb.author", "draft", title=f"Unmerged {k}")
    monkeypatch.setattr(search_index, "MAX_SEGMENTS_UNMERGED", 5)
    assert len(_segment_sizes(app)) == 6
    result = runner.invoke(args=["search", "sync"])
    assert result.exit_code == 0, result.output
    assert len(_segment_sizes(app)) < 6
    assert len(_found(app, "gb.author", "unmerged")) == 6


def test_a_merge_leaves_a_busy_writer_alone(app, make_user, make_lesson, monkeypatch):
    """After a response, a merge must not hold the server's worker waiting for the lock."""
    from lessons.search import index as search_index

    monkeypatch.setattr(search_index, "MAX_SEGMENTS_UNMERGED", 5)
    monkeypatch.setattr(search_index, "MERGE_WRITER_TIMEOUT", 0.1)
    make_user("gb.author", "GBR")
    with app.test_request_context():  # a request whose response never closes
        for k in range(6):
            make_lesson("gb.author", "draft", title=f"Waiting {k}")
    with app.app_context():
        store = search.store()
        blocker = store.open()[1].writer()
        try:
            started = time.perf_counter()
            assert store.merge_small() is False
            assert time.perf_counter() - started < 2
        finally:
            blocker.cancel()
        assert len(_segment_sizes(app)) == 6
        assert store.merge_small() is True
    assert len(_segment_sizes(app)) < 6


def test_writing_a_segment_looks_up_each_missing_length_column_once(tmp_path, monkeypatch):
    """Whoosh asks for a field's length column once per posting while writing a segment;
    ids and unscored keywords have none, and each ask used to be a file system look-up."""
    from whoosh import index as whoosh_index
    from whoosh.filedb.filestore import FileStorage

    from lessons.search import index  # noqa: F401 - installs the fix
    from lessons.search.schema import build_schema

    ix = whoosh_index.create_in(str(tmp_path), build_schema())
    writer = ix.writer()
    for n in range(200):
        writer.add_document(lesson_id=str(n), kind="observation", status="validated",
                            tag="convoy,fuel", nation="GBR", releasable_to="fvey",
                            title=f"Convoy {n}", content="Fuel convoys waited at the border.")
    looked_up: list[str] = []
    real = FileStorage.file_exists

    def counting(self, name):
        looked_up.append(name)
        return real(self, name)

    monkeypatch.setattr(FileStorage, "file_exists", counting)
    writer.commit()
    assert 0 < len(looked_up) < 50  # a few per field, not one per posting (1,400 here)
