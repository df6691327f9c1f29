"""Files attached to lessons: upload, download, removal, and the folder backups carry.

(``services/attachments.py`` is another thing: lessons attached to exercises.)

A file is added by its lesson's editors (``policy.can_edit``) and served to whoever may
see the lesson (``policy.can_view``), answering 404 alike for a hidden lesson, a missing
one and a missing file. Its type is judged by its content (``lessons.filetypes``), its
bytes are written under ``FILES_DIR`` with a random name, and its text is indexed with
the lesson: adding or removing a file queues the lesson for indexing as an edit does.
Removals are audited with the file's name. An archived lesson keeps its files (nobody
may edit it, so nobody removes them).

``add_file`` works inside the caller's transaction (other use cases, such as turning an
after-action report into drafts, keep the report with each draft); ``upload_file`` and
``remove_file`` are the pages' use cases and commit once.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import delete, event, func, select
from sqlalchemy.orm import Session

from lessons import filetypes, policy, search
from lessons.errors import NotFound, ValidationFailed
from lessons.extensions import db
from lessons.models import Lesson, LessonFile, User
from lessons.rules import FILE_MAX_MB_DEFAULT, FILES_PER_LESSON_MAX
from lessons.services import audit
from lessons.services.lessons import commit_lesson, hold_lessons, locked

# Room for the form's other fields and the multipart framing around the file itself.
REQUEST_OVERHEAD = 1024 * 1024
_KEY = re.compile(r"[0-9a-f]{32}")
_WRITTEN = "lesson_files_written"  # session.info: files written in this transaction
_UNLINK = "lesson_files_unlink"  # session.info: files to delete once it commits


# --- settings and storage --------------------------------------------------------------------
def max_bytes() -> int:
    """The largest file accepted (MUSTER_FILE_MAX_MB megabytes, 20 by default)."""
    value = current_app.config.get("FILE_MAX_MB", FILE_MAX_MB_DEFAULT)
    try:
        megabytes = float(value)
        if megabytes <= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise RuntimeError(f"MUSTER_FILE_MAX_MB must be a positive number of megabytes, "
                           f"not {value!r}") from None
    return int(megabytes * 1024 * 1024)


def request_limit() -> int:
    """The most an upload request may carry: one file at its limit and the form."""
    return max_bytes() + REQUEST_OVERHEAD


def files_dir() -> Path:
    return Path(current_app.config["FILES_DIR"])


def stored_path(item: LessonFile) -> Path:
    if not _KEY.fullmatch(item.storage_key):
        raise NotFound("No such file.")  # never a path made from anything else
    return files_dir() / item.storage_key


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _write(data: bytes) -> str:
    """Write ``data`` under a new random key (aside, then renamed: never half a file) and
    remember it, so a rollback of the transaction removes it again."""
    folder = files_dir()
    folder.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(16)
    fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / key)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    db.session.info.setdefault(_WRITTEN, []).append(folder / key)
    return key


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    session.info.pop(_WRITTEN, None)
    for path in session.info.pop(_UNLINK, None) or ():
        path.unlink(missing_ok=True)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_UNLINK, None)
    for path in session.info.pop(_WRITTEN, None) or ():
        path.unlink(missing_ok=True)


# --- use cases ---------------------------------------------------------------------------------
def _load_lesson(user: User, public_id: str, *, for_update: bool = False) -> Lesson:
    query = select(Lesson).where(Lesson.public_id == str(public_id),
                                 policy.visible_lessons(user))
    if for_update:
        query = locked(query, Lesson)
    return policy.require_view(user, db.session.scalar(query))


def list_files(user: User, lesson: Lesson) -> list[LessonFile]:
    """The lesson's files, oldest first, for a viewer who may see the lesson."""
    policy.require_view(user, lesson)
    return list(db.session.scalars(select(LessonFile).where(
        LessonFile.lesson_id == lesson.id).order_by(LessonFile.id)))


def add_file(user: User, lesson: Lesson, filename: str, data: bytes) -> LessonFile:
    """Attach ``data`` (uploaded as ``filename``) to ``lesson`` in the caller's transaction:
    checked, written to disk, recorded, audited and queued for indexing; the caller
    commits (a rollback removes the written file again).

    Raises ``NotFound`` / ``NotAllowed`` (the user may not see / edit the lesson) and
    ``ValidationFailed`` (key ``file``) for an empty, oversized or unkept file, one whose
    name disagrees with its content, or a lesson holding FILES_PER_LESSON_MAX files."""
    policy.require_edit(user, lesson)
    try:
        name = filetypes.clean_name(filename)
    except filetypes.Refused as exc:
        raise ValidationFailed({"file": exc.message}) from None
    limit = max_bytes()
    if len(data) > limit:
        raise ValidationFailed({"file": (
            f"“{name}” is {_megabytes(len(data))}; a file may be at most "
            f"{_megabytes(limit)}. Nothing was stored.")})
    try:
        kind = filetypes.identify(name, data)
    except filetypes.Refused as exc:
        raise ValidationFailed({"file": exc.message}) from None
    held = db.session.scalar(select(func.count()).select_from(LessonFile)
                             .where(LessonFile.lesson_id == lesson.id)) or 0
    if held >= FILES_PER_LESSON_MAX:
        raise ValidationFailed({"file": (
            f"A lesson holds at most {FILES_PER_LESSON_MAX} files; remove one first.")})
    text = filetypes.extract_text(kind.key, data)
    item = LessonFile(lesson_id=lesson.id, original_name=name, media_type=kind.media_type,
                      size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                      storage_key=_write(data), uploaded_by_id=user.id,
                      extracted_text=text)
    db.session.add(item)
    db.session.flush()
    audit.record("file_added", actor=user, lesson=lesson,
                 comment=f"{name} ({kind.label}, {len(data):,} bytes)")
    search.queue_lesson(lesson)
    return item


def upload_file(user: User, public_id: str, filename: str, data: bytes) -> LessonFile:
    """The lesson page's upload: ``add_file`` on lesson ``public_id``, committed once.
    The lesson is held until commit before its files are counted (PostgreSQL's row lock,
    SQLite's write lock), so two uploads count each other's file."""
    lesson = _load_lesson(user, public_id)
    hold_lessons(lesson)
    try:
        item = add_file(user, lesson, filename, data)
    except ValidationFailed:
        db.session.rollback()
        raise
    commit_lesson(lesson)
    return item


def get_file(user: User, public_id: str, file_id: str) -> tuple[LessonFile, Path]:
    """The file ``file_id`` of lesson ``public_id`` and where its bytes are, for a user who
    may see the lesson; ``NotFound`` (the same answer) for a lesson hidden from them, one
    that does not exist, and a file that is not the lesson's."""
    try:
        lesson = _load_lesson(user, public_id)
    except NotFound:
        raise NotFound("No such file.") from None
    item = db.session.scalar(select(LessonFile).where(
        LessonFile.public_id == str(file_id), LessonFile.lesson_id == lesson.id))
    if item is None:
        raise NotFound("No such file.")
    path = stored_path(item)
    if not path.is_file():
        raise NotFound("No such file.")
    return item, path


def remove_file(user: User, public_id: str, file_id: str) -> LessonFile:
    """Remove a file from a lesson its editor may edit: the row, its words from the index
    and (once committed) its bytes; audited with the file's name. ``NotFound`` for a file
    that is not the lesson's (or was removed at the same moment by someone else)."""
    lesson = _load_lesson(user, public_id, for_update=True)
    policy.require_edit(user, lesson)
    item = db.session.scalar(select(LessonFile).where(
        LessonFile.public_id == str(file_id), LessonFile.lesson_id == lesson.id))
    if item is None:
        raise NotFound("No such file.")
    # One statement that says whether it removed anything: of two removals sent at once,
    # the second finds nothing and is refused, not audited twice.
    removed = db.session.execute(delete(LessonFile).where(LessonFile.id == item.id))
    if not removed.rowcount:
        db.session.rollback()
        raise NotFound("No such file.")
    audit.record("file_removed", actor=user, lesson=lesson,
                 comment=f"{item.original_name} ({item.size:,} bytes, sha256 {item.sha256})")
    db.session.info.setdefault(_UNLINK, []).append(stored_path(item))
    commit_lesson(lesson)
    return item


# --- backups --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FilesArchive:
    path: Path
    files: int


def archive_path(backup: Path) -> Path:
    """Where the files of the database backup ``backup`` go: ``<backup>.files.tar``."""
    return backup.with_name(backup.name + ".files.tar")


def write_archive(target: Path) -> FilesArchive:
    """Every stored file into the tar ``target`` (aside, then renamed): an empty archive
    when there are none, so a restore knows the backup had none."""
    folder = files_dir()
    keys = sorted(p.name for p in folder.iterdir()
                  if p.is_file() and _KEY.fullmatch(p.name)) if folder.is_dir() else []
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                               dir=target.parent if str(target.parent) else ".")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w") as archive:
            for key in keys:
                archive.add(folder / key, arcname=key, recursive=False)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return FilesArchive(target, len(keys))


def check_archive(source: Path) -> int:
    """How many files the archive holds; ``ValueError`` unless it is a tar of stored files
    only (plain files under random names: nothing that could land elsewhere)."""
    try:
        with tarfile.open(source, "r:") as archive:
            members = archive.getmembers()
    except (tarfile.TarError, OSError) as exc:
        raise ValueError(f"{source} is not a readable files archive: {exc}") from None
    for member in members:
        if not member.isfile() or not _KEY.fullmatch(member.name):
            raise ValueError(f"{source} holds {member.name!r}, which is not a stored file")
    return len(members)


def restore_archive(source: Path) -> int:
    """Replace the files folder with the archive's files: unpacked beside it first, then
    swapped in, so the folder is the old one or the new one, never a mixture."""
    count = check_archive(source)
    folder = files_dir()
    folder.parent.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=".files-restore-", dir=folder.parent))
    try:
        with tarfile.open(source, "r:") as archive:
            for member in archive.getmembers():
                handle = archive.extractfile(member)
                assert handle is not None  # checked: plain files only
                with handle, open(incoming / member.name, "wb") as out:
                    shutil.copyfileobj(handle, out)
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}-old-{secrets.token_hex(4)}")
            folder.rename(old)
        incoming.rename(folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if incoming.exists():
            shutil.rmtree(incoming, ignore_errors=True)
    return count
