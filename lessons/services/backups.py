"""Backups of the whole database and restores from them (``flask backup`` / ``restore``).

SQLite is copied with its online backup API, so the app may keep serving while a backup
runs; PostgreSQL with ``pg_dump`` / ``pg_restore`` in their custom format. A restore
never half-happens: SQLite's is checked in a copy aside and then copied in by one
backup transaction, PostgreSQL's runs in one transaction (``--single-transaction``).
The search index is rebuilt from the restored rows, and both operations are audited.

Files attached to lessons live on disk (``FILES_DIR``), not in the database: a backup
``FILE`` writes them into ``FILE.files.tar`` beside it, and a restore from ``FILE`` puts
that archive's files in place of the folder's (checked before the database is touched,
swapped in after it is restored). A backup without the archive leaves the folder alone.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import flask_migrate
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import URL, make_url

from lessons import search
from lessons.extensions import db
from lessons.models import AuditRecord, Lesson, User
from lessons.services import audit
from lessons.services import files as lesson_files

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
# Tables every Muster database holds: a file without them is no Muster backup.
MUSTER_TABLES = ("lessons", "users", "audit_records")

# libpq connection parameters a URL's query may carry, and the environment variable
# that passes each to pg_dump / pg_restore. Environment, not arguments: a password on a
# command line is readable by every user of the machine (``ps``).
PG_ENVIRONMENT = {
    "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "user": "PGUSER",
    "password": "PGPASSWORD", "dbname": "PGDATABASE", "passfile": "PGPASSFILE",
    "service": "PGSERVICE", "options": "PGOPTIONS", "application_name": "PGAPPNAME",
    "sslmode": "PGSSLMODE", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT", "sslcrl": "PGSSLCRL", "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI", "requirepeer": "PGREQUIREPEER",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE", "krbsrvname": "PGKRBSRVNAME",
    "channel_binding": "PGCHANNELBINDING", "connect_timeout": "PGCONNECT_TIMEOUT",
    "client_encoding": "PGCLIENTENCODING", "target_session_attrs": "PGTARGETSESSIONATTRS",
}


class BackupError(Exception):
    """A backup or restore that was refused or failed; the message is one line for the
    operator. ``refused`` when nothing was attempted (bad input, a non-empty database)."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.refused = refused


@dataclass(frozen=True)
class Contents:
    lessons: int
    users: int
    audit_records: int

    @property
    def empty(self) -> bool:
        return not (self.lessons or self.users or self.audit_records)

    def describe(self) -> str:
        return (f"{self.lessons} lesson(s), {self.users} user(s), "
                f"{self.audit_records} audit record(s)")


@dataclass(frozen=True)
class BackupReport:
    path: Path
    kind: str  # "sqlite" or "postgresql"
    size: int  # bytes written
    lessons: int  # lessons in the backup (its own snapshot, not a later count)
    files_path: Path | None = None  # the archive of the files attached to lessons
    files: int = 0  # files in it


@dataclass(frozen=True)
class RestoreReport:
    path: Path
    kind: str
    contents: Contents  # what the database holds after the restore
    indexed: int  # lessons in the rebuilt search index
    upgraded_from: str | None = None  # the backup's older schema revision, if upgraded
    files_path: Path | None = None  # the files archive restored (None: none beside it)
    files: int = 0  # files it put in place


def _url() -> URL:
    return make_url(db.engine.url)


def database_kind() -> str:
    backend = _url().get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BackupError(f"backups support SQLite and PostgreSQL, not {backend}")
    return backend


def contents() -> Contents:
    """What the database holds that a restore would replace (reference data aside)."""
    db.session.rollback()
    tables = set(inspect(db.engine).get_table_names())
    if not set(MUSTER_TABLES) <= tables:
        return Contents(0, 0, 0)  # a fresh database: no schema yet

    def count(model) -> int:
        return db.session.scalar(select(func.count()).select_from(model)) or 0

    found = Contents(count(Lesson), count(User), count(AuditRecord))
    db.session.rollback()  # hold no lock a restore would wait for
    return found


def replace_refused(held: Contents) -> BackupError:
    return BackupError(f"the database holds {held.describe()}; restoring would replace "
                       f"them (use --yes)", refused=True)


# --- backup ---------------------------------------------------------------------------------
def backup(path: str | os.PathLike[str]) -> BackupReport:
    """Write a backup of the whole database to ``path``: beside it first, then renamed,
    so ``path`` is either the previous file or a complete backup, never half of one.
    Audited as ``backup`` once the file is in place."""
    target = Path(path)
    kind = database_kind()
    if target.is_dir():
        raise BackupError(f"{target} is a folder; give a file name", refused=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent if str(target.parent) else ".")
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        lessons = _backup_sqlite(tmp) if kind == "sqlite" else _backup_postgresql(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    size = target.stat().st_size
    # After the database: a file added meanwhile is then at worst one the backup's rows
    # do not name (harmless), never a row whose file is missing from the archive.
    try:
        archive = lesson_files.write_archive(lesson_files.archive_path(target))
    except OSError as exc:
        raise BackupError(f"wrote {target}, but not the files attached to lessons: "
                          f"{exc.strerror or exc}") from None
    audit.record("backup", actor=None,
                 comment=f"{target.resolve()} ({kind}, {size} bytes, {lessons} lessons; "
                         f"{archive.files} files in {archive.path.name})")
    db.session.commit()
    return BackupReport(target, kind, size, lessons, archive.path, archive.files)


def _backup_sqlite(tmp: Path) -> int:
    db.session.rollback()
    raw = db.engine.raw_connection()
    try:
        with closing(sqlite3.connect(tmp)) as copy:
            raw.driver_connection.backup(copy, progress=_give_up_when_busy())
            # One self-contained file: no -wal beside it to lose when it is copied away.
            copy.execute("PRAGMA journal_mode=DELETE")
            return copy.execute("SELECT count(*) FROM lessons").fetchone()[0]
    except (sqlite3.Error, _StillBusy) as exc:
        raise BackupError(f"backup failed: {exc}") from None
    finally:
        raw.close()


def _backup_postgresql(tmp: Path) -> int:
    """pg_dump reads the snapshot this transaction exports, so the lesson count printed
    is the backup's own, whatever commits while it runs."""
    pg_dump = _tool("pg_dump")
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            snapshot = conn.scalar(text("SELECT pg_export_snapshot()"))
            lessons = conn.scalar(select(func.count()).select_from(Lesson)) or 0
            _run([pg_dump, "--format=custom", f"--snapshot={snapshot}", f"--file={tmp}"],
                 "pg_dump")
    return lessons


# --- restore --------------------------------------------------------------------------------
def check_backup(path: str | os.PathLike[str]) -> str:
    """The kind of database ``path`` is a Muster backup of; refused otherwise, or when it
    is a backup of another kind of database than this one."""
    source = Path(path)
    kind = database_kind()
    try:
        with source.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise BackupError(f"cannot read {source}: {exc.strerror or exc}",
                          refused=True) from None
    found = ("sqlite" if head.startswith(SQLITE_MAGIC)
             else "postgresql" if head.startswith(PGDUMP_MAGIC) else None)
    if found is None:
        raise BackupError(f"{source} is not a Muster backup (neither an SQLite database "
                          f"nor a pg_dump custom-format archive)", refused=True)
    if found != kind:
        names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
        raise BackupError(f"{source} is a backup of a {names[found]} database; this "
                          f"database is {names[kind]}", refused=True)
    if kind == "postgresql":
        _check_archive(source)
    return kind


def restore(path: str | os.PathLike[str], *, replace: bool = False) -> RestoreReport:
    """Replace the whole database with the backup at ``path``, rebuild the search index
    from it (every other host's index rebuilds too: the change log gets a new epoch)
    and audit the restore in the restored trail.

    Refused when the database holds lessons, users or audit records and ``replace`` is
    false. A restore that fails leaves the database as it was."""
    source = Path(path)
    kind = check_backup(source)
    revision = backup_revision(source, kind)
    scripts = _migrations()
    if revision is not None and revision not in {r.revision for r in scripts.walk_revisions()}:
        raise BackupError(f"{source} holds database schema {revision}, newer than this "
                          f"Muster knows ({scripts.get_current_head()}): restore it with the "
                          f"Muster that made it", refused=True)
    archive = lesson_files.archive_path(source)
    archive = archive if archive.exists() else None
    if archive is not None:
        try:
            lesson_files.check_archive(archive)
        except ValueError as exc:
            raise BackupError(str(exc), refused=True) from None
    before = contents()
    if not before.empty and not replace:
        raise replace_refused(before)
    if kind == "sqlite":
        _restore_sqlite(source)
    else:
        _restore_postgresql(source)
    db.session.remove()
    db.engine.dispose()  # no pooled connection keeps the old database's state
    upgraded = None
    if revision is not None and revision != scripts.get_current_head():
        # A backup from an older Muster: its schema becomes this one's before anything
        # here reads or writes it with this Muster's models.
        flask_migrate.upgrade()
        db.session.remove()
        db.engine.dispose()
        upgraded = revision
    restored_files = 0
    if archive is not None:
        try:
            restored_files = lesson_files.restore_archive(archive)
        except OSError as exc:
            raise BackupError(f"restored the database, but not the files attached to "
                              f"lessons from {archive}: {exc.strerror or exc}") from None
    audit.record("restore", actor=None, comment=f"from {source.resolve()} ({kind})")
    db.session.commit()
    # Every host's index followed another history of the database: a new epoch makes
    # each of them rebuild (this host's now, the others' indexers when they next look).
    search.new_history()
    try:
        report = search.reindex()
    except (search.IndexBusy, OSError) as exc:
        raise BackupError(f"restored, but rebuilding the search index failed ({exc}); "
                          f"run `flask search reindex`") from None
    return RestoreReport(source, kind, contents(), report.documents, upgraded,
                         archive, restored_files)


def _migrations() -> ScriptDirectory:
    return ScriptDirectory(current_app.extensions["migrate"].directory)


def backup_revision(source: Path, kind: str) -> str | None:
    """The schema revision (Alembic's) the backup was taken at; ``None`` when it holds
    none (a database made without the migrations) or it cannot be read here (then the
    restore's own checks refuse it)."""
    if kind == "sqlite":
        try:
            with closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro",
                                         uri=True)) as conn:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            return None
        return row[0] if row else None
    data = _run([_tool("pg_restore"), "--data-only", "--table=alembic_version",
                 "--file=-", str(source)], "pg_restore", refused=True, database=False,
                failure=f"{source} is not a readable pg_dump archive")
    lines = data.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("COPY ") and "alembic_version" in line:
            first = lines[number + 1] if number + 1 < len(lines) else "\\."
            return None if first == "\\." else first.strip()
    return None


@contextmanager
def _sqlite_copy(source: Path) -> Iterator[sqlite3.Connection]:
    """``source`` copied into a temporary database and checked there: the live one is
    not touched until the copy is known to be a whole Muster database."""
    live = _url().database
    folder = Path(live).resolve().parent if live and live != ":memory:" else None
    with tempfile.TemporaryDirectory(prefix=".muster-restore-", dir=folder) as tmpdir:
        copy_path = Path(tmpdir) / "restore.db"
        try:
            with closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro",
                                         uri=True)) as original, \
                    closing(sqlite3.connect(copy_path)) as copy:
                original.backup(copy)
                problem = copy.execute("PRAGMA integrity_check").fetchone()[0]
                tables = {row[0] for row in copy.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error as exc:
            raise BackupError(f"{source} is not a readable SQLite backup: {exc}",
                              refused=True) from None
        if problem != "ok":
            raise BackupError(f"{source} is damaged: {problem}", refused=True)
        missing = [name for name in MUSTER_TABLES if name not in tables]
        if missing:
            raise BackupError(f"{source} is an SQLite database but not Muster's (no "
                              f"{', '.join(missing)} table)", refused=True)
        with closing(sqlite3.connect(copy_path)) as copy:
            yield copy


class _StillBusy(Exception):
    pass


def _give_up_when_busy() -> Callable[[int, int, int], None]:
    """A backup progress callback that ends a copy kept waiting for a lock longer than
    the app's busy timeout: Python's backup would otherwise retry for ever."""
    timeout = float(current_app.config.get("SQLITE_BUSY_TIMEOUT", 10.0))
    waiting_since: list[float] = []

    def progress(status: int, remaining: int, total: int) -> None:  # noqa: ARG001
        if status not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            waiting_since.clear()
        elif not waiting_since:
            waiting_since.append(time.monotonic())
        elif time.monotonic() - waiting_since[0] > timeout:
            raise _StillBusy(f"database is locked (busy for more than {timeout:g} s)")

    return progress


def _restore_sqlite(source: Path) -> None:
    with _sqlite_copy(source) as copy:
        db.session.rollback()
        raw = db.engine.raw_connection()
        try:
            live = raw.driver_connection
            page_size = live.execute("PRAGMA page_size").fetchone()[0]
            if copy.execute("PRAGMA page_size").fetchone()[0] != page_size:
                # A WAL database only takes a backup of its own page size.
                copy.execute(f"PRAGMA page_size={int(page_size)}")
                copy.execute("VACUUM")
            # One write transaction on the live database: readers see the old rows or
            # the new ones, and a failure (e.g. busy past the timeout) changes nothing.
            copy.backup(live, progress=_give_up_when_busy())
        except (sqlite3.Error, _StillBusy) as exc:
            raise BackupError(f"restore failed, the database is unchanged: {exc}") from None
        finally:
            raw.close()


def _check_archive(source: Path) -> None:
    listing = _run([_tool("pg_restore"), "--list", str(source)], "pg_restore",
                   refused=True, database=False,
                   failure=f"{source} is not a readable pg_dump archive")
    # Entries read "<id>; <oid> <oid> TABLE <schema> <name> <owner>".
    tables = set(re.findall(r"^\d+; \d+ \d+ TABLE \S+ (\S+) ", listing, re.MULTILINE))
    missing = [name for name in MUSTER_TABLES if name not in tables]
    if missing:
        raise BackupError(f"{source} is a pg_dump archive but not of a Muster database "
                          f"(no {', '.join(missing)} table)", refused=True)


def _restore_postgresql(source: Path) -> None:
    # Our own connections would hold locks the restore's DROP TABLEs wait for.
    db.session.remove()
    db.engine.dispose()
    database = _url().database
    if not database:
        raise BackupError("DATABASE_URL names no database to restore into")
    # The name only: host, user and password reach pg_restore through its environment.
    _run([_tool("pg_restore"), "--clean", "--if-exists", "--single-transaction",
          "--exit-on-error", "--no-owner", "--no-privileges", f"--dbname={database}",
          str(source)],
         "pg_restore", failure="restore failed, the database is unchanged")


# --- PostgreSQL client tools ----------------------------------------------------------------
def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found on PATH: install the PostgreSQL client tools "
                          f"of the server's major version (Debian: postgresql-client)")
    return found


def pg_environment(url: URL) -> dict[str, str]:
    """libpq's environment variables for ``url``, password included: the child process
    connects where the app does, and nothing secret appears in its arguments."""
    values: dict[str, str] = {}
    for key, value in url.query.items():
        if key not in PG_ENVIRONMENT:
            raise BackupError(f"DATABASE_URL parameter {key!r} cannot be passed to "
                              f"pg_dump / pg_restore")
        values[PG_ENVIRONMENT[key]] = value if isinstance(value, str) else value[-1]
    for variable, value in (("PGHOST", url.host), ("PGPORT", url.port),
                            ("PGUSER", url.username), ("PGPASSWORD", url.password),
                            ("PGDATABASE", url.database)):
        if value not in (None, ""):
            values[variable] = str(value)
    return values


def _run(argv: list[str], tool: str, *, refused: bool = False, database: bool = True,
         failure: str | None = None) -> str:
    env = dict(os.environ)
    if database:
        env.update(pg_environment(_url()))
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BackupError(f"{tool} could not run: {exc}") from None
    if done.returncode:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        detail = "; ".join(lines[:3]) or f"exit code {done.returncode}"
        raise BackupError(f"{failure or tool + ' failed'}: {detail}", refused=refused)
    return done.stdout
