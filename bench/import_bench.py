"""Bulk import benchmark: ``flask lessons import`` of a large JSON Lines file, timed until
every lesson is stored and until every lesson is searchable.

Run by hand (``tests/test_import_bench.py`` does a 300-line smoke run)::

    .venv/bin/python bench/import_bench.py                      # 20,000 lines, SQLite
    .venv/bin/python bench/import_bench.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

1. The file: ``--lines`` lessons in the exchange format, built from the NASA LLIS
   records of the shared data folder (``MUSTER_SHARED_DATA``, else ``../shared/data``
   beside the checkout, else ``/work/shared/data``): real text of real sizes (median
   about 1,900 characters), cycled with a unique external id and a varied title per
   line. Where the shared data is missing (or with ``--synthetic``) the lessons are
   generated from word lists, about 1,500 characters each, from a fixed seed.
2. A fresh database: SQLite in a temporary folder, or, with ``--database-url``, a new
   database ``muster_import_<random>`` on that PostgreSQL server, dropped afterwards
   (the database the URL names is never written to); ``flask db upgrade`` and one
   administrator made with ``flask users create``.
3. The import as a real bulk load runs it: an administrator's migration from another
   system (``flask --app wsgi lessons import FILE --as ADMIN --as-migration
   --batch-size N``; statuses and originators taken as is), timed from start to exit
   ("store"). Each batch is committed with its change-log rows as it lands.
   The command applies each batch to this host's index right after its commit (commands
   index inline, whether or not an indexer runs), so at exit every lesson is searchable
   unless an apply was deferred; ``flask search sync`` then applies what waits, timed
   too ("searchable").
4. Checks, through the app's own code: every line is a stored lesson, the index is in
   step with the database (``search.check``), and a search for the word every title
   holds finds every lesson.

The last line of stdout is one JSON object with the figures; the exit status is 1 when
a check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: import the app's package
    sys.path.insert(0, str(ROOT))

from bench.databases import temporary_database  # noqa: E402

ADMIN = "bench.admin"
NATION = "GBR"
# Every title holds this word once: a search for it must find every lesson imported.
TITLE_WORD = "wombat"
VARIANTS = ("revisited", "second look", "field report", "follow-up", "recurring",
            "theatre view", "after action", "cross-check")
SEED = 7


def shared_data() -> Path | None:
    """The NASA LLIS records, where this machine has the shared data folder."""
    dirs = ([Path(os.environ["MUSTER_SHARED_DATA"])] if os.environ.get("MUSTER_SHARED_DATA")
            else [ROOT.parent / "shared" / "data", Path("/work/shared/data")])
    return next((d / "nasa_llis.jsonl" for d in dirs if (d / "nasa_llis.jsonl").exists()),
                None)


# --- the file --------------------------------------------------------------------------------

def nasa_records(path: Path) -> list[dict[str, Any]]:
    """The LLIS records as contract records (the shipped map), those with a title."""
    from lessons.services.exchange import FieldMap

    field_map = FieldMap.from_json((ROOT / "maps" / "nasa-llis.json").read_text("utf-8"))
    with path.open(encoding="utf-8") as handle:
        mapped = [field_map.apply(json.loads(line)) for line in handle if line.strip()]
    return [r for r in mapped if str(r.get("title") or "").strip()]


WORDS = ("convoy fuel liaison radio network bridging medical logistics targeting training "
         "interoperability permits border crossing airfield maintenance spares rations "
         "casualty evacuation signals encryption keys handover rehearsal planning "
         "conference coalition partner officer brigade battalion company platoon engineer "
         "artillery helicopter landing zone weather delay shortage procedure checklist "
         "report lesson observation recommendation").split()


def synthetic_records(count: int) -> list[dict[str, Any]]:
    """Lessons from word lists (no shared data needed), the same for the same seed."""
    rng = random.Random(SEED)

    def text(words: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."

    return [{"title": text(8), "observation": text(90), "discussion": text(60),
             "conclusion": text(30), "recommendation": text(30),
             "tags": sorted({rng.choice(WORDS) for _ in range(3)}),
             "observed_on": f"20{rng.randrange(10, 26)}-0{rng.randrange(1, 10)}-1"
                            f"{rng.randrange(10)}",
             "source_event": f"Exercise {rng.choice(WORDS).upper()} {rng.randrange(2010, 2026)}"}
            for _ in range(count)]


def write_file(path: Path, lines: int, base: list[dict[str, Any]]) -> dict[str, Any]:
    """``lines`` lessons cycling through ``base``, each with its own external id and
    title; returns what the file holds (size, characters of text per lesson)."""
    chars = 0
    with path.open("w", encoding="utf-8") as out:
        for n in range(lines):
            record = dict(base[n % len(base)])
            cycle = n // len(base)
            variant = f" ({VARIANTS[cycle % len(VARIANTS)]} {cycle + 1})" if cycle else ""
            record.update(
                external_id=f"bench:{n:06d}",
                title=f"{str(record['title'])[:240]} {TITLE_WORD}{variant}",
                originator_nation=NATION, releasable_to=["FVEY"],
                # A record short of what a submitted lesson needs lands as a draft.
                status="validated" if record.get("recommendation") and record.get(
                    "observation") else "draft",
                classification="UNCLASSIFIED",
                tags=[str(t)[:100] for t in record.get("tags") or []])
            chars += sum(len(str(record.get(k) or "")) for k in (
                "title", "observation", "discussion", "conclusion", "recommendation"))
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return {"file_mb": round(path.stat().st_size / 1e6, 1),
            "text_chars_per_lesson": round(chars / max(lines, 1))}


# --- the database ----------------------------------------------------------------------------

@contextmanager
def fresh_database(url: str | None, workdir: Path) -> Iterator[tuple[str, str]]:
    """A new, empty database and its kind (``bench/databases.py``)."""
    with temporary_database(url, workdir, "import") as database:
        yield database.url, database.kind


class Flask:
    """``flask --app wsgi`` commands against the benchmark's database and index."""

    def __init__(self, database_url: str, index_dir: Path) -> None:
        self.env = {**os.environ, "MUSTER_ENV": "development", "DATABASE_URL": database_url,
                    "MUSTER_INDEX_DIR": str(index_dir), "PYTHONUNBUFFERED": "1"}
        self.env.pop("TEST_DATABASE_URL", None)
        self.cpu_s = 0.0

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "flask", "--app", "wsgi", *args]

    def __call__(self, *args: str, stdin: str = "") -> tuple[float, str]:
        """Run one command; (seconds, stdout); exits with its output when it fails. The
        command's own CPU seconds are kept in ``cpu_s`` (the machine may be shared:
        wall time then measures the neighbours too)."""
        started = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(self.command(*args), cwd=ROOT, env=self.env, input=stdin,
                              capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
            raise SystemExit(f"flask {' '.join(args[:3])} failed ({done.returncode})")
        return seconds, done.stdout


def verify(database_url: str, index_dir: Path, lines: int) -> dict[str, Any]:
    """Every line stored, the index in step, and every lesson found by a search."""
    from sqlalchemy import func, select

    from lessons import create_app, search
    from lessons.extensions import db
    from lessons.models import Lesson, User

    app = create_app("development", SQLALCHEMY_DATABASE_URI=database_url,
                     INDEX_DIR=str(index_dir), SEARCH_WARM_UP=False)
    with app.app_context():
        stored = db.session.scalar(select(func.count()).select_from(Lesson)) or 0
        admin = db.session.scalar(select(User).where(User.username == ADMIN))
        found = len(search.matching_ids(admin, TITLE_WORD, limit=lines + 1))
        drift = search.check()
        db.session.remove()
        db.engine.dispose()
    return {"stored": stored, "found_by_search": found, "index_clean": drift.clean}


# --- the run ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="passed to the import (default: the command's own)")
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL server to create a temporary database on "
                             "(default: SQLite in a temporary folder)")
    parser.add_argument("--synthetic", action="store_true",
                        help="generated text even where the NASA records are present")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the file, database and index here (default: removed)")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="muster-import-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        nasa = None if args.synthetic else shared_data()
        base = nasa_records(nasa) if nasa else synthetic_records(min(args.lines, 2000))
        source = "nasa_llis" if nasa else "synthetic"
        path = workdir / "lessons.jsonl"
        held = write_file(path, args.lines, base)
        print(f"file: {args.lines:,} lines from {source}, {held['file_mb']} MB, "
              f"{held['text_chars_per_lesson']:,} characters of text per lesson")
        with fresh_database(args.database_url or None, workdir) as (url, kind):
            index_dir = workdir / "index"
            shutil.rmtree(index_dir, ignore_errors=True)
            flask = Flask(url, index_dir)
            flask("db", "upgrade")
            flask("users", "create", ADMIN, "--nation", NATION, "--roles",
                  "admin,analyst,contributor", "--password-stdin",
                  stdin="bench-password-not-used\n")
            command = ["lessons", "import", str(path), "--as", ADMIN, "--as-migration"]
            if args.batch_size:
                command += ["--batch-size", str(args.batch_size)]
            load_before = os.getloadavg()[0]
            store_s, out = flask(*command)
            store_cpu_s = flask.cpu_s
            sync_s, synced = flask("search", "sync")
            searchable_s = store_s + (sync_s if not synced.startswith("Applied 0 ") else 0)
            print(out.strip().splitlines()[-1])
            applied = int(synced.split()[1]) if synced.startswith("Applied") else -1
            checked = verify(url, index_dir, args.lines)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    figures = {
        "lines": args.lines, "database": kind, "source": source,
        "batch_size": args.batch_size or "default",
        "command": "flask --app wsgi lessons import FILE --as ADMIN --as-migration",
        **held,
        "store_s": round(store_s, 1), "store_per_s": round(args.lines / store_s, 1),
        "store_cpu_s": round(store_cpu_s, 1),
        "store_per_cpu_s": round(args.lines / max(store_cpu_s, 1e-3), 1),
        "sync_applied": applied,
        "searchable_s": round(searchable_s, 1),
        "searchable_per_s": round(args.lines / searchable_s, 1),
        "cpus": os.cpu_count(), "load_before": round(load_before, 2), **checked,
    }
    print(f"store: {figures['store_per_s']:,} lessons/s ({store_s:.1f} s); searchable: "
          f"{figures['searchable_per_s']:,} lessons/s ({searchable_s:.1f} s; {applied} "
          f"change(s) left for search sync); {kind}")
    print(json.dumps(figures))
    ok = (checked["stored"] == args.lines and checked["found_by_search"] == args.lines
          and checked["index_clean"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
