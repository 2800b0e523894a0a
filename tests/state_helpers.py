"""Fixtures for the state store's tests: every test taking `state_url` (or `store`) runs once on a
SQLite file and once on PostgreSQL (a fresh database per test module on 127.0.0.1:5432, from the
suite's `pg_url` server: skipped loudly when it is unreachable, failing under CI=true).

Import the fixtures into a test module: `from state_helpers import state_kind, state_pg, state_url, store`.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from builders import pg_execute
from paydash.state import StateStore, close_all, schema

_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def state_pg(request) -> Iterator[str]:  # noqa: ANN001
    """A fresh PostgreSQL database for this test module (postgresql://... URL), dropped after it."""
    server = request.getfixturevalue("pg_url")  # skips loudly, or fails under CI=true, when unreachable
    name = f"paydash_state_{os.getpid()}_{next(_numbers)}"
    pg_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    url = sa.make_url(server).set(database=name).render_as_string(False)
    try:
        yield url
    finally:
        close_all()
        pg_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_kind(request) -> str:  # noqa: ANN001
    return request.param


@pytest.fixture
def state_url(request, state_kind: str, tmp_path: Path) -> Iterator[str]:  # noqa: ANN001
    """An empty state store's URL: a SQLite file under tmp_path, or the module's PostgreSQL database emptied."""
    if state_kind == "sqlite":
        yield str(tmp_path / "state" / "state.sqlite")
        close_all()
        return
    url = request.getfixturevalue("state_pg")
    empty(url)
    yield url
    close_all()


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    s = StateStore(state_url)
    yield s
    s.close()


def empty(url: str) -> None:
    """Drop every paydash_ table of a PostgreSQL state store (the next open migrates afresh)."""
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.begin() as conn:
            for table in reversed(schema.metadata.sorted_tables):
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table.name}"'))
    finally:
        engine.dispose()
