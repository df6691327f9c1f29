"""This host's background indexer: follows the change log into the host's index, off the
request path (``SEARCH_INDEXER = "background"``).

One per host, held by the index folder's ``INDEXER_LOCK``: ``flask search worker`` runs
it in the foreground, and every serving process keeps a standby thread that takes over
whenever no other process holds the lock (the worker was not started, or died). So a
deployment that runs only gunicorn still indexes, and one that runs the worker beside it
(``make serve`` does) keeps indexing out of the serving processes.

Each round applies what the log holds beyond the index's position, merges small
segments, reports itself to the registry (a heartbeat that keeps pruning waiting for
it) and, now and then, prunes the log. An index the log cannot bring up to date (the log
was pruned past it, or a restore changed the history) is rebuilt here, not in a request.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import Flask

from lessons.extensions import db

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30.0
PRUNE_SECONDS = 600.0
STANDBY_SECONDS = 1.0  # how often a standby thread tries to take over
BUSY_PAUSE_SECONDS = 0.5


@dataclass
class Round:
    """What one round did (for tests and the worker's log)."""

    applied: int = 0
    rebuilt: bool = False
    pruned: int = 0


class Indexer:
    """The loop, one round at a time (``round``) so tests can drive it step by step."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.poll = float(app.config.get("SEARCH_POLL_SECONDS", 0.2))
        self._last_beat = 0.0
        self._last_prune = time.monotonic()
        self._started = False

    def round(self) -> Round:
        from lessons import search
        from lessons.search import index

        done = Round()
        with self.app.app_context():
            try:
                index_store = search.store()
                if not self._started:
                    report = index.recover(index_store, apply=False)
                    self._started = True
                    done.rebuilt = report is not None
                try:
                    done.applied = index.apply_pending(index_store)
                except index.IndexBehind as exc:
                    log.warning("search index rebuilding: %s", exc)
                    index.reindex(index_store)
                    done.rebuilt = True
                except index.IndexMissing:
                    index.recover(index_store)
                    done.rebuilt = True
                if done.applied:
                    index_store.merge_small()
                now = time.monotonic()
                if done.applied or now - self._last_beat >= HEARTBEAT_SECONDS:
                    index.register(index_store)
                    self._last_beat = now
                if now - self._last_prune >= PRUNE_SECONDS:
                    done.pruned = search.prune().deleted
                    self._last_prune = now
            finally:
                db.session.remove()
        return done

    def follow(self, stop: threading.Event) -> None:
        """Rounds until ``stop`` is set and a round then finds nothing left to apply (a
        bulk command's own follower, ``alongside``). A busy writer is waited for; any
        other error ends it, leaving the rest to the command's own apply."""
        from lessons.search.index import IndexBusy

        while True:
            stopping = stop.is_set()
            try:
                done = self.round()
            except IndexBusy:
                stop.wait(BUSY_PAUSE_SECONDS)
                continue
            if stopping and not done.applied:
                return
            if not done.applied:
                stop.wait(self.poll)

    def run(self, stop: threading.Event) -> None:
        """Rounds until ``stop`` is set; errors are logged and retried, never fatal."""
        while not stop.is_set():
            try:
                done = self.round()
            except Exception as exc:  # noqa: BLE001 - a database or disk blip: retry
                from lessons.search.index import IndexBusy

                if isinstance(exc, IndexBusy):
                    log.info("search index writer busy; retrying")
                else:
                    log.exception("search indexer round failed; retrying")
                stop.wait(BUSY_PAUSE_SECONDS)
                continue
            if done.applied:
                log.info("search index applied %d change(s)", done.applied)
                continue  # more may be waiting
            stop.wait(self.poll)


def serve(app: Flask, stop: threading.Event, *, standby_seconds: float | None = None
          ) -> None:
    """Run the indexer while holding this host's indexer lock; until then wait, trying
    every ``standby_seconds`` (another process holds it). Returns when ``stop`` is set."""
    from lessons import search

    wait = STANDBY_SECONDS if standby_seconds is None else standby_seconds
    with app.app_context():
        index_store = search.store()
    while not stop.is_set():
        with index_store.indexer_lock(blocking=False) as held:
            if held:
                log.info("search indexer running for %s", index_store.root)
                Indexer(app).run(stop)
                return
        stop.wait(wait)


_standby: dict[int, threading.Thread] = {}
_standby_lock = threading.Lock()


def start_standby(app: Flask) -> threading.Thread:
    """A daemon thread in this serving process that indexes whenever no other process on
    the host does; started once per app per process (later calls return it)."""
    with _standby_lock:
        thread = _standby.get(id(app))
        if thread is None:
            thread = threading.Thread(target=serve, args=(app, threading.Event()),
                                      name="search-indexer", daemon=True)
            _standby[id(app)] = thread
            thread.start()
    return thread


@contextmanager
def alongside(app: Flask) -> Iterator[bool]:
    """While the body commits a bulk load batch by batch, a process of its own applies
    each batch to this host's index, so storing one batch and indexing the one before
    overlap (a second core at work instead of an idle one). On exit, waits until that
    process has applied everything committed, then ends it.

    Yields False, starting nothing, where no process can share the work: one CPU, or a
    database only this process can see (SQLite in memory). The caller's own apply after
    the body catches up whatever remains either way (a follower that failed included).
    The process is forked: it shares the app's configuration and takes fresh database
    connections of its own.
    """
    from lessons.extensions import db

    with app.app_context():
        private = db.engine.url.get_backend_name() == "sqlite" and db.engine.url.database in (
            None, "", ":memory:")
    if (multiprocessing.cpu_count() < 2 or private
            or "fork" not in multiprocessing.get_all_start_methods()):
        yield False
        return
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    process = context.Process(target=_follow, args=(app, stop), name="search-alongside",
                              daemon=True)
    process.start()
    try:
        yield True
    finally:
        stop.set()
        process.join()
        if process.exitcode:
            log.warning("search index follower ended with status %s; the command applies "
                        "what is left itself", process.exitcode)


def _follow(app: Flask, stop: threading.Event) -> None:
    from lessons.extensions import db

    with app.app_context():
        db.engine.dispose(close=False)  # the parent's connections stay the parent's
    # The command keeps a CPU busy storing batches, so this process writes with one writer
    # process fewer than the CPUs (on 2 CPUs: on its own, no job files to pickle and no
    # wait for the slowest writer at each commit). Measured on 6,000 NASA lessons, 2 CPUs:
    # 9% less CPU for the whole import, and the follower's single writer keeps pace.
    app.config["SEARCH_REINDEX_PROCS"] = max(1, min(
        app.config["SEARCH_REINDEX_PROCS"], multiprocessing.cpu_count() - 1))
    Indexer(app).follow(stop)
