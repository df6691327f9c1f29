"""Configuration: database selection and the production guards (secret key, proxy
count), in the app factory and in ``python config.py`` (what ``make serve`` runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import (
    DEFAULT_SECRET_KEY,
    Config,
    ProductionConfig,
    get_config,
    normalise_database_url,
)
from lessons import create_app


@pytest.mark.parametrize("url,expected", [
    ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_database_urls_use_the_shipped_driver(url, expected):
    assert normalise_database_url(url) == expected


@pytest.mark.parametrize("key", [DEFAULT_SECRET_KEY, "", "short"])
def test_production_refuses_a_default_or_weak_secret_key(monkeypatch, key):
    monkeypatch.setattr(ProductionConfig, "SECRET_KEY", key)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(ProductionConfig)


def test_production_starts_with_a_real_secret_key(monkeypatch, tmp_path):
    monkeypatch.setattr(ProductionConfig, "SECRET_KEY", "x" * 40)
    monkeypatch.setattr(ProductionConfig, "SQLALCHEMY_DATABASE_URI",
                        f"sqlite:///{tmp_path / 'prod.db'}")
    monkeypatch.setattr(ProductionConfig, "PROXY_COUNT_GIVEN", "0")
    app = create_app(ProductionConfig)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["REMEMBER_COOKIE_SECURE"] is True
    assert app.config["DEMO_DATA_ALLOWED"] is False
    assert app.config["LOG_FORMAT"] == "json"


ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {"MUSTER_ENV": "production", "SECRET_KEY": "s" * 40,
              "DATABASE_URL": "sqlite:////nonexistent/never-opened.db"}
SETTINGS = ("MUSTER_ENV", "SECRET_KEY", "DATABASE_URL", "MUSTER_ALLOW_SQLITE",
            "MUSTER_PROXY_COUNT", "MUSTER_PROXIES", "MUSTER_LOG_FORMAT")


def check_environment(**settings: str) -> subprocess.CompletedProcess:
    """``python config.py`` (the first step of ``make serve``) with exactly these
    settings: module-level values are read once, so each case needs its own process."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    return subprocess.run([sys.executable, "config.py"], cwd=ROOT, capture_output=True,
                          text=True, env={**env, **settings}, timeout=60)


def test_production_refuses_to_start_without_a_proxy_count():
    result = check_environment(**PRODUCTION)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: MUSTER_PROXY_COUNT must be set in production: the number of reverse "
        "proxies in front of the app (e.g. MUSTER_PROXY_COUNT=1 behind one load "
        "balancer), or 0 when clients connect directly."]


@pytest.mark.parametrize("setting", [{"MUSTER_PROXY_COUNT": "0"}, {"MUSTER_PROXY_COUNT": "2"},
                                     {"MUSTER_PROXIES": "1"},  # the older name still works
                                     {"MUSTER_PROXY_COUNT": "1", "MUSTER_PROXIES": "1"}])
def test_production_starts_with_an_explicit_proxy_count(setting):
    result = check_environment(**PRODUCTION, **setting)
    assert result.returncode == 0, result.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "from config import get_config; print(get_config().PROXIES)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**{k: v for k, v in os.environ.items() if k not in SETTINGS}, **PRODUCTION,
             **setting})
    assert probe.stdout.strip() == next(iter(setting.values()))


@pytest.mark.parametrize("environment", ["production", "development"])
def test_the_two_names_of_the_proxy_count_may_not_disagree(environment):
    result = check_environment(**{**PRODUCTION, "MUSTER_ENV": environment},
                               MUSTER_PROXY_COUNT="1", MUSTER_PROXIES="2")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert ("MUSTER_PROXY_COUNT='1' and its older name MUSTER_PROXIES='2' disagree; "
            "set only MUSTER_PROXY_COUNT.") in result.stderr


def test_the_app_factory_refuses_disagreeing_proxy_counts_too(monkeypatch):
    monkeypatch.setattr(Config, "PROXY_SETTING_ERROR", "MUSTER_PROXY_COUNT ... disagree")
    with pytest.raises(RuntimeError, match="disagree"):
        create_app("testing")


@pytest.mark.parametrize("value,name", [("one", "MUSTER_PROXY_COUNT"),
                                        ("-1", "MUSTER_PROXY_COUNT"), ("x", "MUSTER_PROXIES")])
def test_a_malformed_proxy_count_is_refused_by_name(value, name):
    result = check_environment(**PRODUCTION, **{name: value})
    assert result.returncode != 0
    assert f"error: {name} must be a whole number of at least 0, not {value!r}" in result.stderr


@pytest.mark.parametrize("environment,setting,expected", [
    ("production", None, "json"), ("development", None, "text"),
    ("production", "text", "text"), ("development", "JSON", "json")])
def test_the_log_format_defaults_to_json_in_production_only(environment, setting, expected):
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update(PRODUCTION, MUSTER_ENV=environment, MUSTER_PROXY_COUNT="0")
    if setting:
        env["MUSTER_LOG_FORMAT"] = setting
    probe = subprocess.run(
        [sys.executable, "-c", "from config import get_config; print(get_config().LOG_FORMAT)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert probe.stdout.strip() == expected


def test_an_unknown_log_format_is_refused_by_name():
    result = check_environment(**PRODUCTION, MUSTER_PROXY_COUNT="0", MUSTER_LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "error: MUSTER_LOG_FORMAT must be json or text, not 'xml'" in result.stderr


def test_unknown_environment_name_is_refused():
    with pytest.raises(RuntimeError, match="MUSTER_ENV"):
        get_config("staging")


def test_production_is_the_default_environment(monkeypatch):
    monkeypatch.delenv("MUSTER_ENV", raising=False)
    assert get_config() is ProductionConfig


@pytest.mark.parametrize("value", ["two", "0", ""])
def test_a_malformed_reindex_process_count_is_refused_by_name(tmp_path, value):
    with pytest.raises(RuntimeError, match="MUSTER_REINDEX_PROCS"):
        create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'x.db'}",
                   SEARCH_REINDEX_PROCS=value)
