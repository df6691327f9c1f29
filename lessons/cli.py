"""``flask`` commands: users and demo data (search and exchange commands come with them)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from lessons import search
from lessons.errors import NotAllowed, ValidationFailed
from lessons.extensions import db
from lessons.models import User
from lessons.services import backups
from lessons.services import users as user_service
from lessons.services.exchange import BATCH_SIZE, BATCH_SIZE_MAX

users_cli = AppGroup("users", help="Create, change and list user accounts.")
demo_cli = AppGroup("demo", help="Demo data for trying Muster out (refused in production).")
search_cli = AppGroup("search", help="Keep the search index in step with the database.")
lessons_cli = AppGroup("lessons", help="Import and export lessons (JSON Lines or CSV).")


def _fail(errors: dict[str, str]) -> None:
    for key, message in errors.items():
        click.echo(f"error: {key}: {message}", err=True)
    sys.exit(2)


def _user(username: str) -> User:
    """The user named, or exit 2 naming the unknown name."""
    user = user_service.find_user(username)
    if user is None:
        click.echo(f"error: no user {username!r}", err=True)
        sys.exit(2)
    return user


def _new_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_cli.command("create")
@click.argument("username")
@click.option("--nation", required=True, help="ISO 3166-1 alpha-3 code, e.g. GBR.")
@click.option("--roles", default="contributor", show_default=True,
              help="Comma separated: contributor, analyst, planner, admin.")
@click.option("--display-name", default="", help="Name shown in the app.")
@click.option("--unit", default="", help="The user's unit or organisation.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input.")
def create_user_command(username: str, nation: str, roles: str, display_name: str,
                        unit: str, password_stdin: bool) -> None:
    """Create USERNAME. Without --password-stdin the password is prompted for, hidden."""
    password = _new_password(password_stdin)
    try:
        user = user_service.create_user(username, nation=nation, roles=roles.split(","),
                                        password=password, display_name=display_name,
                                        unit=unit)
    except ValidationFailed as exc:
        _fail(exc.errors)
    click.echo(f"created {user.username} ({user.nation_code}; {', '.join(sorted(user.roles))})")


@users_cli.command("token")
@click.argument("username")
@click.option("--name", required=True, help="What will use the token, e.g. a script's name.")
def create_token_command(username: str, name: str) -> None:
    """Create an API token for USERNAME; prints it once, alone on the last line."""
    from lessons.services import tokens

    user = db.session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None or not user.is_active:
        click.echo(f"error: no active user {username!r}", err=True)
        sys.exit(2)
    try:
        _token, secret = tokens.create_token(user, name)
    except ValidationFailed as exc:
        _fail(exc.errors)
    click.echo(f"API token \"{name}\" for {user.username} ({user.nation_code}). It is not "
               "stored and cannot be shown again:")
    click.echo(secret)


@users_cli.command("set-roles")
@click.argument("username")
@click.argument("roles", nargs=-1, required=True)
def set_roles_command(username: str, roles: tuple[str, ...]) -> None:
    """Give USERNAME exactly ROLES (contributor, analyst, planner, admin; commas or
    spaces between). Ends the user's sessions."""
    user = _user(username)
    wanted = [role for item in roles for role in item.split(",")]
    try:
        changed = user_service.set_roles(user, wanted, actor=None)
    except ValidationFailed as exc:
        _fail(exc.errors)
    roles_now = ", ".join(sorted(user.roles)) or "no roles"
    click.echo(f"{user.username}: {roles_now}" + ("" if changed else " (unchanged)"))


@users_cli.command("deactivate")
@click.argument("username")
def deactivate_command(username: str) -> None:
    """Deactivate USERNAME: no log-in, and the user's sessions and API tokens stop
    working at once. The account and its history stay."""
    user = _user(username)
    changed = user_service.set_active(user, False, actor=None)
    click.echo(f"{user.username}: inactive" + ("" if changed else " (already)"))


@users_cli.command("activate")
@click.argument("username")
def activate_command(username: str) -> None:
    """Let a deactivated USERNAME log in again."""
    user = _user(username)
    changed = user_service.set_active(user, True, actor=None)
    click.echo(f"{user.username}: active" + ("" if changed else " (already)"))


@users_cli.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input.")
def set_password_command(username: str, password_stdin: bool) -> None:
    """Set a new password for USERNAME (a forgotten one). Ends the user's sessions.
    Without --password-stdin the password is prompted for, hidden."""
    user = _user(username)
    try:
        user_service.reset_password(user, _new_password(password_stdin), actor=None)
    except ValidationFailed as exc:
        _fail(exc.errors)
    click.echo(f"{user.username}: password set; every session of the user has ended")


@users_cli.command("list")
def list_users_command() -> None:
    """List users: username, nation, roles, active flag, unit."""
    rows = [(u.username, u.nation_code, ",".join(sorted(u.roles)) or "-",
             "active" if u.active else "inactive", u.unit or "-")
            for u in user_service.list_users()]
    header = ("USERNAME", "NATION", "ROLES", "STATE", "UNIT")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


@demo_cli.command("load")
@click.option("--if-empty", is_flag=True, help="Do nothing when users already exist.")
def load_demo_command(if_empty: bool) -> None:
    """Load demo users (password `demo`) and lessons. Refused in production."""
    from lessons.demo import DEMO_PASSWORD, DEMO_USERS, load_demo

    if not current_app.config.get("DEMO_DATA_ALLOWED"):
        click.echo("error: demo data is refused in production (MUSTER_ENV=production).",
                   err=True)
        sys.exit(2)
    if if_empty and db.session.scalar(select(func.count()).select_from(User)):
        click.echo("Database already has users; demo data not loaded.")
    else:
        try:
            summary = load_demo()
        except ValidationFailed as exc:
            _fail(exc.errors)
        click.echo(f"Loaded {summary['users']} demo users, {summary['lessons']} lessons and "
                   f"{summary['exercises']} exercises.")
    click.echo(f"\nDemo logins (password for all: {DEMO_PASSWORD}):")
    for username, nation, roles, _name, _unit in DEMO_USERS:
        click.echo(f"  {username:<16} {nation}  {', '.join(roles)}")


@search_cli.command("sync")
def search_sync_command() -> None:
    """Apply the logged lesson changes this host's index has not applied yet."""
    try:
        applied = search.sync()
    except search.IndexBusy as exc:
        click.echo(f"error: {exc}; try again", err=True)
        sys.exit(1)
    except (search.IndexMissing, search.IndexBehind) as exc:
        click.echo(f"error: {exc}; run `flask search reindex`", err=True)
        sys.exit(1)
    click.echo(f"Applied {applied} pending change(s).")


@search_cli.command("status")
def search_status_command() -> None:
    """List every host's index: its position in the change log and its lag."""
    where, reports = search.indexes()
    click.echo(f"Change log: last change {where.last_id}, pruned through "
               f"{where.pruned_through}, epoch {where.epoch}.")
    if not reports:
        click.echo("No index has registered yet (the first apply registers this host's).")
        return
    click.echo(f"{'':2}{'index':<17} {'host':<20} {'position':>10} {'lag':>8} "
               f"{'oldest':>9} {'seen':>9}  folder")
    for row in reports:
        oldest = f"{row.oldest_pending_seconds:.1f}s" if row.oldest_pending_seconds \
            is not None else "-"
        click.echo(f"{'*' if row.this_host else ' ':2}{row.id:<17} {row.host[:20]:<20} "
                   f"{row.position:>10} {row.lag:>8} {oldest:>9} "
                   f"{row.seen_seconds_ago:>8.0f}s  {row.folder}")
        if row.problem:
            click.echo(f"{'':2}  needs a rebuild: {row.problem}")
    click.echo("(* this host's index; lag: changes not applied; oldest: age of the "
               "oldest of them; seen: since its last report)")


@search_cli.command("worker")
@click.option("--once", is_flag=True, help="Apply what is waiting, then exit.")
def search_worker_command(once: bool) -> None:
    """Run this host's indexer in the foreground: apply the change log to the index as
    changes arrive, merge segments, prune the log (``make serve`` runs it beside the
    server). Stops on SIGTERM or Ctrl-C."""
    import signal
    import threading

    from lessons.search import indexer

    app = current_app._get_current_object()
    if once:
        done = indexer.Indexer(app).round()
        click.echo(f"Applied {done.applied} change(s)" + (" after a rebuild" if done.rebuilt
                                                            else "") + ".")
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"Search indexer for {app.config['INDEX_DIR']} (waits while another process "
               "on this host holds the indexer lock).", err=True)
    indexer.serve(app, stop)


@search_cli.command("prune")
def search_prune_command() -> None:
    """Delete change-log rows every registered index has applied (the indexer does this
    every ten minutes)."""
    pruned = search.prune()
    for index_id in pruned.forgotten:
        click.echo(f"Forgot index {index_id} (not seen for too long, or of an old history).")
    click.echo(f"Deleted {pruned.deleted} change(s); the log is pruned through "
               f"{pruned.pruned_through}.")


@search_cli.command("forget")
@click.argument("index_id")
def search_forget_command(index_id: str) -> None:
    """Forget a retired host's index, so pruning stops waiting for it."""
    from lessons.search import changelog

    if not changelog.forget(index_id):
        click.echo(f"error: no index {index_id!r} is registered (see `flask search status`)",
                   err=True)
        sys.exit(1)
    click.echo(f"Forgot index {index_id}.")


@search_cli.command("reindex")
def search_reindex_command() -> None:
    """Rebuild the index from the database aside, then swap it in."""
    with click.progressbar(length=1, label="Indexing lessons", show_pos=True,
                           file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        report = search.reindex(progress)
    click.echo(f"Indexed {report.documents} lessons in {report.seconds:.1f} s "
               f"({report.replayed} concurrent change(s) replayed).")


@search_cli.command("check")
def search_check_command() -> None:
    """Report drift between the index and the database; exit code 1 when drifted."""
    drift = search.check()
    if drift.clean:
        click.echo("Index is in step with the database.")
        return
    for label, ids in (("missing from the index", drift.missing),
                       ("indexed at an old version", drift.stale),
                       ("indexed but not in the database", drift.extra)):
        if ids:
            click.echo(f"{len(ids)} lesson(s) {label}")
    if drift.pending:
        click.echo(f"{drift.pending} change(s) waiting to be applied (run `flask search sync`, "
                   "or start `flask search worker`)")
    if drift.index_missing:
        click.echo("the index is missing while the database holds lessons "
                   "(run `flask search reindex`)")
    if drift.schema_outdated:
        click.echo("the index was built by an older version of Muster "
                   "(run `flask search reindex`)")
    if drift.reindex_interrupted:
        click.echo("a reindex is running or was interrupted (run `flask search reindex`)")
    if drift.behind:
        click.echo(f"the index cannot catch up from the change log: {drift.behind} "
                   "(run `flask search reindex`)")
    sys.exit(1)


FORMATS = ("jsonl", "csv")


def _format(path: str, given: str | None) -> str:
    """The exchange format: as given, else from the file name (CSV for ``.csv``)."""
    if given:
        return given
    return "csv" if path.lower().endswith(".csv") else "jsonl"


@lessons_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--as", "as_user", metavar="USERNAME",
              help="Submitter of new lessons; their nation is the default originator "
                   "(default: the one active admin).")
@click.option("--map", "map_file", type=click.Path(exists=True, dir_okay=False),
              help="JSON map from another system's keys to the contract keys.")
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="jsonl or csv (default: csv for a .csv file, else jsonl).")
@click.option("--skip-invalid", is_flag=True,
              help="Store the good lines and report the bad ones (default: all or nothing).")
@click.option("--as-migration", "migration", is_flag=True,
              help="A migration from another system, for an administrator: statuses, "
                   "originators and external ids taken as is, for any lesson, audited as a "
                   "migration (default: the --as user's own rights, as on the upload page).")
@click.option("--batch-size", type=click.IntRange(1, BATCH_SIZE_MAX),
              default=BATCH_SIZE, show_default=True,
              help="Lessons stored per transaction once the whole file is checked; each "
                   "batch is committed with its index changes, searchable once applied.")
def import_command(file: str, as_user: str | None, map_file: str | None, fmt: str | None,
                   skip_invalid: bool, migration: bool, batch_size: int) -> None:
    """Import lessons from FILE (JSON Lines or CSV; - for standard input).

    The whole file is checked first; with any bad line (and no --skip-invalid) nothing
    is stored. Then lessons are stored --batch-size at a time, each batch committed and
    indexed on its own: if the import stops midway, the batches before stay stored and
    searchable, and running the same file again is safe for lines with an external_id
    (those already stored come back unchanged)."""
    from lessons.services import exchange, spreadsheet

    try:
        submitter = (exchange.require_user(as_user) if as_user
                     else exchange.default_submitter())
        exchange.check_importer(submitter, migration=migration)
        field_map = (exchange.FieldMap.from_json(Path(map_file).read_text("utf-8"))
                     if map_file else None)
    except ValidationFailed as exc:
        _fail(exc.errors)
    except NotAllowed as exc:
        _fail({"--as-migration" if migration else "--as": exc.message})
    except ValueError as exc:
        _fail({"--map": str(exc)})
    with click.open_file(file, "rb") as handle:  # bytes: CSV cells keep their line ends
        raw = handle.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        _fail({"file": f"not UTF-8 text (byte {exc.start}); save it as UTF-8 and retry"})
    if _format(file, fmt) == "csv":
        records = list(spreadsheet.read_rows(text, field_map))
    else:
        records = list(exchange.read_lines(text.splitlines(), field_map))
    with _StoreProgress() as progress:
        try:
            with click.progressbar(records, label="Checking", show_pos=True,
                                   file=sys.stderr) as bar:
                report = exchange.import_records(bar, submitter, skip_invalid=skip_invalid,
                                                 migration=migration, batch_size=batch_size,
                                                 progress=progress)
        except exchange.ImportStopped as exc:
            progress.close()
            _import_stopped(exc)
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    if report.stored:
        click.echo(f"Imported {report.created} new, {report.updated} updated, "
                   f"{report.unchanged} unchanged; {len(report.rejected_lines)} line(s) "
                   f"rejected.")
    else:
        click.echo(f"Nothing imported: {len(report.rejected_lines)} line(s) rejected "
                   f"(use --skip-invalid to store the good lines).", err=True)
        sys.exit(1)


class _StoreProgress:
    """The storing progress bar, opened at the first committed batch (the total is
    known only once the file is checked)."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=max(total, 1), label="Storing",
                                         show_pos=True, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def __enter__(self) -> _StoreProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _import_stopped(exc) -> NoReturn:  # noqa: ANN001 - exchange is imported lazily
    """Exit 1 saying what of a batched import stayed stored, and that a re-run is safe."""
    report = exc.report
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    click.echo(f"error: the import stopped at lines {exc.lines[0]}-{exc.lines[1]}: "
               f"{exc.reason}", err=True)
    click.echo(f"{report.lessons_stored} lesson(s) were stored in {report.batches} "
               f"batch(es) before it stopped ({report.created} new, {report.updated} "
               f"updated, {report.unchanged} unchanged) and are searchable; nothing from "
               f"line {exc.lines[0]} on was stored.", err=True)
    again = ("Running the same file again is safe: lines with an external_id that were "
             "stored come back \"unchanged\" and the rest are stored.")
    if report.without_external_id:
        again += (f" But {report.without_external_id} stored line(s) have no external_id: "
                  "they would be stored again as new lessons; give every line an "
                  "external_id, or import only the lines not yet stored.")
    click.echo(again, err=True)
    sys.exit(1)


@lessons_cli.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, allow_dash=True))
@click.option("--as", "as_user", metavar="USERNAME",
              help="Export only what this user may see (default: every lesson).")
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="jsonl or csv (default: csv for a .csv file, else jsonl).")
def export_command(file: str, as_user: str | None, fmt: str | None) -> None:
    """Export lessons to FILE (JSON Lines or CSV; - for standard output)."""
    from lessons.services import exchange, spreadsheet

    try:
        viewer = exchange.require_user(as_user) if as_user else None
    except ValidationFailed as exc:
        _fail(exc.errors)
    csv_out = _format(file, fmt) == "csv"
    lessons = exchange.export_lessons(viewer, fmt="csv" if csv_out else "jsonl")
    with click.open_file(file, "wb", atomic=file != "-") as handle, \
            click.progressbar(lessons, label="Exporting", show_pos=True,
                              file=sys.stderr) as bar:
        if csv_out:
            handle.write(spreadsheet.header_line().encode("utf-8"))
        for lesson in bar:
            text = (spreadsheet.row_line(exchange.lesson_record(lesson)) if csv_out
                    else exchange.json_line(lesson))
            handle.write(text.encode("utf-8"))
    click.echo(f"Exported {len(lessons)} lesson(s).", err=file == "-")


def _backup_failed(exc: backups.BackupError) -> NoReturn:
    """Exit 2 when the request was refused (nothing attempted), 1 when it failed."""
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(2 if exc.refused else 1)


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@with_appcontext
def backup_command(file: str) -> None:
    """Back up the whole database to FILE (SQLite: a database file, safe while the app
    runs; PostgreSQL: a pg_dump custom-format archive). Written aside, then renamed."""
    try:
        report = backups.backup(file)
    except backups.BackupError as exc:
        _backup_failed(exc)
    click.echo(f"Wrote {report.path} ({report.kind}, {report.size:,} bytes, "
               f"{report.lessons} lesson(s)).")
    if report.files_path is not None:
        click.echo(f"Wrote {report.files_path} ({report.files} file(s) attached to "
                   f"lessons); keep it with the backup.")


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--yes", is_flag=True,
              help="Replace a database that holds data without asking.")
@with_appcontext
def restore_command(file: str, yes: bool) -> None:
    """Replace the whole database with the backup in FILE, then rebuild the search
    index. A failed restore leaves the database as it was."""
    try:
        backups.check_backup(file)
        held = backups.contents()
        if not held.empty and not yes:
            if not sys.stdin.isatty():
                raise backups.replace_refused(held)
            if not click.confirm(f"The database holds {held.describe()}. Replace them "
                                 f"with the backup?", default=False):
                raise backups.BackupError("nothing restored", refused=True)
        report = backups.restore(file, replace=True)
    except backups.BackupError as exc:
        _backup_failed(exc)
    if report.upgraded_from:
        click.echo(f"The backup's schema {report.upgraded_from} was upgraded to this "
                   f"Muster's.")
    click.echo(f"Restored {report.contents.describe()} from {report.path}; search index "
               f"rebuilt ({report.indexed} lesson(s)).")
    if report.files_path is not None:
        click.echo(f"Restored {report.files} file(s) attached to lessons from "
                   f"{report.files_path}.")
    else:
        click.echo(f"No {backups.lesson_files.archive_path(report.path).name} beside the "
                   f"backup: the files attached to lessons were left as they were.")


@users_cli.command("set-email")
@click.argument("username")
@click.argument("email", default="")
def set_email_command(username: str, email: str) -> None:
    """Set where USERNAME's notifications are e-mailed (no EMAIL: in the app only)."""
    from lessons.services import notifications

    user = _user(username)
    try:
        notifications.save_preferences(user, notifications.preferences(user), email)
    except ValidationFailed as exc:
        _fail(exc.errors)
    click.echo(f"{user.username}: e-mail {user.email or 'none'}.")


def register_cli(app: Flask) -> None:
    from lessons.federation.cli import federation_cli
    from lessons.notify_cli import notify_cli

    app.cli.add_command(notify_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(search_cli)
    app.cli.add_command(lessons_cli)
    app.cli.add_command(federation_cli)
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)
