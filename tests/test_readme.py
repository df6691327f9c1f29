"""The README's commands work as printed: every code block marked for copying runs, in a
new shell without MUSTER_ENV or SECRET_KEY, in a throwaway copy of a development
install made as ``make run`` makes it (its own ``.flaskenv`` rule, ``db upgrade``,
``demo load``), and exits 0. The markers are described in the README's Command line.

The copy is a temporary folder of links to the repository's files with its own
``.flaskenv``; ``DATABASE_URL``, ``MUSTER_INDEX_DIR`` and ``MUSTER_FILES_DIR`` point
into it, so the developer's own ``instance/`` and ``.flaskenv`` are never touched. It
runs on an SQLite file whatever the suite's database: the commands are the same, and a
shared PostgreSQL database would receive the demo data."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"<!-- copyable(?::\s*(?P<kind>[a-z]+)(?:[ ,]\s*(?P<arg>[^>]*?))?)? -->")
KINDS = {None, "server", "continued", "needs", "skip"}
# What the README's own examples expect beside them (the real files are not shipped).
SAMPLES = {
    "nasa_llis.jsonl": "\n".join(json.dumps(record) for record in [
        {"id": "LLIS-0001", "title": "Checklist missed a valve", "date": "2003-02-01",
         "organization": "JSC", "topics": ["Safety"], "abstract": "A valve was left open.",
         "driving_event": "Pre-flight test.", "lesson": "Checklists need a second reader.",
         "recommendation": "Read every checklist aloud with a second person."},
        {"id": "LLIS-0002", "title": "", "abstract": "A record without a title."},
    ]) + "\n",
}
# Copied into the new shell from the test's own: nothing that chooses Muster's settings.
KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")


@dataclass
class Block:
    line: int
    kind: str | None
    arg: str | None
    text: str


@dataclass
class Script:
    """Blocks run in one shell: a block and the ``continued`` ones after it."""

    blocks: list[Block] = field(default_factory=list)

    @property
    def server(self) -> bool:
        return any(block.kind == "server" for block in self.blocks)

    @property
    def needs(self) -> list[str]:
        return [block.arg for block in self.blocks if block.kind == "needs" and block.arg]

    @property
    def name(self) -> str:
        return f"README line {self.blocks[0].line}"


def shell_blocks(text: str) -> list[Block]:
    """Every ```sh (or console, bash, shell) block with the marker on the line before it,
    ``kind`` None for an unmarked one (refused by ``test_every_shell_block_is_marked``)."""
    blocks = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        fence = re.fullmatch(r"```(sh|bash|shell|console)\s*", lines[index])
        if not fence:
            index += 1
            continue
        end = lines.index("```", index + 1)
        before = next((line for line in reversed(lines[:index]) if line.strip()), "")
        marker = MARKER.fullmatch(before.strip())
        kind = marker["kind"] if marker else "unmarked"
        arg = marker["arg"] if marker else None
        blocks.append(Block(index + 1, kind, arg, "\n".join(lines[index + 1:end])))
        index = end + 1
    return blocks


def scripts(blocks: list[Block]) -> list[Script]:
    grouped: list[Script] = []
    for block in blocks:
        if block.kind == "skip":
            continue
        if block.kind == "continued":
            assert grouped, f"README line {block.line}: 'continued' with nothing before it"
            grouped[-1].blocks.append(block)
        else:
            grouped.append(Script([block]))
    return grouped


def test_every_shell_block_is_marked():
    unmarked = [block.line for block in shell_blocks(README.read_text())
                if block.kind not in KINDS]
    assert not unmarked, (f"README code blocks at lines {unmarked} need a "
                          "<!-- copyable... --> marker (README, Command line)")


def test_the_marker_reader_sees_what_the_readme_means():
    text = ("<!-- copyable -->\n```sh\na\n```\n\n<!-- copyable: continued -->\n```sh\nb\n```\n"
            "<!-- copyable: skip, starts the server -->\n```sh\nmake run\n```\n"
            "<!-- copyable: needs x.jsonl -->\n```sh\nc\n```\n```sh\nd\n```\n")
    blocks = shell_blocks(text)
    assert [(b.kind, b.arg, b.text) for b in blocks] == [
        (None, None, "a"), ("continued", None, "b"), ("skip", "starts the server", "make run"),
        ("needs", "x.jsonl", "c"), ("unmarked", None, "d")]
    assert [[b.text for b in s.blocks] for s in scripts(blocks)] == [["a", "b"], ["c"], ["d"]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Install:
    folder: Path
    env: dict[str, str]

    def run(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=self.folder,
                              env=self.env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    """A development install as ``make run`` leaves it, in a temporary folder."""
    folder = tmp_path_factory.mktemp("readme")
    for entry in ROOT.iterdir():
        if entry.name not in (".flaskenv", ".git", "instance", ".env"):
            (folder / entry.name).symlink_to(entry)
    env = {name: os.environ[name] for name in KEPT if name in os.environ}
    env.update(DATABASE_URL=f"sqlite:///{folder / 'instance' / 'muster.db'}",
               MUSTER_INDEX_DIR=str(folder / "instance" / "index"),
               MUSTER_FILES_DIR=str(folder / "instance" / "files"))
    made = subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), ".flaskenv"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=30)
    assert made.returncode == 0, made.stderr
    assert "MUSTER_ENV=development" in (folder / ".flaskenv").read_text()
    prepared = Install(folder, env).run(".venv/bin/flask --app wsgi db upgrade\n"
                                        ".venv/bin/flask --app wsgi demo load --if-empty\n")
    assert prepared.returncode == 0, prepared.stderr
    yield Install(folder, env)


@pytest.fixture(scope="module")
def server(install: Install) -> Iterator[int]:
    """The development server ``make run`` ends with, on a free port."""
    port = free_port()
    process = subprocess.Popen(
        [".venv/bin/flask", "--app", "wsgi", "run", "--host", "127.0.0.1", "--port", str(port)],
        cwd=install.folder, env=install.env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


SCRIPTS = scripts(shell_blocks(README.read_text()))


@pytest.mark.parametrize("script", SCRIPTS, ids=[script.name for script in SCRIPTS])
def test_the_readme_command_runs_as_printed(install, request, script):
    text = "\n".join(block.text for block in script.blocks)
    for name in script.needs:
        assert name in SAMPLES, f"{script.name}: no sample for {name}"
        (install.folder / name).write_text(SAMPLES[name])
    if script.server:
        port = request.getfixturevalue("server")
        text = text.replace("127.0.0.1:5000", f"127.0.0.1:{port}")
    result = install.run(text)
    assert result.returncode == 0, f"{script.name}:\n{text}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    # curl exits 0 on any HTTP answer: a refusal would be an API problem document.
    assert not re.search(r'"status":\s*[45]\d\d', result.stdout), result.stdout
