"""The bulk import benchmark (bench/import_bench.py): a small run end to end.

The full run (20,000 lines, minutes) is by hand; this proves the script still drives the
real `flask lessons import` against a fresh database (PostgreSQL too, when the tests run
on it), that every line is stored and found by search, and that the last line holds the
figures the README quotes. Generated text where the shared NASA data is missing, so it
never needs to skip.
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

from config import TestingConfig
from tests.bench_module import load_script

BENCH = Path(__file__).resolve().parents[1] / "bench" / "import_bench.py"
FIGURES = ("lines", "database", "source", "store_s", "store_per_s", "store_cpu_s",
           "searchable_s", "searchable_per_s", "stored", "found_by_search", "index_clean")
TIMEOUT_S = 180  # about 15 s on two idle cores; a hang must not stall the suite


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One smoke run's last stdout line, parsed; on PostgreSQL when the tests are."""
    url = TestingConfig.SQLALCHEMY_DATABASE_URI
    extra = ["--database-url", url] if url.startswith("postgresql") else []
    done = subprocess.run(
        [sys.executable, str(BENCH), "--lines", "300", "--batch-size", "120",
         "--workdir", str(tmp_path_factory.mktemp("import-bench")), *extra],
        env={**os.environ, "MUSTER_ENV": "testing"}, capture_output=True, text=True,
        timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_line_is_stored_and_found(figures: dict) -> None:
    assert set(FIGURES) <= figures.keys()
    assert figures["lines"] == figures["stored"] == figures["found_by_search"] == 300
    assert figures["index_clean"] is True
    assert figures["batch_size"] == 120
    expected = "postgresql" if TestingConfig.SQLALCHEMY_DATABASE_URI.startswith(
        "postgresql") else "sqlite"
    assert figures["database"] == expected


def test_figures_are_positive_and_consistent(figures: dict) -> None:
    for key in ("store_s", "store_per_s", "store_cpu_s", "searchable_s", "searchable_per_s"):
        assert figures[key] > 0, key
    assert figures["searchable_s"] >= figures["store_s"]
    assert figures["store_per_s"] == pytest.approx(300 / figures["store_s"], rel=0.05)


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    """The script as a module (bench/ is not a package)."""
    yield from load_script(BENCH, "import_bench")


def test_generated_lessons_import_line_for_line(bench: ModuleType, runner, make_user,
                                                tmp_path: Path) -> None:
    """Without the shared data the bench writes generated lessons: all valid, distinct."""
    make_user(bench.ADMIN, bench.NATION, ("contributor", "analyst", "admin"))
    path = tmp_path / "lessons.jsonl"
    held = bench.write_file(path, 50, bench.synthetic_records(20))
    records = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert len({r["external_id"] for r in records}) == len({r["title"] for r in records}) == 50
    assert held["text_chars_per_lesson"] > 1000
    result = runner.invoke(args=["lessons", "import", str(path), "--as", bench.ADMIN,
                                 "--as-migration"])
    assert "Imported 50 new, 0 updated, 0 unchanged; 0 line(s) rejected." in result.output
