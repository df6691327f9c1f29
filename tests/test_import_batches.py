"""`flask lessons import` stores a checked file in batches: each batch commits its lessons,
their audit records and their index queue rows together and is searchable at once; a
file with a bad line stores nothing; an import that fails midway keeps the batches before
(stored and found by search), stores nothing of the failing one, says so, and running
the same file again is safe."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from lessons import search
from lessons.extensions import db
from lessons.models import AuditRecord, Lesson, User
from lessons.services import exchange

TOTAL = re.compile(r'data-testid="total">(\d+) lesson')
# Every line's title holds this word, and its number: a search counts what landed.
WORD = "quokka"
# And a word of its own (digits alone are no search words).
NAMES = ("", "aardvark", "badger", "cheetah", "dingo", "emu", "ferret", "gecko", "hyena",
         "ibis", "jackal")


def record(n: int, **overrides) -> dict:
    """Line ``n``: a validated GBR lesson releasable to FVEY (AUS users may find it)."""
    data = {
        "external_id": f"gb.an:BATCH-{n:03d}",
        "title": f"Convoy {WORD} lesson of the {NAMES[n]}",
        "observation": "Fuel convoys waited at the border crossing for permits.",
        "discussion": "Permits took three days.",
        "conclusion": "Permits must be requested before the move.",
        "recommendation": "Request crossing permits at the planning conference.",
        "tags": ["convoy", f"batch-tag-{n % 3}"],
        "nations": ["GBR"],
        "originator_nation": "GBR",
        "releasable_to": ["FVEY"],
        "status": "validated",
    }
    data.update(overrides)
    return data


def write(path: Path, items: list) -> Path:
    path.write_text("".join((i if isinstance(i, str) else json.dumps(i)) + "\n"
                            for i in items), "utf-8")
    return path


@pytest.fixture
def people(make_user):
    make_user("gb.op", "GBR", ("contributor", "analyst", "admin"))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("au.user", "AUS", ("contributor",))


def run(runner, path: Path, *extra: str, migration: bool = True):
    who = ["--as", "gb.op", "--as-migration"] if migration else ["--as", "gb.an"]
    return runner.invoke(args=["lessons", "import", str(path), *who, *extra])


def stored_ids(app) -> list[str]:
    with app.app_context():
        return sorted(db.session.scalars(select(Lesson.external_id)))


def found_by_search(login_as, query: str = WORD) -> int:
    """How many lessons an AUS contributor finds on the search page."""
    response = login_as("au.user").get(f"/search?q={query}")
    assert response.status_code == 200
    match = TOTAL.search(response.text)
    return int(match[1]) if match else 0


def audit_actions(app, action: str) -> list[AuditRecord]:
    with app.app_context():
        return list(db.session.scalars(select(AuditRecord).where(AuditRecord.action == action)
                                       .order_by(AuditRecord.id)))


@pytest.fixture
def fail_at(monkeypatch):
    """Make the store step fail on the k-th lesson it queues for the index (a disk full,
    a dropped connection): ``fail_at(k)``; ``fail_at(None)`` heals it."""
    real = search.queue_lesson

    def arm(k: int | None) -> None:
        calls = {"n": 0}

        def queue(lesson: Lesson) -> None:
            calls["n"] += 1
            if calls["n"] == k:
                raise RuntimeError("the disk is full (injected)")
            real(lesson)

        monkeypatch.setattr(search, "queue_lesson", queue if k is not None else real)

    return arm


def test_each_batch_commits_on_its_own(app, runner, people, tmp_path, fail_at, login_as):
    """Batch size 2, five lines, a failure on the fifth lesson (the third batch): the
    first two batches stay, four lessons, and search finds them."""
    fail_at(5)
    result = run(runner, write(tmp_path / "in.jsonl", [record(n) for n in range(1, 6)]),
                 "--batch-size", "2")
    assert result.exit_code == 1, result.output
    assert stored_ids(app) == [f"gb.an:BATCH-{n:03d}" for n in range(1, 5)]
    assert found_by_search(login_as) == 4
    assert "4 lesson(s) were stored in 2 batch(es)" in result.output


def test_a_crash_midway_keeps_whole_batches_indexed_and_a_rerun_is_safe(
        app, runner, people, tmp_path, fail_at, login_as):
    path = write(tmp_path / "in.jsonl", [record(n) for n in range(1, 9)])
    fail_at(7)  # the first lesson of the third batch of three
    result = run(runner, path, "--batch-size", "3")
    assert result.exit_code == 1
    assert "error: the import stopped at lines 7-8: the disk is full (injected)" in result.output
    assert ("6 lesson(s) were stored in 2 batch(es) before it stopped (6 new, 0 updated, "
            "0 unchanged) and are searchable; nothing from line 7 on was stored."
            ) in result.output
    assert "Running the same file again is safe" in result.output
    assert "no external_id" not in result.output
    # Batches 1 and 2 are stored, audited and found; nothing of batch 3 is.
    assert stored_ids(app) == [f"gb.an:BATCH-{n:03d}" for n in range(1, 7)]
    assert found_by_search(login_as) == 6
    assert found_by_search(login_as, "ferret") == 1 and found_by_search(login_as, "gecko") == 0
    assert len(audit_actions(app, "imported")) == 6
    (run_record,) = audit_actions(app, "import")
    assert run_record.comment == (
        "command line: stopped midway, 2 batch(es) stored, the rest not: lines 7-8: the "
        "disk is full (injected); 6 created, 0 updated, 0 unchanged, 0 line(s) rejected; "
        "as migration")
    with app.app_context():
        assert search.check().clean

    fail_at(None)
    again = run(runner, path, "--batch-size", "3")
    assert again.exit_code == 0, again.output
    assert "Imported 2 new, 0 updated, 6 unchanged; 0 line(s) rejected." in again.output
    assert stored_ids(app) == [f"gb.an:BATCH-{n:03d}" for n in range(1, 9)]
    assert found_by_search(login_as) == 8
    with app.app_context():
        versions = set(db.session.scalars(select(Lesson.version)))
        assert versions == {1}  # the six already stored were not touched
        assert search.check().clean
    assert len(audit_actions(app, "imported")) == 8
    assert audit_actions(app, "import")[-1].comment.startswith("command line: stored; 2 created")


def test_lines_without_an_external_id_are_named_in_the_stop_message(
        app, runner, people, tmp_path, fail_at):
    fail_at(3)
    result = run(runner, write(tmp_path / "in.jsonl", [
        record(1, external_id=None), record(2), record(3)]), "--batch-size", "2")
    assert result.exit_code == 1
    assert ("But 1 stored line(s) have no external_id: they would be stored again as new "
            "lessons") in result.output
    assert len(stored_ids(app)) == 2


def test_a_failure_in_the_first_batch_stores_nothing_and_says_so(
        app, runner, people, tmp_path, fail_at):
    fail_at(2)
    result = run(runner, write(tmp_path / "in.jsonl", [record(n) for n in range(1, 4)]),
                 "--batch-size", "2")
    assert result.exit_code == 1
    assert "0 lesson(s) were stored in 0 batch(es)" in result.output
    assert stored_ids(app) == [] and audit_actions(app, "imported") == []
    assert "stopped midway, 0 batch(es) stored" in audit_actions(app, "import")[0].comment


@pytest.mark.parametrize("bad,reason", [
    ("{not json", "invalid JSON"),
    (json.dumps(record(9, title="")), "title: Required"),
    (json.dumps(record(9, originator_nation="USA")), "you may import lessons of GBR only"),
    (json.dumps(record(9, status="learned")), "is not a move you may make by import"),
])
def test_a_bad_line_in_a_late_batch_rejects_the_whole_file(app, runner, people, tmp_path,
                                                           login_as, bad, reason):
    """Checked as a whole before anything is stored: format, fields, the policy and the
    status walk (an analyst's own import, not a migration)."""
    # An analyst submits their own lessons by import; validating them is another's job.
    items = [record(n, status="submitted") for n in range(1, 6)] + [bad]
    result = run(runner, write(tmp_path / "in.jsonl", items), "--batch-size", "2",
                 migration=False)
    assert result.exit_code == 1, result.output
    assert "error: line 6:" in result.output and reason in result.output
    assert "Nothing imported: 1 line(s) rejected" in result.output
    assert stored_ids(app) == [] and found_by_search(login_as) == 0
    (run_record,) = audit_actions(app, "import")
    assert "refused, nothing stored" in run_record.comment


def test_skip_invalid_stores_the_good_lines_in_batches(app, runner, people, tmp_path,
                                                       login_as):
    items = [record(1, status="submitted"), "[1]", record(2, status="submitted"),
             record(3, status="submitted"), record(4, title="", status="submitted")]
    result = run(runner, write(tmp_path / "in.jsonl", items), "--batch-size", "2",
                 "--skip-invalid", migration=False)
    assert result.exit_code == 0, result.output
    assert "Imported 3 new, 0 updated, 0 unchanged; 2 line(s) rejected." in result.output
    assert found_by_search(login_as) == 3
    (run_record,) = audit_actions(app, "import")
    assert run_record.comment == ("command line: stored; 3 created, 0 updated, 0 unchanged, "
                                  "2 line(s) rejected")


def test_an_analysts_batched_import_keeps_every_behaviour(app, runner, people, tmp_path):
    """Policy walks, audit records per lesson and version bumps, batch after batch (the
    analyst submits their own lessons: validating them is another analyst's move)."""
    path = write(tmp_path / "in.jsonl", [record(n, status="submitted") for n in range(1, 6)])
    assert run(runner, path, "--batch-size", "2", migration=False).exit_code == 0
    changed = write(tmp_path / "changed.jsonl",
                    [record(n, status="submitted", discussion=f"Permits took {n} days.")
                     if n % 2 else record(n, status="submitted") for n in range(1, 6)])
    result = run(runner, changed, "--batch-size", "2", migration=False)
    assert "Imported 0 new, 3 updated, 2 unchanged" in result.output, result.output
    with app.app_context():
        lessons = {lesson.external_id: lesson for lesson in db.session.scalars(select(Lesson))}
        assert {n: lessons[f"gb.an:BATCH-{n:03d}"].version for n in range(1, 6)} == {
            1: 2, 2: 1, 3: 2, 4: 1, 5: 2}
        author = db.session.scalar(select(User).where(User.username == "gb.an"))
        assert {lesson.author_id for lesson in lessons.values()} == {author.id}
        assert lessons["gb.an:BATCH-001"].tags == ["batch-tag-1", "convoy"]
        assert lessons["gb.an:BATCH-001"].releasable_to == ["AUS", "CAN", "GBR", "NZL", "USA"]
    imported = audit_actions(app, "imported")
    assert len(imported) == 8
    assert imported[0].comment == "external id gb.an:BATCH-001; status draft → submitted"
    assert imported[-1].changes == ["discussion"] and imported[-1].version == 2


def test_a_lesson_changed_after_the_check_stops_the_import_there(
        app, runner, people, tmp_path, monkeypatch, login_as):
    """The file is checked against the lessons as they were; one changed by someone else
    before its batch is stored stops the import at that batch, naming it."""
    path = write(tmp_path / "in.jsonl", [record(n) for n in range(1, 5)])
    assert run(runner, path).exit_code == 0
    real_plan = exchange._plan

    def plan_then_edit(*args, **kwargs):
        planned = real_plan(*args, **kwargs)
        lesson = db.session.scalar(select(Lesson).where(Lesson.external_id == "gb.an:BATCH-004"))
        lesson.version += 1
        lesson.discussion = "Edited by someone else meanwhile."
        db.session.commit()
        return planned

    monkeypatch.setattr(exchange, "_plan", plan_then_edit)
    changed = write(tmp_path / "changed.jsonl",
                    [record(n, conclusion="Ask early.") for n in range(1, 5)])
    result = run(runner, changed, "--batch-size", "2")
    assert result.exit_code == 1
    assert ("Line 4: lesson gb.an:BATCH-004 was changed by someone else while the file was "
            "being imported.") in result.output
    assert "2 lesson(s) were stored in 1 batch(es)" in result.output
    with app.app_context():
        conclusions = dict(db.session.execute(select(Lesson.external_id, Lesson.conclusion)).all())
    assert conclusions["gb.an:BATCH-002"] == "Ask early."
    assert conclusions["gb.an:BATCH-003"] != "Ask early."


@pytest.mark.parametrize("size", ["0", "5001", "many"])
def test_the_batch_size_is_bounded(runner, people, tmp_path, size):
    result = run(runner, write(tmp_path / "in.jsonl", [record(1)]), "--batch-size", size)
    assert result.exit_code == 2 and "--batch-size" in result.output


def _segments(app) -> int:
    with app.app_context():
        _, ix = search.store().open()
        return len(ix._segments())


def test_a_process_of_its_own_indexes_each_batch_while_the_next_is_stored(
        app, runner, people, tmp_path, monkeypatch, login_as):
    """Storing and indexing overlap: by the time the third batch is stored, another
    process has already made the first batch searchable (the index's position passed
    it), and at the end every lesson is found."""
    from lessons.search import index

    real_apply, real_store = index.apply_pending, exchange._store_batch
    appliers = tmp_path / "appliers"

    def apply_noting_who(store):
        applied = real_apply(store)
        if applied:
            with appliers.open("a") as out:
                out.write(f"{os.getpid()}\n")
        return applied

    seen_before_third: list[int] = []

    def store_batch(batch, *args):
        if batch[0].record.line == 5:  # the third batch of two lines
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                position = search.store().position()
                if position is not None and position.last_id >= 2:
                    break
                time.sleep(0.02)
            seen_before_third.append(search.store().position().last_id)
        return real_store(batch, *args)

    monkeypatch.setattr(index, "apply_pending", apply_noting_who)
    monkeypatch.setattr(exchange, "_store_batch", store_batch)
    result = run(runner, write(tmp_path / "in.jsonl", [record(n) for n in range(1, 7)]),
                 "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert seen_before_third and seen_before_third[0] >= 2
    assert {int(pid) for pid in appliers.read_text().split()} - {os.getpid()}
    assert found_by_search(login_as) == 6
    with app.app_context():
        assert search.check().clean


def test_a_follower_that_fails_leaves_the_command_to_index_the_rest(
        app, runner, people, tmp_path, monkeypatch, login_as, caplog):
    from lessons.search import indexer

    def broken(self, stop):
        raise RuntimeError("the follower fell over (injected)")

    monkeypatch.setattr(indexer.Indexer, "follow", broken)
    result = run(runner, write(tmp_path / "in.jsonl", [record(n) for n in range(1, 6)]),
                 "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert found_by_search(login_as) == 5
    assert "follower ended with status 1" in caplog.text
    with app.app_context():
        assert search.check().clean


def test_a_large_catch_up_is_written_by_several_processes(
        app, runner, people, tmp_path, monkeypatch, login_as):
    """From PARALLEL_APPLY_MIN changes on, one index commit holds a segment per writer
    process; new and updated lessons alike come out right."""
    from lessons.search import index

    monkeypatch.setattr(index, "PARALLEL_APPLY_MIN", 3)
    assert run(runner, write(tmp_path / "one.jsonl", [record(1)])).exit_code == 0
    before = _segments(app)
    path = write(tmp_path / "in.jsonl", [record(n) for n in range(1, 6)])
    assert run(runner, path).exit_code == 0
    assert _segments(app) == before + 2  # four new lessons: two writer processes' segments
    changed = write(tmp_path / "changed.jsonl",
                    [record(n, title=f"Convoy {WORD} lesson of the {NAMES[n]} revised")
                     for n in range(1, 6)])
    assert run(runner, changed).exit_code == 0
    assert found_by_search(login_as) == 5
    assert found_by_search(login_as, "revised") == 5
    with app.app_context():
        assert search.check().clean


@pytest.mark.parametrize(("cpus", "writers"), [(2, 1), (3, 2)])
def test_the_follower_leaves_a_cpu_to_the_command_storing_batches(
        app, runner, people, tmp_path, monkeypatch, login_as, cpus, writers):
    """The follower writes with one writer process fewer than the CPUs (the command
    keeps one busy storing), never more than configured (2 in these tests' settings)."""
    import multiprocessing

    from lessons.search import index

    monkeypatch.setattr(index, "PARALLEL_APPLY_MIN", 2)
    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: cpus)
    monkeypatch.setattr(index.os, "cpu_count", lambda: cpus)
    real_writer = index.IndexStore.writer
    used = tmp_path / "writers"

    def writer_noting_procs(self, *args, procs: int = 1, **kwargs):
        with used.open("a") as out:
            out.write(f"{os.getpid()} {procs}\n")
        return real_writer(self, *args, procs=procs, **kwargs)

    monkeypatch.setattr(index.IndexStore, "writer", writer_noting_procs)
    app.config["SEARCH_REINDEX_PROCS"] = 2
    result = run(runner, write(tmp_path / "in.jsonl", [record(n) for n in range(1, 9)]),
                 "--batch-size", "2")
    assert result.exit_code == 0, result.output
    by_follower = {int(procs) for pid, procs in
                   (line.split() for line in used.read_text().splitlines())
                   if int(pid) != os.getpid()}
    assert by_follower == {writers}
    assert found_by_search(login_as) == 8
    with app.app_context():
        assert search.check().clean
