"""The search relevance benchmark (bench/relevance.py): its query set's rules and a smoke run.

The full run (every kept query, about half a minute) is by hand and quoted in the README;
these prove the script still runs against the current search service and prints the
figures, and that it refuses a query set that could not measure search fairly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.bench_module import load_script

BENCH = Path(__file__).resolve().parents[1] / "bench" / "relevance.py"
TIMEOUT_S = 180  # about 25 s on two busy cores; a hang must not stall the suite
FIGURES = ("queries", "top1", "top10", "mrr", "no_result")


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    """The script as a module (bench/ is not a package)."""
    yield from load_script(BENCH, "relevance_bench")


@pytest.fixture(scope="module")
def nasa_data(bench: ModuleType) -> Path:
    if not bench.NASA_FILE.exists():
        pytest.skip(f"{bench.NASA_FILE.name} is not in {bench.DATA_DIR} (the shared data "
                    "folder beside the checkout, or MUSTER_SHARED_DATA) on this machine")
    return bench.NASA_FILE


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args],
                          env={**os.environ, "MUSTER_ENV": "testing", **(env or {})},
                          capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def write_queries(path: Path, *items: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), "utf-8")
    return path


# --- the rules, without the data ------------------------------------------------------

def test_a_query_sharing_three_title_words_is_found(bench: ModuleType) -> None:
    title = "Coupling and NSN gaps blocked UK-US cross-refuelling"
    assert bench.shared_run("our tankers hit NSN gaps, blocked at the fuel point",
                            title) == ("nsn", "gaps", "blocked")
    # Case and punctuation do not hide a copy; two shared words in a row are allowed.
    assert bench.shared_run("why did uk us cross refuelling fail", title) == (
        "uk", "us", "cross")
    assert bench.shared_run("nsn gaps stopped our tankers refuelling", title) is None


def test_the_check_names_each_unfit_query(bench: ModuleType) -> None:
    titles = {"nasa": {"llis-1": "Implementation of Procedural Controls in Additional "
                                 "Procedures"},
              "demo": {"Late COMSEC keys": "Late COMSEC keys"}}
    queries = [bench.Query(1, "procedural controls in additional steps", "llis-1", "nasa"),
               bench.Query(2, "rework missed the torque fix on old units", "llis-1", "nasa"),
               bench.Query(3, "radio fill arrived too late", "llis-404", "nasa"),
               bench.Query(4, "jtacs had no late comsec keys", "Late COMSEC keys", "demo")]
    problems = bench.check_queries(queries, titles)
    assert len(problems) == 3
    assert problems[0].startswith("line 1:") and "'procedural controls in'" in problems[0]
    assert problems[1] == "line 3: no nasa lesson 'llis-404'"
    assert problems[2].startswith("line 4:") and "'late comsec keys'" in problems[2]


@pytest.mark.parametrize("engine", ["search", "similar"])
def test_without_the_data_it_says_why_and_stops(tmp_path: Path, engine: str) -> None:
    done = run("--engine", engine, "--limit", "1", env={"MUSTER_SHARED_DATA": str(tmp_path)})
    assert done.returncode == 3, done.stdout + done.stderr
    assert "No NASA LLIS data: nasa_llis.jsonl is not in" in done.stdout
    assert "MUSTER_SHARED_DATA" in done.stdout


# --- with the data ----------------------------------------------------------------------

def test_the_kept_set_is_fit_to_run(bench: ModuleType, nasa_data: Path) -> None:
    queries, problems = bench.read_queries(bench.QUERIES_FILE)
    assert problems == []
    assert bench.check_queries(queries, bench.known_titles()) == []
    by_set = {name: [q for q in queries if q.set == name] for name in bench.SETS}
    assert len(by_set["nasa"]) >= 100 and len(by_set["demo"]) >= 20
    assert len({q.target for q in by_set["nasa"]}) == len(by_set["nasa"])
    assert all(4 <= len(bench.words(q.text)) <= 12 for q in queries)


def test_a_set_copying_title_words_is_refused(nasa_data: Path, tmp_path: Path) -> None:
    path = write_queries(
        tmp_path / "copied.jsonl",
        {"query": "loose mounting screws in the inverter", "target": "llis-1", "set": "nasa"},
        {"query": "procedural controls in additional procedures", "target": "llis-1",
         "set": "nasa"},
        {"query": "a lesson that is not there", "target": "llis-0", "set": "nasa"},
        {"query": "no set", "target": "llis-1"})
    done = run("--queries", str(path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Refused: the query set copied.jsonl is not fit to measure with:" in done.stdout
    assert "line 2: 'procedural controls in additional procedures' copies" in done.stdout
    assert "line 3: no nasa lesson 'llis-0'" in done.stdout
    assert "line 4: needs the strings query, target and set" in done.stdout
    assert "line 1" not in done.stdout


def test_a_smoke_run_prints_every_figure(nasa_data: Path) -> None:
    done = run("--limit", "10", "--show-misses")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["queries"] == 10 and figures["set"] == "all"
    assert figures["queries_file"] == "relevance_queries.jsonl"
    for system in ("muster", "bm25"):
        assert set(figures[system]) == {"nasa", "demo", "all"}
        assert figures[system]["all"]["queries"] == 10
        for name in ("nasa", "all"):
            row = figures[system][name]
            assert set(FIGURES) <= row.keys()
            assert all(0.0 <= row[key] <= 1.0 for key in FIGURES if key != "queries")
            assert row["top1"] <= row["top10"]
    assert set(figures["criteria"]) == {"ahead_top10", "ahead_mrr",
                                        "no_result_at_most_2pct"}
    assert figures["seconds"]["total"] > 0
    assert any(line.startswith("system   set   queries") for line in lines)
    assert any(line.startswith("muster: ") and "outside the top 10" in line for line in lines)


def test_a_smoke_run_of_the_similar_engine_prints_every_caller(nasa_data: Path) -> None:
    """``--engine similar``: the known-item queries typed as a draft, through the
    callers that find lessons like a text, against the search ranking."""
    done = run("--engine", "similar", "--limit", "10", "--show-misses")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["engine"] == "similar" and figures["queries"] == 10
    assert figures["depth"] == 20
    systems = ("search", "similar", "keyterms", "recommend")
    for system in systems:
        assert set(figures[system]) == {"nasa", "demo", "all"}
        row = figures[system]["all"]
        assert row["queries"] == 10 and set(FIGURES) <= row.keys()
        assert all(0.0 <= row[key] <= 1.0 for key in FIGURES if key != "queries")
        assert row["top1"] <= row["top10"]
    assert "muster" not in figures and "bm25" not in figures and "criteria" not in figures
    # A short draft is ranked as a search is: the same text finds the same lessons first.
    assert figures["similar"]["all"]["top1"] == figures["search"]["all"]["top1"]
    assert any(line.startswith("system    set   queries") for line in lines)
    assert any(line.startswith("similar: ") and "outside the top 10" in line
               for line in lines)
