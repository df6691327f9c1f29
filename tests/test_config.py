"""Configuration: database selection and the production secret-key guard."""

from __future__ import annotations

import pytest

from config import DEFAULT_SECRET_KEY, ProductionConfig, get_config, normalise_database_url
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
    app = create_app(ProductionConfig)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["DEMO_DATA_ALLOWED"] is False


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
