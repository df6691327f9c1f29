"""Load and fault benchmark: a real gunicorn server under mixed JSON-API traffic, with
workers killed on purpose, then every acknowledged write checked against the database,
its audit trail and the search index.

Run by hand (``tests/test_load.py`` does two short runs)::

    .venv/bin/python bench/load.py --seconds 60 --clients 16 --workers 4 --kill-workers 3
    .venv/bin/python bench/load.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

1. A fresh database: SQLite in a temporary folder, or, with ``--database-url``, a new
   database ``muster_load_<random>`` created on that PostgreSQL server and dropped
   afterwards (the database the URL names is never written to).
2. Set-up through the app's own code: migrations, the demo users, lessons and exercises,
   a full index build, API tokens, and a few "hot" lessons that many clients edit.
3. gunicorn with ``gunicorn.conf.py`` (as ``make serve`` runs it) on loopback, with
   ``--workers`` workers of ``--threads`` threads (default: the configuration's);
   ``--clients`` threads send a bounded mix for ``--seconds``: search, create, edit
   (GET for the ETag, then PATCH with ``If-Match``), transition (submit by the author,
   validate by an analyst) and attach (a planner attaches validated lessons to an
   exercise). Edits collide on purpose: clients share the ETag they last saw of each
   hot lesson, so several send the same ``If-Match`` and all but one are refused
   (412/409: expected, not errors).
4. ``--kill-workers K`` sends SIGKILL to K workers spread over the run; a request in
   flight at a kill that ends without a response is counted as "cut", not as an error.
5. After the server stops, the app's code checks what the clients were told: every
   acknowledged create exists, every acknowledged version is in the audit trail exactly
   once and not beyond the lesson's current version, no version was handed out twice,
   every created lesson is found by search, and the index is in step with the database.

Clients also check each answer: a 200 to an edit must hold the text it wrote (else it
is a "wrong answer": its ETag names someone else's version, and the next If-Match
built on it overwrites a change the client never saw).

The last line of stdout is one JSON object with the figures; the exit status is 1 when
a write was lost or duplicated, an answer was wrong, the index drifted, a lesson was
not findable, or the server answered 5xx (or dropped a connection no kill explains).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: import the app's package
    sys.path.insert(0, str(ROOT))

from bench.databases import temporary_database  # noqa: E402
from config import server_settings  # noqa: E402

OPS = ("search", "create", "edit", "transition", "attach")
# How often each client picks each operation (attach and transition fall back to create
# while no lesson is ready for them).
WEIGHTS = {"search": 35, "create": 20, "edit": 25, "transition": 12, "attach": 8}
HOT_LESSONS = 3  # lessons every editing client fights over
READY_LESSONS = 2  # lessons made ready for each next step before the load
SUBMIT_SHARE = 0.3  # creates that submit at once (the rest are drafts to submit later)
STALE_ETAG_SHARE = 0.5  # edits that reuse the shared ETag instead of GETting a fresh one
REFUSALS = frozenset({409, 412})  # a concurrent writer won: the answer we provoke
REQUEST_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
KILL_SLACK_S = 0.05
SEARCH_WORDS = ("liaison", "fuel", "network", "radio", "fires", "bridging", "medical",
                "logistics", "convoy", "targeting", "interoperability", "training")
# Users of the demo data (lessons/demo) and what each does here: AUS lessons, so that
# one nation's author, analyst and planner can carry every operation.
AUTHOR, ANALYST, PLANNER = "au.contributor", "au.analyst", "au.planner"
READERS = ("au.contributor", "au.analyst", "au.planner", "gb.analyst", "us.analyst")
EXERCISE_NAME = "Exercise SOUTHERN JACKAL 2027"


# --- set-up and checks, through the app's own code -----------------------------------------

def _app(database_url: str, index_dir: Path):
    from lessons import create_app

    # The demo users' passwords are never used here: a cheap hash saves seconds of scrypt.
    return create_app("development", SQLALCHEMY_DATABASE_URI=database_url,
                      INDEX_DIR=str(index_dir), SEARCH_WARM_UP=False,
                      PASSWORD_HASH_METHOD="pbkdf2:sha256:1000")


@dataclass
class Fixture:
    """What the clients need from the set-up."""

    tokens: dict[str, str]
    hot: dict[str, int]  # public id -> version
    exercise: str
    drafts: list[tuple[str, int]]  # public id, version
    submitted: list[tuple[str, int]]
    validated: list[str]


def prepare(database_url: str, index_dir: Path) -> Fixture:
    """Migrate, load the demo data, build the index, mint tokens, create hot lessons."""
    from flask_migrate import upgrade
    from sqlalchemy import select

    from lessons import search
    from lessons.demo import load_demo
    from lessons.extensions import db
    from lessons.models import Exercise, User
    from lessons.services import lessons as lesson_service
    from lessons.services import tokens

    app = _app(database_url, index_dir)
    with app.app_context():
        upgrade()
        load_demo()
        search.reindex()
        users = {u.username: u for u in db.session.scalars(select(User))}
        secrets = {name: tokens.create_token(users[name], "load benchmark")[1]
                   for name in sorted({AUTHOR, ANALYST, PLANNER, *READERS})}
        def lesson(title: str, submit: bool) -> tuple[str, int]:
            made = lesson_service.create_lesson(users[AUTHOR], {
                "title": title, "observation": "Written before the load starts.",
                "recommendation": "Only one of two writers with the same If-Match wins.",
            }, submit=submit)
            return made.public_id, made.version

        hot = dict(lesson(f"Hot lesson {n} edited by every client", True)
                   for n in range(HOT_LESSONS))
        # A few lessons ready for each next step, so that every operation runs from the
        # first second even when creates are slow.
        drafts = [lesson(f"Ready draft {n}", False) for n in range(READY_LESSONS)]
        submitted = [lesson(f"Ready submitted {n}", True) for n in range(READY_LESSONS)]
        validated = [lesson_service.transition_lesson(
            users[ANALYST], lesson(f"Ready validated {n}", True)[0], "validated").public_id
            for n in range(READY_LESSONS)]
        exercise = db.session.scalar(select(Exercise.public_id)
                                     .where(Exercise.name == EXERCISE_NAME))
        db.session.remove()
        db.engine.dispose()
    if exercise is None:
        raise RuntimeError(f"the demo data has no {EXERCISE_NAME!r}")
    return Fixture(secrets, hot, exercise, drafts, submitted, validated)


@dataclass
class Ledger:
    """Every write the server acknowledged, as the clients saw it."""

    creates: list[tuple[str, int, str]] = field(default_factory=list)  # id, version, word
    edits: list[tuple[str, int, str]] = field(default_factory=list)  # id, version, text
    transitions: list[tuple[str, int, str]] = field(default_factory=list)  # id, version, to
    attaches: list[str] = field(default_factory=list)  # lesson ids


@dataclass
class Verdict:
    lost_writes: list[str] = field(default_factory=list)
    duplicate_versions: list[str] = field(default_factory=list)
    unfindable: list[str] = field(default_factory=list)
    drift: dict[str, int] = field(default_factory=dict)
    applied_by_sync: int = 0


def verify(database_url: str, index_dir: Path, ledger: Ledger, exercise_id: str) -> Verdict:
    """Check the acknowledged writes against the database, audit trail and index."""
    from sqlalchemy import select

    from lessons import search
    from lessons.extensions import db
    from lessons.models import AuditRecord, Exercise, ExerciseLesson, Lesson
    from lessons.workflow import TRANSITIONS

    # Audit actions that record a new version of the lesson (attachments and links
    # repeat the lesson's current version, so they are not among them).
    versioned = {"created", "edited", "action_added", "action_updated",
                 *(t.audit_action for t in TRANSITIONS.values())}
    verdict = Verdict()
    app = _app(database_url, index_dir)
    with app.app_context():
        verdict.applied_by_sync = search.sync()
        drift = search.check()
        verdict.drift = {"missing": len(drift.missing), "stale": len(drift.stale),
                         "extra": len(drift.extra), "pending": drift.pending,
                         "reindex_interrupted": int(drift.reindex_interrupted),
                         "schema_outdated": int(drift.schema_outdated)}
        lessons = {lesson.public_id: lesson for lesson in db.session.scalars(select(Lesson))}
        audited: dict[int, Counter[int]] = defaultdict(Counter)
        for lesson_id, version in db.session.execute(
                select(AuditRecord.lesson_id, AuditRecord.version)
                .where(AuditRecord.action.in_(sorted(versioned)))):
            audited[lesson_id][version] += 1
        for lesson_id, counts in audited.items():
            verdict.duplicate_versions += [f"audit {lesson_id} v{v} x{n}"
                                           for v, n in counts.items() if n > 1]
        acked: Counter[tuple[str, int]] = Counter()
        for public_id, version, _ in (*ledger.creates, *ledger.edits, *ledger.transitions):
            acked[(public_id, version)] += 1
        verdict.duplicate_versions += [f"acknowledged {p} v{v} x{n}"
                                       for (p, v), n in acked.items() if n > 1]
        for public_id, version in acked:
            lesson = lessons.get(public_id)
            if lesson is None:
                verdict.lost_writes.append(f"{public_id} missing")
            elif lesson.version < version:
                verdict.lost_writes.append(f"{public_id} at v{lesson.version} < acked v{version}")
            elif audited[lesson.id][version] == 0:
                verdict.lost_writes.append(f"{public_id} v{version} not in the audit trail")
        verdict.lost_writes += _lost_texts(lessons, ledger)
        attached = set(db.session.scalars(
            select(Lesson.public_id).join(ExerciseLesson, ExerciseLesson.lesson_id == Lesson.id)
            .join(Exercise, ExerciseLesson.exercise_id == Exercise.id)
            .where(Exercise.public_id == exercise_id)))
        verdict.lost_writes += [f"{p} attachment missing" for p in ledger.attaches
                                if p not in attached]
        for public_id, _version, word in ledger.creates:
            lesson = lessons.get(public_id)
            if lesson is not None and lesson.id not in search.matching_ids(lesson.author, word,
                                                                           limit=50):
                verdict.unfindable.append(public_id)
        db.session.remove()
        db.engine.dispose()
    return verdict


def _lost_texts(lessons: dict, ledger: Ledger) -> list[str]:
    """A lesson whose current version is the last one a client was told about must hold
    the text of the last acknowledged edit (nothing unacknowledged came after it)."""
    last: dict[str, tuple[int, str]] = {}
    for public_id, version, _ in (*ledger.creates, *ledger.transitions):
        if version > last.get(public_id, (0, ""))[0]:
            last[public_id] = (version, "")
    latest_edit: dict[str, tuple[int, str]] = {}
    for public_id, version, text in ledger.edits:
        if version > latest_edit.get(public_id, (0, ""))[0]:
            latest_edit[public_id] = (version, text)
        if version > last.get(public_id, (0, ""))[0]:
            last[public_id] = (version, text)
    lost = []
    for public_id, (version, _) in last.items():
        lesson = lessons.get(public_id)
        if lesson is None or lesson.version != version or public_id not in latest_edit:
            continue
        if lesson.discussion != latest_edit[public_id][1]:
            lost.append(f"{public_id} v{version} holds {lesson.discussion!r}, not the "
                        f"acknowledged {latest_edit[public_id][1]!r}")
    return lost


# --- the database --------------------------------------------------------------------------

@contextmanager
def fresh_database(url: str | None, workdir: Path) -> Iterator[tuple[str, str]]:
    """A new, empty database and its kind (``bench/databases.py``)."""
    with temporary_database(url, workdir, "load") as database:
        yield database.url, database.kind


# --- the server ----------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``gunicorn -c gunicorn.conf.py wsgi:app`` on loopback, configured as ``make serve``
    is, through the environment; its log goes to a file for tracebacks."""

    def __init__(self, database_url: str, index_dir: Path, workers: int, threads: int | None,
                 log: Path) -> None:
        self.port = _free_port()
        self.log = log
        env = {**os.environ, "MUSTER_ENV": "development", "DATABASE_URL": database_url,
               "MUSTER_INDEX_DIR": str(index_dir), "MUSTER_WORKERS": str(workers),
               "MUSTER_BIND": f"127.0.0.1:{self.port}", "PYTHONUNBUFFERED": "1",
               # Many clients share a few tokens here, far past a person's pace: the
               # per-token API limit would measure itself, not the server.
               "MUSTER_API_RATE_LIMIT": "1000000 per minute"}
        if threads:
            env["MUSTER_THREADS"] = str(threads)
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
             "wsgi:app"], cwd=ROOT, env=env, stdout=self._log_file, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        """Until ``/health`` answers (or ``/login``, on code without it)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.process.returncode}); see {self.log}")
            for path in ("/health", "/login"):
                try:
                    status = _get_status(self.port, path)
                except OSError:
                    break
                if status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn not ready after {READY_TIMEOUT_S:.0f} s; see {self.log}")

    def workers(self) -> list[int]:
        """Pids of the master's children (its workers), from /proc."""
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                children.append(int(entry.name))
        return children

    def stop(self) -> None:
        """Graceful stop (SIGTERM: workers finish their requests), then SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()


def _get_status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


# --- the clients ---------------------------------------------------------------------------

class Cut(Exception):
    """The connection ended without a response (a worker died under it)."""


@dataclass
class Tally:
    """What all clients saw, under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    times: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPS})
    cut: int = 0
    unexplained: int = 0  # connection failures while no kill was in flight
    kills: list[float] = field(default_factory=list)  # monotonic times
    failures: list[str] = field(default_factory=list)  # first 5xx and dropped requests
    wrong_answers: list[str] = field(default_factory=list)  # 200s showing another's write


class Load:
    """The shared state of one run: pools of lessons ready for their next step."""

    def __init__(self, port: int, fixture: Fixture, tally: Tally, ledger: Ledger,
                 seed: int) -> None:
        self.port = port
        self.fixture = fixture
        self.tally = tally
        self.ledger = ledger
        self.seed = seed
        self.lock = threading.Lock()
        self.drafts = deque(fixture.drafts)  # for the author to submit
        self.submitted = deque(fixture.submitted)  # for the analyst to validate
        self.validated = deque(fixture.validated)  # for the planner to attach
        self.etags = {public_id: f'"{v}"' for public_id, v in fixture.hot.items()}
        self.words: list[str] = []
        self.serial = 0

    # One HTTP exchange; a connection that dies without a response raises Cut.
    def call(self, user: str, method: str, path: str, payload: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any, float]:
        sent = {"Authorization": f"Bearer {self.fixture.tokens[user]}", **(headers or {})}
        data = None
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            sent["Content-Type"] = "application/json"
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            raw = response.read()
        except (ConnectionError, http.client.HTTPException, TimeoutError) as exc:
            self._dropped(started, f"{method} {path}: {exc!r}")
            raise Cut from exc
        finally:
            conn.close()
        elapsed = time.monotonic() - started
        with self.tally.lock:
            self.tally.requests += 1
            if response.status >= 400:
                self.tally.statuses[str(response.status)] += 1
            if response.status >= 500 and len(self.tally.failures) < 20:
                self.tally.failures.append(f"{response.status} {method} {path}: {raw[:300]!r}")
        body = json.loads(raw) if raw and response.getheader("Content-Type", "").endswith(
            "json") else None
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body, elapsed

    def _dropped(self, started: float, what: str) -> None:
        ended = time.monotonic()
        with self.tally.lock:
            self.tally.requests += 1
            if any(started - KILL_SLACK_S <= k <= ended + KILL_SLACK_S for k in self.tally.kills):
                self.tally.cut += 1
            else:
                self.tally.unexplained += 1
                if len(self.tally.failures) < 20:
                    self.tally.failures.append(f"dropped, no kill in flight: {what}")

    def timed(self, op: str, elapsed: float) -> None:
        with self.tally.lock:
            self.tally.times[op].append(elapsed * 1000)

    def client(self, number: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + number)
        ops, weights = zip(*WEIGHTS.items(), strict=True)
        while time.monotonic() < deadline:
            op = rng.choices(ops, weights)[0]
            try:
                getattr(self, op)(rng)
            except Cut:
                continue

    def search(self, rng: random.Random) -> None:
        with self.lock:
            words = self.words[-50:]
        word = rng.choice(words) if words and rng.random() < 0.3 else rng.choice(SEARCH_WORDS)
        status, _, _, elapsed = self.call(rng.choice(READERS), "GET",
                                          f"/api/v1/lessons?q={word}&per_page=10")
        self.timed("search", elapsed)

    def create(self, rng: random.Random) -> None:
        with self.lock:
            self.serial += 1
            word = _word(self.seed, self.serial)
        submit = rng.random() < SUBMIT_SHARE
        status, headers, _, elapsed = self.call(AUTHOR, "POST", "/api/v1/lessons", {
            "title": f"Load {word} radio relay at the river crossing",
            "observation": f"Observation {word}: the relay lost contact at dusk.",
            "recommendation": "Site the relay on the near bank before dusk.",
            "submit": submit})
        self.timed("create", elapsed)
        if status != 201:
            return
        public_id, version = headers["location"].rsplit("/", 1)[1], _version(headers)
        with self.lock:
            self.ledger.creates.append((public_id, version, word))
            self.words.append(word)
            (self.submitted if submit else self.drafts).append((public_id, version))

    def edit(self, rng: random.Random) -> None:
        public_id = rng.choice(sorted(self.etags))
        if rng.random() >= STALE_ETAG_SHARE:
            status, headers, _, _ = self.call(ANALYST, "GET", f"/api/v1/lessons/{public_id}")
            if status == 200:
                with self.lock:
                    self.etags[public_id] = headers["etag"]
        with self.lock:
            etag = self.etags[public_id]
            self.serial += 1
            text = f"Discussion {self.serial} written over {etag}"
        status, headers, answer, elapsed = self.call(
            ANALYST, "PATCH", f"/api/v1/lessons/{public_id}", {"discussion": text},
            {"If-Match": etag})
        self.timed("edit", elapsed)
        if status == 200:
            with self.lock:
                if answer["discussion"] != text:  # the answer is not the write it acknowledges
                    self.tally.wrong_answers.append(f"PATCH {public_id} over {etag}: 200 with ETag "
                                              f"{headers['etag']} and another writer's text")
                self.ledger.edits.append((public_id, _version(headers), text))
                self.etags[public_id] = headers["etag"]

    def transition(self, rng: random.Random) -> None:
        with self.lock:
            submit = bool(self.drafts) and (not self.submitted or rng.random() < 0.5)
            pool = self.drafts if submit else self.submitted
            if not pool:
                step = None
            else:
                step = pool.popleft()
        if step is None:
            return self.create(rng)
        public_id, version = step
        to, user = ("submitted", AUTHOR) if submit else ("validated", ANALYST)
        status, headers, _, elapsed = self.call(
            user, "POST", f"/api/v1/lessons/{public_id}/transitions", {"to": to},
            {"If-Match": f'"{version}"'})
        self.timed("transition", elapsed)
        if status == 200:
            new = _version(headers)
            with self.lock:
                self.ledger.transitions.append((public_id, new, to))
                if submit:
                    self.submitted.append((public_id, new))
                else:
                    self.validated.append(public_id)
        return None

    def attach(self, rng: random.Random) -> None:
        with self.lock:
            public_id = self.validated.popleft() if self.validated else None
        if public_id is None:
            return self.transition(rng)
        status, _, _, elapsed = self.call(
            PLANNER, "POST", f"/api/v1/exercises/{self.fixture.exercise}/lessons",
            {"lesson_id": public_id, "purpose": rng.choice(("read_ahead", "inject"))})
        self.timed("attach", elapsed)
        if status == 201:
            with self.lock:
                self.ledger.attaches.append(public_id)
        return None


def _word(seed: int, serial: int) -> str:
    """A made-up word no other lesson holds, so a search for it finds exactly one."""
    n, letters = seed * 1_000_003 + serial, []
    while n:
        n, digit = divmod(n, 26)
        letters.append(chr(ord("a") + digit))
    return "zq" + "".join(letters)


def _version(headers: dict[str, str]) -> int:
    return int(headers["etag"].removeprefix("W/").strip('"'))


def killer(server: Server, tally: Tally, kills: int, seconds: float, started: float,
           rng: random.Random) -> None:
    """SIGKILL ``kills`` workers at even intervals over the run (gunicorn replaces them)."""
    for n in range(kills):
        time.sleep(max(0.0, started + seconds * (n + 1) / (kills + 1) - time.monotonic()))
        workers = server.workers()
        if not workers:
            continue
        with tally.lock:
            tally.kills.append(time.monotonic())
        try:
            os.kill(rng.choice(workers), signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- the run -------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, in ms to 0.1."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return round(ordered[int(rank) - 1], 1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per worker (default: MUSTER_THREADS or gunicorn.conf.py's)")
    parser.add_argument("--clients", type=int, default=16, help="client threads (default 16)")
    parser.add_argument("--seconds", type=float, default=60.0, help="load time (default 60)")
    parser.add_argument("--kill-workers", type=int, default=0, metavar="K",
                        help="SIGKILL K workers, spread over the run (default 0)")
    parser.add_argument("--database-url", default="",
                        help="PostgreSQL server to create a temporary database on "
                             "(default: SQLite in a temporary folder)")
    parser.add_argument("--seed", type=int, default=1944)
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (database, index, gunicorn log)")
    args = parser.parse_args(argv)
    for name in ("workers", "clients"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.seconds <= 0 or args.kill_workers < 0:
        parser.error("--seconds must be positive and --kill-workers not negative")
    return args


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    with fresh_database(args.database_url, workdir) as (url, kind):
        index_dir = workdir / "index"
        began = time.monotonic()
        fixture = prepare(url, index_dir)
        print(f"set up {kind} database, demo data, index and tokens in "
              f"{time.monotonic() - began:.1f} s", flush=True)
        server = Server(url, index_dir, args.workers, args.threads, workdir / "gunicorn.log")
        tally, ledger = Tally(), Ledger()
        try:
            server.wait_ready()
            print(f"gunicorn ready on port {server.port} with {args.workers} workers; "
                  f"{args.clients} clients for {args.seconds:g} s", flush=True)
            load = Load(server.port, fixture, tally, ledger, args.seed)
            started = time.monotonic()
            deadline = started + args.seconds
            threads = [threading.Thread(target=load.client, args=(n, deadline), daemon=True)
                       for n in range(args.clients)]
            threads.append(threading.Thread(
                target=killer, daemon=True,
                args=(server, tally, args.kill_workers, args.seconds, started,
                      random.Random(args.seed))))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
        finally:
            server.stop()
        verdict = verify(url, index_dir, ledger, fixture.exercise)
        if args.keep:
            (workdir / "ledger.json").write_text(json.dumps(ledger.__dict__, indent=1))
        log_tail = _errors_logged(server.log)
    server_errors = sum(n for status, n in tally.statuses.items() if status.startswith("5"))
    errors = {"500": 0, **dict(sorted(tally.statuses.items()))}
    if tally.unexplained:
        errors["dropped"] = tally.unexplained
    drift = sum(verdict.drift.values())
    figures = {
        "requests": tally.requests, "req_per_s": round(tally.requests / elapsed, 1),
        "latency_ms": {op: {"n": len(tally.times[op]),
                            "p50": percentile(tally.times[op], 50),
                            "p95": percentile(tally.times[op], 95),
                            "p99": percentile(tally.times[op], 99)} for op in OPS},
        "errors": errors, "cut": tally.cut,
        "acknowledged": {"creates": len(ledger.creates), "edits": len(ledger.edits),
                         "transitions": len(ledger.transitions),
                         "attaches": len(ledger.attaches)},
        "lost_writes": len(verdict.lost_writes),
        "duplicate_versions": len(verdict.duplicate_versions),
        "drift": drift, "drift_detail": verdict.drift,
        "applied_by_sync": verdict.applied_by_sync,
        "unfindable": len(verdict.unfindable), "server_errors": server_errors,
        "wrong_answers": len(tally.wrong_answers),
        "workers": args.workers, "threads": args.threads or server_settings().threads,
        "clients": args.clients, "seconds": args.seconds,
        "database": kind, "kills": len(tally.kills), "cpus": os.cpu_count(),
    }
    _report(figures, verdict, tally, log_tail)
    return figures


def _report(figures: dict[str, Any], verdict: Verdict, tally: Tally, log_tail: str) -> None:
    print(f"{figures['requests']} requests, {figures['req_per_s']} req/s "
          f"({figures['database']}, {figures['workers']} workers of {figures['threads']} "
          f"threads, {figures['clients']} "
          f"clients, {figures['cpus']} CPUs)")
    for op, t in figures["latency_ms"].items():
        print(f"  {op:<10} n={t['n']:<6} p50={t['p50']} ms  p95={t['p95']} ms  "
              f"p99={t['p99']} ms")
    print(f"acknowledged: {figures['acknowledged']}")
    print(f"refusals and errors by status: {figures['errors']}; cut by {figures['kills']} "
          f"kill(s): {figures['cut']}")
    print(f"index: {figures['applied_by_sync']} change(s) applied by sync after the run; "
          f"drift after it: {verdict.drift}")
    for label, items in (("lost write", verdict.lost_writes),
                         ("duplicate version", verdict.duplicate_versions),
                         ("unfindable", verdict.unfindable),
                         ("wrong answer", tally.wrong_answers), ("server failure", tally.failures)):
        for item in items[:20]:
            print(f"{label}: {item}")
    if tally.failures:
        print("--- the gunicorn log, without its access log ---")
        print(log_tail)


def _errors_logged(log: Path) -> str:
    """The end of the server's log without access-log lines (where tracebacks are)."""
    lines = log.read_text("utf-8", "replace").splitlines()
    return "\n".join(line for line in lines if not line.startswith("127.0.0.1 - "))[-8000:]


def failed(figures: dict[str, Any]) -> bool:
    return bool(figures["lost_writes"] or figures["duplicate_versions"] or figures["drift"]
                or figures["unfindable"] or figures["server_errors"] or figures["wrong_answers"]
                or figures["errors"].get("dropped"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="muster-load-"))
    try:
        figures = run(args, workdir)
    finally:
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(figures, sort_keys=True), flush=True)
    return 1 if failed(figures) else 0


if __name__ == "__main__":
    sys.exit(main())
