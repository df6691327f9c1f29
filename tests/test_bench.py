"""The search benchmark (bench/search_bench.py): a small run end to end, and its corpus.

The full run (100k lessons, about 20 minutes) is by hand; these prove the script still
runs against the current search service, prints the figures the README quotes, and
generates the same valid corpus and distinct queries from the same seed.
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

from lessons.reference import group_rows, nation_rows
from lessons.rules import check_lesson
from tests.bench_module import load_script

BENCH = Path(__file__).resolve().parents[1] / "bench" / "search_bench.py"
FIGURES = ("n", "build_docs_per_s", "update_ms", "search_p50_ms", "search_p95_ms",
           "raw_p50_ms", "raw_p95_ms", "ratio_p50", "ratio_p95", "peak_rss_mb")
TIMEOUT_S = 120  # about 30 s on two busy cores; a hang must not stall the suite


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One smoke run's last stdout line, parsed (the run is shared by the tests below)."""
    workdir = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, str(BENCH), "--n", "300", "--queries", "40",
         "--workdir", str(workdir)],
        env={**os.environ, "MUSTER_ENV": "testing"}, capture_output=True, text=True,
        timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    """The script as a module (bench/ is not a package)."""
    yield from load_script(BENCH, "search_bench")


def test_last_line_holds_every_figure(figures: dict) -> None:
    assert set(FIGURES) <= figures.keys()
    assert figures["n"] == 300
    assert figures["queries"] == 40


def test_figures_are_positive_and_consistent(figures: dict) -> None:
    for key in FIGURES[1:]:
        assert isinstance(figures[key], int | float) and figures[key] > 0, key
    assert figures["search_p50_ms"] <= figures["search_p95_ms"]
    assert figures["raw_p50_ms"] <= figures["raw_p95_ms"]
    for pct in ("p50", "p95"):
        ours, raw = figures[f"search_{pct}_ms"], figures[f"raw_{pct}_ms"]
        # The ratio is of the unrounded times; the times are printed to 0.1 ms, which
        # moves a ratio of small times by up to 0.05 * (1 + ratio) / raw.
        expected = ours / raw
        assert figures[f"ratio_{pct}"] == pytest.approx(
            expected, abs=0.05 * (1 + expected) / raw + 0.0005)
    assert figures["peak_rss_mb"] < 4096
    assert figures["update_failures"] == 0  # every edit and new lesson was found by a search
    assert figures["update_ms"] <= figures["update_p95_ms"]
    assert 0 < figures["submit_p50_ms"] <= figures["submit_max_ms"]


def test_corpus_is_reproducible_from_its_seed(bench: ModuleType) -> None:
    one, again, other = bench.Corpus(7, 50), bench.Corpus(7, 50), bench.Corpus(8, 50)
    assert [one.lesson(i) for i in (0, 17, 49)] == [again.lesson(i) for i in (0, 17, 49)]
    assert one.lesson(17)["observation"] != other.lesson(17)["observation"]


def test_corpus_lessons_pass_the_rule_set(bench: ModuleType) -> None:
    """The bench's edits go through update_lesson, which re-checks the whole lesson."""
    known = {row["code"] for row in nation_rows()} | {g["code"] for g in group_rows()[0]}
    corpus = bench.Corpus(7, 200)
    for i in range(corpus.n):
        lesson = corpus.lesson(i)
        assert lesson["originator_nation"] in lesson["releasable_to"]
        assert not check_lesson(lesson, submitting=lesson["status"] != "draft",
                                known_nations=known, classifications=["UNCLASSIFIED"])


def test_queries_are_distinct_and_cover_every_class(bench: ModuleType) -> None:
    queries, warmups = bench.make_queries(bench.Corpus(7, 200), 200)
    texts = [q.text.lower() for q in queries]
    assert len(texts) == len(set(texts)) == 200
    assert {q.kind for q in queries} == {name for name, _ in bench.QUERY_CLASSES}
    assert not {q.text.lower() for q in warmups} & set(texts)
