"""The production server: real gunicorn with gunicorn.conf.py and two workers on a
migrated SQLite database, in production mode (CSRF on, Secure cookies). A killed worker
is replaced while requests keep succeeding, SIGTERM stops it cleanly, and the refusals
that keep a misconfigured production server from starting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lessons import create_app
from lessons.extensions import db
from lessons.services import lessons as lesson_service
from lessons.services import tokens
from lessons.services.users import create_user
from tests.conftest import lesson_fields
from tests.http_client import Http

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MUSTER_ENV", "SECRET_KEY", "DATABASE_URL", "MUSTER_ALLOW_SQLITE",
                        "MUSTER_PROXY_COUNT", "MUSTER_PROXIES")}
    return {**env, "MUSTER_ENV": "production", "SECRET_KEY": "s" * 40,
            "MUSTER_PROXY_COUNT": "0",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'muster.db'}",
            "MUSTER_INDEX_DIR": str(tmp_path / "index"), **extra}


def workers_of(master: int) -> set[int]:
    """The master's child processes, from /proc (field 4 of stat is the parent)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == master and fields[0] != "Z":
            children.add(int(stat.parent.name))
    return children


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Served:
    process: subprocess.Popen
    address: str
    token: str
    log: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env = production_env(tmp_path, MUSTER_BIND=f"127.0.0.1:{free_port()}",
                         MUSTER_WORKERS="2", MUSTER_THREADS="2", MUSTER_TIMEOUT="20",
                         MUSTER_GRACEFUL_TIMEOUT="5")
    subprocess.run([BIN / "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    # A user, a token and a lesson, written before the server starts; the lesson's
    # index is another folder, so the server's is missing and its workers rebuild it.
    setup = create_app("testing", SQLALCHEMY_DATABASE_URI=env["DATABASE_URL"],
                       INDEX_DIR=str(tmp_path / "other-index"))
    with setup.app_context():
        user = create_user("gb.planner", nation="GBR", roles=["contributor", "planner"],
                           password="correct horse battery")
        token = tokens.create_token(user, "script")[1]
        lesson_service.create_lesson(user, lesson_fields(title="Gateway radios overheated"))
        db.engine.dispose()

    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen([BIN / "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                   cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    address = env["MUSTER_BIND"]
    try:
        wait_for(lambda: len(workers_of(process.pid)) == 2 and _answers(address), 20,
                 "gunicorn to start")
        yield Served(process, address, token, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def indexer_of(served: Served) -> int:
    """The process holding the index folder's INDEXER_LOCK (a flock: /proc/locks)."""
    lock = Path(production_env(Path(served.log).parent)["MUSTER_INDEX_DIR"]) / "INDEXER_LOCK"
    inode = lock.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "FLOCK" and int(fields[5].rsplit(":", 1)[1]) == inode:
            return int(fields[4])
    raise AssertionError("no process holds the indexer lock")


def _answers(address: str) -> bool:
    try:
        return Http(address).get("/login", timeout=2).status == 200
    except OSError:
        return False


def test_gunicorn_serves_replaces_a_killed_worker_and_stops_cleanly(served):
    person, script = Http(served.address), Http(served.address, token=served.token)
    person.login("gb.planner", "correct horse battery")
    assert person.get("/lessons").status == 200
    assert person.cookies["session"]  # kept by hand: production marks it Secure
    created = script.send("POST", "/api/v1/lessons", body={
        "title": "Liaison officers lacked chat accounts", "observation": "None at all."})
    assert created.status == 201, created.text

    # The workers rebuilt the missing index as they started, in the background.
    def found() -> int:
        reply = script.get("/api/v1/lessons?q=gateway")
        return reply.json()["total"] if reply.status == 200 else -1  # 503 while rebuilding
    assert wait_for(found, 15, "the rebuilt index to find the earlier lesson") == 1

    # The request only committed; the host's indexer (a standby thread in one worker)
    # applied it.
    def finds(word: str) -> bool:
        reply = script.get(f"/api/v1/lessons?q={word}")
        return reply.status == 200 and reply.json()["total"] == 1
    wait_for(lambda: finds("lacked"), 5, "the indexer to apply the new lesson")

    workers = workers_of(served.process.pid)
    victim = indexer_of(served)  # the worker whose thread holds the indexer lock
    assert victim in workers
    os.kill(victim, signal.SIGKILL)
    for _ in range(10):  # the surviving worker answers meanwhile
        assert person.get("/lessons").status == 200
        assert script.get("/api/v1/lessons").status == 200
    replaced = wait_for(lambda: (w := workers_of(served.process.pid)) - workers and
                        len(w) == 2 and w, 15, "a replacement worker")
    assert victim not in replaced
    for _ in range(6):  # both workers, old and new, serve
        assert person.get("/lessons").status == 200
    for word in ("interpreters", "generators"):  # another worker's standby took over
        created = script.send("POST", "/api/v1/lessons", body={
            "title": f"Too few {word} at the bridge", "observation": "None at all."})
        assert created.status == 201, created.text
        wait_for(lambda w=word: finds(w), 10, f"the indexer to apply the {word} lesson")
    health = person.get("/health").json()["index"]
    assert health["state"] == "ok" and health["pending"] == 0, health

    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=15) == 0
    log = served.log.read_text()
    assert "Shutting down: Master" in log
    assert '"GET /lessons HTTP/1.1" 200' in log  # the access log goes to standard output
    assert "Traceback" not in log


@pytest.mark.parametrize("change,refusal", [
    ({"SECRET_KEY": ""}, "SECRET_KEY must be set"),
    ({"SECRET_KEY": "short"}, "SECRET_KEY must be set"),
    ({"DATABASE_URL": None}, "DATABASE_URL must be set in production"),
    ({"MUSTER_PROXY_COUNT": None}, "MUSTER_PROXY_COUNT must be set in production"),
    ({"MUSTER_PROXY_COUNT": "2", "MUSTER_PROXIES": "1"},
     "MUSTER_PROXY_COUNT='2' and its older name MUSTER_PROXIES='1' disagree"),
    ({"MUSTER_WORKERS": "two"}, "MUSTER_WORKERS must be a whole number"),
    ({"MUSTER_TIMEOUT": "0"}, "MUSTER_TIMEOUT must be a whole number"),
])
def test_make_serve_refuses_a_production_environment_it_cannot_run(tmp_path, change,
                                                                    refusal):
    env = production_env(tmp_path)
    for name, value in change.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    # -o: take the installed virtualenv as up to date (the test runs in it).
    result = subprocess.run(["make", "-s", "-o", ".venv/.installed-prod", "serve"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"error: {refusal}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "muster.db").exists()  # refused before migrating anything


def test_production_uses_the_sqlite_file_only_when_asked(tmp_path):
    """Without DATABASE_URL production refuses to start, unless MUSTER_ALLOW_SQLITE=1."""
    probe = ("from config import get_config; config = get_config(); config.check(); "
             "print(config.SQLALCHEMY_DATABASE_URI)")
    env = production_env(tmp_path)
    env.pop("DATABASE_URL")
    refused = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env,
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "MUSTER_ALLOW_SQLITE=1" in refused.stderr
    allowed = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, text=True,
                             env={**env, "MUSTER_ALLOW_SQLITE": "1"}, capture_output=True)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == f"sqlite:///{ROOT / 'instance' / 'muster.db'}"


def test_the_server_settings_come_from_the_environment(tmp_path):
    probe = ("import runpy; s = runpy.run_path('gunicorn.conf.py'); "
             "print(s['bind'], s['workers'], s['threads'], s['timeout'], "
             "s['graceful_timeout'], s['keepalive'], s['forwarded_allow_ips'], "
             "s['preload_app'], s['accesslog'])")
    env = production_env(tmp_path, PORT="9123", MUSTER_WORKERS="3", MUSTER_THREADS="8",
                         MUSTER_TIMEOUT="60", MUSTER_GRACEFUL_TIMEOUT="20",
                         MUSTER_KEEPALIVE="75", MUSTER_FORWARDED_ALLOW_IPS="10.0.0.5")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["127.0.0.1:9123", "3", "8", "60", "20", "75",
                                     "10.0.0.5", "False", "-"]
    env["MUSTER_BIND"] = "0.0.0.0:8000"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=True)
    assert result.stdout.split()[0] == "0.0.0.0:8000"

