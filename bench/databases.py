"""The benchmarks' throwaway database: SQLite in the run's folder, or a new PostgreSQL
database beside the one ``--database-url`` names, dropped at the end whatever happens.

The database the URL names is only connected to, to create and drop the new one: nothing
is written to it, so pointing a benchmark at a live server's ``postgres`` is safe.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from config import normalise_database_url


@dataclass(frozen=True)
class Database:
    """Where the run's Muster keeps its data: SQLAlchemy URL, kind (``sqlite`` or
    ``postgresql``) and, on PostgreSQL, the name of the database made for the run."""

    url: str
    kind: str
    name: str | None = None


@contextmanager
def temporary_database(url: str | None, workdir: Path, prefix: str) -> Iterator[Database]:
    """A new, empty database: ``workdir/<prefix>.db`` without ``url``, else
    ``muster_<prefix>_<random>`` on the PostgreSQL server ``url`` names."""
    if not url:
        yield Database(f"sqlite:///{workdir / f'{prefix}.db'}", "sqlite")
        return
    import psycopg
    from sqlalchemy.engine import make_url

    given = make_url(normalise_database_url(url))
    if given.get_backend_name() != "postgresql":
        raise SystemExit(f"--database-url must be PostgreSQL, not {given.get_backend_name()}")
    name = f"muster_{prefix}_{secrets.token_hex(4)}"
    admin = given.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Database(given.set(database=name).render_as_string(hide_password=False),
                       "postgresql", name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
