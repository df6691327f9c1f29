"""The federation benchmark (bench/federation_bench.py): a small run end to end.

The full run (5,000 lessons) is by hand; this proves the script still drives two real
instances through ``flask federation`` (export, import with --ack, the acknowledgement,
and ``federation sync`` against A served by ``flask run``), that every check it makes
passes (B finds exactly what A releases to its nations, never a GBR-only lesson, each
edit and revocation), and that the last line holds every figure the README quotes.
SQLite always; given a PostgreSQL server (``TEST_DATABASE_URL``), ``--database-url``
too, in two databases of its own that are dropped afterwards.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from lessons.federation.apply import Applied
from tests.bench_module import load_script

BENCH = Path(__file__).resolve().parents[1] / "bench" / "federation_bench.py"
LESSONS = 100
FIGURES = (
    "lessons", "database", "source", "released_to_aus", "sent", "gbr_only",
    "full_lessons", "full_export_s", "full_export_cpu_s", "full_bundle_mb",
    "full_export_per_s", "full_import_s", "full_import_cpu_s", "full_import_per_s",
    "full_search_sync_s", "full_ack_s",
    "incremental_changed", "incremental_records", "incremental_export_s",
    "incremental_bundle_kb", "incremental_import_s", "incremental_search_sync_s",
    "incremental_ack_s",
    "online_changed", "online_sync_s", "online_feed_ms", "online_empty_feed_ms",
    "online_search_sync_s", "server_start_s",
    "incremental_vs_full_time", "incremental_per_record_vs_full", "online_vs_full_time",
    "command_start_s", "checks", "checks_passed")
TIMEOUT_S = 240  # about 30 s on two idle cores; a hang must not stall the suite


def run_bench(workdir: Path, *args: str) -> tuple[dict, str]:
    """A run's last stdout line, parsed, and its whole stdout."""
    done = subprocess.run(
        [sys.executable, str(BENCH), "--lessons", str(LESSONS), "--workdir", str(workdir),
         *args],
        env={**os.environ, "MUSTER_ENV": "testing"}, capture_output=True, text=True,
        timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout


def assert_every_check_passed_and_every_figure_is_there(figures: dict) -> None:
    assert set(FIGURES) <= figures.keys(), set(FIGURES) - figures.keys()
    assert figures["checks_passed"] is True
    failed = [name for name, ok in figures["checks"].items() if not ok]
    assert not failed
    # Every stage was checked: the full round, the incremental one and the online one.
    for stage in ("full", "incremental", "online"):
        assert any(name.startswith(f"{stage}: ") for name in figures["checks"]), stage
    assert figures["lessons"] == LESSONS
    assert figures["gbr_only"] == LESSONS // 5
    assert figures["full_lessons"] == figures["sent"] > 0
    # 1% of the lessons sent, at least one narrowed and one edited, per later round.
    assert figures["incremental_changed"] == figures["online_changed"] == 2
    assert figures["incremental_records"] == 2
    for key in FIGURES:
        if key.endswith(("_s", "_ms", "_mb", "_kb", "_per_s")):
            assert isinstance(figures[key], int | float) and figures[key] > 0, key


@pytest.fixture(scope="module")
def sqlite_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_bench(tmp_path_factory.mktemp("federation-bench"))[0]


def test_a_small_run_passes_every_check_and_prints_every_figure(sqlite_run: dict) -> None:
    assert_every_check_passed_and_every_figure_is_there(sqlite_run)
    assert sqlite_run["database"] == "sqlite"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    """The script as a module (bench/ is not a package)."""
    yield from load_script(BENCH, "federation_bench")


def test_the_file_releases_four_in_five_and_marks_the_rest(bench: ModuleType,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "lessons.jsonl"
    _, records, plan = bench.write_lessons(path, 200, bench.import_bench.synthetic_records(50))
    stored = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert stored == records
    released = [r for r in stored if "AUS" in r["releasable_to"]]
    assert len(released) == 160 == sum(p.released for p in plan)
    assert sum("NZL" in r["releasable_to"] for r in released) == 80
    for record, planned in zip(stored, plan, strict=True):
        assert (bench.GBR_ONLY_WORD in record["title"]) == (not planned.released)
        assert record["releasable_to"] == (["GBR"] if not planned.released
                                           else ["AUS", "GBR", "NZL"] if planned.nzl
                                           else ["AUS", "GBR"])
        assert planned.sent == (planned.released and record["status"] != "draft")


def test_the_applied_line_is_read_as_the_app_writes_it(bench: ModuleType) -> None:
    """The bench counts what B applied from the import's and the sync's own summary."""
    one = Applied("GBR-army", "lessons", 2, created=3, updated=4, unchanged=5, revoked=6)
    two = Applied("GBR-army", "lessons", 3, updated=1, received=2)
    output = f"{one.summary()}\nacknowledgement written to x.zip\n{two.summary()}\n"
    assert bench.applied_counts(output) == {"new": 3, "updated": 5, "unchanged": 5,
                                            "revoked": 6, "bundles": 2}


def test_a_failed_check_is_named_and_fails_the_run(bench: ModuleType,
                                                   capsys: pytest.CaptureFixture) -> None:
    checks = bench.Checks()
    checks("full: one thing", True)
    checks("full: another", False, "(3 found, 2 expected)")
    checks("full: one thing", False)  # a check failed once stays failed
    checks("full: one thing", True)
    assert checks.results == {"full: one thing": False, "full: another": False}
    assert not checks.passed
    assert "CHECK FAILED: full: another (3 found, 2 expected)" in capsys.readouterr().err


def _database_names(url: str) -> set[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    from config import normalise_database_url

    admin = make_url(normalise_database_url(url)).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False)) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="needs a PostgreSQL server: set TEST_DATABASE_URL (the bench makes two "
           "databases of its own there with --database-url, and drops them)")
def test_database_url_runs_both_instances_on_postgresql_and_drops_them(
        tmp_path: Path) -> None:
    url = os.environ["TEST_DATABASE_URL"]
    figures, stdout = run_bench(tmp_path, "--database-url", url)
    assert_every_check_passed_and_every_figure_is_there(figures)
    assert figures["database"] == "postgresql"
    made = re.search(r"databases: (muster_federation_a_[0-9a-f]{8}), "
                     r"(muster_federation_b_[0-9a-f]{8})", stdout)
    assert made, stdout[:2000]
    assert not {made.group(1), made.group(2)} & _database_names(url)
