"""The load and fault benchmark (bench/load.py): two short runs against a real gunicorn.

The full runs (a minute each) are by hand; these prove that under concurrent API
traffic every acknowledged write is stored once, found by search and audited, that
racing edits are refused (412/409) rather than failing, and that killing a worker
loses nothing either. With TEST_DATABASE_URL naming PostgreSQL, the runs use a
temporary database on that server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "load.py"
OPS = ("search", "create", "edit", "transition", "attach")
TIMEOUT_S = 120  # about 12 s a run on two busy cores; a hang must not stall the suite


def _run(*args: str) -> tuple[int, dict, str]:
    """One run's exit status, last stdout line (parsed) and output for failure messages."""
    command = [sys.executable, str(BENCH), "--workers", "2", "--clients", "4", *args]
    url = os.environ.get("TEST_DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql")):
        command += ["--database-url", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S,
                          check=False)
    output = done.stdout[-4000:] + done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    assert lines, output
    return done.returncode, json.loads(lines[-1]), output


@pytest.mark.parametrize("kills", [0, 1], ids=["steady", "worker-killed"])
def test_no_write_is_lost_or_duplicated(kills: int) -> None:
    status, figures, output = _run("--seconds", "3", "--kill-workers", str(kills))
    assert figures["lost_writes"] == 0, output
    assert figures["duplicate_versions"] == 0, output
    assert figures["wrong_answers"] == 0, output
    assert figures["drift"] == 0, output
    assert figures["unfindable"] == 0, output
    assert figures["server_errors"] == 0, output
    assert figures["kills"] == kills
    assert status == 0, output
    if kills == 0:
        assert figures["cut"] == 0
        assert {op for op in OPS if figures["latency_ms"][op]["n"] > 0} == set(OPS), output
        assert figures["acknowledged"]["edits"] > 0, output
    expected_db = "postgresql" if "--database-url" in output or os.environ.get(
        "TEST_DATABASE_URL", "").startswith("postgres") else "sqlite"
    assert figures["database"] == expected_db
