"""Search relevance: known-item queries in the staff's own words, Muster against plain BM25.

Run by hand (``tests/test_relevance_bench.py`` does a ``--limit`` smoke run)::

    .venv/bin/python bench/relevance.py                    # the kept set, every query
    .venv/bin/python bench/relevance.py --show-misses      # ... and what each system missed
    .venv/bin/python bench/relevance.py --queries other.jsonl --set nasa
    .venv/bin/python bench/relevance.py --engine similar   # the "lessons like a text" callers

A *known-item* query describes the problem one lesson is about, the way someone who has
that problem would type it, and names that lesson as its target; a system is judged by
where the target lands. The kept set is ``bench/relevance_queries.jsonl``, one JSON
object a line: ``{"query": ..., "target": ..., "set": "nasa" | "demo"}``. A ``nasa``
target is a NASA LLIS id (``llis-123``: the imported lesson's ``external_id``); a
``demo`` target is the exact title of a demo lesson (``lessons/demo/lessons.jsonl``),
the only identifier those lessons have before they are loaded.

The set is checked before anything is built, and the run is refused if it fails: every
target must exist, and no query may share a run of three consecutive words with its
target's title (words case-folded, split at anything not a letter or digit). A query
that copies the title measures copying, not search. Once the collection is built, every
target must also be visible to the searching user.

The collection, in a throwaway folder (SQLite database and index of its own):

* the demo data (users, glossary, coalition lessons) through ``lessons.demo.load_demo``;
* the public NASA Lessons Learned records, imported as the README says, through the
  import service with ``maps/nasa-llis.json`` as an administrator's migration, skipping
  the one invalid record. They land as drafts of ``admin`` releasable to FVEY, so the
  searcher is ``admin`` (USA): the one user who sees every imported lesson, and every
  shared demo lesson releasable to the USA.

The two systems, over exactly the lessons that user may see:

* **Muster**: ``lessons.search.matching_ids``, the search service the search page and the
  API use (glossary, spelling folding, stemming, visibility, ranking), first 100 hits.
* **BM25**: a separate in-memory Whoosh index, one field holding the title and the text
  parts (observation, discussion, conclusion, recommendation, friction, workaround,
  limits), Whoosh's ``StandardAnalyzer`` (lower case, stop words, no stemming, no
  glossary), Whoosh's BM25F scoring with its defaults, the query's words OR-ed.

With ``--engine similar`` the same queries are the text a contributor types in the
new-lesson form (its title; the observation is the same text to these paths), and the
systems are the callers that find lessons like a text, over the same lessons:

* **search**: ``lessons.search.matching_ids`` with the text as the query, first 20 hits
  (the search page's ranking, for comparison);
* **similar**: ``related.similar_lessons(user, text, "")``, what the form's "check for
  similar lessons" calls, all it returns (``related.LIMIT_MAX``, 20; the form shows 8);
* **keyterms**: ``related.text_scores``, the Bo1 key-term ranking alone, first 20: what
  "related lessons" on a lesson's page ranks by, and what "similar" was before;
* **recommend**: the text score of exercise recommendations for an exercise whose one
  objective is the text: ``recommendations._text_scores`` over every status (the
  imported lessons are drafts, which recommendations leave out), ordered by
  ``recommendations._similarity`` (score relative to the best, times the share of the
  text the lesson holds), equal values in lesson id order, first 20; tags, nations and
  status weights play no part.

Per system and set: top-1 and top-10 (share of queries whose target is first, or in the
first ten), MRR (mean of 1/rank of the target within the first 100 hits, 0 if absent)
and the share of queries that find nothing at all. The last line of stdout is one JSON
object with every figure.

The NASA data is test data kept outside the project: ``nasa_llis.jsonl`` in the shared
data folder beside the checkout, or in the folder named by ``MUSTER_SHARED_DATA``.
Without it the script says so and exits with status 3.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: import the app's package
    sys.path.insert(0, str(ROOT))

from whoosh.analysis import StandardAnalyzer  # noqa: E402
from whoosh.fields import ID, TEXT, Schema  # noqa: E402
from whoosh.filedb.filestore import RamStorage  # noqa: E402
from whoosh.query import Or, Term  # noqa: E402

from bench.search_bench import machine  # noqa: E402

DATA_DIR = Path(os.environ.get("MUSTER_SHARED_DATA") or ROOT.parent / "shared" / "data")
NASA_FILE = DATA_DIR / "nasa_llis.jsonl"
NASA_MAP = ROOT / "maps" / "nasa-llis.json"
DEMO_FILE = ROOT / "lessons" / "demo" / "lessons.jsonl"
QUERIES_FILE = ROOT / "bench" / "relevance_queries.jsonl"
SEARCHER = "admin"
DEPTH = 100  # hits looked at per query: a target further down scores 0
TOP = 10
SETS = ("nasa", "demo")
SYSTEMS = ("muster", "bm25")
ENGINES = ("search", "similar")
LIKE_SYSTEMS = ("search", "similar", "keyterms", "recommend")
LIKE_DEPTH = 20  # what "similar lessons" returns at most (related.LIMIT_MAX)
TEXT_PARTS = ("title", "observation", "discussion", "conclusion", "recommendation",
              "friction", "workaround", "limits")
EXIT_REFUSED = 2
EXIT_NO_DATA = 3
_WORD = re.compile(r"[^\W_]+")


class Refused(Exception):
    """The query set (or the collection built for it) cannot give a fair measurement."""


def say(text: str = "") -> None:
    print(text, flush=True)


def words(text: str) -> list[str]:
    """Case-folded words, punctuation stripped (``US-issued`` is ``us``, ``issued``)."""
    return _WORD.findall(text.casefold())


def shared_run(query: str, title: str, size: int = 3) -> tuple[str, ...] | None:
    """The first run of ``size`` consecutive words the query shares with the title."""
    title_words = words(title)
    runs = {tuple(title_words[i:i + size]) for i in range(len(title_words) - size + 1)}
    query_words = words(query)
    for i in range(len(query_words) - size + 1):
        run = tuple(query_words[i:i + size])
        if run in runs:
            return run
    return None


@dataclass(frozen=True)
class Query:
    line: int
    text: str
    target: str
    set: str


def read_queries(path: Path) -> tuple[list[Query], list[str]]:
    """The queries of ``path`` and the problems of its malformed lines."""
    queries: list[Query] = []
    problems: list[str] = []
    for number, raw in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not JSON ({exc.msg})")
            continue
        if not isinstance(item, dict) or not all(
                isinstance(item.get(key), str) and item[key].strip()
                for key in ("query", "target", "set")):
            problems.append(f"line {number}: needs the strings query, target and set")
            continue
        if item["set"] not in SETS:
            problems.append(f"line {number}: set must be one of {', '.join(SETS)}")
            continue
        queries.append(Query(number, item["query"].strip(), item["target"].strip(),
                             item["set"]))
    return queries, problems


def known_titles(nasa_file: Path = NASA_FILE, demo_file: Path = DEMO_FILE
                 ) -> dict[str, dict[str, str]]:
    """Target id -> title, per set: NASA ids from the data file, demo titles from the
    demo data (a demo lesson's target is its title)."""
    nasa = {}
    for raw in nasa_file.read_text("utf-8").splitlines():
        if raw.strip():
            record = json.loads(raw)
            if record.get("title"):  # a record without one is not imported
                nasa[record["id"]] = record["title"]
    demo = {}
    for raw in demo_file.read_text("utf-8").splitlines():
        if raw.strip():
            title = json.loads(raw)["title"]
            demo[title] = title
    return {"nasa": nasa, "demo": demo}


def check_queries(queries: list[Query], titles: dict[str, dict[str, str]]) -> list[str]:
    """Why the set may not be run (empty when it may): missing targets and queries that
    copy three consecutive words of their target's title."""
    problems = []
    for query in queries:
        title = titles[query.set].get(query.target)
        if title is None:
            problems.append(f"line {query.line}: no {query.set} lesson {query.target!r}")
            continue
        run = shared_run(query.text, title)
        if run is not None:
            problems.append(f"line {query.line}: {query.text!r} copies "
                            f"{' '.join(run)!r} from the title of {query.target}")
    return problems


# --- the collection ---------------------------------------------------------------------

def build_collection(workdir: Path):
    """A Muster app over a fresh SQLite database and index in ``workdir``, holding the
    demo data and the imported NASA lessons; returns the app and the import's summary."""
    from sqlalchemy import insert

    from lessons import create_app
    from lessons.demo import load_demo
    from lessons.extensions import db
    from lessons.models import Nation, NationGroup
    from lessons.models.nation import nation_group_members
    from lessons.reference import group_rows, nation_rows
    from lessons.services import exchange

    app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{workdir / 'bench.db'}",
                     INDEX_DIR=str(workdir / "index"))
    with app.app_context():
        db.create_all()  # as tests/conftest.py: a throwaway schema, no migrations to run
        groups, members = group_rows()
        db.session.execute(insert(Nation), nation_rows())
        db.session.execute(insert(NationGroup), groups)
        db.session.execute(insert(nation_group_members), members)
        db.session.commit()
        load_demo()
        field_map = exchange.FieldMap.from_json(NASA_MAP.read_text("utf-8"))
        with NASA_FILE.open(encoding="utf-8") as lines:
            report = exchange.import_lines(lines, exchange.require_user(SEARCHER),
                                           field_map=field_map, skip_invalid=True,
                                           migration=True)
        summary = (f"imported {report.created} NASA lessons, "
                   f"{len(report.errors)} line(s) rejected")
        db.session.remove()
    return app, summary


def resolve_targets(queries: list[Query], user) -> dict[tuple[str, str], int]:
    """(set, target) -> lesson id; ``Refused`` when a target is missing or hidden from
    the searcher (its rank would say nothing about search)."""
    from sqlalchemy import select

    from lessons import policy
    from lessons.extensions import db
    from lessons.models import Lesson

    ids: dict[tuple[str, str], int] = {}
    problems = []
    for query in queries:
        key = (query.set, query.target)
        if key in ids:
            continue
        column = Lesson.external_id if query.set == "nasa" else Lesson.title
        found = db.session.scalars(select(Lesson).where(column == query.target)).all()
        if len(found) != 1:
            problems.append(f"line {query.line}: {len(found)} lessons match {query.target!r}")
        elif not policy.can_view(user, found[0]):
            problems.append(f"line {query.line}: {SEARCHER} may not see {query.target!r}")
        else:
            ids[key] = found[0].id
    if problems:
        raise Refused("\n".join(problems))
    return ids


class Bm25Baseline:
    """Plain BM25 over the same lessons: the yardstick an engine with no analysis beyond
    lower case and stop words, no title boost and no glossary would reach."""

    def __init__(self, lessons) -> None:
        self.analyzer = StandardAnalyzer()
        schema = Schema(lesson_id=ID(stored=True), text=TEXT(analyzer=self.analyzer))
        self.index = RamStorage().create_index(schema)
        writer = self.index.writer()
        for lesson in lessons:
            text = "\n\n".join(getattr(lesson, name) or "" for name in TEXT_PARTS)
            writer.add_document(lesson_id=str(lesson.id), text=text)
        writer.commit()
        self.searcher = self.index.searcher()  # BM25F, Whoosh's default weighting

    def __call__(self, text: str) -> list[int]:
        terms = list(dict.fromkeys(token.text for token in self.analyzer(text)))
        if not terms:
            return []
        hits = self.searcher.search(Or([Term("text", t) for t in terms]), limit=DEPTH)
        return [int(hit["lesson_id"]) for hit in hits]

    def close(self) -> None:
        self.searcher.close()


def muster_search(user) -> Callable[[str], list[int]]:
    from lessons import search

    def run(text: str) -> list[int]:
        try:
            return search.matching_ids(user, text, limit=DEPTH)
        except search.TooBroad:  # refused as too costly: the searcher sees nothing
            return []

    return run


def like_systems(user) -> dict[str, Callable[[str], list[int]]]:
    """The callers that find lessons like a text, each as a query -> ranked ids."""
    from lessons import search
    from lessons.search import related
    from lessons.services import recommendations

    def as_search(text: str) -> list[int]:
        try:
            return search.matching_ids(user, text, limit=LIKE_DEPTH)
        except search.TooBroad:
            return []

    def as_similar(text: str) -> list[int]:
        return [lesson.id for lesson in
                related.similar_lessons(user, text, "", limit=related.LIMIT_MAX)]

    def as_keyterms(text: str) -> list[int]:
        return [lesson_id for lesson_id, _, _ in related.text_scores(user, text, LIKE_DEPTH)]

    def as_recommend(text: str) -> list[int]:
        similarity = recommendations._similarity(
            recommendations._text_scores(user, text, statuses=None))
        return sorted(similarity, key=lambda i: (-round(similarity[i], 4), i))[:LIKE_DEPTH]

    return {"search": as_search, "similar": as_similar, "keyterms": as_keyterms,
            "recommend": as_recommend}


# --- figures ----------------------------------------------------------------------------

@dataclass
class Outcome:
    query: Query
    rank: int | None  # 1-based within the first DEPTH hits, None if absent
    hits: int


@dataclass
class Figures:
    outcomes: list[Outcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        n = len(self.outcomes)
        if not n:
            return {"queries": 0, "top1": None, "top10": None, "mrr": None,
                    "no_result": None}
        ranks = [o.rank for o in self.outcomes]
        return {
            "queries": n,
            "top1": round(sum(r == 1 for r in ranks) / n, 4),
            "top10": round(sum(r is not None and r <= TOP for r in ranks) / n, 4),
            "mrr": round(sum(1 / r for r in ranks if r is not None) / n, 4),
            "no_result": round(sum(o.hits == 0 for o in self.outcomes) / n, 4),
        }


def evaluate(queries: list[Query], ids: dict[tuple[str, str], int],
             run: Callable[[str], list[int]]) -> tuple[list[Outcome], float]:
    outcomes = []
    started = time.perf_counter()
    for query in queries:
        found = run(query.text)[:DEPTH]
        target = ids[(query.set, query.target)]
        rank = found.index(target) + 1 if target in found else None
        outcomes.append(Outcome(query, rank, len(found)))
    return outcomes, time.perf_counter() - started


def _pct(value: float | None) -> str:
    return "     -" if value is None else f"{value * 100:5.1f}%"


def report(results: dict[str, dict[str, Figures]], sets: list[str]) -> dict[str, Any]:
    """Print the table; return the figures per system (in ``results``' order) and set
    (plus ``all``)."""
    figures: dict[str, dict[str, Any]] = {}
    width = max(8, *(len(system) for system in results))
    say(f"{'system':<{width}} {'set':<5} {'queries':>7} {'top-1':>7} {'top-10':>7} "
        f"{'MRR':>6} {'none':>7}")
    for system in results:
        figures[system] = {}
        groups = {name: Figures([o for o in results[system]["all"].outcomes
                                 if o.query.set == name]) for name in sets}
        if len(sets) > 1:
            groups["all"] = results[system]["all"]
        for name, group in groups.items():
            row = group.as_dict()
            figures[system][name] = row
            mrr = "     -" if row["mrr"] is None else f"{row['mrr']:6.3f}"
            say(f"{system:<{width}} {name:<5} {row['queries']:>7} {_pct(row['top1']):>7} "
                f"{_pct(row['top10']):>7} {mrr} {_pct(row['no_result']):>7}")
    return figures


def show_misses(results: dict[str, dict[str, Figures]]) -> None:
    for system in results:
        misses = [o for o in results[system]["all"].outcomes
                  if o.rank is None or o.rank > TOP]
        say(f"\n{system}: {len(misses)} queries with the target outside the top {TOP}")
        for outcome in misses:
            where = (f"rank {outcome.rank}" if outcome.rank is not None
                     else "no result" if outcome.hits == 0
                     else f"not among its {outcome.hits} hit{'s' * (outcome.hits != 1)}")
            say(f"  [{outcome.query.set} {outcome.query.target}] {outcome.query.text!r}: "
                f"{where}")


def verdict(figures: dict[str, dict[str, Any]], sets: list[str]) -> dict[str, bool]:
    """The issue's bar for the kept set: Muster ahead of BM25 on top-10 and MRR, and at
    most 2% of queries finding nothing."""
    key = "all" if len(sets) > 1 else sets[0]
    muster, bm25 = figures["muster"][key], figures["bm25"][key]
    if not muster["queries"]:
        return {}
    return {"ahead_top10": muster["top10"] > bm25["top10"],
            "ahead_mrr": muster["mrr"] > bm25["mrr"],
            "no_result_at_most_2pct": muster["no_result"] <= 0.02}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=Path, default=QUERIES_FILE,
                        help="JSON Lines query set (default: the kept set)")
    parser.add_argument("--set", choices=(*SETS, "all"), default="all",
                        help="which queries to run (default: all)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="run only the first N queries (a smoke run)")
    parser.add_argument("--engine", choices=ENGINES, default="search",
                        help="search: Muster's search against BM25 (default); similar: "
                             "the callers finding lessons like a text, the query being "
                             "a draft's text")
    parser.add_argument("--show-misses", action="store_true",
                        help="list the queries whose target is not in a system's top 10")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if not NASA_FILE.exists():
        say(f"No NASA LLIS data: {NASA_FILE.name} is not in {DATA_DIR} (the shared data "
            "folder beside the checkout, or set MUSTER_SHARED_DATA); nothing to measure.")
        return EXIT_NO_DATA
    if not args.queries.exists():
        say(f"No query set at {args.queries}.")
        return EXIT_REFUSED
    queries, problems = read_queries(args.queries)
    problems += check_queries(queries, known_titles())
    if problems:
        say(f"Refused: the query set {args.queries.name} is not fit to measure with:")
        for problem in problems:
            say(f"  {problem}")
        return EXIT_REFUSED
    sets = list(SETS) if args.set == "all" else [args.set]
    queries = [q for q in queries if q.set in sets][:args.limit]
    if not queries:
        say(f"No {args.set} queries in {args.queries.name}.")
        return EXIT_REFUSED
    similar = args.engine == "similar"
    say(f"Muster {'lessons like a text' if similar else 'search relevance'}: "
        f"{len(queries)} queries from {args.queries.name} (set {args.set}), "
        f"searched as {SEARCHER}, first {LIKE_DEPTH if similar else DEPTH} hits")

    workdir = Path(tempfile.mkdtemp(prefix="muster-relevance-"))
    try:
        built = time.perf_counter()
        app, summary = build_collection(workdir)
        with app.app_context():
            from sqlalchemy import select

            from lessons import policy
            from lessons.extensions import db
            from lessons.models import Lesson
            from lessons.services import exchange

            user = exchange.require_user(SEARCHER)
            visible = db.session.scalars(
                select(Lesson).where(policy.visible_lessons(user))).all()
            muster_built = time.perf_counter() - built
            say(f"built the Muster collection in {muster_built:.1f} s: {summary}; "
                f"{len(visible)} lessons visible to {SEARCHER}")
            ids = resolve_targets(queries, user)
            results: dict[str, dict[str, Figures]] = {}
            seconds: dict[str, float] = {"build_muster": muster_built}
            if similar:
                systems = like_systems(user)
            else:
                baseline_started = time.perf_counter()
                baseline = Bm25Baseline(visible)
                seconds["build_bm25"] = time.perf_counter() - baseline_started
                say(f"built the BM25 baseline in {seconds['build_bm25']:.1f} s")
                systems = {"muster": muster_search(user), "bm25": baseline}
            for system, run in systems.items():
                outcomes, spent = evaluate(queries, ids, run)
                results[system] = {"all": Figures(outcomes)}
                seconds[f"search_{system}"] = spent
                say(f"{system}: {len(queries)} queries in {spent:.1f} s")
            if not similar:
                baseline.close()
            db.session.remove()
            db.engine.dispose()
    except Refused as exc:
        say(f"Refused: {exc}")
        return EXIT_REFUSED
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    say()
    figures = report(results, sets)
    if args.show_misses:
        show_misses(results)
    seconds["total"] = time.perf_counter() - started
    spent = ", ".join(f"{name} queries {seconds[f'search_{name}']:.1f} s" for name in results)
    say(f"\ntime: {seconds['total']:.1f} s in all (Muster collection "
        f"{seconds['build_muster']:.1f} s"
        + (f", BM25 index {seconds['build_bm25']:.1f} s" if not similar else "")
        + f", {spent}) on {machine()}")
    print(json.dumps({
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": machine(),
        "engine": args.engine,
        "queries_file": args.queries.name,
        "set": args.set,
        "queries": len(queries),
        "depth": LIKE_DEPTH if similar else DEPTH,
        **{system: figures[system] for system in results},
        **({} if similar else {"criteria": verdict(figures, sets)}),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
