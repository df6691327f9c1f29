"""The on-disk index of one host: generations, the one writer, per-thread searchers, and
following the change log (docs/ARCHITECTURE.md, section 6).

Layout of ``INDEX_DIR`` (one per host; never shared between hosts)::

    INDEX_ID        this index's name in the ``search_indexes`` registry
    CURRENT         name of the live generation (replaced atomically by reindex)
    REINDEXING      present while a reindex builds a new generation
    REBUILD_LOCK    held by the one process rebuilding the index (``reindex``)
    INDEXER_LOCK    held by the one process applying the log in the background
    gen-.../        one Whoosh index per generation, with its POSITION: the log's
                    epoch and the last log number applied to it

A generation's position is written after each index commit, so a crash in between only
makes the next apply write the same lessons again (applying is idempotent: it writes
each lesson's current state). An index rebuilds when it cannot catch up from the log:
its generation is gone, outdated, of another epoch (a restore), or the log was pruned
past its position (it was away too long).

Whoosh allows one writer per index; every writer is taken with a timeout, and a
timeout leaves the changes in the log for the next apply.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import whoosh.util
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from whoosh import index as whoosh_index
from whoosh.codec.whoosh3 import W3PerDocReader
from whoosh.filedb.filestore import FileStorage
from whoosh.index import TOC, EmptyIndexError, FileIndex, LockError
from whoosh.searching import Searcher
from whoosh.writing import SegmentWriter

from lessons.extensions import db
from lessons.models import Lesson, LessonFile
from lessons.search import changelog
from lessons.search.documents import lesson_document
from lessons.search.schema import SCHEMA_VERSION, build_schema

# Whoosh names new segments and temporary files from the global ``random`` module. Its
# state is shared with everything else in the process and copied into every forked
# worker, so two workers (or anything that seeds ``random``) draw the same names, and a
# new segment can overwrite the files of a live one. Names come from the OS instead.
whoosh.util.random = random.SystemRandom()


def _cached_length_reader(self: W3PerDocReader, fieldname: str, column):
    """Whoosh's ``W3PerDocReader._cached_reader``, also remembering that a field has no
    length column. Writing a segment asks for a field's length once per posting; for
    fields that keep no lengths (ids, unscored keywords) Whoosh looked for the missing
    file each time, a ``stat`` per posting: 6% of the CPU of indexing lesson text (3,000
    NASA lessons, same process, alternating runs). A segment's files never change, so
    the answer can be kept."""
    try:
        return self._readers[fieldname]
    except KeyError:
        reader = self.column_reader(fieldname, column) if self.has_column(fieldname) else None
        self._readers[fieldname] = reader
        return reader


W3PerDocReader._cached_reader = _cached_length_reader

log = logging.getLogger(__name__)

REINDEX_BATCH = 500
# Per writer process, by Whoosh's estimate (real use is higher: about 900 MB each at
# 100,000 lessons). Each pool becomes one segment, and every query pays per segment
# (a term look-up per word, a mask operation per facet value): 768 MB gives about 10,000
# lessons a segment, and searches about 15% faster than at half that.
REINDEX_POOL_MB = 768
REINDEX_SEGMENT_FILL = 0.8
# Measured on lesson text: about one posting per 11 characters, and Whoosh's pool counts
# about 190 bytes per posting.
CHARS_PER_POSTING = 11
POOL_BYTES_PER_POSTING = 190
SMALL_SEGMENT_DOCS = 1000
APPLY_BATCH = 2000  # log rows per index commit while catching up
# A catch-up of at least this many changes (a bulk import's batch, an indexer back from a
# pause) is analysed and written by ``reindex_procs`` writer processes, each writing a
# segment of its own; fewer go through one writer, as starting processes costs more than
# it saves.
PARALLEL_APPLY_MIN = 500
# Small segments (one per edit) are merged once this many have gathered, after the
# response where there is one (``search.after_commit``), so an edit does not wait for it;
# a commit merges them itself past MAX_SEGMENTS_PILED_UP (nobody else did).
MAX_SEGMENTS_UNMERGED = 10
MAX_SEGMENTS_PILED_UP = 24
MERGE_WRITER_TIMEOUT = 1.0  # seconds a merge waits for the writer before leaving it
SCHEMA_FILE = "SCHEMA_VERSION"
# Keep this many generations on disk: searchers in other processes may still be
# reading the previous one until their next refresh.
GENERATIONS_KEPT = 2
# Index files (a generation, a table of contents and its segments) stay on disk this
# long after they stopped being current: a searcher checks it is up to date at the start
# of a request and may read lazily opened files of its segments until the request ends.
# No request runs this long; the files kept meanwhile are small (merged edits).
FILES_KEPT_SECONDS = 300
SUPERSEDED_FILE = "SUPERSEDED"
POSITION_FILE = "POSITION"
INDEX_ID_FILE = "INDEX_ID"


def _clean_files(storage, indexname: str, gen: int, segments) -> None:
    """Whoosh's ``clean_files``, called by every commit, without deleting what searchers
    may still read.

    Whoosh deletes every table of contents but the new one, and every segment file the
    new one does not list, at once: a searcher in another process (or thread) opened a
    moment before then finds its files gone (``stored_fields`` returning None, a
    missing ``.toc`` while opening, dates read as out of range). Here a table of
    contents is deleted only once it has been superseded (the next one's time) for
    ``FILES_KEPT_SECONDS``, and a segment file only when no table of contents kept
    still lists its segment.
    """
    toc_pattern = TOC._pattern(indexname)
    segment_pattern = TOC._segment_pattern(indexname)
    names = [name for name in storage if not name.startswith(".")]
    generations = sorted(int(m.group(1)) for name in names if (m := toc_pattern.match(name)))
    keep = {segment.segment_id() for segment in segments}
    now = time.time()
    doomed: list[str] = []
    for older, newer in zip(generations, generations[1:], strict=False):
        if older >= gen:
            break
        try:
            superseded = storage.file_modified(TOC._filename(indexname, newer))
        except OSError:
            superseded = now
        if now - superseded >= FILES_KEPT_SECONDS:
            doomed.append(TOC._filename(indexname, older))
            continue
        try:
            keep |= _toc_segments(storage, indexname, older)
        except Exception:  # noqa: BLE001 - unreadable: keep every segment file this time
            return
    for name in names:
        match = segment_pattern.match(name)
        if match and not toc_pattern.match(name) and match.group(1) not in keep:
            doomed.append(name)
    for name in doomed:
        try:
            storage.delete_file(name)
        except OSError:
            pass  # gone already, or another process still has it open
    _forget_tocs(storage, {int(m.group(1)) for name in doomed
                           if (m := toc_pattern.match(name))})


_toc_cache: dict[tuple[str, int], frozenset[str]] = {}
_toc_cache_lock = threading.Lock()


def _toc_segments(storage, indexname: str, generation: int) -> frozenset[str]:
    """The segments a table of contents lists (it never changes: read once)."""
    key = (str(getattr(storage, "folder", id(storage))), generation)
    found = _toc_cache.get(key)
    if found is None:
        toc = TOC.read(storage, indexname, generation, schema=_toc_schema())
        found = frozenset(segment.segment_id() for segment in toc.segments)
        with _toc_cache_lock:
            _toc_cache[key] = found
    return found


@functools.cache
def _toc_schema():
    # Given a schema, reading a table of contents skips unpickling the stored one.
    return build_schema()


def _forget_tocs(storage, generations: set[int]) -> None:
    folder = str(getattr(storage, "folder", id(storage)))
    with _toc_cache_lock:
        for generation in generations:
            _toc_cache.pop((folder, generation), None)


# Whoosh's writer looks ``clean_files`` up in ``whoosh.index`` at every commit.
whoosh_index.clean_files = _clean_files



class _ThreadSearchers(dict):
    """This thread's open searchers, by index folder; closed when the thread ends.

    Threaded servers start a thread per request: without this, every finished thread
    would leave its searcher's files open until the garbage collector found them.
    """

    def __del__(self) -> None:
        for _generation, searcher in self.values():
            try:
                searcher.close()
            except Exception:  # already closed, or its files already gone
                pass


class _Local(threading.local):
    def __init__(self) -> None:
        self.searchers = _ThreadSearchers()


_local = _Local()


class IndexBusy(Exception):
    """The writer lock could not be taken in time; pending changes stay queued."""


class IndexMissing(Exception):
    """No usable index while the database holds lessons (the folder was lost, or a
    first build is running): an empty answer would hide the loss, so nobody gets one."""

    def __init__(self, rebuilding: bool = False) -> None:
        super().__init__("the search index is being rebuilt" if rebuilding
                         else "the search index is missing")
        self.rebuilding = rebuilding


# What ``IndexStore.state`` reports.
STATE_OK = "ok"
STATE_MISSING = "missing"  # lost, or never built
STATE_REBUILDING = "rebuilding"  # missing, and a reindex is building it
STATE_OUTDATED = "outdated"  # built by an older Muster: needs a reindex


@dataclass(frozen=True)
class Position:
    """How far a generation has applied the change log, and of which history (epoch)."""

    epoch: str
    last_id: int


def write_position(path: Path, position: Position) -> None:
    tmp = path / f"{POSITION_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text(f"{position.epoch} {position.last_id}", "utf-8")
    os.replace(tmp, path / POSITION_FILE)  # atomic: readers see old or new


def read_position(path: Path) -> Position | None:
    """None when unknown (an index built by an older Muster, or being created)."""
    try:
        epoch, last_id = (path / POSITION_FILE).read_text("utf-8").split()
        return Position(epoch, int(last_id))
    except (FileNotFoundError, ValueError):
        return None


def write_schema_version(path: Path) -> None:
    (path / SCHEMA_FILE).write_text(str(SCHEMA_VERSION), "utf-8")


def read_schema_version(path: Path) -> int:
    try:
        return int((path / SCHEMA_FILE).read_text("utf-8").strip())
    except (FileNotFoundError, ValueError):
        return 1


def _new_generation_name() -> str:
    return f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


@dataclass
class IndexStore:
    """One index folder. Cheap to construct; all state lives on disk."""

    root: Path
    writer_timeout: float = 10.0
    reindex_procs: int = 2  # writer processes for a full rebuild (capped at the CPUs)

    @property
    def current_file(self) -> Path:
        return self.root / "CURRENT"

    @property
    def reindex_flag(self) -> Path:
        return self.root / "REINDEXING"

    def current_generation(self) -> str | None:
        try:
            return self.current_file.read_text("utf-8").strip() or None
        except FileNotFoundError:
            return None

    def _set_current(self, generation: str) -> None:
        tmp = self.root / f"CURRENT.{os.getpid()}.tmp"
        tmp.write_text(generation, "utf-8")
        os.replace(tmp, self.current_file)  # atomic: readers see old or new, never neither

    @contextmanager
    def _create_lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileStorage(str(self.root)).lock("create")
        lock.acquire(blocking=True)
        try:
            yield
        finally:
            lock.release()

    def has_generation(self, generation: str | None) -> bool:
        """Whether ``generation`` is on disk with at least one table of contents."""
        return generation is not None and any((self.root / generation).glob("_MAIN_*.toc"))

    def state(self) -> str:
        """The index's state from the files alone (cheap enough to poll)."""
        generation = self.current_generation()
        if not self.has_generation(generation):
            return STATE_REBUILDING if self.reindexing() else STATE_MISSING
        if read_schema_version(self.root / generation) != SCHEMA_VERSION:
            return STATE_OUTDATED
        return STATE_OK

    def open(self, from_log: bool = False) -> tuple[str, FileIndex]:
        """The live generation, created empty on first use only when that is the truth:
        for a reader, while the database holds no lesson (a new install); for an
        applier (``from_log``), while the change log still holds every change since the
        database was new and not too many to replay, so that applying it makes the index
        complete. Otherwise the index was lost, and ``IndexMissing`` says so (a rebuild
        restores it)."""
        for _attempt in range(3):
            generation = self.current_generation()
            if not self.has_generation(generation):
                generation = self._create_empty(from_log)
            try:
                return generation, whoosh_index.open_dir(str(self.root / generation))
            except (EmptyIndexError, FileNotFoundError):
                # A reindex swapped generations, or the folder went, between the two
                # reads: look again.
                continue
        raise IndexMissing(self.reindexing())

    def _create_empty(self, from_log: bool) -> str:
        with self._create_lock():
            generation = self.current_generation()
            if self.has_generation(generation):
                return generation
            if self.reindexing():
                raise IndexMissing(True)
            start = empty_start(from_log)
            if start is None:
                raise IndexMissing()
            generation = _new_generation_name()
            path = self.root / generation
            path.mkdir(parents=True)
            whoosh_index.create_in(str(path), build_schema())
            write_schema_version(path)
            write_position(path, start)
            self._set_current(generation)
            return generation

    def index_id(self) -> str:
        """This index's name in the registry, made once with the folder. The file also
        names the host and folder it was made for: a folder copied to another host (or
        path) gets a name of its own there, or two indexes would report as one."""
        path = self.root / INDEX_ID_FILE
        here = f"{socket.gethostname()} {self.root.resolve()}"

        def made_here() -> str | None:
            try:
                name, _, made_for = path.read_text("utf-8").strip().partition(" ")
            except FileNotFoundError:
                return None
            return name if name and made_for == here else None

        if found := made_here():
            return found
        self.root.mkdir(parents=True, exist_ok=True)
        with self._create_lock():
            if found := made_here():  # another process made it meanwhile
                return found
            name = secrets.token_hex(8)
            tmp = self.root / f"{INDEX_ID_FILE}.{os.getpid()}.tmp"
            tmp.write_text(f"{name} {here}", "utf-8")
            os.replace(tmp, path)
        return name

    def position(self, generation: str | None = None) -> Position | None:
        """How far ``generation`` (the live one by default) has applied the log."""
        generation = generation or self.current_generation()
        if generation is None:
            return None
        return read_position(self.root / generation)

    @contextmanager
    def _host_lock(self, name: str, blocking: bool) -> Iterator[bool]:
        """A file lock in the index folder, held by one process of this host at a time
        (released by the OS if the process dies); yields False when another holds it and
        ``blocking`` is False."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileStorage(str(self.root)).lock(name)
        held = lock.acquire(blocking=blocking)
        try:
            yield held
        finally:
            if held:
                lock.release()

    def rebuild_lock(self, blocking: bool = True) -> AbstractContextManager[bool]:
        """The one rebuild at a time on this host (``REBUILD_LOCK``)."""
        return self._host_lock("REBUILD_LOCK", blocking)

    @contextmanager
    def writer(self, ix: FileIndex | None = None, merge: bool = False,
               timeout: float | None = None, procs: int = 1,
               documents: int = 0) -> Iterator[SegmentWriter]:
        """The index's single writer, committed on success, cancelled on error.

        Commits do not merge (a single edit then costs one small segment's flush), unless
        ``merge`` asks for it or small segments have piled up past the point where
        someone should have merged them (``merge_small``). With ``procs`` above 1 the
        about ``documents`` added are analysed and written by that many processes, one
        segment each (still one commit, under the one lock)."""
        if ix is None:
            _, ix = self.open()
        timeout = self.writer_timeout if timeout is None else timeout
        parallel = {}
        if procs > 1:
            # Documents go to the processes in job files of ``batchsize``: several per
            # process, so that they share the work evenly.
            parallel = {"procs": procs, "multisegment": True,
                        "batchsize": max(1, min(100, documents // (4 * procs)))}
        try:
            writer = ix.writer(timeout=timeout, delay=0.05, compound=False, **parallel)
        except LockError as exc:
            raise IndexBusy(f"index writer busy for {timeout:g} s") from exc
        try:
            yield writer
        except BaseException:
            writer.cancel()
            raise
        # Whoosh's MERGE_SMALL merges the small segments and leaves the large ones alone.
        writer.commit(merge=merge or _small_segments(ix) >= MAX_SEGMENTS_PILED_UP)

    def merge_small(self) -> bool:
        """Merge the small segments if enough have gathered; False if the writer stayed
        busy (the work waits for the next call: better than holding a server worker)."""
        _, ix = self.open()
        if _small_segments(ix) < MAX_SEGMENTS_UNMERGED:
            return True
        try:
            with self.writer(ix, merge=True, timeout=MERGE_WRITER_TIMEOUT):
                pass
        except IndexBusy:
            return False
        return True

    def searcher(self) -> Searcher:
        """A searcher for this thread that sees every committed change."""
        return self.searcher_with_generation()[1]

    def searcher_with_generation(self) -> tuple[str, Searcher]:
        """This thread's up-to-date searcher and the generation it reads."""
        cache: dict[Path, tuple[str, Searcher]] = _local.searchers
        generation = self.current_generation()
        cached = cache.get(self.root)
        if (cached is not None and cached[0] == generation and generation is not None
                and cached[1].up_to_date()):
            return cached
        # Not Searcher.refresh(): it reuses a segment's reader even when that segment has
        # gained deletions, so an updated lesson's old terms (e.g. a nation just removed
        # from REL TO) would still match filters. A new searcher reads them correctly.
        if cached is not None:
            del cache[self.root]  # closed here whatever follows (open may fail)
            try:
                cached[1].close()
            except Exception:  # noqa: BLE001 - its files already gone
                pass
        generation, ix = self.open()
        searcher = ix.searcher()
        cache[self.root] = (generation, searcher)
        return generation, searcher

    def reindexing(self) -> bool:
        return self.reindex_flag.exists()

    def indexer_lock(self, blocking: bool = False) -> AbstractContextManager[bool]:
        """The one background indexer on this host (``flask search worker`` or a serving
        process's thread; ``INDEXER_LOCK``)."""
        return self._host_lock("INDEXER_LOCK", blocking)

    def prune_generations(self) -> None:
        live = self.current_generation()
        generations = sorted(p for p in self.root.glob("gen-*") if p.is_dir())
        stale = [p for p in generations if p.name != live][: -(GENERATIONS_KEPT - 1) or None]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)


def _any_lesson() -> bool:
    return db.session.scalar(select(Lesson.id).limit(1)) is not None


# An applier fills a lost index from the log only up to this many changes; beyond that a
# rebuild (several processes, large segments) is much faster.
REPLAY_MAX = 20_000


def empty_start(from_log: bool) -> Position | None:
    """Where an empty index may start, or None if an empty index would be incomplete:
    after the whole log while no lesson exists (the head is read first, so a lesson
    committed meanwhile is numbered after it), or at its very start for an applier that
    can replay all of it."""
    where = changelog.head()
    if not _any_lesson():
        return Position(where.epoch, where.last_id)
    if from_log and where.pruned_through == 0 and where.last_id <= REPLAY_MAX:
        return Position(where.epoch, 0)
    return None


def _small_segments(ix: FileIndex) -> int:
    return sum(1 for s in ix._segments() if s.doc_count_all() < SMALL_SEGMENT_DOCS)


def _load_lessons(ids: list[int]) -> dict[int, Lesson]:
    query = (select(Lesson).where(Lesson.id.in_(ids))
             .options(selectinload(Lesson.tag_objects),
                      selectinload(Lesson.files).undefer(LessonFile.extracted_text))
             .execution_options(populate_existing=True))
    return {lesson.id: lesson for lesson in db.session.scalars(query)}


def _write(writer: SegmentWriter, lesson_ids: set[int]) -> None:
    lessons = _load_lessons(sorted(lesson_ids))
    for lesson_id in lesson_ids:
        lesson = lessons.get(lesson_id)
        if lesson is None:
            writer.delete_by_term("lesson_id", str(lesson_id))
        else:
            writer.update_document(**lesson_document(lesson))


class IndexBehind(Exception):
    """The log cannot bring this index up to date (pruned past it, another epoch, or its
    position unknown): only a rebuild can."""


def catch_up_problem(position: Position | None, where: changelog.Head) -> str:
    """Why an index at ``position`` cannot catch up from the log, or ``""``."""
    if position is None:
        return "its position in the change log is unknown"
    if position.epoch != where.epoch:
        return "it was built from another history of the database (a restore)"
    if position.last_id < where.pruned_through:
        return (f"the change log was pruned past it (it applied up to "
                f"{position.last_id}, the log starts after {where.pruned_through})")
    if position.last_id > where.last_id:
        return "it is ahead of the database's change log (a restore)"
    return ""


def apply_pending(store: IndexStore) -> int:
    """Apply the log's changes this index has not seen; return how many log rows.

    The position is read again under the writer lock, so two processes applying at once
    never apply a row twice or skip one, and the lessons are read after taking it, so an
    older version never overwrites a newer one. The position is written after the index
    commit (a crash in between re-applies those rows, which is harmless). Raises
    ``IndexBusy`` when the writer stays locked, ``IndexBehind`` when only a rebuild helps.
    """
    db.session.rollback()  # a fresh snapshot; nothing of the caller's is pending here
    generation, ix = store.open(from_log=True)
    position = store.position(generation)
    where = changelog.head()  # after the position: a head below it means a restore
    problem = catch_up_problem(position, where)
    if problem:
        raise IndexBehind(problem)
    applied = 0
    while position.last_id < where.last_id:
        pending = min(where.last_id - position.last_id, APPLY_BATCH)  # the log is gapless
        procs = _procs(store) if pending >= PARALLEL_APPLY_MIN else 1
        try:
            with store.writer(ix, procs=procs, documents=pending) as writer:
                position = store.position(generation)  # under the lock
                db.session.rollback()
                rows = changelog.after(position.last_id, APPLY_BATCH)
                if not rows:
                    raise _NothingNew
                _write(writer, {row.lesson_id for row in rows})
        except _NothingNew:
            break
        position = Position(position.epoch, rows[-1].id)
        write_position(store.root / generation, position)
        db.session.expunge_all()
        applied += len(rows)
        if len(rows) < APPLY_BATCH:
            break
    if applied:
        _register(store, generation, position, applied=True)
    return applied


def _procs(store: IndexStore) -> int:
    """Writer processes for bulk work: the configured number, at most one per CPU."""
    return max(1, min(store.reindex_procs, os.cpu_count() or 1))


class _NothingNew(Exception):
    """Another applier got there first: cancel the writer, nothing to commit."""


def _register(store: IndexStore, generation: str, position: Position, applied: bool) -> None:
    changelog.register(store.index_id(), str(store.root.resolve()), generation,
                       position.epoch, position.last_id, applied)


def register(store: IndexStore) -> None:
    """Report this index's position to the registry (and that it is alive), so pruning
    waits for it."""
    generation = store.current_generation()
    position = store.position(generation)
    if generation is not None and position is not None:
        _register(store, generation, position, applied=False)


def apply_after_commit(store: IndexStore) -> None:
    """Called by services after their commit when indexing runs inline. Never fails the
    user's request: what cannot be applied now waits in the log for the next apply."""
    try:
        apply_pending(store)
    except (IndexBusy, IndexMissing, IndexBehind) as exc:
        # Expected while another process writes or rebuilds the index: no traceback.
        db.session.rollback()
        log.warning("search index update deferred (%s); it is applied by the next "
                    "apply, the rebuild, or `flask search sync`", exc)
    except Exception:  # noqa: BLE001 - the change is committed; the index catches up later
        db.session.rollback()
        log.exception("search index update deferred; `flask search sync` will apply it")


@dataclass
class ReindexReport:
    generation: str
    documents: int
    replayed: int
    seconds: float


def reindex(store: IndexStore, progress: Callable[[int, int], None] | None = None
            ) -> ReindexReport:
    """Build a new generation from the database, swap it in, apply what changed meanwhile.

    While it runs, the live generation keeps following the log; the new one starts at
    the log position read before its first lesson, so everything committed later is
    applied to it after the swap. One rebuild at a time: a second waits for the first.
    """
    with store.rebuild_lock():
        return _rebuild(store, progress)


def needs_rebuild(store: IndexStore) -> str:
    """Why this index must be rebuilt before it can serve and follow the log, or ``""``
    (a missing index that the log can fill from empty needs none)."""
    state = store.state()
    if state == STATE_OUTDATED:
        return "it was built by an older Muster"
    db.session.rollback()
    if state != STATE_OK:
        return "" if empty_start(from_log=False) is not None else "it is missing"
    return catch_up_problem(store.position(), changelog.head())


def recover(store: IndexStore, apply: bool = True) -> ReindexReport | None:
    """Make the index usable and current, as a serving process or the indexer starts:
    rebuild it if it is missing, outdated or cannot catch up from the log (unless
    another process on this host is already rebuilding it), then (``apply``) apply the
    log.

    Holding the rebuild lock proves no reindex runs, so a REINDEXING flag found then
    was left by a crashed one and is removed.
    """
    report = None
    with store.rebuild_lock(blocking=False) as held:
        if not held:
            return None
        store.reindex_flag.unlink(missing_ok=True)
        reason = needs_rebuild(store)
        if reason:
            log.warning("search index rebuilding: %s", reason)
            report = _rebuild(store, None)
    if apply:
        apply_pending(store)
    register(store)
    return report


def _rebuild(store: IndexStore, progress: Callable[[int, int], None] | None
             ) -> ReindexReport:
    started = time.perf_counter()
    store.root.mkdir(parents=True, exist_ok=True)
    store.reindex_flag.write_text(str(os.getpid()), "utf-8")
    try:
        generation = _new_generation_name()
        path = store.root / generation
        path.mkdir()
        ix = whoosh_index.create_in(str(path), build_schema())
        write_schema_version(path)
        db.session.rollback()
        # Every change numbered up to here is committed, so the lessons read below hold
        # it; whatever is numbered later is applied after the swap (twice at worst).
        where = changelog.head()
        ids = list(db.session.scalars(select(Lesson.id).order_by(Lesson.id)))
        procs = _procs(store)
        # Whoosh sorts a segment's postings in memory up to the pool's limit and spills
        # them all to pickled runs past it, which halves the build rate: each writer
        # (one per process) is committed as its own segment before its pool fills.
        # Text size stands in for postings, which Whoosh counts only in the sub-processes.
        chunk_chars = int(REINDEX_SEGMENT_FILL * REINDEX_POOL_MB * 2**20 * procs
                          * CHARS_PER_POSTING / POOL_BYTES_PER_POSTING)

        def new_writer() -> SegmentWriter:
            if procs > 1:
                return ix.writer(procs=procs, multisegment=True, limitmb=REINDEX_POOL_MB,
                                 compound=False)
            return ix.writer(limitmb=REINDEX_POOL_MB, compound=False)

        writer = new_writer()
        chars = 0
        try:
            for start in range(0, len(ids), REINDEX_BATCH):
                batch = ids[start:start + REINDEX_BATCH]
                for lesson in _load_lessons(batch).values():
                    document = lesson_document(lesson)
                    writer.add_document(**document)
                    chars += (len(document["content"]) + len(document["title"])
                              + len(document["files"]))
                    if chars > chunk_chars:
                        writer.commit(merge=False)
                        writer, chars = new_writer(), 0
                db.session.expunge_all()  # keep memory flat on large databases
                if progress:
                    progress(min(start + REINDEX_BATCH, len(ids)), len(ids))
        except BaseException:
            writer.cancel()
            raise
        writer.commit(merge=False)
        write_position(path, Position(where.epoch, where.last_id))
        store._set_current(generation)
    finally:
        store.reindex_flag.unlink(missing_ok=True)
    replayed = 0
    try:
        replayed = apply_pending(store)
    except IndexBusy:
        pass  # the indexer, or the next apply, catches up
    register(store)
    store.prune_generations()
    return ReindexReport(generation, len(ids), replayed, time.perf_counter() - started)


@dataclass
class Drift:
    missing: list[int] = field(default_factory=list)  # in the database, not the index
    stale: list[int] = field(default_factory=list)  # indexed at an older version
    extra: list[int] = field(default_factory=list)  # indexed, gone from the database
    pending: int = 0  # log rows not yet applied
    reindex_interrupted: bool = False
    schema_outdated: bool = False  # written by an older Muster: needs a reindex
    index_missing: bool = False  # lost (or never built) while lessons exist: reindex
    behind: str = ""  # why the log cannot bring it up to date: reindex

    @property
    def clean(self) -> bool:
        return not (self.missing or self.stale or self.extra or self.pending
                    or self.reindex_interrupted or self.schema_outdated
                    or self.index_missing or self.behind)


def check(store: IndexStore) -> Drift:
    """Compare every lesson's version in the database with the index."""
    db.session.rollback()
    where = changelog.head()
    in_db = {row.id: row.version for row in db.session.execute(select(Lesson.id, Lesson.version))}
    try:
        generation, ix = store.open()
    except IndexMissing:
        return Drift(index_missing=True, reindex_interrupted=store.reindexing())
    if read_schema_version(store.root / generation) != SCHEMA_VERSION:
        return Drift(schema_outdated=True, reindex_interrupted=store.reindexing())
    position = store.position(generation)
    with ix.searcher() as searcher:
        in_index = {int(fields["lesson_id"]): fields["version"]
                    for fields in searcher.all_stored_fields()}
    return Drift(
        missing=sorted(set(in_db) - set(in_index)),
        stale=sorted(i for i in set(in_db) & set(in_index) if in_index[i] != in_db[i]),
        extra=sorted(set(in_index) - set(in_db)),
        pending=max(0, where.last_id - position.last_id) if position else 0,
        reindex_interrupted=store.reindexing(),
        behind=catch_up_problem(position, where),
    )
