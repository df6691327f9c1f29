"""``flask backup`` / ``flask restore`` on the database the suite runs on (SQLite or
PostgreSQL): every row comes back, refusals leave the database as it was, and the
search index is rebuilt from what was restored.

Restores go into a scratch database (a fresh SQLite file, or a PostgreSQL database
created beside ``TEST_DATABASE_URL`` and dropped after, as in ``test_migrations``), so
the suite's shared database keeps its schema for the other tests.
"""

from __future__ import annotations

import os
import pty
import re
import selectors
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
from flask import Flask
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from lessons import create_app
from lessons.extensions import db
from lessons.models import AuditRecord
from lessons.services import backups
from tests.conftest import login
from tests.test_migrations import running_alembic, schema_diff
from tests.test_search import hits


def _is_postgresql(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


@pytest.fixture
def scratch(database_url: str, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Makes URLs to databases with nothing in them (no tables), removed afterwards."""
    url = make_url(database_url)
    maintenance = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def drop(quoted: str) -> None:
        with maintenance.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))

    def make(name: str) -> str:
        if url.get_backend_name() == "sqlite":
            return f"sqlite:///{tmp_path / f'{name}.db'}"
        database = f"{url.database}_{name}"
        quoted = maintenance.dialect.identifier_preparer.quote(database)
        made.append(quoted)
        drop(quoted)  # a run killed mid-test may have left it behind
        with maintenance.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {quoted}"))
        return url.set(database=database).render_as_string(hide_password=False)

    try:
        yield make
    finally:
        for quoted in made:
            drop(quoted)
        maintenance.dispose()


@pytest.fixture
def scratch_url(scratch: Callable[[str], str]) -> str:
    return scratch("restore")


@pytest.fixture
def fresh_app(scratch_url: str, tmp_path: Path) -> Iterator[Flask]:
    """An app on the scratch database, as on a fresh machine: no schema, no index."""
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=scratch_url,
                     INDEX_DIR=str(tmp_path / "fresh-index"), SQLITE_BUSY_TIMEOUT=0.2)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order: what a restore must give back."""
    with app.app_context():
        rows = {}
        for table in db.metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            rows[table.name] = [tuple(row) for row in
                                db.session.execute(select(table).order_by(*order))]
        db.session.rollback()
        return rows


def audit_actions(app: Flask) -> list[tuple[str, int | None, str]]:
    with app.app_context():
        return [(r.action, r.actor_id, r.comment) for r in db.session.scalars(
            select(AuditRecord).order_by(AuditRecord.id))]


def assert_clean_failure(result, code: int, *words: str) -> None:
    """A refusal or failure: one ``error:`` line naming the problem, no traceback."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for word in words:
        assert word in lines[0], lines[0]


def restored_then_changed(app: Flask, fresh_app: Flask, file: Path) -> None:
    """Back up app into file, restore it into fresh_app, then change every title there:
    a later restore's effect (or its absence) then shows in the titles."""
    assert app.test_cli_runner().invoke(args=["backup", str(file)]).exit_code == 0
    assert fresh_app.test_cli_runner().invoke(args=["restore", str(file)]).exit_code == 0
    with fresh_app.app_context():
        db.session.execute(text("UPDATE lessons SET title = 'Changed after the restore'"))
        db.session.commit()
        db.engine.dispose()


def test_backup_then_restore_gives_back_every_row_and_a_clean_index(app, demo, fresh_app,
                                                                     tmp_path):
    before = snapshot(app)
    lessons = len(before["lessons"])
    file = tmp_path / "muster.backup"

    result = app.test_cli_runner().invoke(args=["backup", str(file)])
    assert result.exit_code == 0, result.output
    assert f"{file.stat().st_size:,} bytes" in result.output
    assert f"{lessons} lesson(s)" in result.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".muster.backup")]
    action, actor, comment = audit_actions(app)[-1]
    assert (action, actor) == ("backup", None) and str(file) in comment

    result = fresh_app.test_cli_runner().invoke(args=["restore", str(file)])
    assert result.exit_code == 0, result.output
    assert f"Restored {lessons} lesson(s)" in result.output

    after = snapshot(fresh_app)
    assert set(after) == set(before)
    for name in set(before) - {"audit_records", "change_log_head", "search_indexes"}:
        assert after[name] == before[name], f"table {name} differs after the restore"
    # The change log is the backup's, in a new epoch: every index built from the other
    # history (any host's) rebuilds; only this host's rebuilt index is registered.
    (_, *log_before, epoch_before), = before["change_log_head"]
    (_, *log_after, epoch_after), = after["change_log_head"]
    assert log_after == log_before and epoch_after != epoch_before
    assert [row[4] for row in after["search_indexes"]] == [epoch_after]
    # The restored trail is the backup's, plus the restore itself.
    assert after["audit_records"][:-1] == before["audit_records"]
    action, actor, comment = audit_actions(fresh_app)[-1]
    assert (action, actor) == ("restore", None) and str(file) in comment

    check = fresh_app.test_cli_runner().invoke(args=["search", "check"])
    assert check.exit_code == 0, check.output
    assert "in step" in check.output
    # The same search finds the same lessons, in the same order, before and after.
    found = []
    for served in (app, fresh_app):
        client = served.test_client()
        login(client, "gb.analyst")
        page = client.get("/search?q=liaison+network")
        assert page.status_code == 200
        found.append(hits(page.text))
    assert found[0] and found[1] == found[0]


def test_restore_refuses_what_is_not_a_backup_of_this_database(app, make_user, tmp_path):
    make_user("gb.keeper")
    before = snapshot(app)
    runner = app.test_cli_runner()

    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(os.urandom(4096))
    assert_clean_failure(runner.invoke(args=["restore", str(garbage), "--yes"]), 2,
                         "not a Muster backup")

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    other_kind = tmp_path / "other-kind.backup"
    if _is_postgresql(str(app.config["SQLALCHEMY_DATABASE_URI"])):
        other_kind.write_bytes(other.read_bytes())
        assert_clean_failure(runner.invoke(args=["restore", str(other_kind), "--yes"]), 2,
                             "SQLite", "this database is PostgreSQL")
    else:
        other_kind.write_bytes(b"PGDMP" + os.urandom(2000))
        assert_clean_failure(runner.invoke(args=["restore", str(other_kind), "--yes"]), 2,
                             "PostgreSQL", "this database is SQLite")
        assert_clean_failure(runner.invoke(args=["restore", str(other), "--yes"]), 2,
                             "not Muster's", "lessons")

    assert snapshot(app) == before


def test_restore_refuses_a_database_holding_data_without_yes(app, make_user, make_lesson,
                                                              tmp_path):
    make_user("gb.author")
    make_lesson("gb.author", title="Kept through a refused restore")
    file = tmp_path / "early.backup"
    assert app.test_cli_runner().invoke(args=["backup", str(file)]).exit_code == 0
    make_lesson("gb.author", title="Written after the backup")
    before = snapshot(app)

    result = app.test_cli_runner().invoke(args=["restore", str(file)], input="y\n")
    assert_clean_failure(result, 2, "2 lesson(s)", "--yes")
    assert snapshot(app) == before


def test_a_failed_restore_leaves_the_database_as_it_was(app, demo, fresh_app, tmp_path):
    file = tmp_path / "full.backup"
    restored_then_changed(app, fresh_app, file)
    runner = fresh_app.test_cli_runner()
    before = snapshot(fresh_app)

    # Cut short after its table of contents: PostgreSQL's restore fails part way, in
    # its one transaction; SQLite's copy aside fails its check before the live file.
    cut = tmp_path / "cut.backup"
    cut.write_bytes(file.read_bytes()[: file.stat().st_size * 3 // 4])
    result = runner.invoke(args=["restore", str(cut), "--yes"])
    if _is_postgresql(str(app.config["SQLALCHEMY_DATABASE_URI"])):
        assert_clean_failure(result, 1, "restore failed, the database is unchanged")
    else:
        assert_clean_failure(result, 2, str(cut))
    assert snapshot(fresh_app) == before


def test_a_restore_that_cannot_write_leaves_sqlite_as_it_was(app, demo, fresh_app,
                                                              tmp_path):
    """The copy into the live file is one write transaction: a writer holding the
    database past the busy timeout makes the restore fail with nothing changed."""
    url = make_url(str(fresh_app.config["SQLALCHEMY_DATABASE_URI"]))
    if url.get_backend_name() != "sqlite":
        pytest.skip("SQLite's write lock (PostgreSQL's restore is one transaction)")
    file = tmp_path / "full.backup"
    restored_then_changed(app, fresh_app, file)
    runner = fresh_app.test_cli_runner()
    before = snapshot(fresh_app)

    with sqlite3.connect(url.database, isolation_level=None) as writer:
        writer.execute("BEGIN IMMEDIATE")
        result = runner.invoke(args=["restore", str(file), "--yes"])
        writer.execute("ROLLBACK")
    assert_clean_failure(result, 1, "the database is unchanged", "locked")
    assert snapshot(fresh_app) == before


def test_backup_to_an_unwritable_place_fails_cleanly(app, make_user, tmp_path):
    make_user("gb.keeper")
    runner = app.test_cli_runner()
    assert_clean_failure(runner.invoke(args=["backup", str(tmp_path / "no" / "x.backup")]),
                         1, "cannot write")
    folder = runner.invoke(args=["backup", str(tmp_path)])  # click's own usage error
    assert folder.exit_code == 2 and "is a directory" in folder.output
    assert "Traceback" not in folder.output
    assert [action for action, _, _ in audit_actions(app)].count("backup") == 0

    existing = tmp_path / "kept.backup"
    existing.write_bytes(b"the previous backup")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    target = readonly / "x.backup"
    readonly.chmod(0o500)
    try:
        if os.access(readonly, os.W_OK):
            return  # root writes anywhere; the missing folder above covered the refusal
        assert_clean_failure(runner.invoke(args=["backup", str(target)]), 1, "cannot write")
        assert not target.exists()
    finally:
        readonly.chmod(0o700)


def test_pg_tools_missing_from_path_are_named(app, make_user, tmp_path, monkeypatch):
    if not _is_postgresql(str(app.config["SQLALCHEMY_DATABASE_URI"])):
        pytest.skip("PostgreSQL's client tools")
    make_user("gb.keeper")
    monkeypatch.setenv("PATH", str(tmp_path))
    file = tmp_path / "x.backup"
    assert_clean_failure(app.test_cli_runner().invoke(args=["backup", str(file)]), 1,
                         "pg_dump not found on PATH")
    assert not file.exists()


def test_the_password_reaches_pg_dump_by_environment_only(app, make_user, tmp_path,
                                                          monkeypatch):
    url = make_url(str(app.config["SQLALCHEMY_DATABASE_URI"]))
    if url.get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL's client tools")
    make_user("gb.keeper")
    secret = "s3cret-not-on-the-command-line"
    # The test server trusts local connections, so any password connects.
    with_password = create_app("testing", INDEX_DIR=str(tmp_path / "index"),
                               SQLALCHEMY_DATABASE_URI=url.set(password=secret)
                               .render_as_string(hide_password=False))
    seen: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def recording_run(argv, **kwargs):
        seen.append((list(argv), dict(kwargs.get("env") or {})))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(backups.subprocess, "run", recording_run)
    file = tmp_path / "x.backup"
    try:
        result = with_password.test_cli_runner().invoke(args=["backup", str(file)])
    finally:
        with with_password.app_context():
            db.engine.dispose()
    assert result.exit_code == 0, result.output
    assert seen and all(secret not in " ".join(argv) for argv, _ in seen)
    assert seen[0][1]["PGPASSWORD"] == secret
    assert secret not in result.output


def test_pg_environment_maps_the_url():
    url = make_url("postgresql+psycopg://muster:pw@db.example:6543/lessons"
                   "?sslmode=verify-full&application_name=muster-backup")
    assert backups.pg_environment(url) == {
        "PGHOST": "db.example", "PGPORT": "6543", "PGUSER": "muster", "PGPASSWORD": "pw",
        "PGDATABASE": "lessons", "PGSSLMODE": "verify-full", "PGAPPNAME": "muster-backup"}
    with pytest.raises(backups.BackupError, match="'frobnicate'"):
        backups.pg_environment(make_url("postgresql://h/db?frobnicate=1"))


def test_a_backup_from_an_older_muster_is_upgraded_as_it_is_restored(scratch, tmp_path):
    old_url = scratch("old_schema")
    old = create_app("testing", SQLALCHEMY_DATABASE_URI=old_url,
                     INDEX_DIR=str(tmp_path / "old-index"))
    file = tmp_path / "old.backup"
    with old.app_context():
        with running_alembic():
            flask_migrate.upgrade(revision="0009")
        db.engine.dispose()
    # The backup the older Muster would have made (its own models are not these).
    url = make_url(old_url)
    if url.get_backend_name() == "sqlite":
        with closing(sqlite3.connect(url.database)) as source, \
                closing(sqlite3.connect(file)) as target:
            source.backup(target)
    else:
        subprocess.run(["pg_dump", "--format=custom", f"--file={file}"], check=True,
                       env={**os.environ, **backups.pg_environment(url)})

    new = create_app("testing", SQLALCHEMY_DATABASE_URI=scratch("new_schema"),
                     INDEX_DIR=str(tmp_path / "new-index"))
    try:
        with running_alembic():
            result = new.test_cli_runner().invoke(args=["restore", str(file)])
        assert result.exit_code == 0, result.output
        assert "schema 0009 was upgraded" in result.output
        assert schema_diff(new) == []
        with new.app_context():
            head = db.session.scalar(text("SELECT version_num FROM alembic_version"))
        migrations = str(Path(__file__).resolve().parents[1] / "migrations")
        assert head == backups.ScriptDirectory(migrations).get_current_head()
        assert audit_actions(new)[-1][:2] == ("restore", None)
        assert new.test_cli_runner().invoke(args=["search", "check"]).exit_code == 0
    finally:
        with new.app_context():
            db.session.remove()
            db.engine.dispose()


def test_a_backup_from_a_newer_muster_is_refused(app, make_user, scratch, tmp_path):
    newer = create_app("testing", SQLALCHEMY_DATABASE_URI=scratch("newer_schema"),
                       INDEX_DIR=str(tmp_path / "newer-index"))
    file = tmp_path / "newer.backup"
    try:
        with newer.app_context():
            db.create_all()
            db.session.execute(text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            db.session.execute(text("INSERT INTO alembic_version VALUES ('9999')"))
            db.session.commit()
        assert newer.test_cli_runner().invoke(args=["backup", str(file)]).exit_code == 0
    finally:
        with newer.app_context():
            db.session.remove()
            db.engine.dispose()
    make_user("gb.keeper")
    before = snapshot(app)
    assert_clean_failure(app.test_cli_runner().invoke(args=["restore", str(file), "--yes"]),
                         2, "9999", "newer than this Muster")
    assert snapshot(app) == before

def test_a_backup_taken_while_lessons_are_written_is_one_consistent_moment(
        app, make_user, fresh_app, tmp_path):
    """The app keeps serving during a backup: the file holds every lesson committed
    before one moment and none after, each with its audit record, and the count the
    command prints is the file's own."""
    from lessons.models import Lesson, User
    from lessons.services import lessons as service
    from tests.conftest import lesson_fields

    make_user("gb.author")
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def write() -> None:
        with app.app_context():
            author = db.session.scalar(select(User).where(User.username == "gb.author"))
            try:
                while not stop.is_set():
                    service.create_lesson(author, lesson_fields(
                        title=f"Written during a backup, number {len(written)}"))
                    written.append(1)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    file = tmp_path / "busy.backup"
    writer = threading.Thread(target=write)
    writer.start()
    try:
        deadline = time.monotonic() + 30
        while len(written) < 5 and time.monotonic() < deadline and not errors:
            time.sleep(0.01)
        result = app.test_cli_runner().invoke(args=["backup", str(file)])
        during = len(written)
        time.sleep(0.2)  # and writes go on after it
    finally:
        stop.set()
        writer.join(timeout=30)
    assert not errors, errors
    assert result.exit_code == 0, result.output
    reported = int(re.search(r"(\d+) lesson\(s\)", result.output).group(1))
    # (One lesson may be committed but not yet counted by the writer.)
    assert 5 <= reported <= during + 1 and reported < len(written)

    restored = fresh_app.test_cli_runner().invoke(args=["restore", str(file)])
    assert restored.exit_code == 0, restored.output
    with fresh_app.app_context():
        ids = set(db.session.scalars(select(Lesson.id)))
        created = set(db.session.scalars(select(AuditRecord.lesson_id).where(
            AuditRecord.action == "created")))
    assert len(ids) == reported
    assert created == ids


def _restore_in_a_terminal(url: str, index: Path, file: Path, answer: str) -> tuple[int, str]:
    """``flask restore FILE`` run as a person would, in a terminal, answering its
    question with ``answer``; its exit code and what it showed."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "MUSTER_ENV": "testing",
           "TEST_DATABASE_URL": url, "MUSTER_INDEX_DIR": str(index)}
    flask = Path(sys.executable).parent / "flask"
    primary, secondary = pty.openpty()
    process = subprocess.Popen([str(flask), "--app", "wsgi", "restore", str(file)],
                               stdin=secondary, stdout=secondary, stderr=secondary,
                               cwd=root, env=env)
    os.close(secondary)
    shown = b""
    answered = False
    deadline = time.monotonic() + 60
    waiting = selectors.DefaultSelector()
    waiting.register(primary, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline:
            if waiting.select(timeout=0.5):
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # the terminal closed: the command has ended
                    break
                if not chunk:
                    break
                shown += chunk
            if not answered and b"[y/N]" in shown:
                os.write(primary, answer.encode() + b"\n")
                answered = True
        return process.wait(timeout=30), shown.decode("utf-8", "replace")
    finally:
        waiting.close()
        os.close(primary)
        if process.poll() is None:
            process.kill()
            process.wait()


def test_in_a_terminal_restore_asks_before_replacing_data(app, demo, fresh_app, scratch_url,
                                                         tmp_path):
    file = tmp_path / "asked.backup"
    restored_then_changed(app, fresh_app, file)
    before = snapshot(fresh_app)
    index = tmp_path / "fresh-index"

    code, shown = _restore_in_a_terminal(scratch_url, index, file, "n")
    assert code == 2, shown
    assert "Replace them with the backup? [y/N]" in shown and "nothing restored" in shown
    assert snapshot(fresh_app) == before

    code, shown = _restore_in_a_terminal(scratch_url, index, file, "y")
    assert code == 0, shown
    assert "Restored" in shown
    with fresh_app.app_context():
        titles = set(db.session.scalars(text("SELECT title FROM lessons")))
    assert "Changed after the restore" not in titles
