"""Federation benchmark: two Muster instances as real processes exchanging lessons as
signed bundles, by file and online, timed and checked.

Run by hand (``tests/test_federation_bench.py`` does a small smoke run)::

    .venv/bin/python bench/federation_bench.py                  # 5,000 lessons, SQLite
    .venv/bin/python bench/federation_bench.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

1. Two instances, each with its own database, index, files and key folder, driven only
   through ``flask --app wsgi`` subprocesses: A is GBR-army (GBR), B is AUS-army (an AUS
   and an NZL user). SQLite files in a temporary folder, or with ``--database-url`` two
   throwaway PostgreSQL databases (``bench/databases.py``). ``db upgrade`` and
   ``federation init`` on both; each registers the other (``peer add``), B with A's
   address for ``federation sync``.
2. A gets ``--lessons`` lessons by the bulk import (``bench/import_bench.py``'s file,
   its NASA text or generated text): 80% releasable to AUS and GBR (every second one of
   those to NZL too), the rest to GBR alone, each of those with a word no other lesson
   holds in its title.
3. The full round: ``federation export AUS-army`` at A, ``federation import --ack`` at
   B, ``search sync`` at B, the acknowledgement imported at A. Checks: what B applied
   is what A exported; a search at B (through the app's own search service, as B's AUS
   and NZL users) finds exactly the lessons released to their nation, and the GBR-only
   word finds nothing, though at A it finds every GBR-only lesson; the bundle's records
   (unzipped) never hold that word.
4. The incremental round: 1% of the lessons sent are changed at A by a second import of
   their lines (half with AUS and NZL taken out of REL TO: revocations; half with a new
   word in the title: new versions), then exported, imported at B and acknowledged.
5. The online round: another 1% changed the same way, A served by ``flask run`` on a
   free port, and ``federation sync GBR-army`` at B timed (it acknowledges as it goes).
   After each round the same searches at B must find exactly what A now releases.

The last line of stdout is one JSON object with every figure; the exit status is 1 when
a check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: import the app's package
    sys.path.insert(0, str(ROOT))

from bench import import_bench  # noqa: E402
from bench.databases import Database, temporary_database  # noqa: E402

A_NAME, A_NATION = "GBR-army", "GBR"
B_NAME, B_NATION = "AUS-army", "AUS"
B_NATIONS = ("AUS", "NZL")  # the nations A registers B as serving
AUS_USER, NZL_USER = "bench.aus", "bench.nzl"
PASSWORD = "bench-password-not-used\n"
GBR_ONLY_EVERY = 5  # every fifth lesson is GBR only; the other 80% are released to AUS
CHANGED_SHARE = 0.01  # of the lessons sent, changed per later round (half each way)
# In the title of every GBR-only lesson and nowhere else: must never reach B.
GBR_ONLY_WORD = "kestrelhold"
# Added to the titles edited in the incremental and the online round.
EDIT_WORDS = {"incremental": "platypusfile", "online": "platypusfeed"}
SEED = 11
SERVER_START_S = 60


# --- the lessons -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Planned:
    """One line of A's file and who it is for."""

    n: int
    external_id: str
    released: bool  # REL TO holds AUS (and GBR); else GBR alone
    nzl: bool  # REL TO holds NZL too
    sent: bool  # released and in a status a peer is sent (the file's drafts are not)


def write_lessons(path: Path, count: int, base: list[dict[str, Any]]
                  ) -> tuple[dict[str, Any], list[dict[str, Any]], list[Planned]]:
    """import_bench's file of ``count`` lessons, with this bench's REL TO per line;
    returns what the file holds, its records and the plan."""
    held = import_bench.write_file(path, count, base)
    records = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    plan: list[Planned] = []
    for n, record in enumerate(records):
        released = n % GBR_ONLY_EVERY != GBR_ONLY_EVERY - 1
        nzl = released and n % 2 == 0
        if released:
            record["releasable_to"] = ["AUS", "GBR", "NZL"] if nzl else ["AUS", "GBR"]
        else:
            record["releasable_to"] = ["GBR"]
            record["title"] = f"{record['title']} {GBR_ONLY_WORD}"
        # write_file makes each lesson validated, or a draft where its text is short of
        # a submitted lesson's; a draft is never sent, whatever its REL TO.
        plan.append(Planned(n, record["external_id"], released, nzl,
                            released and record["status"] != "draft"))
    write_records(path, records)
    return held, records, plan


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


@dataclass
class Round:
    """One round's changes at A: lines narrowed to GBR (revoked at B) and lines edited
    (a new version at B), by line number."""

    name: str
    narrowed: list[int]
    edited: list[int]
    word: str

    @property
    def changed(self) -> int:
        return len(self.narrowed) + len(self.edited)


def pick_round(name: str, plan: list[Planned], taken: set[int], rng: random.Random) -> Round:
    """1% of the lessons sent (at least one each way), none changed in an earlier round."""
    sent = [p.n for p in plan if p.sent and p.n not in taken]
    each = max(1, round(CHANGED_SHARE / 2 * sum(p.sent for p in plan)))
    chosen = rng.sample(sent, 2 * each)
    taken.update(chosen)
    return Round(name, sorted(chosen[:each]), sorted(chosen[each:]), EDIT_WORDS[name])


def change_file(path: Path, records: list[dict[str, Any]], change: Round) -> None:
    """The changed lines (in ``records`` too), for a second import at A."""
    for n in change.narrowed:
        records[n]["releasable_to"] = ["GBR"]
    for n in change.edited:
        records[n]["title"] = f"{records[n]['title']} {change.word}"
    write_records(path, [records[n] for n in sorted(change.narrowed + change.edited)])


# --- the instances ---------------------------------------------------------------------------

@dataclass
class Instance:
    """One Muster: its folder, database and ``flask`` commands with its settings."""

    name: str
    nation: str
    folder: Path
    database: Database
    flask: import_bench.Flask = field(init=False)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.flask = import_bench.Flask(self.database.url, self.index_dir)
        self.flask.env.update(MUSTER_INSTANCE_NAME=self.name,
                              MUSTER_INSTANCE_NATION=self.nation,
                              MUSTER_FEDERATION_DIR=str(self.folder / "federation"),
                              MUSTER_FILES_DIR=str(self.folder / "files"))

    @property
    def index_dir(self) -> Path:
        return self.folder / "index"

    def run(self, *args: str, stdin: str = "") -> tuple[float, float, str]:
        """(seconds, CPU seconds, stdout) of one ``flask`` command."""
        seconds, out = self.flask(*args, stdin=stdin)
        return seconds, self.flask.cpu_s, out

    def key(self) -> str:
        return self.run("federation", "key")[2].strip()


def set_up(a: Instance, b: Instance, port: int) -> None:
    """Both databases, users and keys (A's and B's side at once: not measured), then
    each the other's peer, B with the address A will serve on."""
    def side(instance: Instance, users: list[tuple[str, str, str]]) -> None:
        instance.run("db", "upgrade")
        for username, nation, roles in users:
            instance.run("users", "create", username, "--nation", nation, "--roles", roles,
                         "--password-stdin", stdin=PASSWORD)
        instance.run("federation", "init")

    with ThreadPoolExecutor(2) as pool:
        done = [pool.submit(side, a, [(import_bench.ADMIN, A_NATION,
                                       "admin,analyst,contributor")]),
                pool.submit(side, b, [(AUS_USER, "AUS", "planner,contributor"),
                                      (NZL_USER, "NZL", "planner,contributor")])]
        for future in done:
            future.result()
    a.run("federation", "peer", "add", B_NAME, *[x for c in B_NATIONS for x in ("--nation", c)],
          "--key", b.key())
    b.run("federation", "peer", "add", A_NAME, "--nation", A_NATION, "--key", a.key(),
          "--url", f"http://127.0.0.1:{port}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(instance: Instance, port: int, log: Path) -> Iterator[float]:
    """``flask run`` for ``instance`` on ``port`` until the block ends; yields the
    seconds it took to answer."""
    started = time.perf_counter()
    with log.open("w") as out:
        server = subprocess.Popen(
            instance.flask.command("run", "--host", "127.0.0.1", "--port", str(port),
                                   "--no-reload"),
            cwd=ROOT, env=instance.flask.env, stdout=out, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - started > SERVER_START_S:
                    raise SystemExit(f"flask run did not serve on {port}:\n"
                                     + log.read_text()[-3000:]) from None
                time.sleep(0.1)
        yield time.perf_counter() - started
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- what the instances hold -----------------------------------------------------------------

def _app(instance: Instance) -> Any:
    from lessons import create_app

    return create_app("development", SQLALCHEMY_DATABASE_URI=instance.database.url,
                      INDEX_DIR=str(instance.index_dir), SEARCH_WARM_UP=False,
                      INSTANCE_NAME=instance.name, INSTANCE_NATION=instance.nation,
                      FEDERATION_DIR=str(instance.folder / "federation"),
                      FILES_DIR=str(instance.folder / "files"))


@contextmanager
def app_context(instance: Instance) -> Iterator[None]:
    from lessons.extensions import db

    app = _app(instance)
    with app.app_context():
        try:
            yield
        finally:
            db.session.remove()
            db.engine.dispose()


def public_ids(a: Instance) -> dict[str, str]:
    """A's external id -> public id (B's origin id) of every lesson."""
    from sqlalchemy import select

    from lessons.extensions import db
    from lessons.models import Lesson

    with app_context(a):
        return {external: public for external, public in db.session.execute(
            select(Lesson.external_id, Lesson.public_id))}


def searches(instance: Instance, asks: dict[str, tuple[str, str]], limit: int
             ) -> dict[str, set[str]]:
    """For each named (username, words): the lessons the user's search finds, by origin
    id (B) or public id (A), through the app's own search service."""
    from sqlalchemy import select

    from lessons import search
    from lessons.extensions import db
    from lessons.models import Lesson, User

    found: dict[str, set[str]] = {}
    with app_context(instance):
        names = dict(db.session.execute(select(Lesson.id, Lesson.origin_id
                                               if instance.name == B_NAME
                                               else Lesson.public_id)).all())
        for label, (username, words) in asks.items():
            user = db.session.scalar(select(User).where(User.username == username))
            found[label] = {names[i] for i in search.matching_ids(user, words, limit=limit)}
    return found


def state_at_b(b: Instance) -> dict[str, int | bool]:
    """B's received lessons, live and withdrawn, and whether its index is in step."""
    from sqlalchemy import func, select

    from lessons import search
    from lessons.extensions import db
    from lessons.models import Lesson

    with app_context(b):
        counts = dict(db.session.execute(
            select(Lesson.status, func.count()).where(Lesson.origin_instance == A_NAME)
            .group_by(Lesson.status)).all())
        withdrawn = counts.pop("withdrawn", 0)
        return {"received_live": sum(counts.values()), "received_withdrawn": withdrawn,
                "index_clean": search.check().clean}


def bundle_records(path: Path) -> str:
    """The records of a bundle, unzipped (the file itself is compressed: a word in it
    would not show in its bytes)."""
    with zipfile.ZipFile(path) as archive:
        return archive.read("records.jsonl").decode("utf-8")


def applied_counts(output: str) -> dict[str, int]:
    """The counts of the ``bundle N from PEER applied: ...`` lines of an import or sync."""
    totals = {"new": 0, "updated": 0, "unchanged": 0, "revoked": 0, "bundles": 0}
    for line in output.splitlines():
        if " applied: " not in line or not line.startswith("bundle "):
            continue
        totals["bundles"] += 1
        for part in line.split(": ", 1)[1].split(";")[0].split(", "):
            number, word = part.split(" ", 1)
            totals[word] += int(number)
    return totals


# --- the run ---------------------------------------------------------------------------------

class Checks:
    """Named checks; each failure is printed as it happens."""

    def __init__(self) -> None:
        self.results: dict[str, bool] = {}

    def __call__(self, name: str, ok: bool, detail: str = "") -> None:
        self.results[name] = self.results.get(name, True) and bool(ok)
        if not ok:
            print(f"CHECK FAILED: {name} {detail}".rstrip(), file=sys.stderr)

    @property
    def passed(self) -> bool:
        return all(self.results.values())


@dataclass
class Expected:
    """What B's users must find after a round: the origin ids per nation and per word."""

    aus: set[str]
    nzl: set[str]
    edited: dict[str, set[str]] = field(default_factory=dict)


def check_b(b: Instance, expected: Expected, stage: str, checks: Checks, limit: int) -> None:
    asks = {"aus": (AUS_USER, import_bench.TITLE_WORD), "nzl": (NZL_USER, import_bench.TITLE_WORD),
            "gbr_only_aus": (AUS_USER, GBR_ONLY_WORD), "gbr_only_nzl": (NZL_USER, GBR_ONLY_WORD),
            **{f"edited_{word}": (AUS_USER, word) for word in expected.edited}}
    found = searches(b, asks, limit)
    state = state_at_b(b)
    checks(f"{stage}: B's AUS user finds exactly the lessons released to AUS",
           found["aus"] == expected.aus,
           f"({len(found['aus'])} found, {len(expected.aus)} expected, "
           f"{len(found['aus'] - expected.aus)} unexpected)")
    checks(f"{stage}: B's NZL user finds exactly the lessons released to NZL",
           found["nzl"] == expected.nzl,
           f"({len(found['nzl'])} found, {len(expected.nzl)} expected)")
    checks(f"{stage}: no GBR-only lesson is found at B",
           not found["gbr_only_aus"] and not found["gbr_only_nzl"])
    for word, ids in expected.edited.items():
        checks(f"{stage}: B finds each edit ({word})", found[f"edited_{word}"] == ids,
               f"({len(found[f'edited_{word}'])} found, {len(ids)} expected)")
    checks(f"{stage}: B holds as live exactly the lessons sent and not revoked",
           state["received_live"] == len(expected.aus), str(state))
    checks(f"{stage}: B's index is in step", bool(state["index_clean"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", type=int, default=5_000)
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL server to create two temporary databases on "
                             "(default: SQLite in a temporary folder)")
    parser.add_argument("--synthetic", action="store_true",
                        help="generated text even where the NASA records are present")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the files, databases and indexes here (default: removed)")
    args = parser.parse_args(argv)
    if args.lessons < 100:
        parser.error("--lessons must be at least 100 (1% of them are changed per round)")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="muster-federation-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    checks = Checks()
    figures: dict[str, Any] = {}
    try:
        with ExitStack() as stack:
            figures = run(args, workdir, checks, stack)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    figures["checks"] = checks.results
    figures["checks_passed"] = checks.passed
    print(json.dumps(figures))
    return 0 if checks.passed else 1


def run(args: argparse.Namespace, workdir: Path, checks: Checks, stack: ExitStack
        ) -> dict[str, Any]:
    nasa = None if args.synthetic else import_bench.shared_data()
    base = (import_bench.nasa_records(nasa) if nasa
            else import_bench.synthetic_records(min(args.lessons, 2000)))
    source = "nasa_llis" if nasa else "synthetic"
    lessons_file = workdir / "lessons.jsonl"
    held, records, plan = write_lessons(lessons_file, args.lessons, base)
    sent = [p for p in plan if p.sent]
    gbr_only = [p for p in plan if not p.released]
    print(f"file: {args.lessons:,} lessons from {source}, {held['file_mb']} MB; "
          f"{sum(p.released for p in plan):,} released to AUS ({len(sent):,} of them "
          f"validated, to be sent), {len(gbr_only):,} GBR only")

    for stale in workdir.glob("federation_[ab].db*"):  # a kept --workdir's last run
        stale.unlink()
    a_db = stack.enter_context(temporary_database(args.database_url or None, workdir,
                                                  "federation_a"))
    b_db = stack.enter_context(temporary_database(args.database_url or None, workdir,
                                                  "federation_b"))
    if a_db.name:
        print(f"databases: {a_db.name}, {b_db.name} (dropped at the end)")
    for folder in ("a", "b"):
        shutil.rmtree(workdir / folder, ignore_errors=True)
    a = Instance(A_NAME, A_NATION, workdir / "a", a_db)
    b = Instance(B_NAME, B_NATION, workdir / "b", b_db)
    port = free_port()
    set_up(a, b, port)
    load_before = os.getloadavg()[0]
    limit = args.lessons + 1
    # What every command below pays before it does anything: Python, the app, a query.
    start_s = min(a.run("federation", "key")[0] for _ in range(3))

    import_s, _, out = a.run("lessons", "import", str(lessons_file), "--as", import_bench.ADMIN,
                             "--as-migration")
    print(f"A: {out.strip().splitlines()[-1]} ({import_s:.1f} s)")
    ids = public_ids(a)
    origin = {p.n: ids[p.external_id] for p in plan}
    expected = Expected(aus={origin[p.n] for p in sent},
                        nzl={origin[p.n] for p in sent if p.nzl})
    at_a = searches(a, {"gbr_only": (import_bench.ADMIN, GBR_ONLY_WORD)}, limit)
    checks("A's own search finds every GBR-only lesson by its word (the word is searchable)",
           at_a["gbr_only"] == {origin[p.n] for p in gbr_only},
           f"({len(at_a['gbr_only'])} of {len(gbr_only)})")

    # --- the full round, by file
    full = file_round(a, b, workdir, 1, checks)
    checks("full: A exported every lesson released to AUS or NZL, and no other",
           full["exported"] == len(sent), f"({full['exported']} of {len(sent)})")
    checks("full: B applied every lesson as new",
           full["applied"]["new"] == len(sent), str(full["applied"]))
    check_b(b, expected, "full", checks, limit)
    full_figures = {
        "full_lessons": full["exported"], "full_export_s": full["export_s"],
        "full_export_cpu_s": full["export_cpu_s"], "full_bundle_mb": full["bundle_mb"],
        "full_export_per_s": per_s(full["exported"], full["export_s"]),
        "full_import_s": full["import_s"], "full_import_cpu_s": full["import_cpu_s"],
        "full_import_per_s": per_s(full["exported"], full["import_s"]),
        "full_search_sync_s": full["search_sync_s"], "full_sync_applied": full["sync_applied"],
        "full_ack_s": full["ack_s"],
    }
    print(f"full round: {full['exported']:,} lessons; export {full['export_s']:.1f} s "
          f"({full_figures['full_export_per_s']:,} lessons/s, {full['bundle_mb']} MB), "
          f"import at B {full['import_s']:.1f} s ({full_figures['full_import_per_s']:,} "
          f"lessons/s), search sync {full['search_sync_s']:.1f} s, ack at A "
          f"{full['ack_s']:.1f} s")

    rng = random.Random(SEED)
    taken: set[int] = set()

    # --- the incremental round, by file
    incremental = pick_round("incremental", plan, taken, rng)
    change_at_a(a, records, incremental, workdir, expected, origin, plan)
    inc = file_round(a, b, workdir, 2, checks)
    check_applied(inc, incremental, checks, "incremental")
    check_b(b, expected, "incremental", checks, limit)
    inc_figures = {
        "incremental_changed": incremental.changed,
        "incremental_records": inc["exported"] + inc["revocations"],
        "incremental_export_s": inc["export_s"], "incremental_export_cpu_s": inc["export_cpu_s"],
        "incremental_bundle_kb": round(inc["bundle_mb"] * 1000, 1),
        "incremental_import_s": inc["import_s"], "incremental_import_cpu_s": inc["import_cpu_s"],
        "incremental_search_sync_s": inc["search_sync_s"], "incremental_ack_s": inc["ack_s"],
    }
    print(f"incremental round: {incremental.changed} changed ({len(incremental.edited)} edited, "
          f"{len(incremental.narrowed)} narrowed); export {inc['export_s']:.1f} s, import at B "
          f"{inc['import_s']:.1f} s, ack {inc['ack_s']:.1f} s")

    # --- the online round: B pulls from A's feed
    online = pick_round("online", plan, taken, rng)
    change_at_a(a, records, online, workdir, expected, origin, plan)
    with serving(a, port, workdir / "server-a.log") as server_start_s:
        sync_s, sync_cpu_s, out = b.run("federation", "sync", A_NAME)
        _, _, peers_at_a = a.run("federation", "peer", "list")
    # A's access log: how long the feed took to make and send the bundle it answered.
    served_ms = [float(ms) for ms in re.findall(
        r"GET /api/v1/federation/feed 200 ([0-9.]+)ms", (workdir / "server-a.log").read_text())]
    checks("online: A's feed served one bundle", len(served_ms) == 1, str(served_ms))
    # ... and how long its "nothing new" (204) took: it looks through every lesson too.
    empty_ms = [float(ms) for ms in re.findall(
        r"GET /api/v1/federation/feed 204 ([0-9.]+)ms", (workdir / "server-a.log").read_text())]
    applied = applied_counts(out)
    online_result = {"applied": applied}
    check_applied(online_result, online, checks, "online")
    checks("online: one bundle pulled, then nothing more", applied["bundles"] == 1
           and "1 bundle(s) applied; nothing more to fetch." in out, out[-500:])
    checks("online: A records B's acknowledgement of bundle 3",
           "out 3 (acknowledged 3)" in peers_at_a, peers_at_a)
    sync_search_s = b.run("search", "sync")[0]
    check_b(b, expected, "online", checks, limit)
    online_figures = {
        "online_changed": online.changed, "online_sync_s": round(sync_s, 2),
        "online_sync_cpu_s": round(sync_cpu_s, 2),
        "online_feed_ms": round(sum(served_ms), 1),
        "online_empty_feed_ms": round(sum(empty_ms), 1),
        "online_search_sync_s": round(sync_search_s, 2),
        "server_start_s": round(server_start_s, 2),
    }
    print(f"online round: {online.changed} changed; federation sync at B {sync_s:.1f} s "
          f"(A's feed answered in {sum(served_ms):.0f} ms; A's server up in "
          f"{server_start_s:.1f} s)")

    full_per_lesson = (full["export_s"] + full["import_s"]) / max(full["exported"], 1)
    inc_per_record = (inc["export_s"] + inc["import_s"]) / max(incremental.changed, 1)
    return {
        "lessons": args.lessons, "database": a_db.kind, "source": source,
        "released_to_aus": sum(p.released for p in plan), "sent": len(sent),
        "gbr_only": len(gbr_only), **held, "a_import_s": round(import_s, 1),
        **full_figures, **inc_figures, **online_figures,
        # A changed record costs more than a lesson of the full round: each export still
        # reads every lesson the peer may see to find what changed.
        "incremental_vs_full_time": round((inc["export_s"] + inc["import_s"])
                                          / (full["export_s"] + full["import_s"]), 3),
        "incremental_per_record_vs_full": round(inc_per_record / full_per_lesson, 1),
        "online_vs_full_time": round(sync_s / (full["export_s"] + full["import_s"]), 3),
        "command_start_s": round(start_s, 2),
        "cpus": os.cpu_count(), "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def per_s(count: int, seconds: float) -> float:
    return round(count / max(seconds, 1e-3), 1)


def change_at_a(a: Instance, records: list[dict[str, Any]], change: Round, workdir: Path,
                expected: Expected, origin: dict[int, str], plan: list[Planned]) -> None:
    """The round's changed lines imported again at A (new versions there), and what B
    must then find."""
    path = workdir / f"{change.name}.jsonl"
    change_file(path, records, change)
    _, _, out = a.run("lessons", "import", str(path), "--as", import_bench.ADMIN,
                      "--as-migration")
    print(f"A, {change.name} changes: {out.strip().splitlines()[-1]}")
    narrowed = {origin[n] for n in change.narrowed}
    expected.aus -= narrowed
    expected.nzl -= narrowed
    expected.edited[change.word] = {origin[n] for n in change.edited}
    assert all(plan[n].sent for n in change.narrowed + change.edited)


def check_applied(result: dict[str, Any], change: Round, checks: Checks, stage: str) -> None:
    applied = result["applied"]
    checks(f"{stage}: B applied each edit as an update and each narrowing as a revocation",
           (applied["new"], applied["updated"], applied["revoked"])
           == (0, len(change.edited), len(change.narrowed)), str(applied))


def file_round(a: Instance, b: Instance, workdir: Path, sequence: int, checks: Checks
               ) -> dict[str, Any]:
    """Export at A, import with --ack and search sync at B, the ack imported at A."""
    bundle, ack = workdir / f"gbr-to-aus-{sequence}.zip", workdir / f"aus-ack-{sequence}.zip"
    export_s, export_cpu_s, out = a.run("federation", "export", B_NAME, str(bundle))
    exported = out.split(": ", 1)[1].split(" lesson(s)")[0]
    revocations = out.split(", ", 1)[1].split(" revocation(s)")[0]
    import_s, import_cpu_s, imported = b.run("federation", "import", str(bundle), "--ack", str(ack))
    search_sync_s, _, synced = b.run("search", "sync")
    ack_s, _, acked = a.run("federation", "import", str(ack))
    text = bundle_records(bundle)
    checks(f"bundle {sequence}: the GBR-only word is not in its records",
           GBR_ONLY_WORD not in text.lower())
    checks(f"bundle {sequence}: A records B's acknowledgement",
           f"acknowledgement from {B_NAME} of bundle {sequence} recorded" in acked, acked)
    return {"exported": int(exported), "revocations": int(revocations),
            "export_s": round(export_s, 2),
            "export_cpu_s": round(export_cpu_s, 2),
            "bundle_mb": round(bundle.stat().st_size / 1e6, 3),
            "import_s": round(import_s, 2), "import_cpu_s": round(import_cpu_s, 2),
            "search_sync_s": round(search_sync_s, 2), "ack_s": round(ack_s, 2),
            # Changes the import left for ``search sync`` (it indexes what it applied).
            "sync_applied": int(synced.split()[1]) if synced.startswith("Applied") else -1,
            "applied": applied_counts(imported)}


if __name__ == "__main__":
    sys.exit(main())
