"""The migrations build the schema the models describe, seed the reference data, and undo.

The session's ``schema`` fixture has already run ``create_all`` in the test database, so
these tests migrate a database of their own that starts empty: a fresh SQLite file, or
on PostgreSQL a scratch database created beside ``TEST_DATABASE_URL`` and dropped after.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from lessons import create_app
from lessons.extensions import db
from lessons.models import Nation, NationGroup
from lessons.reference import nation_rows

FVEY = {"AUS", "CAN", "GBR", "NZL", "USA"}


@contextmanager
def running_alembic() -> Iterator[None]:
    """Run Alembic without letting its ``env.py`` change the rest of the test run.

    ``migrations/env.py`` calls ``logging.config.fileConfig``, which adds a root handler
    bound to the stream pytest is capturing at that moment (closed by later tests) and
    disables every logger the file does not name, e.g. ``lessons.search.index``; the
    logging set-up is restored afterwards. Its ``get_engine()`` (Flask-Migrate's stock
    template) tries Flask-SQLAlchemy 2's ``db.get_engine()`` first, which 3.1 deprecates:
    that one warning is ignored here, not suite-wide, and only while Alembic runs.
    """
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    saved = {name: (lg.disabled, lg.level, list(lg.handlers), lg.propagate)
             for name, lg in logging.Logger.manager.loggerDict.items()
             if isinstance(lg, logging.Logger)}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="'get_engine' is deprecated",
                                    category=DeprecationWarning)
            yield
    finally:
        for handler in root.handlers[:]:
            if handler not in saved_root[1]:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(saved_root[0])
        for name, lg in logging.Logger.manager.loggerDict.items():
            if isinstance(lg, logging.Logger) and name in saved:
                lg.disabled, lg.level, lg.handlers[:], lg.propagate = saved[name]


@pytest.fixture
def empty_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A URL to a database with no tables at all, removed afterwards."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    scratch = f"{url.database}_mig"
    maintenance = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    quoted = maintenance.dialect.identifier_preparer.quote(scratch)
    try:
        with maintenance.connect() as conn:
            # A run killed mid-test may have left it behind.
            conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {quoted}"))
        yield url.set(database=scratch).render_as_string(hide_password=False)
    finally:
        with maintenance.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        maintenance.dispose()


@pytest.fixture
def migrated_app(empty_database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """An app on the scratch database, upgraded to head."""
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=empty_database_url,
                     INDEX_DIR=str(tmp_path / "index"))
    try:
        with app.app_context():
            assert inspect(db.engine).get_table_names() == [], "scratch database not empty"
            with running_alembic():
                flask_migrate.upgrade()
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def schema_diff(app: Flask) -> list[Any]:
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_upgrade_to_head_matches_the_models(migrated_app):
    diff = schema_diff(migrated_app)
    assert diff == [], "migrations and models differ:\n" + "\n".join(map(repr, diff))


def test_upgrade_seeds_every_iso_nation(migrated_app):
    with migrated_app.app_context():
        codes = set(db.session.scalars(select(Nation.code)))
    assert len(codes) == 249
    assert {"GBR", "USA", "AUS", "FRA", "JPN"} <= codes
    assert codes == {row["code"] for row in nation_rows()}


def test_upgrade_seeds_fvey_with_its_five_members(migrated_app):
    with migrated_app.app_context():
        group = db.session.scalar(select(NationGroup).where(NationGroup.code == "FVEY"))
        assert group is not None
        assert {nation.code for nation in group.members} == FVEY


def test_downgrade_to_base_leaves_only_the_version_table(migrated_app):
    with migrated_app.app_context():
        with running_alembic():
            flask_migrate.downgrade(revision="base")
        tables = inspect(db.engine).get_table_names()
    assert tables == ["alembic_version"]
